//! Step-up on `/account` in Chromium (RFC 9470 refusals of the API, issue
//! 28), as a person meets them:
//!
//! - `max_age`: a sign-in older than `REAUTH_MAX_AGE` (2 s here) adds no
//!   authenticator on its own: the page asks for the password again (a wrong
//!   one is said next to the field), then shows the key and takes a code;
//!   later, a second authenticator asks for it again. The API then wants a
//!   code after the password and lists both factors.
//! - `acr_values`: a second tab of `/account` opened before two-step sign-in
//!   was turned on in the first holds an ID token of the session's old
//!   assurance (`aal1`); changing the password there is refused for it, and
//!   the page takes a new ID token of the raised session (`aal2`) and goes
//!   on, rather than send the person to sign in again.
//!
//! A session that really is `aal1` for a user with a factor is not made by
//! any page (signing in asks for the code; turning two-step sign-in on
//! raises the session and ends the others), so the page's "sign in again
//! with your code" answer is not played here.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app::{App, Backend, unique_email};
use crate::browser::Browser;
use crate::harness::{self, PASSWORD, Tokens};
use crate::people::on_account_page;
use crate::two_step::{STEP, away_from_a_step_boundary, code_at, unix_now};
use crate::{on_every_backend, stage};

on_every_backend!(
    an_old_sign_in_asks_for_the_password_again,
    a_tab_opened_before_two_step_sign_in_goes_on
);

/// `REAUTH_MAX_AGE` of the first scenario: its lower bound is 1 s.
const REAUTH_MAX_AGE: u64 = 2;
const NEW_PASSWORD: &str = "another horse battery";

/// Signs up `email` on `/signup`, as a person does: on to `/account`.
async fn sign_up_on_page(browser: &mut Browser, app: &App, email: &str) {
    browser.open(&app.url("/signup")).await;
    browser.type_into("#email", email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.type_into("#confirm", PASSWORD).await;
    browser.click("#submit").await;
    on_account_page(browser, app, email).await;
    browser.wait_for_text("#factors-off", "Off").await;
}

/// The id of the element that has the focus.
async fn focused(browser: &Browser) -> String {
    let id = browser
        .execute("return document.activeElement ? document.activeElement.id : null;")
        .await;
    id.as_str().unwrap_or_default().to_owned()
}

/// With the enrolment shown: reads its key, types the app's current code,
/// turns it on and waits for the page to say so; the key.
async fn confirm_with_a_code(browser: &mut Browser) -> String {
    let secret = browser.wait_for_any_text("#totp-secret").await;
    let secret: String = secret.split_whitespace().collect();
    assert_eq!(browser.count("#totp-qr svg").await, 1, "the QR code");
    away_from_a_step_boundary().await;
    browser
        .type_into("#totp-code", &code_at(&secret, unix_now()))
        .await;
    browser.click("#totp-confirm").await;
    browser
        .wait_for_text("#factors-outcome", "two-step sign-in is on")
        .await;
    secret
}

/// The first authenticator's recovery codes, shown once: ten, then put away.
async fn recovery_codes_shown(browser: &mut Browser) {
    let codes = browser.wait_for_any_text("#recovery-codes").await;
    assert_eq!(codes.lines().count(), 10, "{codes:?}");
    browser.click("#recovery-done").await;
    assert!(
        !browser.is_displayed("#recovery").await,
        "the codes are put away"
    );
}

/// Through the API: `password` alone answers the second step, not tokens;
/// a code of `secret` (the next step's: the confirmations used the current
/// one) then answers a pair of an `aal2` session, whose uid is tracked.
async fn sign_in_with_a_code(app: &App, email: &str, password: &str, secret: &str) -> Tokens {
    let first = app.sign_in(email, password).await;
    assert_eq!(first.status(), StatusCode::OK, "the password step");
    let body: Value = first.json().await.expect("sign-in body");
    assert!(body.get("tokens").is_none(), "the password alone: {body}");
    let token = body["mfa"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("a second step: {body}"))
        .to_owned();
    away_from_a_step_boundary().await;
    let code = code_at(secret, (unix_now() / STEP + 1) * STEP);
    let second = harness::post_json(
        &app.http,
        harness::api_url(&app.base, "/signin/mfa"),
        &json!({"mfaToken": token, "method": "totp", "code": code}),
    )
    .await;
    assert_eq!(second.status(), StatusCode::OK, "the second step");
    let body: Value = second.json().await.expect("second-step body");
    let tokens = Tokens::from_body(&body);
    assert_eq!(harness::claims(&tokens.id_token)["acr"], json!("aal2"));
    app.track(tokens.uid());
    tokens
}

/// `GET /mfa` (200).
async fn factors(app: &App, id_token: &str) -> Value {
    let response = harness::send(
        app.http
            .get(harness::api_url(&app.base, "/mfa"))
            .bearer_auth(id_token),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK, "GET /mfa");
    response.json().await.expect("GET /mfa body")
}

async fn an_old_sign_in_asks_for_the_password_again(backend: Backend, test: &'static str) {
    let env = [("REAUTH_MAX_AGE", REAUTH_MAX_AGE.to_string())];
    let mut stage = stage!(backend, test, &env);
    let app = &stage.app;
    let email = unique_email();
    let browser = &mut stage.browser;
    sign_up_on_page(browser, app, &email).await;
    // The sign-up was the session's sign-in: let it grow old.
    tokio::time::sleep(Duration::from_secs(REAUTH_MAX_AGE + 2)).await;

    // "Add": refused for the old sign-in (401, max_age), the page asks for
    // the password; a wrong one is said (403), the right one goes on.
    browser.expect_failed_request("/api/account/mfa/totp", 401);
    browser.click("#add-totp").await;
    browser
        .wait_for_text("#totp-password", "enter your password again")
        .await;
    assert!(browser.is_displayed("#totp-current-password").await);
    assert!(!browser.is_displayed("#enrol").await, "no key yet");
    assert_eq!(focused(browser).await, "totp-current-password");
    browser.click("#totp-password-submit").await;
    browser
        .wait_for_text(
            "#totp-current-password-error",
            "enter your current password",
        )
        .await;
    browser.expect_failed_request("/api/account/mfa/totp", 403);
    browser
        .type_into("#totp-current-password", "not the password")
        .await;
    browser.click("#totp-password-submit").await;
    browser
        .wait_for_text(
            "#totp-current-password-error",
            "the current password is wrong",
        )
        .await;
    browser.clear("#totp-current-password").await;
    browser.type_into("#totp-current-password", PASSWORD).await;
    browser.click("#totp-password-submit").await;
    let first = confirm_with_a_code(browser).await;
    assert!(
        !browser.is_displayed("#totp-password").await,
        "the password prompt is gone"
    );
    recovery_codes_shown(browser).await;
    browser.wait_for_count("#factors li", 1).await;
    browser
        .wait_for_text("#factors li .factor-type", "Authenticator app")
        .await;
    browser
        .wait_for_text("#recovery-left", "10 recovery codes left")
        .await;

    // A second authenticator, the sign-in still as old: the password again
    // (the session is aal2 now, which a further factor also needs).
    browser.click("#add-totp").await;
    browser
        .wait_for_text("#totp-password", "enter your password again")
        .await;
    browser.type_into("#totp-current-password", PASSWORD).await;
    browser.click("#totp-password-submit").await;
    let second = confirm_with_a_code(browser).await;
    assert_ne!(first, second, "a key of its own");
    browser.wait_for_count("#factors li", 2).await;
    assert!(
        !browser.is_displayed("#recovery").await,
        "no new recovery codes for a further factor"
    );
    browser
        .wait_for_text("#recovery-left", "10 recovery codes left")
        .await;

    // The API: the password alone is not enough; both factors are listed.
    let tokens = sign_in_with_a_code(app, &email, PASSWORD, &first).await;
    let listed = factors(app, &tokens.id_token).await;
    let kinds: Vec<&Value> = listed["factors"]
        .as_array()
        .unwrap_or_else(|| panic!("factors in {listed}"))
        .iter()
        .map(|f| &f["type"])
        .collect();
    assert_eq!(kinds, [&json!("totp"), &json!("totp")], "{listed}");
    assert_eq!(listed["recoveryCodesLeft"], json!(10), "{listed}");
    stage.finish().await;
}

async fn a_tab_opened_before_two_step_sign_in_goes_on(backend: Backend, test: &'static str) {
    let mut stage = stage!(backend, test);
    let app = &stage.app;
    let email = unique_email();
    let browser = &mut stage.browser;
    sign_up_on_page(browser, app, &email).await;
    let first_tab = browser.client.window().await.expect("this tab");

    // A second tab of the account page, on the same session (the cookie).
    let second_tab = browser
        .client
        .new_window(true)
        .await
        .expect("a new tab")
        .handle;
    browser
        .client
        .switch_to_window(second_tab.clone())
        .await
        .expect("to the second tab");
    browser.open(&app.url("/account")).await;
    on_account_page(browser, app, &email).await;
    browser.wait_for_text("#factors-off", "Off").await;

    // The first tab turns two-step sign-in on (a recent sign-in: no
    // password asked); the session is raised to aal2.
    browser
        .client
        .switch_to_window(first_tab)
        .await
        .expect("back to the first tab");
    browser.click("#add-totp").await;
    let secret = confirm_with_a_code(browser).await;
    recovery_codes_shown(browser).await;
    browser.wait_for_count("#factors li", 1).await;

    // The second tab still shows what it loaded; its ID token is aal1. A
    // password change is refused for it (401, acr_values) and goes through
    // with a new ID token of the session.
    browser
        .client
        .switch_to_window(second_tab)
        .await
        .expect("to the second tab");
    assert!(browser.is_displayed("#factors-off").await, "as loaded");
    browser.expect_failed_request("/api/account/password", 401);
    browser.type_into("#current-password", PASSWORD).await;
    browser.type_into("#new-password", NEW_PASSWORD).await;
    browser.type_into("#repeat-password", NEW_PASSWORD).await;
    browser.click("#password-submit").await;
    browser
        .wait_for_text("#password-outcome", "your password is changed")
        .await;
    let refused = browser.read_log().await.iter().any(|entry| {
        entry.source == "network"
            && entry.message.contains("/api/account/password")
            && entry.message.contains("status of 401")
    });
    assert!(refused, "the stale ID token was refused first (acr_values)");
    // A reload shows the factor.
    browser.open(&app.url("/account")).await;
    on_account_page(browser, app, &email).await;
    browser.wait_for_count("#factors li", 1).await;

    // The API: the new password, then a code; the factor is listed.
    let old = app.sign_in(&email, PASSWORD).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "the old password");
    let tokens = sign_in_with_a_code(app, &email, NEW_PASSWORD, &secret).await;
    let listed = factors(app, &tokens.id_token).await;
    assert_eq!(listed["factors"][0]["type"], json!("totp"), "{listed}");
    assert_eq!(
        listed["factors"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    stage.finish().await;
}
