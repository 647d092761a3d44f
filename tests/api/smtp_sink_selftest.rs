//! The test SMTP sink itself: the protocol by hand, and what a real client
//! (lettre, as the service uses it) sends, decoded.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::smtp_sink::{SmtpSink, free_port, link_in};

const WAIT: Duration = Duration::from_secs(10);

/// Sends `line` and returns the reply's last line.
async fn command(stream: &mut BufReader<TcpStream>, line: &str) -> String {
    stream
        .get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
    reply(stream).await
}

async fn reply(stream: &mut BufReader<TcpStream>) -> String {
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.trim_end().to_owned();
        }
    }
}

#[tokio::test]
async fn the_sink_speaks_smtp_and_unstuffs_dots() {
    let sink = SmtpSink::start().await;
    let mut s = BufReader::new(
        TcpStream::connect(("127.0.0.1", sink.port()))
            .await
            .unwrap(),
    );
    assert!(reply(&mut s).await.starts_with("220"));
    assert!(command(&mut s, "EHLO client").await.starts_with("250"));
    assert!(command(&mut s, "NOOP").await.starts_with("250"));
    assert!(
        command(&mut s, "RCPT TO:<x@example.com>")
            .await
            .starts_with("503")
    );
    assert!(
        command(&mut s, "MAIL FROM:<dropped@example.com>")
            .await
            .starts_with("250")
    );
    assert!(command(&mut s, "RSET").await.starts_with("250"));
    assert!(
        command(&mut s, "RCPT TO:<x@example.com>")
            .await
            .starts_with("503"),
        "RSET clears"
    );
    assert!(
        command(&mut s, "mail from: <a@example.com> BODY=8BITMIME")
            .await
            .starts_with("250")
    );
    assert!(
        command(&mut s, "RCPT TO:<B@Example.com>")
            .await
            .starts_with("250")
    );
    assert!(
        command(&mut s, "RCPT TO:<c@example.com>")
            .await
            .starts_with("250")
    );
    assert!(command(&mut s, "DATA").await.starts_with("354"));
    let data = "Subject: hello\r\n\r\nfirst\r\n..dot at the start\r\n.\r\n";
    s.get_mut().write_all(data.as_bytes()).await.unwrap();
    assert!(reply(&mut s).await.starts_with("250"));
    assert!(command(&mut s, "QUIT").await.starts_with("221"));

    let mail = sink.next_mail(WAIT).await.expect("a mail");
    assert_eq!(mail.from, "a@example.com");
    assert_eq!(mail.to, ["B@Example.com", "c@example.com"]);
    assert!(mail.is_to("b@example.com"));
    assert_eq!(mail.subject, "hello");
    assert_eq!(mail.body, "first\n.dot at the start\n");
    assert_eq!(mail.header("subject").as_deref(), Some("hello"));
    assert!(
        sink.next_mail(Duration::from_millis(50)).await.is_none(),
        "returned once"
    );
    assert_eq!(
        sink.mails_to("c@example.com", WAIT).await.len(),
        1,
        "still listed"
    );
    assert!(
        sink.mails_to("z@example.com", Duration::from_millis(50))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn the_sink_decodes_what_lettre_sends_and_records_the_login() {
    let sink = SmtpSink::start().await;
    let url = format!("smtp://user:p%40ss@127.0.0.1:{}", sink.port());
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
        .unwrap()
        .timeout(Some(Duration::from_secs(5)))
        .build();
    let link = format!(
        "http://localhost:3000/verify-email?token={}",
        "Ab0_-".repeat(40)
    );
    // A long line and non-ASCII text make lettre pick quoted-printable or base64.
    let bodies = [
        format!("Hello,\n\nopen {link} to verify.\n"),
        format!("Grüße — öffne\n{link}\n"),
    ];
    for body in &bodies {
        let message = Message::builder()
            .from("Account <account@localhost>".parse::<Mailbox>().unwrap())
            .to("ada@example.com".parse().unwrap())
            .subject("Vérifiez votre adresse")
            .header(ContentType::TEXT_PLAIN)
            .body(body.clone())
            .unwrap();
        transport.send(message).await.expect("sent to the sink");
    }
    for body in &bodies {
        let mail = sink.next_mail(WAIT).await.expect("a mail");
        assert_eq!(mail.from, "account@localhost");
        assert_eq!(mail.to, ["ada@example.com"]);
        assert_eq!(mail.subject, "Vérifiez votre adresse");
        // A transfer encoding may end the text with a line end of its own.
        assert_eq!(mail.body.trim_end(), body.trim_end());
        assert_eq!(
            link_in(&mail.body, "http://localhost:3000/verify-email?"),
            Some(link.clone())
        );
    }
    assert_eq!(
        sink.logins(),
        vec![("user".to_owned(), "p@ss".to_owned()); 2],
        "the credentials in the URL, percent-decoded"
    );
}

#[tokio::test]
async fn the_sink_can_refuse_sessions_or_start_late() {
    let sink = SmtpSink::start().await;
    sink.refuse_sessions(1, "421 4.3.2 try again later");
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&sink.url())
        .unwrap()
        .timeout(Some(Duration::from_secs(5)))
        .build();
    let message = || {
        Message::builder()
            .from("account@localhost".parse::<Mailbox>().unwrap())
            .to("ada@example.com".parse().unwrap())
            .subject("s")
            .body(String::from("b"))
            .unwrap()
    };
    let refused = transport.send(message()).await.expect_err("refused");
    assert!(refused.is_transient(), "{refused}");
    transport.send(message()).await.expect("then accepted");
    assert_eq!(sink.sessions(), 2);
    assert_eq!(sink.mails().len(), 1);

    // Nothing listening first, then a sink on that very port.
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
        .unwrap()
        .timeout(Some(Duration::from_secs(5)))
        .build();
    assert!(transport.send(message()).await.is_err(), "nothing listens");
    let late = SmtpSink::start_on(port).await;
    transport.send(message()).await.expect("now it listens");
    assert!(late.next_mail(WAIT).await.is_some());
}

#[test]
fn link_in_finds_the_link_and_leaves_punctuation_out() {
    let body = "Open <https://a.example/r?t=x1_y-2>, or https://a.example/r?t=z9.\nBye";
    assert_eq!(
        link_in(body, "https://a.example/r?"),
        Some("https://a.example/r?t=x1_y-2".to_owned())
    );
    assert_eq!(
        link_in(&body[30..], "https://a.example/r?"),
        Some("https://a.example/r?t=z9".to_owned())
    );
    assert_eq!(link_in(body, "https://b.example/"), None);
}
