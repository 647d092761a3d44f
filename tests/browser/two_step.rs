//! Two-step sign-in in Chromium (issue 28): `/account` adds an authenticator
//! app (the test reads the key the page shows and computes the codes with
//! `totp-rs`), shows the recovery codes once with a download; `/signin` then
//! asks for a code after the password (a wrong one is said next to the
//! field), and takes a recovery code instead; the factor is renamed and
//! removed on `/account`. The console stays clean (no CSP violation from the
//! inline SVG QR code or the download's `blob:` link).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::app::{App, Backend, unique_email};
use crate::browser::Browser;
use crate::harness::PASSWORD;
use crate::people::on_account_page;
use crate::{on_every_backend, stage};

on_every_backend!(two_step_sign_in);

pub(crate) const STEP: u64 = 30;

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// The code of `secret` (base32) at `time`.
pub(crate) fn code_at(secret: &str, time: u64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).expect("a base32 secret");
    totp_rs::Builder::new()
        .with_secret(secret)
        .build()
        .expect("a TOTP")
        .generate(time)
        .to_string()
}

/// Waits until at least 3 s from either end of a 30 s step, so that the
/// step the test computes is the one the service sees.
pub(crate) async fn away_from_a_step_boundary() {
    while !(3..=STEP - 4).contains(&(unix_now() % STEP)) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Password first, on `/signin`: the page then asks for the code.
async fn password_step(browser: &mut Browser, app: &App, email: &str) {
    browser.open(&app.url("/signin")).await;
    browser.type_into("#email", email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#submit").await;
    browser
        .wait_for_text("#second-step-title", "two-step")
        .await;
}

async fn sign_out(browser: &mut Browser, app: &App) {
    browser.click("#signout").await;
    let signin = app.url("/signin");
    browser
        .wait_for_url("/signin", |url| url.starts_with(&signin))
        .await;
}

/// Scrolls `css` to the top of the window, for a screenshot of it.
async fn scroll_to(browser: &Browser, css: &str) {
    let script = format!("document.querySelector({}).scrollIntoView();", json!(css));
    browser.execute(&script).await;
}

async fn two_step_sign_in(backend: Backend, test: &'static str) {
    let mut stage = stage!(backend, test);
    let app = &stage.app;
    let email = unique_email();
    app.sign_up(&email, PASSWORD).await;
    let browser = &mut stage.browser;
    browser.open(&app.url("/signin")).await;
    browser.type_into("#email", &email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#submit").await;
    on_account_page(browser, app, &email).await;

    // Enrolment: the QR code as inline SVG, the key as text, then a code.
    browser.wait_for_text("#factors-off", "Off").await;
    browser.click("#add-totp").await;
    let secret = browser.wait_for_any_text("#totp-secret").await;
    let secret: String = secret.split_whitespace().collect();
    assert_eq!(browser.count("#totp-qr svg").await, 1, "the QR code");
    away_from_a_step_boundary().await;
    let enrolled_at = unix_now();
    browser
        .type_into("#totp-code", &code_at(&secret, enrolled_at))
        .await;
    scroll_to(browser, "#enrol").await;
    browser.screenshot("account-two-step-enrol").await;
    browser.click("#totp-confirm").await;
    browser
        .wait_for_text("#factors-outcome", "two-step sign-in is on")
        .await;
    let codes = browser.wait_for_any_text("#recovery-codes").await;
    let codes: Vec<&str> = codes.lines().map(str::trim).collect();
    assert_eq!(codes.len(), 10, "{codes:?}");
    assert!(codes.iter().all(|c| c.len() == 19), "{codes:?}");
    let href = browser
        .execute("return document.getElementById('recovery-download').href;")
        .await;
    assert!(
        href.as_str().is_some_and(|h| h.starts_with("blob:")),
        "{href}"
    );
    scroll_to(browser, "#recovery").await;
    browser.screenshot("account-two-step-recovery-codes").await;
    // The download is a navigation to the blob: URL, which the CSP allows
    // (the console check at the end would say otherwise); nothing is saved.
    let deny = json!({"cmd": "Browser.setDownloadBehavior", "params": {"behavior": "deny"}});
    let denied = browser
        .http
        .post(format!(
            "{}/session/{}/goog/cdp/execute",
            browser.driver_url, browser.session_id
        ))
        .json(&deny)
        .send()
        .await
        .expect("chromedriver answers goog/cdp/execute");
    assert!(denied.status().is_success(), "Browser.setDownloadBehavior");
    browser.click("#recovery-download").await;
    browser.click("#recovery-done").await;
    browser.wait_for_count("#factors li", 1).await;
    browser
        .wait_for_text("#factors li .factor-type", "Authenticator app")
        .await;
    browser
        .wait_for_text("#recovery-left", "10 recovery codes left")
        .await;
    sign_out(browser, app).await;

    // Password, then a wrong code, then the next step's code (the current
    // one was used by the confirmation, and a step works once).
    password_step(browser, app, &email).await;
    away_from_a_step_boundary().await;
    let now = unix_now();
    let next = code_at(&secret, (now / STEP + 1) * STEP);
    let window: Vec<String> = (0..=2)
        .map(|i| code_at(&secret, now - STEP + i * STEP))
        .collect();
    let wrong = ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|code| !window.iter().any(|w| w == code))
        .expect("a wrong code");
    browser.expect_failed_request("/api/account/browser/signin/mfa", 401);
    browser.type_into("#code", wrong).await;
    browser.click("#code-submit").await;
    browser.wait_for_text("#code-error", "wrong").await;
    browser.clear("#code").await;
    browser.type_into("#code", &next).await;
    browser.screenshot("signin-two-step").await;
    browser.click("#code-submit").await;
    on_account_page(browser, app, &email).await;
    browser.wait_for_count("#factors li", 1).await;
    sign_out(browser, app).await;

    // Password, then a recovery code.
    password_step(browser, app, &email).await;
    browser.click("#use-recovery").await;
    browser.type_into("#recovery-code", codes[0]).await;
    browser.click("#code-submit").await;
    on_account_page(browser, app, &email).await;
    browser
        .wait_for_text("#recovery-left", "9 recovery codes left")
        .await;

    // Renamed, then removed (the session is aal2: signed in with a code).
    browser.click("#factors li .rename-factor").await;
    browser
        .type_into("#factors li .name-form input", "Phone")
        .await;
    browser.click("#factors li .name-save").await;
    browser
        .wait_for_text("#factors li .factor-name", "Phone")
        .await;
    browser.click("#factors li .remove-factor").await;
    browser.click("#factors li .remove-confirmed").await;
    browser.wait_for_text("#factors-outcome", "removed").await;
    browser.wait_for_count("#factors li", 0).await;
    let after = app.sign_in(&email, PASSWORD).await;
    let body: serde_json::Value = after.json().await.expect("sign-in body");
    assert!(body.get("tokens").is_some(), "the password alone: {body}");
    stage.finish().await;
}
