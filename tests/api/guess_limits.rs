//! Limits on what can be guessed without a password: failed client
//! authentications at `POST /oauth/token` (per client id and address, per
//! address) and failed mailed tokens at `POST /verify-email` and `POST
//! /password-reset/confirm` (per address). Past a limit, 429 with
//! `Retry-After` and nothing is checked; a success gives its count back.
//!
//! As in `limits.rs`, the apps trust the test client's peer and each test
//! names sources of its own with `X-Forwarded-For`, so counters other tests
//! left in the shared Redis never meet its own.

use std::net::Ipv6Addr;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Backend, PUBLIC_URL, TestApp, nth_mail_to, spawn_app, token_in, unique_email,
};
use crate::smtp_sink::SmtpSink;

crate::on_every_backend!(
    failed_client_authentications_are_limited_per_client_and_address,
    failed_client_authentications_are_limited_per_address,
    failed_mailed_tokens_are_limited_per_address_and_one_that_works_gives_its_count_back,
);

const WINDOW: u64 = 60;

fn settings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RATE_LIMIT_WINDOW", "60"),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("CLIENT_AUTH_RATE_LIMIT", "3"),
        ("CLIENT_AUTH_IP_RATE_LIMIT", "5"),
        ("LINK_TOKEN_RATE_LIMIT", "3"),
    ]
}

/// A source no other test or run picks (an IPv6 /64 of its own).
fn unique_ip() -> String {
    let r = Uuid::new_v4().as_u128();
    Ipv6Addr::new(0x2001, 0xdb8, r as u16, (r >> 16) as u16, 0, 0, 0, 1).to_string()
}

async fn token_request(app: &TestApp, ip: &str, id: &str, secret: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/oauth/token", app.address))
        .header("x-forwarded-for", ip)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request")
}

/// The client's id and secret, registered as `account clients add` does.
async fn add_client(app: &TestApp) -> (String, String) {
    let output = account::cli::clients_add(app.config(), "guessed", "todos:read")
        .await
        .expect("clients add");
    let field = |name: &str| {
        output
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .expect("a field")
            .trim()
            .to_owned()
    };
    (field("client_id:"), field("client_secret:"))
}

/// A 429 in OAuth's shape, with `Retry-After` within the window.
async fn assert_oauth_too_many(response: reqwest::Response) {
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=WINDOW).contains(&wait), "Retry-After: {wait}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests", "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}

async fn failed_client_authentications_are_limited_per_client_and_address(backend: Backend) {
    let app = spawn_app!(backend, &settings());
    let (id, secret) = add_client(&app).await;
    let ip = unique_ip();
    // Successes give their count back: any number of them between failures.
    assert_eq!(
        token_request(&app, &ip, &id, "cs_wrong").await.status(),
        401
    );
    for _ in 0..5 {
        assert_eq!(token_request(&app, &ip, &id, &secret).await.status(), 200);
    }
    assert_eq!(
        token_request(&app, &ip, &id, "cs_wrong").await.status(),
        401
    );
    assert_eq!(
        token_request(&app, &ip, &id, "cs_wrong").await.status(),
        401
    );
    // The fourth failure's turn: refused, the right secret included.
    assert_oauth_too_many(token_request(&app, &ip, &id, "cs_wrong").await).await;
    assert_oauth_too_many(token_request(&app, &ip, &id, &secret).await).await;
    // Another address is not locked out of this client.
    assert_eq!(
        token_request(&app, &unique_ip(), &id, &secret)
            .await
            .status(),
        200
    );
}

async fn failed_client_authentications_are_limited_per_address(backend: Backend) {
    let app = spawn_app!(backend, &settings());
    let (id, secret) = add_client(&app).await;
    let ip = unique_ip();
    for i in 0..5 {
        let made_up = format!("cl_guess{i}");
        assert_eq!(
            token_request(&app, &ip, &made_up, "cs_x").await.status(),
            401
        );
    }
    assert_oauth_too_many(token_request(&app, &ip, "cl_guess9", "cs_x").await).await;
    assert_oauth_too_many(token_request(&app, &ip, &id, &secret).await).await;
    assert_eq!(
        token_request(&app, &unique_ip(), &id, &secret)
            .await
            .status(),
        200
    );
}

async fn post_token(app: &TestApp, ip: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("x-forwarded-for", ip)
        .json(body)
        .send()
        .await
        .expect("a response")
}

async fn failed_mailed_tokens_are_limited_per_address_and_one_that_works_gives_its_count_back(
    backend: Backend,
) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let mut vars = settings();
    vars.push(("SMTP_URL", &smtp));
    vars.push(("PUBLIC_URL", PUBLIC_URL));
    let app = spawn_app!(backend, &vars);
    let email = unique_email();
    app.signup(&email).await;
    let token = token_in(&nth_mail_to(&sink, &email, 1).await, "/verify-email");
    let ip = unique_ip();
    let guess = || json!({"token": Uuid::new_v4().simple().to_string()});
    let reset_guess = || json!({"token": Uuid::new_v4().simple().to_string(), "newPassword": "guessed passphrase"});

    assert_eq!(
        post_token(&app, &ip, "/verify-email", &guess())
            .await
            .status(),
        400
    );
    // A token that works does not count.
    assert_eq!(
        post_token(&app, &ip, "/verify-email", &json!({"token": token}))
            .await
            .status(),
        204
    );
    // Both routes count on the one counter of the address.
    assert_eq!(
        post_token(&app, &ip, "/password-reset/confirm", &reset_guess())
            .await
            .status(),
        400
    );
    assert_eq!(
        post_token(&app, &ip, "/verify-email", &guess())
            .await
            .status(),
        400
    );
    for (path, body) in [
        ("/verify-email", guess()),
        ("/password-reset/confirm", reset_guess()),
    ] {
        let response = post_token(&app, &ip, path, &body).await;
        assert_eq!(response.status(), 429, "{path}");
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=WINDOW).contains(&wait), "{path}: Retry-After {wait}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "TOO_MANY_REQUESTS", "{body}");
    }
    // Another address still gets the usual answer.
    assert_eq!(
        post_token(&app, &unique_ip(), "/verify-email", &guess())
            .await
            .status(),
        400
    );
}
