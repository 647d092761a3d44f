//! The SMTP mailer against the test SMTP sink (`tests/common/smtp_sink.rs`).

use std::time::{Duration, Instant};

use super::*;
use crate::test_logs::logged_during;

use crate::mail::smtp_sink::{SmtpSink, free_port, link_in};

const LINK: &str = "http://localhost:3000/verify-email?token=SECRET-TOKEN-abc_123";
const WAIT: Duration = Duration::from_secs(10);

fn settings(url: String) -> SmtpSettings {
    SmtpSettings {
        retry: Retry {
            attempts: 3,
            base_delay: Duration::from_millis(20),
        },
        ..SmtpSettings::new(
            Secret::new(url),
            "Account <account@localhost>".parse().unwrap(),
        )
    }
}

fn mail(subject: &str) -> Mail {
    Mail {
        to: "ada@example.com".into(),
        subject: subject.into(),
        body: format!("Hello,\n\nopen {LINK} to verify your email.\n"),
    }
}

/// Log lines at `level` (`WARN`, `ERROR`, …) that mention `text`.
fn lines<'a>(logs: &'a str, level: &str, text: &str) -> Vec<&'a str> {
    logs.lines()
        .filter(|line| line.contains(&format!(" {level} ")) && line.contains(text))
        .collect()
}

fn assert_no_secret(logs: &str) {
    assert!(!logs.contains("SECRET-TOKEN"), "a body was logged: {logs}");
    assert!(!logs.contains("hunter2"), "the password was logged: {logs}");
}

#[test]
fn the_backoff_doubles() {
    let retry = Retry::DEFAULT;
    let delays: Vec<u64> = (1..retry.attempts)
        .map(|n| retry.delay(n).as_secs())
        .collect();
    assert_eq!(delays, [1, 2, 4, 8]);
}

#[tokio::test]
async fn a_mail_reaches_the_server_with_its_link() {
    let sink = SmtpSink::start().await;
    let (received, logs) = logged_during(async {
        let (mailer, drain) = SmtpMailer::start(settings(sink.url())).unwrap();
        mailer.send(mail("Verify your email"));
        let received = sink.next_mail(WAIT).await;
        drain.drain(WAIT).await;
        received
    })
    .await;
    let received = received.expect("a mail");
    assert_eq!(received.from, "account@localhost");
    assert_eq!(received.to, ["ada@example.com"]);
    assert_eq!(received.subject, "Verify your email");
    assert_eq!(
        link_in(&received.body, "http://localhost:3000/"),
        Some(LINK.into())
    );
    let from = received.header("from").unwrap();
    assert!(
        from.contains("Account") && from.contains("<account@localhost>"),
        "{from}"
    );
    assert!(
        received
            .header("message-id")
            .unwrap()
            .ends_with("@localhost>")
    );
    assert_eq!(lines(&logs, "INFO", "mail sent").len(), 1, "{logs}");
    assert_no_secret(&logs);
}

#[tokio::test]
async fn the_credentials_in_the_url_are_used_and_never_logged() {
    let sink = SmtpSink::start().await;
    let url = format!("smtp://mailer:hunter2@127.0.0.1:{}", sink.port());
    let ((), logs) = logged_during(async {
        let (mailer, drain) = SmtpMailer::start(settings(url)).unwrap();
        mailer.send(mail("Verify your email"));
        assert!(sink.next_mail(WAIT).await.is_some());
        drain.drain(WAIT).await;
    })
    .await;
    assert_eq!(sink.logins(), [("mailer".to_owned(), "hunter2".to_owned())]);
    assert_no_secret(&logs);
}

#[tokio::test]
async fn a_refused_session_is_retried_and_each_failure_logged_at_warn() {
    let sink = SmtpSink::start().await;
    sink.refuse_sessions(2, "421 4.3.2 busy, try again later");
    let (received, logs) = logged_during(async {
        let (mailer, drain) = SmtpMailer::start(settings(sink.url())).unwrap();
        mailer.send(mail("Verify your email"));
        let received = sink.next_mail(WAIT).await;
        drain.drain(WAIT).await;
        received
    })
    .await;
    assert!(received.is_some(), "delivered on the third attempt: {logs}");
    assert_eq!(sink.sessions(), 3);
    let warnings = lines(&logs, "WARN", "will retry");
    assert_eq!(warnings.len(), 2, "{logs}");
    for warning in warnings {
        assert!(warning.contains("subject=Verify your email"), "{warning}");
        assert!(warning.contains("to=ada@example.com"), "{warning}");
    }
    assert!(lines(&logs, "ERROR", "").is_empty(), "{logs}");
    assert_no_secret(&logs);
}

#[tokio::test]
async fn a_server_down_at_first_gets_the_mail_once_it_is_up() {
    let port = free_port();
    let mut settings = settings(format!("smtp://127.0.0.1:{port}"));
    // 50, 100, 200, 400 ms apart: the sink starts during the waits.
    settings.retry = Retry {
        attempts: 5,
        base_delay: Duration::from_millis(50),
    };
    let (received, logs) = logged_during(async {
        let (mailer, drain) = SmtpMailer::start(settings).unwrap();
        mailer.send(mail("Reset your password"));
        tokio::time::sleep(Duration::from_millis(120)).await;
        let sink = SmtpSink::start_on(port).await;
        let received = sink.next_mail(WAIT).await;
        drain.drain(WAIT).await;
        received
    })
    .await;
    assert_eq!(received.expect("a mail").subject, "Reset your password");
    assert!(!lines(&logs, "WARN", "will retry").is_empty(), "{logs}");
    assert_no_secret(&logs);
}

#[tokio::test]
async fn the_last_failure_is_logged_at_error() {
    let sink = SmtpSink::start().await;
    sink.refuse_sessions(100, "421 4.3.2 busy, try again later");
    let url = format!("smtp://mailer:hunter2@127.0.0.1:{}", sink.port());
    let ((), logs) = logged_during(async {
        let (mailer, drain) = SmtpMailer::start(settings(url)).unwrap();
        mailer.send(mail("Verify your email"));
        drain.drain(WAIT).await;
    })
    .await;
    assert_eq!(sink.sessions(), 3, "3 attempts");
    assert_eq!(lines(&logs, "WARN", "will retry").len(), 2, "{logs}");
    let errors = lines(&logs, "ERROR", "");
    assert_eq!(errors.len(), 1, "{logs}");
    assert!(
        errors[0].contains("giving up after 3 attempts"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("subject=Verify your email"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("to=ada@example.com"), "{}", errors[0]);
    assert!(sink.mails().is_empty());
    assert_no_secret(&logs);
}

#[tokio::test]
async fn a_permanent_refusal_is_logged_at_error_and_not_retried() {
    let sink = SmtpSink::start().await;
    sink.refuse_sessions(100, "554 5.3.2 no service here");
    let ((), logs) = logged_during(async {
        let (mailer, drain) = SmtpMailer::start(settings(sink.url())).unwrap();
        mailer.send(mail("Verify your email"));
        drain.drain(WAIT).await;
    })
    .await;
    assert_eq!(sink.sessions(), 1);
    assert!(lines(&logs, "WARN", "").is_empty(), "{logs}");
    let errors = lines(&logs, "ERROR", "the mail server refused it");
    assert_eq!(errors.len(), 1, "{logs}");
    assert_no_secret(&logs);
}

#[tokio::test]
async fn send_returns_at_once_and_a_hung_server_holds_up_only_its_mail() {
    let sink = SmtpSink::start().await;
    sink.hang(true);
    let (elapsed, logs) = logged_during(async {
        let (mailer, drain) = SmtpMailer::start(settings(sink.url())).unwrap();
        let start = Instant::now();
        mailer.send(mail("Held up"));
        let elapsed = start.elapsed();
        // The first mail's session hangs (until the 10 s attempt timeout);
        // the next goes out beside it.
        wait_for_sessions(&sink, 1).await;
        sink.hang(false);
        mailer.send(mail("Not held up"));
        let next = sink.next_mail(WAIT).await;
        assert_eq!(next.map(|m| m.subject).as_deref(), Some("Not held up"));
        // A bounded drain: the hung mail is given up (and logged) at the
        // drain's deadline, not at the end of its attempt.
        let start = Instant::now();
        drain.drain(Duration::from_millis(200)).await;
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        elapsed
    })
    .await;
    assert!(
        elapsed < Duration::from_millis(500),
        "send took {elapsed:?}"
    );
    let undelivered = lines(&logs, "ERROR", "stopped before it went out");
    assert_eq!(undelivered.len(), 1, "{logs}");
    assert!(
        undelivered[0].contains("subject=Held up"),
        "{}",
        undelivered[0]
    );
    assert_no_secret(&logs);
}

/// Waits (at most [`WAIT`]) until the sink has seen `n` sessions.
async fn wait_for_sessions(sink: &SmtpSink, n: usize) {
    let deadline = Instant::now() + WAIT;
    while sink.sessions() < n {
        assert!(Instant::now() < deadline, "{} sessions", sink.sessions());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_on_after_the_attempt_timeout_then_retried() {
    let sink = SmtpSink::start().await;
    sink.hang(true);
    let mut settings = settings(sink.url());
    settings.attempt_timeout = Duration::from_millis(300);
    let ((), logs) = logged_during(async {
        let (mailer, drain) = SmtpMailer::start(settings).unwrap();
        mailer.send(mail("Held up"));
        wait_for_sessions(&sink, 1).await;
        sink.hang(false);
        let next = sink.next_mail(WAIT).await;
        assert_eq!(next.map(|m| m.subject).as_deref(), Some("Held up"));
        drain.drain(WAIT).await;
    })
    .await;
    let retried = lines(&logs, "WARN", "will retry");
    assert_eq!(retried.len(), 1, "{logs}");
    assert!(
        retried[0].contains("no answer within 300ms"),
        "{}",
        retried[0]
    );
    assert_no_secret(&logs);
}

#[tokio::test]
async fn a_full_queue_drops_the_new_mail_and_says_so() {
    let sink = SmtpSink::start().await;
    sink.hang(true);
    let mut settings = settings(sink.url());
    settings.queue = 1;
    settings.concurrency = 1;
    let ((), logs) = logged_during(async {
        let (mailer, drain) = SmtpMailer::start(settings).unwrap();
        mailer.send(mail("Being sent"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        mailer.send(mail("Queued"));
        mailer.send(mail("Dropped"));
        drain.drain(Duration::from_millis(100)).await;
    })
    .await;
    let dropped = lines(&logs, "ERROR", "queue is full");
    assert_eq!(dropped.len(), 1, "{logs}");
    assert!(dropped[0].contains("subject=Dropped"), "{}", dropped[0]);
    assert!(
        dropped[0].contains("to_domain=example.com"),
        "{}",
        dropped[0]
    );
    let undelivered = lines(&logs, "ERROR", "stopped before it went out");
    assert_eq!(undelivered.len(), 2, "the two others, at the drain: {logs}");
    assert_no_secret(&logs);
}

#[tokio::test]
async fn a_drain_sends_what_is_queued_then_new_mail_is_refused() {
    let sink = SmtpSink::start().await;
    let ((), logs) = logged_during(async {
        let (mailer, drain) = SmtpMailer::start(settings(sink.url())).unwrap();
        for n in 0..6 {
            mailer.send(mail(&format!("Mail {n}")));
        }
        drain.drain(WAIT).await;
        assert_eq!(sink.mails().len(), 6, "all out when the drain returns");
        mailer.send(mail("Too late"));
    })
    .await;
    let refused = lines(&logs, "ERROR", "the mailer has stopped");
    assert_eq!(refused.len(), 1, "{logs}");
    assert!(refused[0].contains("subject=Too late"), "{}", refused[0]);
    assert_no_secret(&logs);
}

#[tokio::test]
async fn a_recipient_that_is_not_an_address_is_logged_and_skipped() {
    let sink = SmtpSink::start().await;
    let ((), logs) = logged_during(async {
        let (mailer, drain) = SmtpMailer::start(settings(sink.url())).unwrap();
        mailer.send(Mail {
            to: "not an address".into(),
            ..mail("Verify your email")
        });
        drain.drain(WAIT).await;
    })
    .await;
    assert_eq!(sink.sessions(), 0);
    assert_eq!(lines(&logs, "ERROR", "cannot build it").len(), 1, "{logs}");
    assert_no_secret(&logs);
}

#[tokio::test]
async fn a_drain_is_bounded_after_every_mailer_is_gone_too() {
    let sink = SmtpSink::start().await;
    sink.refuse_sessions(100, "421 4.3.2 busy, try again later");
    let mut settings = settings(sink.url());
    // The retry a minute away: a drain that waited for it would take that.
    settings.retry = Retry {
        attempts: 5,
        base_delay: Duration::from_secs(60),
    };
    let ((), logs) = logged_during(async {
        let (mailer, drain) = SmtpMailer::start(settings).unwrap();
        mailer.send(mail("Waiting to be retried"));
        wait_for_sessions(&sink, 1).await;
        // As when the app's services are dropped at shutdown, before the drain.
        drop(mailer);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let start = Instant::now();
        drain.drain(Duration::from_millis(200)).await;
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    })
    .await;
    assert_eq!(sink.sessions(), 1, "the retry was a minute away");
    let undelivered = lines(&logs, "ERROR", "stopped before it went out");
    assert_eq!(undelivered.len(), 1, "{logs}");
    assert_no_secret(&logs);
}
