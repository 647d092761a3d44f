//! A fake OAuth2 token endpoint (client-credentials grant) and a fake API on
//! one axum server bound to port 0: opaque tokens with a configurable
//! `expires_in`, a request counter, 5xx/4xx/hanging answers on demand, and
//! the client's Basic credentials checked. The API accepts the tokens it
//! issued, except those revoked (or all of them, with `api_always_401`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::json;

pub const CLIENT_ID: &str = "billing";
pub const CLIENT_SECRET: &str = "s3cret value/+";

#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Issue a token after `delay`.
    Issue {
        expires_in: Option<u64>,
        delay: Duration,
    },
    /// Answer this status (with an OAuth2 error body for 4xx).
    Status(u16),
    /// Never answer.
    Hang,
}

#[derive(Default)]
struct Shared {
    token_requests: AtomicUsize,
    api_requests: AtomicUsize,
    issued: Mutex<HashSet<String>>,
    revoked: Mutex<HashSet<String>>,
    api_always_401: AtomicBool,
    behaviour: Mutex<Option<Behaviour>>,
}

pub struct FakeEndpoint {
    pub base: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeEndpoint {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeEndpoint {
    pub async fn start(behaviour: Behaviour) -> Self {
        let shared = Arc::new(Shared::default());
        *shared.behaviour.lock().unwrap() = Some(behaviour);
        let app = Router::new()
            .route("/oauth/token", post(token))
            .route("/api/thing", get(api))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base,
            shared,
            server,
        }
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.base)
    }

    pub fn api_url(&self) -> String {
        format!("{}/api/thing", self.base)
    }

    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    pub fn api_requests(&self) -> usize {
        self.shared.api_requests.load(Ordering::SeqCst)
    }

    pub fn revoke(&self, token: &str) {
        self.shared.revoked.lock().unwrap().insert(token.to_owned());
    }

    pub fn api_always_401(&self) {
        self.shared.api_always_401.store(true, Ordering::SeqCst);
    }
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": "from the fake endpoint"})),
    )
        .into_response()
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    shared.token_requests.fetch_add(1, Ordering::SeqCst);
    // RFC 6749 §2.3.1: form-encoded id and secret, then Basic.
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:s3cret+value%2F%2B"))
    );
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if given != expected {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if !body
        .split('&')
        .any(|pair| pair == "grant_type=client_credentials")
    {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let behaviour = shared.behaviour.lock().unwrap().clone().unwrap();
    match behaviour {
        Behaviour::Issue { expires_in, delay } => {
            tokio::time::sleep(delay).await;
            let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
            shared.issued.lock().unwrap().insert(token.clone());
            let mut body = json!({"access_token": token, "token_type": "Bearer"});
            if let Some(expires_in) = expires_in {
                body["expires_in"] = json!(expires_in);
            }
            axum::Json(body).into_response()
        }
        Behaviour::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            if status.is_client_error() {
                oauth_error(status, "invalid_request")
            } else {
                (status, "unavailable").into_response()
            }
        }
        Behaviour::Hang => std::future::pending().await,
    }
}

async fn api(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> StatusCode {
    shared.api_requests.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let valid = shared.issued.lock().unwrap().contains(token)
        && !shared.revoked.lock().unwrap().contains(token)
        && !shared.api_always_401.load(Ordering::SeqCst);
    if valid {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}
