//! Forgotten password, in Chromium: the request page answers the same for
//! every address, the mailed link's page takes the new password twice (a
//! mismatch is a field error), and afterwards the old sessions are gone and
//! the new password signs in.

use reqwest::StatusCode;

use crate::app::{Backend, unique_email};
use crate::harness::PASSWORD;
use crate::{on_every_backend, stage};

on_every_backend!(forgot_password);

const NEW_PASSWORD: &str = "a brand new passphrase 42";

async fn forgot_password(backend: Backend, test: &'static str) {
    let mut stage = stage!(backend, test);
    let email = unique_email();
    let tokens = stage.app.sign_up(&email, PASSWORD).await;

    let browser = &mut stage.browser;
    browser.open(&stage.app.url("/forgot-password")).await;
    browser.type_into("#email", &email).await;
    browser.screenshot("forgot-password").await;
    browser.click("#submit").await;
    browser
        .wait_for_text("#outcome", "if an account has this email")
        .await;
    browser.screenshot("forgot-password-sent").await;

    let link = stage.app.mailed_link(&email, "/reset-password").await;
    browser.open(&link).await;
    browser.type_into("#password", NEW_PASSWORD).await;
    browser
        .type_into("#confirm", "something else entirely")
        .await;
    browser.click("#submit").await;
    let mismatch = browser.wait_for_any_text("#confirm-error").await;
    browser.screenshot("reset-password-mismatch").await;
    browser.clear("#confirm").await;
    browser.type_into("#confirm", NEW_PASSWORD).await;
    browser.click("#submit").await;
    browser
        .wait_for_text("#outcome", "password has been changed")
        .await;
    browser.screenshot("reset-password-changed").await;

    let refused = stage.app.refresh(&tokens.refresh_token).await;
    assert_eq!(
        refused.status(),
        StatusCode::UNAUTHORIZED,
        "the refresh token from before the reset (field error was {mismatch:?})"
    );
    let signed_in = stage.app.sign_in(&email, NEW_PASSWORD).await;
    assert_eq!(signed_in.status(), StatusCode::OK, "the new password");
    stage.finish().await;
}
