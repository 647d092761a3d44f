//! The HTTP layer against a mocked use-case layer: every request goes through
//! the real router (extractors, middleware, error mapping) with `oneshot`, no
//! sockets. What the use cases do (sign-up undo, refresh sequence) is tested
//! in `crate::service::account`; here, only what the HTTP layer adds: parsing,
//! validation, statuses, headers and the JSON shapes.
//!
//! By concern: one file per endpoint group, the JSON body extractor, the
//! client extractor, and routing (unknown routes, methods, base path, timeout,
//! panics, probes).

mod body;
mod browser;
mod client;
mod flows;
mod headers;
mod oauth;
mod password;
mod protected;
mod routing;
mod sessions;
mod signin;
mod signup;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

use super::{AppState, HttpSettings, TrustedProxies, router};
use crate::model::interfaces::MockAccountService;
use crate::model::{AccountService, Audience, ClientInfo, IdClaims, TokenPair, User};

const BASE: &str = "/api/account";
/// The ID token [`authenticating`] accepts.
const ID_TOKEN: &str = "valid-id-token";
/// The body limit of [`settings`].
const MAX_BODY_BYTES: usize = 1024;
/// The session of the ID token of [`claims_for`] (its `sid`).
const SESSION: Uuid = Uuid::from_u128(0x5e55_1011);
/// The `User-Agent` of [`with_user_agent`].
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) account-tests/1.0";

// ---------------------------------------------------------------- the app

fn settings(base_path: &str) -> HttpSettings {
    HttpSettings {
        base_path: base_path.into(),
        handler_timeout: Duration::from_millis(200),
        max_body_bytes: MAX_BODY_BYTES,
        trusted_proxies: Default::default(),
        pages: true,
        page_options: super::PageOptions {
            public_url: "http://localhost:8080".into(),
            title: "Account".into(),
            redirect_urls: Vec::new(),
        },
    }
}

fn app_with(account: impl AccountService + 'static, settings: &HttpSettings) -> Router {
    let state = AppState {
        account: Arc::new(account),
        clients: Arc::new(crate::model::interfaces::MockClientService::new()),
    };
    router(state, settings)
}

/// The app with no account expectations and `clients` answering token requests.
fn app_with_clients(clients: crate::model::interfaces::MockClientService) -> Router {
    let state = AppState {
        account: Arc::new(MockAccountService::new()),
        clients: Arc::new(clients),
    };
    router(state, &settings(BASE))
}

fn app(account: MockAccountService) -> Router {
    app_with(account, &settings(BASE))
}

/// `path` under the default base path.
fn url(path: &str) -> String {
    format!("{BASE}{path}")
}

// ---------------------------------------------------------------- data

/// A user with only the required fields set.
fn user() -> User {
    User {
        uid: Uuid::from_u128(0x1234),
        email: "alice@example.com".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        name: String::new(),
        image_url: String::new(),
        website: String::new(),
        email_verified: false,
        must_verify: false,
        pending_email: None,
        has_factor: false,
    }
}

fn claims_for(user: &User) -> IdClaims {
    IdClaims {
        sub: user.uid,
        iss: "account-test".into(),
        aud: Audience::One("account-test".into()),
        iat: 1_700_000_000,
        exp: 1_700_000_900,
        nbf: None,
        jti: Some(Uuid::from_u128(0xabcd).to_string()),
        email: user.email.clone(),
        email_verified: false,
        name: user.name.clone(),
        sid: Some(SESSION.to_string()),
        auth_time: Some(1_700_000_000),
        acr: Some("aal1".into()),
        amr: vec!["pwd".into()],
    }
}

/// Whether `claims` are those of [`ID_TOKEN`] for `user` (what the use cases
/// must be called with).
fn are_claims_of(claims: &IdClaims, user: &User) -> bool {
    *claims == claims_for(user)
}

/// What the client extractor reads from a request with [`USER_AGENT`] and no
/// connection info (as `oneshot` sends it).
fn client() -> ClientInfo {
    ClientInfo {
        user_agent: USER_AGENT.into(),
        ip: String::new(),
    }
}

fn pair() -> TokenPair {
    TokenPair {
        id_token: "new-id-token".into(),
        refresh_token: "new-refresh-token".into(),
    }
}

fn pair_json() -> Value {
    json!({"tokens": {"idToken": "new-id-token", "refreshToken": "new-refresh-token"}})
}

/// Use cases that authenticate [`ID_TOKEN`], exactly once, as the ID token
/// of `user`.
fn authenticating(user: &User) -> MockAccountService {
    let claims = claims_for(user);
    let mut account = MockAccountService::new();
    account
        .expect_authenticate()
        .withf(|token: &str| token == ID_TOKEN)
        .times(1)
        .returning(move |_| Ok(claims.clone()));
    account
}

// ---------------------------------------------------------------- requests

fn json_request(method: Method, path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("request")
}

fn post_json(path: &str, body: Value) -> Request<Body> {
    json_request(Method::POST, path, body.to_string())
}

/// A request with no body and no headers.
fn empty(method: Method, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .expect("request")
}

fn get(path: &str) -> Request<Body> {
    empty(Method::GET, path)
}

/// Adds `Authorization: <value>`.
fn with_authorization(mut request: Request<Body>, value: &str) -> Request<Body> {
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, value.parse().expect("header value"));
    request
}

/// Adds `User-Agent: <USER_AGENT>`.
fn with_user_agent(mut request: Request<Body>) -> Request<Body> {
    request.headers_mut().insert(
        header::USER_AGENT,
        USER_AGENT.parse().expect("header value"),
    );
    request
}

/// Adds `Authorization: Bearer <ID_TOKEN>`.
fn authorized(request: Request<Body>) -> Request<Body> {
    with_authorization(request, &format!("Bearer {ID_TOKEN}"))
}

/// Sends one request through the router and returns what a client observes.
/// An empty body reads as `Value::Null`.
async fn send(router: Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = router.oneshot(request).await.expect("infallible router");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            panic!(
                "body is not JSON ({err}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, headers, body)
}

// ---------------------------------------------------------------- assertions

fn www_authenticate(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
}

fn error_type(body: &Value) -> &str {
    body["error"]["type"].as_str().unwrap_or("<missing>")
}

/// The error body of `kind` with `message` and no field errors.
fn error_body(kind: &str, message: &str) -> Value {
    json!({"error": {"type": kind, "message": message}})
}

/// The 400 body listing `(field, message)` field errors, in order.
fn invalid_args_body(args: &[(&str, &str)]) -> Value {
    let args: Vec<Value> = args
        .iter()
        .map(|(field, message)| json!({"field": field, "message": message}))
        .collect();
    json!({"error": {
        "type": "BAD_REQUEST",
        "message": "invalid request parameters",
        "invalidArgs": args,
    }})
}

fn assert_json_content_type(headers: &HeaderMap) {
    assert_eq!(
        headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
}
