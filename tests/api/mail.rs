//! The service with a mail server configured: it starts (the start-up line
//! names the server), serves, and stops promptly (the mail drain is bounded).
//! The account flows' mails themselves are tested with their endpoints.

use std::time::{Duration, Instant};

use crate::helpers::spawn_embedded_app;
use crate::smtp_sink::SmtpSink;

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
    assert!(
        start.elapsed() < Duration::from_secs(5),
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
