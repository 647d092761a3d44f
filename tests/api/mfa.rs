//! Two-step sign-in (issue 27): enrolling an authenticator, the second step
//! of a sign-in, recovery codes, the assurance in the tokens and the step-up
//! answers (RFC 9470). Codes are computed here with `totp-rs`, independently
//! of the service's own RFC 6238 code, away from a step boundary.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, TestApp, Tokens, assert_error, claims, spawn_app, unique_email, unix_now,
};

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

/// Waits until at least 3 s from either end of a 30 s step, so that "now",
/// "the next step" and "the step before" mean the same here and there.
pub(crate) async fn away_from_a_step_boundary() {
    loop {
        let into = unix_now() % 30;
        if (3..=26).contains(&into) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub(crate) async fn send(
    request: reqwest::RequestBuilder,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

pub(crate) async fn post(
    app: &TestApp,
    path: &str,
    id_token: &str,
    body: Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    send(
        app.client
            .post(app.url(path))
            .bearer_auth(id_token)
            .json(&body),
    )
    .await
}

/// Starts an enrolment: `(id, secret)`.
pub(crate) async fn enrol(app: &TestApp, id_token: &str) -> (String, String) {
    let (status, body, _) = post(app, "/mfa/totp", id_token, json!({})).await;
    assert_eq!(status, 201, "{body}");
    let uri = body["otpauthUri"].as_str().unwrap();
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(
        body["qrSvg"].as_str().unwrap().starts_with("<?xml")
            || body["qrSvg"].as_str().unwrap().contains("<svg")
    );
    (body["id"].as_str().unwrap().to_owned(), secret)
}

/// A user with a confirmed authenticator: `(email, secret, the session's tokens
/// raised to aal2, the recovery codes, the step its confirmation used)`.
pub(crate) async fn enrolled(app: &TestApp) -> (String, String, Tokens, Vec<String>, u64) {
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    away_from_a_step_boundary().await;
    let (id, secret) = enrol(app, &tokens.id_token).await;
    let now = unix_now();
    let (status, body, _) = post(
        app,
        &format!("/mfa/totp/{id}/confirm"),
        &tokens.id_token,
        json!({"code": code_at(&secret, now)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<String> = body["recoveryCodes"]
        .as_array()
        .expect("recovery codes with the first factor")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let raised = app.refreshed(&tokens.refresh_token).await;
    (email, secret, raised, codes, now / 30)
}

async fn signin_body(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    let (status, body, _) = send(
        app.client
            .post(app.url("/signin"))
            .json(&json!({"email": email, "password": password})),
    )
    .await;
    (status, body)
}

/// Signs in with the password: the mfa token of the second step.
pub(crate) async fn mfa_token(app: &TestApp, email: &str) -> String {
    let (status, body) = signin_body(app, email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("tokens").is_none(),
        "no pair from the password alone: {body}"
    );
    body["mfa"]["token"]
        .as_str()
        .expect("an mfa token")
        .to_owned()
}

pub(crate) async fn second_step(
    app: &TestApp,
    token: &str,
    method: &str,
    code: &str,
) -> (u16, Value) {
    let (status, body, _) = send(
        app.client
            .post(app.url("/signin/mfa"))
            .json(&json!({"mfaToken": token, "method": method, "code": code})),
    )
    .await;
    (status, body)
}

async fn enrolment_ends_other_sessions_and_raises_the_callers(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (_, first) = app.signup(&email).await;
    let laptop = app.signin(&email).await;
    away_from_a_step_boundary().await;
    let (id, secret) = enrol(&app, &first.id_token).await;
    // Pending: not listed, sign-in still by password alone.
    let (_, list, _) = send(app.client.get(app.url("/mfa")).bearer_auth(&first.id_token)).await;
    assert_eq!(list, json!({"factors": [], "recoveryCodesLeft": 0}));
    // A wrong code confirms nothing.
    let (status, body, _) = post(
        &app,
        &format!("/mfa/totp/{id}/confirm"),
        &first.id_token,
        json!({"code": "000000"}),
    )
    .await;
    if code_at(&secret, unix_now()) != "000000" {
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["invalidArgs"][0]["field"], "code");
    }
    let (status, body, _) = post(
        &app,
        &format!("/mfa/totp/{id}/confirm"),
        &first.id_token,
        json!({"code": code_at(&secret, unix_now())}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sessionsEnded"], 1, "{body}");
    let codes = body["recoveryCodes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    for code in codes {
        let code = code.as_str().unwrap();
        assert_eq!(code.len(), 19, "{code}");
        assert_eq!(code.matches('-').count(), 3, "{code}");
    }
    // The other session was started without the factor: over.
    assert_error(
        app.refresh(&laptop.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    // The caller's next refresh carries the factor.
    let raised = app.refreshed(&first.refresh_token).await;
    let id_claims = claims(&raised.id_token);
    assert_eq!(id_claims["acr"], "aal2", "{id_claims}");
    assert_eq!(id_claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(id_claims["auth_time"], claims(&first.id_token)["auth_time"]);
    let (_, list, _) = send(
        app.client
            .get(app.url("/mfa"))
            .bearer_auth(&raised.id_token),
    )
    .await;
    assert_eq!(list["recoveryCodesLeft"], 10);
    assert_eq!(list["factors"][0]["id"], id.as_str());
    assert_eq!(list["factors"][0]["type"], "totp");
    // The confirmed factor cannot be confirmed again.
    let (status, _, _) = post(
        &app,
        &format!("/mfa/totp/{id}/confirm"),
        &raised.id_token,
        json!({"code": code_at(&secret, unix_now())}),
    )
    .await;
    assert_eq!(status, 404);
    app.signout(&raised.id_token).await;
}

async fn the_password_alone_never_yields_tokens_and_a_code_works_once(backend: Backend) {
    let app = spawn_app!(backend);
    let (email, secret, raised, _, step) = enrolled(&app).await;

    // A wrong password stays the usual 401, telling nothing of the factor.
    let (status, body) = signin_body(&app, &email, "wrong password").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.get("mfa").is_none());
    let (status, body) = signin_body(&app, &email, PASSWORD).await;
    assert_eq!(status, 200);
    assert_eq!(body["mfa"]["expiresIn"], 300);
    assert_eq!(body["mfa"]["methods"], json!(["totp", "recovery_code"]));
    let token = body["mfa"]["token"].as_str().unwrap();

    // The confirmation's code is used up: refused, and counted.
    let (status, body) = second_step(&app, token, "totp", &code_at(&secret, step * 30)).await;
    assert_eq!(status, 401, "{body}");
    // The next step's code (within the window) works.
    let next = code_at(&secret, (step + 1) * 30);
    let (status, body) = second_step(&app, token, "totp", &next).await;
    assert_eq!(status, 200, "{body}");
    let tokens = Tokens::from_body(&body);
    let id = claims(&tokens.id_token);
    assert_eq!(id["acr"], "aal2");
    assert_eq!(id["amr"], json!(["pwd", "otp", "mfa"]));
    // The mfa token worked once; the code too, with a new mfa token.
    let (status, _) = second_step(&app, token, "totp", &next).await;
    assert_eq!(status, 401);
    let again = mfa_token(&app, &email).await;
    let (status, _) = second_step(&app, &again, "totp", &next).await;
    assert_eq!(status, 401, "a code works once");
    // A refresh keeps the assurance.
    let refreshed = app.refreshed(&tokens.refresh_token).await;
    assert_eq!(claims(&refreshed.id_token)["acr"], "aal2");
    app.signout(&raised.id_token).await;
}

async fn recovery_codes_work_once_and_a_new_set_replaces_the_old(backend: Backend) {
    let app = spawn_app!(backend);
    let (email, _, raised, codes, _) = enrolled(&app).await;
    let token = mfa_token(&app, &email).await;
    // Typed loosely: lower case, no hyphens.
    let loose = codes[0].replace('-', "").to_lowercase();
    let (status, body) = second_step(&app, &token, "recovery_code", &loose).await;
    assert_eq!(status, 200, "{body}");
    let tokens = Tokens::from_body(&body);
    let id = claims(&tokens.id_token);
    assert_eq!(
        (id["acr"].clone(), id["amr"].clone()),
        (json!("aal2"), json!(["pwd", "mfa"]))
    );
    let token = mfa_token(&app, &email).await;
    let (status, _) = second_step(&app, &token, "recovery_code", &codes[0]).await;
    assert_eq!(status, 401, "used once");
    let (_, list, _) = send(
        app.client
            .get(app.url("/mfa"))
            .bearer_auth(&tokens.id_token),
    )
    .await;
    assert_eq!(list["recoveryCodesLeft"], 9);

    let (status, body, _) = post(&app, "/mfa/recovery-codes", &tokens.id_token, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let fresh = body["recoveryCodes"].as_array().unwrap();
    assert_eq!(fresh.len(), 10);
    let (status, _) = second_step(&app, &token, "recovery_code", &codes[1]).await;
    assert_eq!(status, 401, "the old set stopped working");
    let (status, _) = second_step(&app, &token, "recovery_code", fresh[0].as_str().unwrap()).await;
    assert_eq!(status, 200);
    app.signout(&raised.id_token).await;
}

async fn an_mfa_token_expires_and_dies_after_five_wrong_codes(backend: Backend) {
    let app = spawn_app!(
        backend,
        &[("MFA_TOKEN_EXP", "2"), ("MFA_RATE_LIMIT", "100")]
    );
    let (email, secret, raised, _, _) = enrolled(&app).await;
    let token = mfa_token(&app, &email).await;
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let (status, body) = second_step(&app, &token, "recovery_code", "0000-0000-0000-0000").await;
    assert_eq!(status, 401, "expired: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign in again"),
        "{body}"
    );

    let token = mfa_token(&app, &email).await;
    for attempt in 1..=4 {
        let (status, body) =
            second_step(&app, &token, "recovery_code", "0000-0000-0000-0000").await;
        assert_eq!(status, 401, "{attempt}: {body}");
        assert!(
            !body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("sign in again"),
            "{attempt}: {body}"
        );
    }
    let (status, body) = second_step(&app, &token, "recovery_code", "0000-0000-0000-0000").await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign in again"),
        "{body}"
    );
    // Dead: even the right code is refused now.
    let (status, _) = second_step(&app, &token, "totp", &code_at(&secret, unix_now() + 30)).await;
    assert_eq!(status, 401);
    app.signout(&raised.id_token).await;
}

async fn wrong_codes_are_limited_per_user(backend: Backend) {
    let app = spawn_app!(backend, &[("MFA_RATE_LIMIT", "2")]);
    let (email, _, raised, codes, _) = enrolled(&app).await;
    let token = mfa_token(&app, &email).await;
    for _ in 0..2 {
        let (status, _) = second_step(&app, &token, "recovery_code", "0000-0000-0000-0000").await;
        assert_eq!(status, 401);
    }
    let (status, body, headers) = send(
        app.client
            .post(app.url("/signin/mfa"))
            .json(&json!({"mfaToken": token, "method": "recovery_code", "code": codes[0]})),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.get("retry-after").is_some());
    app.signout(&raised.id_token).await;
}

async fn sensitive_changes_need_an_aal2_session_and_enrolment_a_recent_sign_in(backend: Backend) {
    let app = spawn_app!(backend, &[("REAUTH_MAX_AGE", "2")]);
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    // Not recent: the RFC 9470 answer names max_age; the password will do.
    let (status, body, headers) = post(&app, "/mfa/totp", &tokens.id_token, json!({})).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "INSUFFICIENT_USER_AUTHENTICATION");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_user_authentication""#)
            && challenge.ends_with("max_age=2"),
        "{challenge}"
    );
    let (status, body, _) = post(
        &app,
        "/mfa/totp",
        &tokens.id_token,
        json!({"currentPassword": "wrong password"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    away_from_a_step_boundary().await;
    let (status, body, _) = post(
        &app,
        "/mfa/totp",
        &tokens.id_token,
        json!({"currentPassword": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (id, secret) = (
        body["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    );
    let (status, _, _) = post(
        &app,
        &format!("/mfa/totp/{id}/confirm"),
        &tokens.id_token,
        json!({"code": code_at(&secret, unix_now())}),
    )
    .await;
    assert_eq!(status, 200);

    // The ID token from before the factor says aal1: a password change asks
    // for the second factor; the raised session's next token has it.
    let change = json!({"currentPassword": PASSWORD, "newPassword": "another password 42"});
    let response = app
        .client
        .put(app.url("/password"))
        .bearer_auth(&tokens.id_token)
        .json(&change)
        .send()
        .await
        .unwrap();
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.ends_with(r#"acr_values="aal2""#), "{challenge}");
    assert_error(response, 401, "INSUFFICIENT_USER_AUTHENTICATION").await;
    for (method, path) in [
        ("DELETE", format!("/mfa/{id}")),
        ("POST", "/mfa/recovery-codes".to_owned()),
    ] {
        let request = if method == "DELETE" {
            app.client.delete(app.url(&path))
        } else {
            app.client.post(app.url(&path))
        };
        let response = request.bearer_auth(&tokens.id_token).send().await.unwrap();
        assert_error(response, 401, "INSUFFICIENT_USER_AUTHENTICATION").await;
    }
    let raised = app.refreshed(&tokens.refresh_token).await;
    let response = app
        .client
        .put(app.url("/password"))
        .bearer_auth(&raised.id_token)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    // Removing the last factor: sign-in by password alone again, no codes.
    let response = app
        .client
        .delete(app.url(&format!("/mfa/{id}")))
        .bearer_auth(&raised.id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (_, list, _) = send(
        app.client
            .get(app.url("/mfa"))
            .bearer_auth(&raised.id_token),
    )
    .await;
    assert_eq!(list, json!({"factors": [], "recoveryCodesLeft": 0}));
    let (status, body) = signin_body(&app, &email, "another password 42").await;
    assert_eq!(status, 200);
    assert!(body["tokens"]["idToken"].is_string(), "{body}");
    app.signout(&raised.id_token).await;
}

async fn factors_are_named_and_only_their_users(backend: Backend) {
    let app = spawn_app!(backend);
    let (_, _, raised, _, _) = enrolled(&app).await;
    let (_, list, _) = send(
        app.client
            .get(app.url("/mfa"))
            .bearer_auth(&raised.id_token),
    )
    .await;
    let id = list["factors"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list["factors"][0]["name"], Value::Null);
    let rename = |token: String, body: Value| {
        let app = &app;
        let id = id.clone();
        async move {
            app.client
                .put(app.url(&format!("/mfa/{id}")))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        rename(raised.id_token.clone(), json!({"name": " phone "}))
            .await
            .status(),
        204
    );
    let (_, list, _) = send(
        app.client
            .get(app.url("/mfa"))
            .bearer_auth(&raised.id_token),
    )
    .await;
    assert_eq!(list["factors"][0]["name"], "phone");
    assert_error(
        rename(raised.id_token.clone(), json!({"name": ""})).await,
        400,
        "BAD_REQUEST",
    )
    .await;
    let (_, stranger) = app.signup(&unique_email()).await;
    assert_error(
        rename(stranger.id_token.clone(), json!({"name": "mine"})).await,
        404,
        "NOT_FOUND",
    )
    .await;
    app.signout(&stranger.id_token).await;
    app.signout(&raised.id_token).await;
}

async fn a_browser_signs_in_in_two_steps_too(backend: Backend) {
    let app = spawn_app!(backend);
    let (email, secret, raised, _, step) = enrolled(&app).await;
    let origin = app.address.replace("127.0.0.1", "localhost");
    let (status, body, headers) = send(
        app.client
            .post(app.url("/browser/signin"))
            .header("origin", &origin)
            .json(&json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers.get("set-cookie").is_none(),
        "no cookie from the password alone"
    );
    assert!(body.get("idToken").is_none());
    let token = body["mfa"]["token"].as_str().unwrap();
    let (status, body, headers) = send(
        app.client
            .post(app.url("/browser/signin/mfa"))
            .header("origin", &origin)
            .json(&json!({"mfaToken": token, "method": "totp", "code": code_at(&secret, (step + 1) * 30)})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["idToken"].as_str().unwrap())["acr"], "aal2");
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("refresh_token=")
    );
    app.signout(&raised.id_token).await;
}

/// Whoever learnt the password cannot slip a factor of their own in: an
/// enrolment started before the account's first factor does not survive it.
async fn an_enrolment_started_before_the_first_factor_cannot_be_confirmed_after(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (_, owner) = app.signup(&email).await;
    let intruder = app.signin(&email).await;
    away_from_a_step_boundary().await;
    let (theirs, their_secret) = enrol(&app, &intruder.id_token).await;
    let (mine, my_secret) = enrol(&app, &owner.id_token).await;
    let (status, _, _) = post(
        &app,
        &format!("/mfa/totp/{mine}/confirm"),
        &owner.id_token,
        json!({"code": code_at(&my_secret, unix_now())}),
    )
    .await;
    assert_eq!(status, 200);
    // The intruder's ID token still verifies until it expires, but a
    // further factor needs aal2 (checked before the code counts), and its
    // pending factor is gone (the list below).
    let (status, body, _) = post(
        &app,
        &format!("/mfa/totp/{theirs}/confirm"),
        &intruder.id_token,
        json!({"code": code_at(&their_secret, unix_now())}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "INSUFFICIENT_USER_AUTHENTICATION");
    let raised = app.refreshed(&owner.refresh_token).await;
    let (_, list, _) = send(
        app.client
            .get(app.url("/mfa"))
            .bearer_auth(&raised.id_token),
    )
    .await;
    assert_eq!(list["factors"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["factors"][0]["id"], mine.as_str());
    app.signout(&raised.id_token).await;
}

/// An mfa token earned with a password that changed since is over.
async fn a_password_change_ends_a_pending_two_step_sign_in(backend: Backend) {
    let app = spawn_app!(backend);
    let (email, _, raised, codes, _) = enrolled(&app).await;
    let token = mfa_token(&app, &email).await;
    let change = json!({"currentPassword": PASSWORD, "newPassword": "another password 42"});
    let response = app
        .client
        .put(app.url("/password"))
        .bearer_auth(&raised.id_token)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, body) = second_step(&app, &token, "recovery_code", &codes[0]).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign in again"),
        "{body}"
    );
    // The code was not used up: with the new password it works.
    let (status, body) = signin_body(&app, &email, "another password 42").await;
    assert_eq!(status, 200);
    let token = body["mfa"]["token"].as_str().unwrap();
    let (status, _) = second_step(&app, token, "recovery_code", &codes[0]).await;
    assert_eq!(status, 200);
    app.signout(&raised.id_token).await;
}

crate::on_every_backend!(
    an_enrolment_started_before_the_first_factor_cannot_be_confirmed_after,
    a_password_change_ends_a_pending_two_step_sign_in,
    enrolment_ends_other_sessions_and_raises_the_callers,
    the_password_alone_never_yields_tokens_and_a_code_works_once,
    recovery_codes_work_once_and_a_new_set_replaces_the_old,
    an_mfa_token_expires_and_dies_after_five_wrong_codes,
    wrong_codes_are_limited_per_user,
    sensitive_changes_need_an_aal2_session_and_enrolment_a_recent_sign_in,
    factors_are_named_and_only_their_users,
    a_browser_signs_in_in_two_steps_too,
);

/// External stores without a data key: the service starts, and enrolment
/// answers 503 naming the setting.
#[tokio::test]
async fn without_a_data_key_enrolment_answers_503() {
    let app = spawn_app!(Backend::Real, &[("DATA_KEY_FILE", "/nonexistent/data.key")]);
    let (_, tokens) = app.signup(&unique_email()).await;
    let (status, body, _) = post(&app, "/mfa/totp", &tokens.id_token, json!({})).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DATA_KEY"),
        "{body}"
    );
    app.signout(&tokens.id_token).await;
}
