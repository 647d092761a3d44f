//! Sign-up in Chromium: `/signup` checks the two passwords, creates the
//! account and signs the person in (on to `/account`, address not verified,
//! with "resend"); the mailed link verifies it, and `/account` then shows it
//! verified. The profile's edit saves a name and a website, and asks for the
//! current password before it changes the address. The same address again
//! is refused on `/signup`, next to the field.
//!
//! With `EMAIL_CONFIRMATION=required`: `/signup` only says to check the
//! mail (no session); `/signin` before the link is opened says the address
//! is not verified and sends a new link, which then lets the person in.

use crate::app::{Backend, unique_email};
use crate::harness::PASSWORD;
use crate::people::{PROGRAM, on_account_page, sign_in_on_page};
use crate::{on_every_backend, stage};

on_every_backend!(
    sign_up_verify_and_see_it_verified,
    sign_up_when_confirmation_is_required
);

async fn sign_up_verify_and_see_it_verified(backend: Backend, test: &'static str) {
    let mut stage = stage!(backend, test);
    let email = unique_email();
    let browser = &mut stage.browser;
    browser.open(&stage.app.url("/signup")).await;
    browser.type_into("#email", &email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.type_into("#confirm", "not the same password").await;
    browser.click("#submit").await;
    browser.wait_for_text("#confirm-error", "differ").await;
    browser.clear("#confirm").await;
    browser.type_into("#confirm", PASSWORD).await;
    browser.screenshot("signup").await;
    browser.click("#submit").await;

    on_account_page(browser, &stage.app, &email).await;
    let status = browser.text("#profile-verified").await;
    assert_eq!(status, "Not verified");
    assert!(
        browser.is_displayed("#resend").await,
        "\"resend\" is offered"
    );
    // Its Redis keys go with the scenario's.
    let uid = stage.app.sign_in_as(&email, PASSWORD, PROGRAM).await.uid();
    stage.app.track(uid);

    // "Resend" on the account page: a second link, which replaces the first.
    stage.app.nth_verification_to(&email, 1).await;
    browser.click("#resend").await;
    browser.wait_for_text("#resend-outcome", "on its way").await;
    let second = stage.app.nth_verification_to(&email, 2).await;
    browser
        .open(&stage.app.link_in(&second, "/verify-email"))
        .await;
    browser.click("#verify").await;
    browser.wait_for_text("#outcome", "is verified").await;
    assert_eq!(
        browser.count("#continue").await,
        0,
        "no redirect_to, no Continue"
    );

    browser.open(&stage.app.url("/account")).await;
    on_account_page(browser, &stage.app, &email).await;
    assert_eq!(browser.text("#profile-verified").await, "Verified");
    assert!(
        !browser.is_displayed("#unverified").await,
        "no \"resend\" now"
    );

    // The profile: a name and a website need no password; a new address does.
    browser.type_into("#details-name", "Ada Lovelace").await;
    browser
        .type_into("#details-website", "https://ada.example")
        .await;
    browser.click("#details-submit").await;
    browser.wait_for_text("#details-outcome", "saved").await;
    browser.wait_for_text("#profile-name", "Ada Lovelace").await;
    assert_eq!(
        browser.text("#profile-website").await,
        "https://ada.example"
    );
    assert!(!browser.is_displayed("#details-password").await);
    let moved = unique_email();
    browser.clear("#details-email").await;
    browser.type_into("#details-email", &moved).await;
    assert!(
        browser.is_displayed("#details-password").await,
        "a new address asks for the password"
    );
    browser.click("#details-submit").await;
    browser
        .wait_for_text("#details-password-error", "current password")
        .await;
    browser.type_into("#details-password", PASSWORD).await;
    browser.click("#details-submit").await;
    browser.wait_for_text("#profile-email", &moved).await;
    assert_eq!(browser.text("#profile-verified").await, "Not verified");
    let moved_in = stage.app.sign_in(&moved, PASSWORD).await;
    assert_eq!(
        moved_in.status(),
        reqwest::StatusCode::OK,
        "the new address"
    );

    // A taken address: a field error, no second account.
    browser.expect_failed_request("/api/account/browser/signup", 409);
    browser.open(&stage.app.url("/signup")).await;
    browser.type_into("#email", &moved).await;
    browser.type_into("#password", PASSWORD).await;
    browser.type_into("#confirm", PASSWORD).await;
    browser.click("#submit").await;
    browser.wait_for_text("#email-error", "already has").await;
    stage.finish().await;
}

async fn sign_up_when_confirmation_is_required(backend: Backend, test: &'static str) {
    let env = [("EMAIL_CONFIRMATION", "required".to_owned())];
    let mut stage = stage!(backend, test, &env);
    let app = &stage.app;
    let email = unique_email();
    let browser = &mut stage.browser;
    browser.open(&app.url("/signup")).await;
    browser.type_into("#email", &email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.type_into("#confirm", PASSWORD).await;
    browser.click("#submit").await;
    browser
        .wait_for_text("#done-message", "check your mail")
        .await;
    assert!(
        !browser.is_displayed("#done-account").await,
        "no session, no account link"
    );
    let cookies = browser
        .cookies_for(&app.url("/api/account/browser/tokens"))
        .await;
    assert!(cookies.is_empty(), "no session cookie: {cookies:?}");
    app.nth_verification_to(&email, 1).await;

    // Signing in before the link is opened: not verified, a new link.
    browser.expect_failed_request("/api/account/browser/signin", 403);
    browser.open(&app.url("/signin")).await;
    browser.type_into("#email", &email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#submit").await;
    browser
        .wait_for_text("#unverified", "not verified yet")
        .await;
    browser.click("#resend").await;
    browser.wait_for_text("#resend-outcome", "on its way").await;
    let second = app.nth_verification_to(&email, 2).await;
    browser.open(&app.link_in(&second, "/verify-email")).await;
    browser.click("#verify").await;
    browser.wait_for_text("#outcome", "is verified").await;

    sign_in_on_page(browser, app, &email, PASSWORD).await;
    assert_eq!(browser.text("#profile-verified").await, "Verified");
    let uid = app.sign_in_as(&email, PASSWORD, PROGRAM).await.uid();
    app.track(uid);
    stage.finish().await;
}
