//! The service with a mail server configured: it starts (the start-up line
//! names the server), serves, and stops promptly (the mail drain is bounded);
//! a mail server that is down or refuses never fails a request, and the mail
//! arrives on a retry. The account flows' mails are tested with their
//! endpoints.

use std::time::{Duration, Instant};

use crate::helpers::{
    Backend, PUBLIC_URL, nth_mail_to, spawn_app, spawn_embedded_app, token_in, unique_email,
};
use crate::smtp_sink::{SmtpSink, free_port};

#[tokio::test]
async fn the_service_starts_and_stops_with_an_smtp_server() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_embedded_app(&[
        ("SMTP_URL", url.as_str()),
        ("MAIL_FROM", "Account <account@example.com>"),
    ])
    .await;
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let start = Instant::now();
    let app = app.restart().await;
    // Nothing queued: the bounded mail drain has nothing to wait for.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "stopped in {:?}",
        start.elapsed()
    );
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// The mail server is down when a person signs up: the sign-up answers at
/// once, and the verification mail arrives once the server is back (the
/// mailer retries after 1, 2, 4 and 8 s), with a link that works.
async fn with_the_mail_server_down_a_sign_up_succeeds_and_its_mail_comes_once_it_is_back(
    backend: Backend,
) {
    let port = free_port();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app!(backend, &[("SMTP_URL", &smtp), ("PUBLIC_URL", PUBLIC_URL)]);
    let email = unique_email();
    let started = Instant::now();
    let (_, tokens) = app.signup(&email).await;
    // Had it waited, it would have waited for every retry (1 + 2 + 4 + 8 s):
    // the server comes up only after the sign-up has been answered.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the sign-up did not wait on the mail server: {:?}",
        started.elapsed()
    );

    // Up again after the first attempt failed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sink = SmtpSink::start_on(port).await;
    let mail = nth_mail_to(&sink, &email, 1).await;
    let token = token_in(&mail, "/verify-email");
    assert_eq!(app.verify_email(&token).await.status(), 204);
    assert_eq!(app.me_user(&tokens.id_token).await["emailVerified"], true);
}

/// A server that refuses the first session (421) gets the mail on a retry.
async fn a_refused_delivery_is_retried(backend: Backend) {
    let sink = SmtpSink::start().await;
    sink.refuse_sessions(1, "421 4.3.2 try again later");
    let smtp = sink.url();
    let app = spawn_app!(backend, &[("SMTP_URL", &smtp), ("PUBLIC_URL", PUBLIC_URL)]);
    let email = unique_email();
    app.signup(&email).await;
    let mail = nth_mail_to(&sink, &email, 1).await;
    assert!(sink.sessions() >= 2, "delivered on a second session");
    token_in(&mail, "/verify-email");
}

crate::on_every_backend!(
    with_the_mail_server_down_a_sign_up_succeeds_and_its_mail_comes_once_it_is_back,
    a_refused_delivery_is_retried,
);
