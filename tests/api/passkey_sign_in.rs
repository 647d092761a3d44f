//! Signing in with a passkey alone (issue 30) over the API, with the
//! software authenticator of `passkeys.rs`: no email asked, `aal2` with
//! `amr` `["swk", "user"]`; a replayed assertion, a removed passkey and a
//! deleted account's passkey sign nobody in; starts count per address; the
//! browser twin sets the session cookie.

use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, Tokens, claims, spawn_app, unique_email};
use crate::mfa::send;
use crate::passkeys::{ORIGIN, SoftKey, register};

async fn start(app: &TestApp) -> (u16, Value) {
    let (status, body, _) = send(
        app.client
            .post(app.url("/signin/passkey/start"))
            .json(&json!({})),
    )
    .await;
    (status, body)
}

async fn finish(
    app: &TestApp,
    path: &str,
    credential: &Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    send(
        app.client
            .post(app.url(path))
            .header("origin", ORIGIN)
            .json(&json!({"credential": credential})),
    )
    .await
}

/// A user with a passkey on `key`, signed out everywhere: `(email, uid)`.
async fn with_a_passkey(app: &TestApp, key: &mut SoftKey) -> (String, uuid::Uuid) {
    let email = unique_email();
    let (uid, tokens) = app.signup(&email).await;
    register(app, &tokens, key, "phone").await;
    let raised = app.refreshed(&tokens.refresh_token).await;
    assert_eq!(app.signout(&raised.id_token).await.status(), 200);
    (email, uid)
}

async fn a_passkey_alone_signs_in_once_per_assertion(backend: Backend) {
    let app = spawn_app!(backend, &[("PUBLIC_URL", ORIGIN)]);
    let mut key = SoftKey::at(ORIGIN);
    let (email, uid) = with_a_passkey(&app, &mut key).await;

    let (status, options) = start(&app).await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(
        options["publicKey"]["allowCredentials"],
        json!([]),
        "no email asked"
    );
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert!(
        options.get("mediation").is_none(),
        "the page adds it: {options}"
    );
    let assertion = key.get(&options).await;
    let (status, body, _) = finish(&app, "/signin/passkey/finish", &assertion).await;
    assert_eq!(status, 200, "{body}");
    let tokens = Tokens::from_body(&body);
    assert_eq!(tokens.uid(), uid);
    let id = claims(&tokens.id_token);
    assert_eq!(id["acr"], "aal2");
    assert_eq!(id["amr"], json!(["swk", "user"]));
    assert_eq!(id["email"], email.as_str());
    assert_eq!(app.me(&tokens.id_token).await.status(), 200);

    let (status, body, _) = finish(&app, "/signin/passkey/finish", &assertion).await;
    assert_eq!(status, 401, "replayed: {body}");
    assert_eq!(body["error"]["type"], "AUTHORIZATION");

    // The browser's twin: the same, into the session cookie.
    let (_, options) = start(&app).await;
    let assertion = key.get(&options).await;
    let (status, body, headers) = finish(&app, "/browser/signin/passkey/finish", &assertion).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["idToken"].is_string() && body.get("refreshToken").is_none(),
        "{body}"
    );
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("refresh_token=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    app.signout(&tokens.id_token).await;
}

async fn a_removed_passkey_and_a_deleted_accounts_sign_nobody_in(backend: Backend) {
    let app = spawn_app!(backend, &[("PUBLIC_URL", ORIGIN)]);
    let mut key = SoftKey::at(ORIGIN);
    let (email, _) = with_a_passkey(&app, &mut key).await;
    // Signed in with it, the owner removes it.
    let (_, options) = start(&app).await;
    let (status, body, _) = finish(&app, "/signin/passkey/finish", &key.get(&options).await).await;
    assert_eq!(status, 200, "{body}");
    let tokens = Tokens::from_body(&body);
    let (_, list, _) = send(
        app.client
            .get(app.url("/mfa"))
            .bearer_auth(&tokens.id_token),
    )
    .await;
    let id = list["factors"][0]["id"].as_str().unwrap();
    let removed = app
        .client
        .delete(app.url(&format!("/mfa/{id}")))
        .bearer_auth(&tokens.id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let (_, options) = start(&app).await;
    let (status, body, _) = finish(&app, "/signin/passkey/finish", &key.get(&options).await).await;
    assert_eq!(status, 401, "a removed passkey: {body}");

    // Another account, deleted: its passkey goes with it.
    let mut other_key = SoftKey::at(ORIGIN);
    let (other, _) = with_a_passkey(&app, &mut other_key).await;
    let (_, options) = start(&app).await;
    let (_, body, _) = finish(
        &app,
        "/signin/passkey/finish",
        &other_key.get(&options).await,
    )
    .await;
    let theirs = Tokens::from_body(&body);
    let deleted = app
        .client
        .delete(app.url("/me"))
        .bearer_auth(&theirs.id_token)
        .json(&json!({"currentPassword": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204, "{other}");
    let (_, options) = start(&app).await;
    let (status, body, _) = finish(
        &app,
        "/signin/passkey/finish",
        &other_key.get(&options).await,
    )
    .await;
    assert_eq!(status, 401, "a deleted account's passkey: {body}");
    let _ = email;
    app.signout(&tokens.id_token).await;
}

async fn starts_count_on_the_per_address_sign_in_limit(backend: Backend) {
    // Behind a trusted proxy, from an address of this test's own: on Redis
    // every test's requests from 127.0.0.1 share one counter.
    let app = spawn_app!(
        backend,
        &[
            ("PUBLIC_URL", ORIGIN),
            ("SIGNIN_IP_RATE_LIMIT", "3"),
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ]
    );
    let ip = unique_ip();
    let start_from = || {
        app.client
            .post(app.url("/signin/passkey/start"))
            .header("x-forwarded-for", &ip)
            .json(&json!({}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(start_from().await.unwrap().status(), 200);
    }
    let response = start_from().await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}

/// A source of its own: an IPv6 address in a /64 (the unit the per-address
/// counter counts IPv6 clients by) no other test or run picks.
fn unique_ip() -> String {
    let r = uuid::Uuid::new_v4().as_u128();
    std::net::Ipv6Addr::new(0x2001, 0xdb8, r as u16, (r >> 16) as u16, 0, 0, 0, 1).to_string()
}

/// The user handle of an assertion is not signed: naming another user with
/// it signs nobody in.
async fn a_user_handle_naming_someone_else_signs_nobody_in(backend: Backend) {
    let app = spawn_app!(backend, &[("PUBLIC_URL", ORIGIN)]);
    let mut mine = SoftKey::at(ORIGIN);
    let mut theirs = SoftKey::at(ORIGIN);
    with_a_passkey(&app, &mut mine).await;
    let (_, their_uid) = with_a_passkey(&app, &mut theirs).await;
    let (_, options) = start(&app).await;
    let mut assertion = mine.get(&options).await;
    assertion["response"]["userHandle"] =
        json!(data_encoding::BASE64URL_NOPAD.encode(their_uid.as_bytes()));
    let (status, body, _) = finish(&app, "/signin/passkey/finish", &assertion).await;
    assert_eq!(status, 401, "{body}");
    // Their own passkey still signs them in.
    let (_, options) = start(&app).await;
    let (status, body, _) =
        finish(&app, "/signin/passkey/finish", &theirs.get(&options).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(Tokens::from_body(&body).uid(), their_uid);
    app.signout(&Tokens::from_body(&body).id_token).await;
}

/// A sign-in that happened gives back both its counts: only abandoned
/// starts and failed finishes stay counted.
async fn a_passkey_sign_in_that_happened_costs_the_address_nothing(backend: Backend) {
    let app = spawn_app!(
        backend,
        &[
            ("PUBLIC_URL", ORIGIN),
            ("SIGNIN_IP_RATE_LIMIT", "4"),
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ]
    );
    let mut key = SoftKey::at(ORIGIN);
    with_a_passkey(&app, &mut key).await;
    let ip = unique_ip();
    let post = |path: &str, body: Value| {
        app.client
            .post(app.url(path))
            .header("x-forwarded-for", &ip)
            .header("origin", ORIGIN)
            .json(&body)
            .send()
    };
    let options: Value = post("/signin/passkey/start", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let assertion = key.get(&options).await;
    let signed_in = post("/signin/passkey/finish", json!({"credential": assertion}))
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let tokens = Tokens::from_body(&signed_in.json().await.unwrap());
    // A failed finish counts (the same assertion again), and so do starts.
    let replayed = post("/signin/passkey/finish", json!({"credential": assertion}))
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401);
    for n in 0..3 {
        let status = post("/signin/passkey/start", json!({}))
            .await
            .unwrap()
            .status();
        assert_eq!(
            status, 200,
            "start {n}: the sign-in gave its two counts back"
        );
    }
    let status = post("/signin/passkey/start", json!({}))
        .await
        .unwrap()
        .status();
    assert_eq!(
        status, 429,
        "one failure and three starts fill a limit of four"
    );
    app.signout(&tokens.id_token).await;
}

crate::on_every_backend!(
    a_user_handle_naming_someone_else_signs_nobody_in,
    a_passkey_sign_in_that_happened_costs_the_address_nothing,
    a_passkey_alone_signs_in_once_per_assertion,
    a_removed_passkey_and_a_deleted_accounts_sign_nobody_in,
    starts_count_on_the_per_address_sign_in_limit,
);
