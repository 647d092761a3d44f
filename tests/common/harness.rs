//! What the tests that drive the account service over HTTP share, whether it
//! runs in the test process (`tests/api`) or as `account` processes
//! (`tests/replicas`): the variables every instance starts with, the skip (or
//! failure) when the real stores are unreachable, token pairs and their JWT
//! claims, and the calls of the account API. Included with `#[path]` by the
//! `helpers.rs` of each; not every item is used by every test binary.
#![allow(dead_code)]

use std::io::Write as _;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use uuid::Uuid;

/// The password of the users the tests sign up.
pub const PASSWORD: &str = "correct horse battery";

/// A limit no test reaches (the limits' counters of 127.0.0.1 are shared by
/// every test and run on the same Redis).
pub const NO_LIMIT: &str = "1000000000";

/// Seconds a handler may take in tests (`HANDLER_TIMEOUT`, 5 by default).
pub const TEST_HANDLER_TIMEOUT: &str = "120";

/// The variables every instance starts with, besides its stores and keys:
/// port 0 on loopback, a small pool, a handler timeout for a loaded machine
/// and the limits out of the way.
pub fn base_env() -> Vec<(&'static str, String)> {
    vec![
        ("HOST", "127.0.0.1".into()),
        ("PORT", "0".into()),
        ("DATABASE_MAX_CONNECTIONS", "4".into()),
        // A loaded test machine (the suite's own parallel tests, perhaps a
        // build beside it) may take seconds for what takes milliseconds: the
        // 5 s default would answer 503 by chance. Tests of the timeout set
        // their own.
        ("HANDLER_TIMEOUT", TEST_HANDLER_TIMEOUT.into()),
        // Limits out of the way: every test signs in and up from 127.0.0.1,
        // and on Redis the counters of that address are shared by every test
        // and run. Tests of the limits set small ones, for sources of their own.
        ("SIGNIN_RATE_LIMIT", NO_LIMIT.into()),
        ("SIGNIN_IP_RATE_LIMIT", NO_LIMIT.into()),
        ("SIGNIN_EMAIL_RATE_LIMIT", NO_LIMIT.into()),
        ("SIGNUP_RATE_LIMIT", NO_LIMIT.into()),
    ]
}

/// `REQUIRE_REAL_STORES=1` (CI): an unreachable real store fails the run.
pub fn require_real_stores() -> bool {
    std::env::var("REQUIRE_REAL_STORES").is_ok_and(|v| v == "1" || v == "true")
}

/// Prints a line the test harness does not swallow.
pub fn notice(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// Whether the real stores answered (`reachable`, as
/// `stores::stores_reachable` tells). When not, `skipped` (the test) is
/// skipped with a visible line, or fails under `REQUIRE_REAL_STORES=1`.
pub fn reachable_or_skip(reachable: &Result<(), String>, skipped: &str) -> bool {
    match reachable {
        Ok(()) => true,
        Err(store) if require_real_stores() => {
            panic!("{store} is unreachable and REQUIRE_REAL_STORES=1")
        }
        Err(store) => {
            notice(&format!("SKIPPED {skipped}: {store} is unreachable"));
            false
        }
    }
}

/// The claims of a JWT, decoded without verification (for assertions).
pub fn claims(token: &str) -> Value {
    jwt_part(token, 1)
}

/// The header of a JWT, decoded.
pub fn header(token: &str) -> Value {
    jwt_part(token, 0)
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("JWT part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// Tokens returned by sign-up, sign-in and refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub id_token: String,
    pub refresh_token: String,
}

impl Tokens {
    pub fn from_body(body: &Value) -> Self {
        let field = |name: &str| {
            body["tokens"][name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in {body}"))
                .to_owned()
        };
        Self {
            id_token: field("idToken"),
            refresh_token: field("refreshToken"),
        }
    }

    /// The user: the `sub` of the ID token.
    pub fn uid(&self) -> Uuid {
        claims(&self.id_token)["sub"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("sub, a UUID")
    }

    /// The session of the pair: the `sid` of its ID token.
    pub fn sid(&self) -> String {
        claims(&self.id_token)["sid"]
            .as_str()
            .expect("sid in the ID token")
            .to_owned()
    }

    /// The refresh token's `jti`: its whitelist entry is `<user prefix>:<jti>`.
    pub fn jti(&self) -> String {
        claims(&self.refresh_token)["jti"]
            .as_str()
            .expect("jti in the refresh token")
            .to_owned()
    }
}

// ------------------------------------------------------------ the account API

/// A client that gives up on a request after 10 s.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// The URL of `path` of the account API served at `base`
/// (`http://127.0.0.1:<port>`).
pub fn api_url(base: &str, path: &str) -> String {
    format!("{base}/api/account{path}")
}

/// Sends `request`; panics when no response comes.
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.expect("request")
}

pub async fn post_json(client: &reqwest::Client, url: String, body: &Value) -> reqwest::Response {
    send(client.post(url).json(body)).await
}

/// `POST /signup` at `base`.
pub async fn sign_up(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let body = json!({"email": email, "password": password});
    post_json(client, api_url(base, "/signup"), &body).await
}

/// `POST /tokens` at `base` with `refresh_token`.
pub async fn refresh(
    client: &reqwest::Client,
    base: &str,
    refresh_token: &str,
) -> reqwest::Response {
    let body = json!({"refreshToken": refresh_token});
    post_json(client, api_url(base, "/tokens"), &body).await
}

/// `GET /me` at `base` with `id_token`.
pub async fn me(client: &reqwest::Client, base: &str, id_token: &str) -> reqwest::Response {
    send(client.get(api_url(base, "/me")).bearer_auth(id_token)).await
}
