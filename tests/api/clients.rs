//! Machine clients (issue 11): `account clients add/list/remove` against the
//! app's own user store (the CLI's functions with the app's configuration),
//! and `POST /oauth/token`, the client-credentials grant, over HTTP.

use account::cli::{clients_add, clients_list, clients_remove};
use base64::Engine as _;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, claims, header, spawn_app, unique_email, unix_now};

/// `client_id: …` and `client_secret: …` of `account clients add`'s output.
fn credentials(output: &str) -> (String, String) {
    let field = |name: &str| {
        output
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} line in {output:?}"))
            .trim()
            .to_owned()
    };
    (field("client_id:"), field("client_secret:"))
}

async fn add_client(app: &TestApp, name: &str, scope: &str) -> (String, String) {
    credentials(
        &clients_add(app.config(), name, scope)
            .await
            .expect("clients add"),
    )
}

async fn token_request(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/oauth/token", app.address))
        .form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.expect("token request")
}

/// Asserts an OAuth error (RFC 6749 §5.2), not cached; returns the headers.
async fn assert_oauth_error(
    response: reqwest::Response,
    status: u16,
    error: &str,
) -> reqwest::header::HeaderMap {
    assert_eq!(response.status(), status);
    let headers = response.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    headers
}

async fn a_client_is_added_gets_a_token_and_once_removed_is_refused(backend: Backend) {
    let app = spawn_app!(backend);
    let (id, secret) = add_client(&app, "reporting", "todos:read reports").await;
    assert!(
        id.starts_with("cl_") && Uuid::parse_str(&id).is_err(),
        "{id}"
    );
    assert!(secret.starts_with("cs_"), "{secret}");
    let listed = clients_list(app.config()).await.unwrap();
    assert!(
        listed.contains(&format!("{id}  reporting  todos:read reports")),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "the secret is never shown again");

    let response = token_request(
        &app,
        Some((&id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "todos:read"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "todos:read");
    let token = body["access_token"].as_str().unwrap();
    let head = header(token);
    assert_eq!(head["typ"], "at+jwt");
    assert_eq!(head["alg"], "RS256");
    let kid = head["kid"].as_str().unwrap();
    let jwks: Value = app
        .client
        .get(format!("{}/.well-known/jwks.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid, "signed with the active key");
    let claims = claims(token);
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["iss"], "account");
    assert_eq!(claims["aud"], "domain-services");
    assert_eq!(claims["scope"], "todos:read");
    let iat = claims["iat"].as_u64().unwrap();
    assert!(iat.abs_diff(unix_now()) <= 5);
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 3600);
    assert!(Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());

    // In the form instead of Basic; no scope asked: all of the client's.
    let response = token_request(
        &app,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "todos:read reports");

    let removed = clients_remove(app.config(), &id).await.unwrap();
    assert!(removed.starts_with(&format!("removed {id}")), "{removed}");
    assert!(!clients_list(app.config()).await.unwrap().contains(&id));
    assert!(clients_remove(app.config(), &id).await.is_err());
    let response = token_request(
        &app,
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_oauth_error(response, 401, "invalid_client").await;
}

async fn the_token_endpoint_refuses_in_oauths_error_shape(backend: Backend) {
    let app = spawn_app!(backend);
    let (id, secret) = add_client(&app, "reporting", "todos:read").await;
    let grant = [("grant_type", "client_credentials")];

    let response = token_request(&app, Some((&id, "cs_wrong")), &grant).await;
    let headers = assert_oauth_error(response, 401, "invalid_client").await;
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"),
        "{headers:?}"
    );
    let response = token_request(
        &app,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", "cs_wrong"),
        ],
    )
    .await;
    assert_oauth_error(response, 401, "invalid_client").await;
    let response = token_request(&app, None, &grant).await;
    assert_oauth_error(response, 401, "invalid_client").await;

    let response = token_request(
        &app,
        Some((&id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "todos:read todos:write"),
        ],
    )
    .await;
    assert_oauth_error(response, 400, "invalid_scope").await;
    let response = token_request(
        &app,
        Some((&id, &secret)),
        &[
            ("grant_type", "password"),
            ("username", "a"),
            ("password", "b"),
        ],
    )
    .await;
    assert_oauth_error(response, 400, "unsupported_grant_type").await;
    let response = token_request(&app, Some((&id, &secret)), &[("scope", "todos:read")]).await;
    assert_oauth_error(response, 400, "invalid_request").await;
    let response = app
        .client
        .post(format!("{}/oauth/token", app.address))
        .basic_auth(&id, Some(&secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 400, "invalid_request").await;
}

async fn a_client_token_is_refused_where_a_user_is_expected(backend: Backend) {
    let app = spawn_app!(backend);
    let (id, secret) = add_client(&app, "reporting", "todos:read").await;
    let response = token_request(
        &app,
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let response = app.me(token).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    let response = app.signout(token).await;
    assert_eq!(response.status(), 401);
    // A user's ID token is no client credential either.
    let (_, tokens) = app.signup(&unique_email()).await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:x"));
    let response = app
        .client
        .post(format!("{}/oauth/token", app.address))
        .header("authorization", format!("Bearer {}", tokens.id_token))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 401, "invalid_client").await;
    let response = app
        .client
        .post(format!("{}/oauth/token", app.address))
        .header("authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 401, "invalid_client").await;
    app.signout(&tokens.id_token).await;
}

crate::on_every_backend!(
    a_client_is_added_gets_a_token_and_once_removed_is_refused,
    the_token_endpoint_refuses_in_oauths_error_shape,
    a_client_token_is_refused_where_a_user_is_expected,
);
