//! Email verification (issue 10) on both backends, with mails read from the
//! test SMTP sink: sign-up mails one link; following it flips `emailVerified`
//! and, from the next refresh, the `email_verified` claim; a link works once
//! and not after `VERIFY_TOKEN_EXP`; a resend or an email change replaces
//! the link; resends are limited; without `SMTP_URL` the link is in the log.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Backend, MAIL_WAIT, PASSWORD, PUBLIC_URL, TestDatabase, assert_error, assert_invalid_token,
    claims, delete_user_keys, key_files, nth_mail_to, require_real_stores, spawn_app,
    stores_reachable, test_redis_url, token_in, unique_email,
};
use crate::smtp_sink::{SmtpSink, link_in};

crate::on_every_backend!(
    signing_up_sends_one_verification_mail_and_its_link_verifies_once,
    a_verification_link_does_not_work_after_its_lifetime,
    a_resend_and_an_email_change_each_replace_the_link,
    resends_are_limited_per_user,
    without_smtp_url_the_link_is_in_the_log,
    without_public_url_the_link_names_localhost_and_the_port_bound,
);

/// `PUBLIC_URL` unset, the service listening on 127.0.0.1 and a port the
/// kernel picked (`PORT=0`): the link names `localhost` and that port.
async fn without_public_url_the_link_names_localhost_and_the_port_bound(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &[("SMTP_URL", &smtp)]);
    let port = app
        .address
        .rsplit(':')
        .next()
        .and_then(|port| port.parse::<u16>().ok())
        .expect("the app's port");
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let mail = nth_mail_to(&sink, &email, 1).await;
    let prefix = format!("http://localhost:{port}/verify-email?token=");
    let link = link_in(&mail.body, &prefix)
        .unwrap_or_else(|| panic!("a link to {prefix}… in {:?}", mail.body));
    let token = &link[prefix.len()..];
    assert_eq!(app.verify_email(token).await.status(), 204);
    assert_eq!(app.me_user(&tokens.id_token).await["emailVerified"], true);
}

async fn signing_up_sends_one_verification_mail_and_its_link_verifies_once(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &[("SMTP_URL", &smtp), ("PUBLIC_URL", PUBLIC_URL)]);
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;

    let mail = nth_mail_to(&sink, &email, 1).await;
    assert_eq!(mail.subject, "Verify your email address");
    let token = token_in(&mail, "/verify-email");
    assert_eq!(app.me_user(&tokens.id_token).await["emailVerified"], false);
    assert_eq!(claims(&tokens.id_token)["email_verified"], false);

    assert_eq!(app.verify_email(&token).await.status(), 204);
    assert_eq!(app.me_user(&tokens.id_token).await["emailVerified"], true);
    assert_eq!(
        claims(&tokens.id_token)["email_verified"],
        false,
        "a token already handed out says what it said"
    );
    let refreshed = app.refreshed(&tokens.refresh_token).await;
    assert_eq!(claims(&refreshed.id_token)["email_verified"], true);
    assert_eq!(
        claims(&app.signin(&email).await.id_token)["email_verified"],
        true
    );

    assert_invalid_token(app.verify_email(&token).await).await;
    assert_invalid_token(app.verify_email("not-a-token").await).await;
    assert_eq!(
        sink.mails_to(&email, Duration::ZERO).await.len(),
        1,
        "one mail for one sign-up"
    );
    assert_error(
        app.resend_verification(&refreshed.id_token).await,
        409,
        "CONFLICT",
    )
    .await;
}

async fn a_verification_link_does_not_work_after_its_lifetime(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(
        backend,
        &[
            ("SMTP_URL", &smtp),
            ("PUBLIC_URL", PUBLIC_URL),
            ("VERIFY_TOKEN_EXP", "5"),
        ]
    );
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let token = token_in(&nth_mail_to(&sink, &email, 1).await, "/verify-email");
    // Expiry is kept in whole seconds: a link lives 4 to 5 s. Long enough for
    // the new link below to be mailed and used on a loaded machine (with a
    // lifetime of 1 s it worked only until the end of the second it was made).
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    assert_invalid_token(app.verify_email(&token).await).await;
    assert_eq!(app.me_user(&tokens.id_token).await["emailVerified"], false);
    // A new link works where the expired one did not.
    let resent = app.resend_verification(&tokens.id_token).await;
    assert_eq!(resent.status(), 202);
    let token = token_in(&nth_mail_to(&sink, &email, 2).await, "/verify-email");
    assert_eq!(app.verify_email(&token).await.status(), 204);
}

async fn a_resend_and_an_email_change_each_replace_the_link(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &[("SMTP_URL", &smtp), ("PUBLIC_URL", PUBLIC_URL)]);
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let first = token_in(&nth_mail_to(&sink, &email, 1).await, "/verify-email");

    let resent = app.resend_verification(&tokens.id_token).await;
    assert_eq!(resent.status(), 202);
    let body: Value = resent.json().await.unwrap();
    assert_eq!(body["message"], "a new verification link has been sent");
    let second = token_in(&nth_mail_to(&sink, &email, 2).await, "/verify-email");
    assert_ne!(first, second);
    assert_invalid_token(app.verify_email(&first).await).await;

    // A new address: a link to it; the old address's link no longer works.
    let new_email = unique_email();
    let changed = app
        .put_details(
            &tokens.id_token,
            &json!({"email": new_email, "currentPassword": PASSWORD}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let body: Value = changed.json().await.unwrap();
    assert_eq!(body["user"]["emailVerified"], false);
    let third = token_in(&nth_mail_to(&sink, &new_email, 1).await, "/verify-email");
    assert_invalid_token(app.verify_email(&second).await).await;
    assert_eq!(app.verify_email(&third).await.status(), 204);
    let user = app.me_user(&tokens.id_token).await;
    assert_eq!(
        (user["email"].as_str(), user["emailVerified"].as_bool()),
        (Some(new_email.as_str()), Some(true))
    );

    // Changing it again unverifies it, and mails the next address.
    let newer_email = unique_email();
    let changed = app
        .put_details(
            &tokens.id_token,
            &json!({"email": newer_email, "currentPassword": PASSWORD}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(app.me_user(&tokens.id_token).await["emailVerified"], false);
    nth_mail_to(&sink, &newer_email, 1).await;
}

async fn resends_are_limited_per_user(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(
        backend,
        &[
            ("SMTP_URL", &smtp),
            ("PUBLIC_URL", PUBLIC_URL),
            ("MAIL_RATE_LIMIT", "2"),
            ("RATE_LIMIT_WINDOW", "60"),
        ]
    );
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    for _ in 0..2 {
        assert_eq!(
            app.resend_verification(&tokens.id_token).await.status(),
            202
        );
    }
    let refused = app.resend_verification(&tokens.id_token).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_error(refused, 429, "TOO_MANY_REQUESTS").await;
    // The sign-up's mail and the two resends, no more.
    assert_eq!(sink.wait_for_mails_to(&email, 3, MAIL_WAIT).await.len(), 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.mails_to(&email, Duration::ZERO).await.len(), 3);
    // Another user is counted on its own.
    let (_, other) = app.signup(&unique_email()).await;
    assert_eq!(app.resend_verification(&other.id_token).await.status(), 202);
}

/// The account binary's log lines, read on a thread of their own.
struct Logged {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Logged {
    /// Waits (30 s at most) for a line containing `needle`; all lines so far.
    async fn until(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.lines.lock().unwrap().join("\n");
            if lines.contains(needle) {
                return lines;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {needle:?} in the log:\n{lines}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The real binary with `SMTP_URL` unset: every mail goes to its log.
async fn without_smtp_url_the_link_is_in_the_log(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_files();
    let mut command = Command::new(env!("CARGO_BIN_EXE_account"));
    command
        .current_dir(dir.path())
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("RUST_LOG", "info")
        .env("PUBLIC_URL", PUBLIC_URL)
        .env("PRIV_KEY_FILE", &keys.private_key)
        .env("PUB_KEY_FILE", &keys.public_key)
        .env("REFRESH_SECRET_FILE", &keys.refresh_secret)
        // On Redis every test's sign-ups from 127.0.0.1 share one counter.
        .env("SIGNUP_RATE_LIMIT", "1000000000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let _database = match backend {
        Backend::Embedded => {
            command.env(
                "DATABASE_URL",
                format!("sqlite://{}/account.db", dir.path().display()),
            );
            None
        }
        Backend::Real => {
            if let Err(store) = stores_reachable().await {
                assert!(!require_real_stores(), "{store} is unreachable");
                eprintln!(
                    "SKIPPED without_smtp_url_the_link_is_in_the_log: {store} is unreachable"
                );
                return;
            }
            let db = TestDatabase::create("account_test").await.unwrap();
            command
                .env("DATABASE_URL", &db.url)
                .env("REDIS_URL", test_redis_url());
            Some(db)
        }
    };
    let mut child = command.spawn().expect("the account binary");
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            keep.lock().unwrap().push(line);
        }
    });
    let server = Logged { child, lines };
    let log = server.until("account service listening").await;
    let address = log
        .split_once("listening address=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .expect("the address in the log")
        .to_owned();
    assert!(
        log.contains("SMTP_URL"),
        "the start-up line names the log mailer: {log}"
    );

    let email = unique_email();
    let response = reqwest::Client::new()
        .post(format!("http://{address}/api/account/signup"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let uid: Uuid = claims(body["tokens"]["idToken"].as_str().unwrap())["sub"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let prefix = format!("{PUBLIC_URL}/verify-email?token=");
    let log = server.until(&prefix).await;
    let link = link_in(&log, &prefix).expect("the link");
    assert_eq!(link.len(), prefix.len() + 43, "{link}");
    assert!(log.contains(&email), "the recipient is named: {log}");
    drop(server);
    if backend == Backend::Real {
        let _ = std::thread::spawn(move || delete_user_keys(&[uid])).join();
    }
}
