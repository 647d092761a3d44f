//! Changing the password and deleting the account on `/account`, in
//! Chromium: a wrong current password is said next to the field; the new
//! password signs in through the API and the old one no longer does; the
//! deletion asks for the password and a confirmation, removes the cookie,
//! and the address can sign up again.

use reqwest::StatusCode;

use crate::app::{Backend, unique_email};
use crate::harness::PASSWORD;
use crate::people::{PROGRAM, on_account_page, sign_in_on_page};
use crate::{on_every_backend, stage};

on_every_backend!(password_change_and_account_deletion);

const NEW_PASSWORD: &str = "a brand new passphrase 42";

async fn password_change_and_account_deletion(backend: Backend, test: &'static str) {
    let mut stage = stage!(backend, test);
    let app = &stage.app;
    let email = unique_email();
    app.sign_up(&email, PASSWORD).await;
    let browser = &mut stage.browser;
    sign_in_on_page(browser, app, &email, PASSWORD).await;

    browser.expect_failed_request("/api/account/password", 403);
    browser
        .type_into("#current-password", "not my password")
        .await;
    browser.type_into("#new-password", NEW_PASSWORD).await;
    browser.type_into("#repeat-password", NEW_PASSWORD).await;
    browser.click("#password-submit").await;
    browser
        .wait_for_text("#current-password-error", "wrong")
        .await;
    browser.clear("#current-password").await;
    browser.type_into("#current-password", PASSWORD).await;
    browser.click("#password-submit").await;
    browser
        .wait_for_text("#password-outcome", "password is changed")
        .await;
    let new = app.sign_in(&email, NEW_PASSWORD).await;
    assert_eq!(new.status(), StatusCode::OK, "the new password");
    let old = app.sign_in(&email, PASSWORD).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "the old password");

    // Deleting: the password, then a confirmation (which can be cancelled).
    browser.type_into("#delete-password", NEW_PASSWORD).await;
    browser.click("#delete-submit").await;
    browser.wait_for_text("#delete-question", &email).await;
    browser.click("#delete-cancel").await;
    assert!(!browser.is_displayed("#delete-confirm").await, "cancelled");
    let still = app.sign_in(&email, NEW_PASSWORD).await;
    assert_eq!(still.status(), StatusCode::OK, "nothing deleted yet");
    browser.click("#delete-submit").await;
    browser.click("#delete-confirmed").await;
    browser.wait_for_text("#deleted-message", "deleted").await;
    browser.screenshot("account-deleted").await;
    let gone = app.sign_in(&email, NEW_PASSWORD).await;
    assert_eq!(
        gone.status(),
        StatusCode::UNAUTHORIZED,
        "the account is gone"
    );
    let cookies = browser
        .cookies_for(&app.url("/api/account/browser/tokens"))
        .await;
    assert!(
        cookies.iter().all(|c| c["name"] != "refresh_token"),
        "the cookie is removed: {cookies:?}"
    );

    // The address signs up again, on /signup.
    browser.click("#signup-again").await;
    let signup = app.url("/signup");
    browser
        .wait_for_url("/signup", |url| url.starts_with(&signup))
        .await;
    browser.type_into("#email", &email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.type_into("#confirm", PASSWORD).await;
    browser.click("#submit").await;
    on_account_page(browser, app, &email).await;
    let uid = app.sign_in_as(&email, PASSWORD, PROGRAM).await.uid();
    app.track(uid);
    stage.finish().await;
}
