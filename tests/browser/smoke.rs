//! The harness itself: Chromium opens the service (at `localhost`, the
//! origin the mails' links use) and reads what it answers, with a clean
//! console.

use crate::app::Backend;
use crate::{on_every_backend, stage};

on_every_backend!(healthz_in_chromium);

async fn healthz_in_chromium(backend: Backend, test: &'static str) {
    let mut stage = stage!(backend, test);
    let url = stage.app.url("/healthz");
    assert!(url.starts_with("http://localhost:"), "{url}");
    // A JSON answer cannot name an icon: Chromium asks for /favicon.ico,
    // which may not exist (its 404 is a console error). Pages name theirs.
    stage.browser.expect_failed_request("/favicon.ico", 404);
    stage.browser.open(&url).await;
    let body = stage.browser.text("body").await;
    let status: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    assert_eq!(status["status"], "ok", "{body}");
    assert_eq!(stage.browser.current_url().await, url);
    stage.finish().await;
}

/// The harness sees what it must refuse: a CSP violation and a console
/// error on a page served with the pages' policy.
#[tokio::test]
async fn the_log_shows_csp_violations_and_console_errors() {
    let mut stage = stage!(
        Backend::Embedded,
        "smoke::the_log_shows_csp_violations_and_console_errors"
    );
    stage.browser.open(&stage.app.url("/forgot-password")).await;
    // An image from another origin (refused by `img-src 'self'` before any
    // request leaves), and a console error.
    stage
        .browser
        .client
        .execute(
            "const img = document.createElement('img'); \
             img.src = 'http://127.0.0.1:9/refused.png'; \
             document.body.appendChild(img); \
             console.error('an error the harness must see');",
            Vec::new(),
        )
        .await
        .expect("run a script");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = stage.browser.read_log().await;
        let csp = log
            .iter()
            .any(|entry| entry.is_problem() && entry.message.contains("Content Security Policy"));
        let error = log.iter().any(|entry| {
            entry.is_problem() && entry.message.contains("an error the harness must see")
        });
        if csp && error {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the browser log lacks the violation or the error: {log:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Not `finish`: this page's console is meant to be dirty.
}
