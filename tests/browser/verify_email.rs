//! The verification link of the sign-up mail, opened in Chromium: a plain
//! GET changes nothing (mail scanners fetch links), pressing the button
//! verifies, the token leaves the address bar, and the same link pressed
//! again says it was used.

use serde_json::json;

use crate::app::{Backend, unique_email};
use crate::harness::PASSWORD;
use crate::headers::assert_page_headers;
use crate::{on_every_backend, stage};

on_every_backend!(verify_email_link);

async fn verify_email_link(backend: Backend, test: &'static str) {
    let mut stage = stage!(backend, test);
    let email = unique_email();
    let tokens = stage.app.sign_up(&email, PASSWORD).await;
    let link = stage.app.mailed_link(&email, "/verify-email").await;

    // A GET alone (a mail scanner, a link preview) is a page and uses nothing.
    let response = stage
        .app
        .http
        .get(&link)
        .send()
        .await
        .expect("GET the link");
    assert_page_headers("the verification link", &response);
    assert_eq!(
        stage.app.me(&tokens.id_token).await["emailVerified"],
        json!(false),
        "after a plain GET of the link"
    );

    let browser = &mut stage.browser;
    browser.open(&link).await;
    browser.screenshot("verify-email").await;
    browser.click("#verify").await;
    let outcome = browser.wait_for_text("#outcome", "verified").await;
    assert!(
        !outcome.contains("used, expired or replaced"),
        "{outcome:?}"
    );
    browser.screenshot("verify-email-verified").await;
    assert_eq!(
        stage.app.me(&tokens.id_token).await["emailVerified"],
        json!(true),
        "after pressing {outcome:?}"
    );
    browser
        .wait_for_url("without the token", |url| !url.contains("token="))
        .await;

    // The same link again: its token is used.
    browser.expect_failed_request("/api/account/verify-email", 400);
    browser.open(&link).await;
    browser.click("#verify").await;
    browser
        .wait_for_text("#outcome", "used, expired or replaced")
        .await;
    assert!(
        browser.is_displayed("#ask-again").await,
        "the way to ask for a new link (#ask-again) is shown"
    );
    browser.screenshot("verify-email-used").await;
    stage.finish().await;
}
