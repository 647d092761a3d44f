//! Passkeys in Chromium (issue 30), with a WebDriver virtual authenticator
//! (a platform authenticator with resident keys that verifies its user at
//! once) standing in for a person's device:
//!
//! - `/account` adds a passkey named "laptop" (the account's first factor:
//!   its recovery codes shown once), listed as "Passkey · laptop"; after a
//!   sign-out, `/signin`'s "Sign in with a passkey" signs in without an email
//!   or a password. The page's session is `aal2`, its `amr` `hwk` or `swk`
//!   with `user`.
//! - The password then asks for a second step, which "Use your passkey"
//!   answers; the passkey is renamed and removed on `/account`, after which
//!   it signs nobody in (401, said on the page).
//! - A sign-in older than `REAUTH_MAX_AGE` adds a passkey only after the
//!   password again (a wrong one said next to the field), as it adds an
//!   authenticator app.
//!
//! Chromium's virtual authenticator answers the page's conditional request
//! (the passkey autofill of the email field) at once, as a person picking the
//! passkey there would: the first scenario signs in that way too, and for the
//! button it makes the tab a browser without the autofill; elsewhere the
//! authenticator stops verifying its user while `/signin` loads, so the
//! autofill's request fails (quietly) and the page stays.
//!
//! The service runs on `http://localhost:<port>` (its default `PUBLIC_URL`
//! on loopback): WebAuthn refuses an IP address as relying party.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::{App, Backend, unique_email};
use crate::browser::Browser;
use crate::harness::{self, PASSWORD};
use crate::people::on_account_page;
use crate::{on_every_backend, stage};

on_every_backend!(
    a_passkey_added_on_the_account_page_signs_in_alone,
    a_passkey_answers_the_second_step_and_is_renamed_and_removed,
    an_old_sign_in_adds_a_passkey_after_the_password
);

/// `REAUTH_MAX_AGE` of the step-up scenario: its lower bound is 1 s.
const REAUTH_MAX_AGE: u64 = 2;

/// Signs `email` up on `/signup`, then adds a passkey named "laptop" on
/// `/account` with the virtual authenticator `authenticator`: the recovery
/// codes are shown once, the list names the passkey. Its uid.
async fn sign_up_with_a_passkey(
    browser: &mut Browser,
    app: &App,
    email: &str,
    authenticator: &str,
) -> Uuid {
    browser.open(&app.url("/signup")).await;
    browser.type_into("#email", email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.type_into("#confirm", PASSWORD).await;
    browser.click("#submit").await;
    on_account_page(browser, app, email).await;
    browser.wait_for_text("#factors-off", "Off").await;
    let uid = session_claims(browser).await["sub"]
        .as_str()
        .and_then(|sub| sub.parse().ok())
        .expect("sub, a UUID");
    app.track(uid);

    assert!(browser.is_displayed("#add-passkey").await, "offered");
    browser.click("#add-passkey").await;
    browser.type_into("#passkey-name", "laptop").await;
    browser
        .execute("document.getElementById('passkey-add').scrollIntoView();")
        .await;
    browser.screenshot("account-passkey-add").await;
    browser.click("#passkey-create").await;
    browser
        .wait_for_text("#factors-outcome", "the passkey “laptop” is added")
        .await;
    let codes = browser.wait_for_any_text("#recovery-codes").await;
    assert_eq!(codes.lines().count(), 10, "{codes:?}");
    browser.click("#recovery-done").await;
    assert!(!browser.is_displayed("#recovery").await, "shown once");
    assert!(
        !browser.is_displayed("#passkey-add").await,
        "the form closed"
    );
    browser.wait_for_count("#factors li", 1).await;
    browser
        .wait_for_text("#factors li .factor-name", "Passkey · laptop")
        .await;
    assert_eq!(browser.text("#factors li .factor-type").await, "Passkey");
    assert_eq!(browser.text("#factors li .factor-used").await, "Never");
    browser
        .wait_for_text("#recovery-left", "10 recovery codes left")
        .await;

    // The authenticator holds it as a discoverable credential.
    let held = browser.virtual_credentials(authenticator).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["isResidentCredential"], json!(true), "{held:?}");
    assert_eq!(held[0]["rpId"], json!("localhost"), "{held:?}");
    uid
}

/// The claims of a new ID token of the page's session: the page asks
/// `POST /browser/tokens` with its cookie (which rotates, as on a reload).
async fn session_claims(browser: &Browser) -> Value {
    let id_token = session_id_token(browser).await;
    harness::claims(&id_token)
}

/// A new ID token of the page's session, from its cookie.
async fn session_id_token(browser: &Browser) -> String {
    let answer = browser
        .execute(
            "return fetch('/api/account/browser/tokens', \
             {method: 'POST', credentials: 'same-origin'}) \
             .then((r) => r.json().then((body) => [r.status, body]));",
        )
        .await;
    assert_eq!(answer[0], json!(200), "POST /browser/tokens: {answer}");
    answer[1]["idToken"]
        .as_str()
        .unwrap_or_else(|| panic!("an ID token in {answer}"))
        .to_owned()
}

async fn sign_out(browser: &mut Browser, app: &App) {
    browser.click("#signout").await;
    let signin = app.url("/signin");
    browser
        .wait_for_url("/signin", |url| url.starts_with(&signin))
        .await;
}

/// `cmd` of the DevTools protocol in the current tab (chromedriver relays
/// it); its result.
async fn cdp(browser: &Browser, cmd: &str, params: Value) -> Value {
    let response = browser
        .http
        .post(format!(
            "{}/session/{}/goog/cdp/execute",
            browser.driver_url, browser.session_id
        ))
        .json(&json!({"cmd": cmd, "params": params}))
        .send()
        .await
        .expect("chromedriver answers goog/cdp/execute");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON cdp answer");
    assert!(status.is_success(), "{cmd} answered {status}: {body}");
    body["value"].clone()
}

/// From the next page on, this tab is a browser without passkey autofill
/// (`isConditionalMediationAvailable()` says no, as in some browsers): the
/// virtual authenticator answers an autofill request at once, which would
/// sign in before the button is pressed. The id to undo it with
/// [`with_autofill`].
async fn without_autofill(browser: &Browser) -> Value {
    let source = "Object.defineProperty(PublicKeyCredential, 'isConditionalMediationAvailable', \
                  {value: () => Promise.resolve(false)});";
    let added = cdp(
        browser,
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": source }),
    )
    .await;
    added["identifier"].clone()
}

/// Undoes [`without_autofill`] `id` for the next pages.
async fn with_autofill(browser: &Browser, id: Value) {
    cdp(
        browser,
        "Page.removeScriptToEvaluateOnNewDocument",
        json!({ "identifier": id }),
    )
    .await;
}

/// `amr` as a list of strings.
fn amr_of(claims: &Value) -> Vec<String> {
    serde_json::from_value(claims["amr"].clone())
        .unwrap_or_else(|e| panic!("amr, a list of strings, in {claims}: {e}"))
}

async fn a_passkey_added_on_the_account_page_signs_in_alone(backend: Backend, test: &'static str) {
    let mut stage = stage!(backend, test);
    let app = &stage.app;
    let email = unique_email();
    let browser = &mut stage.browser;
    let authenticator = browser.add_virtual_authenticator().await;
    sign_up_with_a_passkey(browser, app, &email, &authenticator).await;
    let no_autofill = without_autofill(browser).await;
    sign_out(browser, app).await;

    // The email field offers passkeys in the browser's autofill; the button
    // asks for one in the browser's own prompt: not verified, no sign-in.
    let field = browser.element("#email").await;
    let autocomplete = field.attr("autocomplete").await.expect("autocomplete");
    assert_eq!(autocomplete.as_deref(), Some("username webauthn"));
    assert!(browser.is_displayed("#passkey-signin").await, "offered");
    browser.screenshot("signin-passkey").await;
    browser.set_user_verified(&authenticator, false).await;
    browser.click("#passkey-signin").await;
    browser
        .wait_for_text("#passkey-outcome", "no passkey was used")
        .await;

    // Verified: the button signs in with the passkey alone.
    browser.set_user_verified(&authenticator, true).await;
    browser.click("#passkey-signin").await;
    on_account_page(browser, app, &email).await;
    browser.wait_for_count("#factors li", 1).await;
    let used = browser.text("#factors li .factor-used").await;
    assert_ne!(used, "Never", "the sign-in used it");

    // The API, with the page's session: an aal2 sign-in by the passkey alone.
    let id_token = session_id_token(browser).await;
    let me = app.me(&id_token).await;
    assert_eq!(me["email"], json!(email), "{me}");
    let claims = harness::claims(&id_token);
    assert_eq!(claims["acr"], json!("aal2"), "{claims}");
    let amr = amr_of(&claims);
    assert!(
        amr == ["hwk", "user"] || amr == ["swk", "user"],
        "amr of a passkey alone: {claims}"
    );

    // The autofill: /signin opened in a browser that has it starts a
    // conditional request, which the virtual authenticator answers as a
    // person picking the passkey there.
    sign_out(browser, app).await;
    with_autofill(browser, no_autofill).await;
    browser.open(&app.url("/signin")).await;
    on_account_page(browser, app, &email).await;
    let autofilled = session_claims(browser).await;
    assert_ne!(autofilled["sid"], claims["sid"], "a new session");
    assert_eq!(autofilled["acr"], json!("aal2"), "{autofilled}");
    assert_eq!(amr_of(&autofilled), amr, "{autofilled}");
    stage.finish().await;
}

async fn a_passkey_answers_the_second_step_and_is_renamed_and_removed(
    backend: Backend,
    test: &'static str,
) {
    let mut stage = stage!(backend, test);
    let app = &stage.app;
    let email = unique_email();
    let browser = &mut stage.browser;
    let authenticator = browser.add_virtual_authenticator().await;
    sign_up_with_a_passkey(browser, app, &email, &authenticator).await;
    // Not verifying: the autofill's request fails, /signin stays.
    browser.set_user_verified(&authenticator, false).await;
    sign_out(browser, app).await;

    // The password, then the passkey as the second step (no authenticator
    // app: no code field, a recovery code the other way).
    browser.type_into("#email", &email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#submit").await;
    browser
        .wait_for_text("#second-step-title", "two-step")
        .await;
    assert!(browser.is_displayed("#use-passkey").await, "offered");
    assert!(!browser.is_displayed("#code-field").await, "no app");
    assert!(!browser.is_displayed("#code-submit").await, "no code asked");
    browser.screenshot("signin-two-step-passkey").await;
    browser.click("#use-recovery").await;
    assert!(browser.is_displayed("#recovery-field").await);
    assert!(browser.is_displayed("#code-submit").await);
    assert!(!browser.is_displayed("#use-code").await, "no app");
    assert!(browser.is_displayed("#use-passkey").await, "still offered");
    browser.set_user_verified(&authenticator, true).await;
    browser.click("#use-passkey").await;
    on_account_page(browser, app, &email).await;
    let claims = session_claims(browser).await;
    assert_eq!(claims["acr"], json!("aal2"), "{claims}");
    let amr = amr_of(&claims);
    assert!(
        amr == ["pwd", "hwk", "mfa"] || amr == ["pwd", "swk", "mfa"],
        "amr of the password and a passkey: {claims}"
    );

    // Renamed, then removed (the session is aal2).
    browser.wait_for_count("#factors li", 1).await;
    browser.click("#factors li .rename-factor").await;
    browser.clear("#factors li .name-form input").await;
    browser
        .type_into("#factors li .name-form input", "work laptop")
        .await;
    browser.click("#factors li .name-save").await;
    browser
        .wait_for_text("#factors li .factor-name", "Passkey · work laptop")
        .await;
    browser.click("#factors li .remove-factor").await;
    browser
        .wait_for_text("#factors li .remove-question", "no longer signs you in")
        .await;
    browser.click("#factors li .remove-confirmed").await;
    browser
        .wait_for_text("#factors-outcome", "Passkey · work laptop is removed")
        .await;
    browser.wait_for_count("#factors li", 0).await;
    let after = app.sign_in(&email, PASSWORD).await;
    let body: Value = after.json().await.expect("sign-in body");
    assert!(body.get("tokens").is_some(), "the password alone: {body}");

    // The authenticator still holds the passkey, which signs nobody in now
    // (the page then offers the autofill again, which fails alike).
    browser.set_user_verified(&authenticator, false).await;
    sign_out(browser, app).await;
    browser.set_user_verified(&authenticator, true).await;
    browser.expect_failed_request("/api/account/browser/signin/passkey/finish", 401);
    browser.click("#passkey-signin").await;
    browser
        .wait_for_text("#passkey-outcome", "signs nobody in")
        .await;
    assert!(browser.current_url().await.starts_with(&app.url("/signin")));
    stage.finish().await;
}

async fn an_old_sign_in_adds_a_passkey_after_the_password(backend: Backend, test: &'static str) {
    let env = [("REAUTH_MAX_AGE", REAUTH_MAX_AGE.to_string())];
    let mut stage = stage!(backend, test, &env);
    let app = &stage.app;
    let email = unique_email();
    let browser = &mut stage.browser;
    let authenticator = browser.add_virtual_authenticator().await;
    browser.open(&app.url("/signup")).await;
    browser.type_into("#email", &email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.type_into("#confirm", PASSWORD).await;
    browser.click("#submit").await;
    on_account_page(browser, app, &email).await;
    browser.wait_for_text("#factors-off", "Off").await;
    let uid = session_claims(browser).await["sub"]
        .as_str()
        .and_then(|sub| sub.parse().ok())
        .expect("sub, a UUID");
    app.track(uid);
    // The sign-up was the session's sign-in: let it grow old.
    tokio::time::sleep(std::time::Duration::from_secs(REAUTH_MAX_AGE + 2)).await;

    // Refused for the old sign-in (401, max_age): the password is asked; a
    // wrong one is said (403); the right one goes on to the browser.
    browser.expect_failed_request("/api/account/mfa/webauthn/register/start", 401);
    browser.click("#add-passkey").await;
    browser.type_into("#passkey-name", "phone").await;
    browser.click("#passkey-create").await;
    browser
        .wait_for_text("#passkey-password-field", "enter your password again")
        .await;
    assert!(browser.is_displayed("#passkey-current-password").await);
    browser.expect_failed_request("/api/account/mfa/webauthn/register/start", 403);
    browser
        .type_into("#passkey-current-password", "not the password")
        .await;
    browser.click("#passkey-create").await;
    browser
        .wait_for_text(
            "#passkey-current-password-error",
            "the current password is wrong",
        )
        .await;
    browser.clear("#passkey-current-password").await;
    browser
        .type_into("#passkey-current-password", PASSWORD)
        .await;
    browser.click("#passkey-create").await;
    browser
        .wait_for_text("#factors-outcome", "the passkey “phone” is added")
        .await;
    let codes = browser.wait_for_any_text("#recovery-codes").await;
    assert_eq!(codes.lines().count(), 10, "{codes:?}");
    browser.click("#recovery-done").await;
    browser
        .wait_for_text("#factors li .factor-name", "Passkey · phone")
        .await;
    assert!(
        !browser.is_displayed("#passkey-add").await,
        "the form closed"
    );
    assert_eq!(browser.virtual_credentials(&authenticator).await.len(), 1);
    // The session is raised to aal2 by its first factor.
    let claims = session_claims(browser).await;
    assert_eq!(claims["acr"], json!("aal2"), "{claims}");
    stage.finish().await;
}
