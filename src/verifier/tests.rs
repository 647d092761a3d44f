use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http_body_util::BodyExt as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt as _;
use uuid::Uuid;

use super::test_support::{claims_for, key, now, static_verifier};
use super::*;
use crate::jwks::JwkSet;

fn user() -> Uuid {
    Uuid::new_v4()
}

/// Replaces (or with `Value::Null`, removes) one claim of valid claims.
fn claims_with(name: &str, value: Value) -> Value {
    let mut claims = claims_for(user());
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(name);
    } else {
        claims[name] = value;
    }
    claims
}

async fn refusal(verifier: &Verifier, token: &str) -> VerifyError {
    verifier
        .verify(token)
        .await
        .expect_err("the token must be refused")
}

// ---- static sources -------------------------------------------------------

#[tokio::test]
async fn a_valid_token_yields_its_user() {
    let sub = user();
    let token = key(0).sign(&claims_for(sub));
    let verified = static_verifier().verify(&token).await.unwrap();
    assert_eq!(verified.sub, sub);
    assert_eq!(verified.email, "ada@example.com");
    assert_eq!(verified.name, "Ada");
    assert!(verified.exp > now());
}

#[tokio::test]
async fn a_verifier_from_a_public_pem_knows_the_key_by_its_thumbprint() {
    let verifier =
        Verifier::from_public_pem(key(0).public_pem.as_bytes(), VerifierConfig::default()).unwrap();
    let token = key(0).sign(&claims_for(user()));
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn keys_without_a_kid_are_known_by_their_thumbprint() {
    let mut jwk = key(0).jwk.clone();
    jwk.kid = None;
    let verifier =
        Verifier::from_jwks(JwkSet { keys: vec![jwk] }, VerifierConfig::default()).unwrap();
    assert!(
        verifier
            .verify(&key(0).sign(&claims_for(user())))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_expired_token_is_refused_beyond_the_leeway_only() {
    let verifier = static_verifier();
    let expired = key(0).sign(&claims_with("exp", json!(now() - 10)));
    assert_eq!(refusal(&verifier, &expired).await, VerifyError::Expired);
    let within_leeway = key(0).sign(&claims_with("exp", json!(now() - 2)));
    assert!(verifier.verify(&within_leeway).await.is_ok());
}

#[tokio::test]
async fn a_token_of_another_issuer_is_refused() {
    let token = key(0).sign(&claims_with("iss", json!("evil")));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::Issuer
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let token = key(0).sign(&claims_with("aud", json!("billing")));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::Audience
    );
}

#[tokio::test]
async fn a_token_lacking_any_required_claim_is_refused() {
    for claim in ["exp", "iss", "aud", "sub"] {
        let token = key(0).sign(&claims_with(claim, Value::Null));
        assert_eq!(
            refusal(&static_verifier(), &token).await,
            VerifyError::MissingClaim(claim.into()),
            "without {claim}"
        );
    }
}

#[tokio::test]
async fn a_subject_that_is_not_a_uuid_is_refused() {
    let token = key(0).sign(&claims_with("sub", json!("admin")));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::Subject
    );
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let header = B64.encode(json!({"alg": "none", "typ": "JWT", "kid": key(0).kid}).to_string());
    let payload = B64.encode(claims_for(user()).to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert!(static_verifier().verify(&token).await.is_err());
    }
    assert_eq!(
        refusal(&static_verifier(), &format!("{header}.{payload}.")).await,
        VerifyError::Algorithm
    );
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    // The classic RS/HS confusion: the public key PEM used as an HMAC secret.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key(0).kid.clone());
    let secret = EncodingKey::from_secret(key(0).public_pem.as_bytes());
    let token = jsonwebtoken::encode(&header, &claims_for(user()), &secret).unwrap();
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::Algorithm
    );
}

#[tokio::test]
async fn a_token_with_a_tampered_payload_is_refused() {
    let token = key(0).sign(&claims_for(user()));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = B64.encode(claims_for(user()).to_string());
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    assert_eq!(
        refusal(&static_verifier(), &tampered).await,
        VerifyError::Signature
    );
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_a_known_kid_is_refused() {
    let token = key(1).sign_with_kid(Some(&key(0).kid), &claims_for(user()));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::Signature
    );
}

#[tokio::test]
async fn an_unknown_kid_is_refused_by_a_static_source() {
    let token = key(1).sign(&claims_for(user()));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::UnknownKey
    );
}

#[tokio::test]
async fn a_token_without_a_kid_is_refused() {
    let token = key(0).sign_with_kid(None, &claims_for(user()));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::MissingKeyId
    );
}

#[tokio::test]
async fn garbage_is_refused_as_malformed() {
    let verifier = static_verifier();
    let long = "a".repeat(MAX_TOKEN_BYTES + 1);
    for token in ["", "abc", "a.b.c", "a.b.c.d", "!!.??.**", long.as_str()] {
        assert_eq!(
            refusal(&verifier, token).await,
            VerifyError::Malformed,
            "{token:.20}"
        );
    }
}

#[test]
fn a_leeway_over_five_seconds_is_a_configuration_error() {
    let config = VerifierConfig {
        leeway: Duration::from_secs(6),
        ..VerifierConfig::default()
    };
    let err = Verifier::from_jwks(key(0).jwks(), config).unwrap_err();
    assert!(err.to_string().contains("leeway"), "{err}");
}

#[test]
fn a_key_set_without_an_rs256_signing_key_is_a_configuration_error() {
    let mut jwk = key(0).jwk.clone();
    jwk.use_ = Some("enc".into());
    let err =
        Verifier::from_jwks(JwkSet { keys: vec![jwk] }, VerifierConfig::default()).unwrap_err();
    assert!(err.to_string().contains("RS256"), "{err}");
}

#[test]
fn configuration_from_the_environment_names_the_bad_variable() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "JWKS_URL"),
        (&[("JWKS_URL", "not a url")], "JWKS_URL"),
        (&[("JWKS_URL", "ftp://x/jwks.json")], "JWKS_URL"),
        (
            &[
                ("JWKS_URL", "http://127.0.0.1:1/jwks"),
                ("JWKS_REFETCH_INTERVAL", "soon"),
            ],
            "JWKS_REFETCH_INTERVAL",
        ),
        (
            &[
                ("JWKS_URL", "http://127.0.0.1:1/jwks"),
                ("ID_TOKEN_ISSUER", " "),
            ],
            "ID_TOKEN_ISSUER",
        ),
    ];
    for (pairs, variable) in cases {
        let err = Verifier::from_vars(vars(pairs)).unwrap_err();
        assert!(err.to_string().starts_with(variable), "{err}");
    }
    let verifier = Verifier::from_vars(vars(&[
        ("JWKS_URL", "http://127.0.0.1:1/.well-known/jwks.json"),
        ("JWKS_REFETCH_INTERVAL", "7"),
    ]))
    .unwrap();
    assert_eq!(verifier.config().issuer, "account");
    assert_eq!(verifier.config().audience, "domain-services");
    assert_eq!(verifier.config().leeway, Duration::from_secs(5));
    assert_eq!(verifier.config().refetch_interval, Duration::from_secs(7));
}

// ---- the extractor --------------------------------------------------------

async fn whoami(AuthenticatedUser(user): AuthenticatedUser) -> String {
    user.sub.to_string()
}

fn protected_app(verifier: Verifier) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .with_state(verifier)
}

async fn call(app: Router, authorization: Option<&str>) -> (StatusCode, Option<String>, String) {
    let mut request = Request::get("/whoami");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = app
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_extractor_lets_a_valid_bearer_token_through() {
    let sub = user();
    let token = key(0).sign(&claims_for(sub));
    let (status, _, body) = call(
        protected_app(static_verifier()),
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, sub.to_string());
}

#[tokio::test]
async fn the_extractor_answers_401_bearer_without_credentials() {
    for authorization in [
        None,
        Some("Basic dXNlcjpwdw=="),
        Some("Bearer "),
        Some("token"),
    ] {
        let (status, challenge, body) = call(protected_app(static_verifier()), authorization).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(challenge.as_deref(), Some("Bearer"));
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["type"], "AUTHORIZATION");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Bearer")
        );
    }
}

#[tokio::test]
async fn the_extractor_answers_401_invalid_token_without_echoing_it() {
    let token = key(0).sign(&claims_with("iss", json!("evil-issuer-marker")));
    let (status, challenge, body) = call(
        protected_app(static_verifier()),
        Some(&format!("bearer {token}")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["type"], "AUTHORIZATION");
    assert_eq!(json["error"]["message"], "the token has the wrong issuer");
    for part in token.split('.') {
        assert!(!body.contains(part));
    }
    assert!(!body.contains("evil-issuer-marker"));
}

#[tokio::test]
async fn the_extractor_answers_503_when_no_key_can_be_fetched() {
    let server = JwksServer::start(&[0]).await;
    server.set_down(true);
    let verifier = server.verifier(VerifierConfig::default());
    let token = key(0).sign(&claims_for(user()));
    let (status, challenge, body) =
        call(protected_app(verifier), Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(challenge, None);
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["type"], "SERVICE_UNAVAILABLE");
    server.stop().await;
}

// ---- fetching from a JWKS server -------------------------------------------
//
// The verifier's clock stands still in these tests (`Clock::freeze`) and is
// moved past the refetch interval or the key age explicitly, so "within the
// interval" holds however slow the machine is.

/// A verifier of `server`'s keys whose clock only moves when advanced.
fn frozen_verifier(server: &JwksServer, config: VerifierConfig) -> Verifier {
    let verifier = server.verifier(config);
    verifier.clock().freeze();
    verifier
}

/// Moves the verifier's clock past its refetch interval.
fn after_the_interval(verifier: &Verifier) {
    verifier.clock().advance(verifier.config().refetch_interval);
}

/// Default settings but a key age of two refetch intervals.
fn short_key_age() -> VerifierConfig {
    let config = VerifierConfig::default();
    VerifierConfig {
        max_key_age: 2 * config.refetch_interval,
        ..config
    }
}

#[derive(Clone)]
struct Published {
    keys: Arc<Mutex<JwkSet>>,
    hits: Arc<AtomicUsize>,
    /// Answer 503, as an account service that is starting or failing.
    down: Arc<AtomicBool>,
    /// While `true`, requests wait before answering, as a slow account service.
    held: Arc<watch::Sender<bool>>,
}

/// A JWKS endpoint on port 0 that counts its requests.
struct JwksServer {
    url: String,
    published: Published,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl JwksServer {
    async fn start(keys: &[usize]) -> Self {
        async fn jwks(State(published): State<Published>) -> Result<Json<JwkSet>, StatusCode> {
            published.hits.fetch_add(1, Ordering::SeqCst);
            let mut held = published.held.subscribe();
            let _ = held.wait_for(|held| !*held).await;
            if published.down.load(Ordering::SeqCst) {
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            }
            Ok(Json(published.keys.lock().unwrap().clone()))
        }
        let published = Published {
            keys: Arc::default(),
            hits: Arc::default(),
            down: Arc::default(),
            held: Arc::new(watch::Sender::new(false)),
        };
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(published.clone());
        // The listener itself goes to the server: the port is never released.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        let server = Self {
            url,
            published,
            stop: Some(stop),
            task,
        };
        server.publish(keys);
        server
    }

    fn publish(&self, keys: &[usize]) {
        *self.published.keys.lock().unwrap() = JwkSet {
            keys: keys.iter().map(|i| key(*i).jwk.clone()).collect(),
        };
    }

    fn set_down(&self, down: bool) {
        self.published.down.store(down, Ordering::SeqCst);
    }

    /// Holds every answer back until called with `false`.
    fn hold(&self, held: bool) {
        self.published.held.send_replace(held);
    }

    fn hits(&self) -> usize {
        self.published.hits.load(Ordering::SeqCst)
    }

    /// Waits (10 s at most) until `count` requests have arrived.
    async fn wait_for_hits(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.hits() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} JWKS requests, expected {count}",
                self.hits()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn verifier(&self, config: VerifierConfig) -> Verifier {
        Verifier::from_jwks_url(&self.url, config).unwrap()
    }

    async fn stop(mut self) {
        self.hold(false);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap();
    }
}

/// A token under a made-up kid (cheap to make: the key lookup refuses it
/// before any signature check).
fn token_with_random_kid() -> String {
    let header =
        B64.encode(json!({"alg": "RS256", "typ": "JWT", "kid": Uuid::new_v4()}).to_string());
    let payload = B64.encode(claims_for(user()).to_string());
    format!("{header}.{payload}.{}", B64.encode([7u8; 256]))
}

async fn verifies(verifier: &Verifier, index: usize) {
    let sub = user();
    let verified = verifier
        .verify(&key(index).sign(&claims_for(sub)))
        .await
        .unwrap_or_else(|e| panic!("a token of key {index} must verify: {e}"));
    assert_eq!(verified.sub, sub);
}

#[tokio::test]
async fn the_first_verification_fetches_and_a_known_kid_never_refetches() {
    let server = JwksServer::start(&[0]).await;
    let verifier = frozen_verifier(&server, VerifierConfig::default());
    assert_eq!(server.hits(), 0, "nothing is fetched before first use");
    for _ in 0..20 {
        verifies(&verifier, 0).await;
    }
    after_the_interval(&verifier);
    verifies(&verifier, 0).await;
    assert_eq!(server.hits(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refetch_and_unknown_kids_are_rate_limited() {
    let server = JwksServer::start(&[0]).await;
    let verifier = frozen_verifier(&server, VerifierConfig::default());
    verifies(&verifier, 0).await;
    assert_eq!(server.hits(), 1);

    // The account service rotates to key 1 and publishes both.
    server.publish(&[0, 1]);
    after_the_interval(&verifier);
    verifies(&verifier, 1).await;
    assert_eq!(server.hits(), 2, "one refetch for the new kid");

    // Made-up kids within the interval cost nothing.
    for _ in 0..20 {
        assert_eq!(
            refusal(&verifier, &token_with_random_kid()).await,
            VerifyError::UnknownKey
        );
    }
    assert_eq!(server.hits(), 2, "no refetch within the interval");

    // Once the interval has passed, an unknown kid refetches again, once.
    after_the_interval(&verifier);
    for _ in 0..5 {
        refusal(&verifier, &token_with_random_kid()).await;
    }
    assert_eq!(server.hits(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_fetch() {
    let server = JwksServer::start(&[1]).await;
    let verifier = frozen_verifier(&server, VerifierConfig::default());
    let tokens: Vec<String> = (0..32)
        .map(|i| {
            if i % 2 == 0 {
                key(1).sign(&claims_for(user()))
            } else {
                token_with_random_kid()
            }
        })
        .collect();
    let tasks: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let verifier = verifier.clone();
            tokio::spawn(async move { (i, verifier.verify(&token).await) })
        })
        .collect();
    for task in tasks {
        let (i, result) = task.await.unwrap();
        assert_eq!(result.is_ok(), i % 2 == 0, "token {i}: {result:?}");
    }
    assert_eq!(server.hits(), 1);
    server.stop().await;
}

#[tokio::test]
async fn stale_keys_are_refreshed_in_the_background_while_the_request_is_answered_from_the_cache() {
    let server = JwksServer::start(&[0]).await;
    let verifier = frozen_verifier(&server, short_key_age());
    verifies(&verifier, 0).await;
    assert_eq!(server.hits(), 1);

    // The account service withdraws key 0 and answers slowly: its JWKS
    // answer is held back until released below.
    server.publish(&[1]);
    server.hold(true);
    verifier.clock().advance(verifier.config().max_key_age);
    // Without the background refresh the first of these would wait for the
    // held answer until the fetch timeout.
    const PROMPTLY: Duration = Duration::from_secs(3);
    assert!(PROMPTLY < FETCH_TIMEOUT);
    for _ in 0..10 {
        tokio::time::timeout(PROMPTLY, verifies(&verifier, 0))
            .await
            .expect("answered from the cache without waiting for the JWKS");
    }
    server.wait_for_hits(2).await;

    // A miss waits for the fetch under way rather than starting another.
    server.hold(false);
    verifies(&verifier, 1).await;
    assert_eq!(
        refusal(&verifier, &key(0).sign(&claims_for(user()))).await,
        VerifyError::UnknownKey,
        "the refreshed keys replaced the old ones"
    );
    assert_eq!(server.hits(), 2, "one fetch for every stale verification");
    server.stop().await;
}

#[tokio::test]
async fn cached_keys_go_on_verifying_while_the_jwks_is_unreachable() {
    let server = JwksServer::start(&[0]).await;
    let verifier = frozen_verifier(&server, short_key_age());
    verifies(&verifier, 0).await;
    server.set_down(true);
    // Old keys are due for a refresh: the failed refresh must not lose them.
    verifier.clock().advance(verifier.config().max_key_age);
    for _ in 0..3 {
        verifies(&verifier, 0).await;
    }
    assert_eq!(
        refusal(&verifier, &key(1).sign(&claims_for(user()))).await,
        VerifyError::KeysUnavailable,
        "an unknown kid cannot be checked while the JWKS is down"
    );
    assert_eq!(
        server.hits(),
        2,
        "one failed refresh, not retried within the interval"
    );
    verifies(&verifier, 0).await;
    server.stop().await;
}

#[tokio::test]
async fn a_withdrawn_key_is_refused_after_a_refetch() {
    let server = JwksServer::start(&[0, 1]).await;
    let verifier = frozen_verifier(&server, VerifierConfig::default());
    verifies(&verifier, 0).await;
    server.publish(&[1]);
    after_the_interval(&verifier);
    // Any unknown kid triggers the refetch, which replaces the whole cache.
    refusal(&verifier, &token_with_random_kid()).await;
    assert_eq!(server.hits(), 2);
    assert_eq!(
        refusal(&verifier, &key(0).sign(&claims_for(user()))).await,
        VerifyError::UnknownKey
    );
    verifies(&verifier, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn a_withdrawn_key_is_refused_once_the_cached_keys_are_older_than_max_key_age() {
    let server = JwksServer::start(&[0]).await;
    let verifier = frozen_verifier(&server, short_key_age());
    verifies(&verifier, 0).await;
    server.publish(&[1]);
    verifier.clock().advance(verifier.config().refetch_interval);
    verifies(&verifier, 0).await;
    assert_eq!(server.hits(), 1, "not refreshed before max_key_age");

    verifier.clock().advance(verifier.config().max_key_age);
    // The stale keys still answer this one, and are refreshed meanwhile;
    // the miss below waits for that refresh.
    verifies(&verifier, 0).await;
    verifies(&verifier, 1).await;
    assert_eq!(
        refusal(&verifier, &key(0).sign(&claims_for(user()))).await,
        VerifyError::UnknownKey
    );
    assert_eq!(server.hits(), 2);
    server.stop().await;
}

#[tokio::test]
async fn refresh_keys_warms_the_cache() {
    let server = JwksServer::start(&[0, 1]).await;
    let verifier = frozen_verifier(&server, VerifierConfig::default());
    assert_eq!(verifier.refresh_keys().await.unwrap(), 2);
    verifies(&verifier, 1).await;
    assert_eq!(server.hits(), 1);
    server.set_down(true);
    let err = verifier.refresh_keys().await.unwrap_err();
    assert!(err.to_string().contains("cannot fetch the JWKS"), "{err}");
    verifies(&verifier, 0).await;
    server.stop().await;
}

#[tokio::test]
async fn before_the_first_successful_fetch_failures_are_retried_within_a_second() {
    let server = JwksServer::start(&[0]).await;
    server.set_down(true);
    // The default 30 s interval applies only once keys were fetched.
    let verifier = frozen_verifier(&server, VerifierConfig::default());
    let token = key(0).sign(&claims_for(user()));
    assert_eq!(
        refusal(&verifier, &token).await,
        VerifyError::KeysUnavailable
    );
    assert_eq!(
        refusal(&verifier, &token).await,
        VerifyError::KeysUnavailable
    );
    assert_eq!(server.hits(), 1, "failures are rate limited too");
    server.set_down(false);
    verifier.clock().advance(COLD_RETRY_INTERVAL);
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(server.hits(), 2);
    server.stop().await;
}

// ---- credentials in the JWKS URL -------------------------------------------

#[test]
fn credentials_in_a_url_are_redacted() {
    let cases = [
        (
            "https://user:pa55@keys.example.com/.well-known/jwks.json",
            "https://***@keys.example.com/.well-known/jwks.json",
        ),
        (
            "http://token@127.0.0.1:8080/jwks?x=1",
            "http://***@127.0.0.1:8080/jwks?x=1",
        ),
        (
            "https://:pa55@keys.example.com/jwks",
            "https://***@keys.example.com/jwks",
        ),
        (
            "https://keys.example.com/.well-known/jwks.json",
            "https://keys.example.com/.well-known/jwks.json",
        ),
        (
            "https://keys.example.com/users/@me/jwks",
            "https://keys.example.com/users/@me/jwks",
        ),
    ];
    for (url, redacted) in cases {
        assert_eq!(
            redact_url(&reqwest::Url::parse(url).unwrap()),
            redacted,
            "{url}"
        );
    }
}

#[test]
fn an_unparsable_url_with_credentials_is_not_repeated_in_the_error() {
    let err = Verifier::from_jwks_url(
        "https://user:pa55@keys example.com/jwks",
        VerifierConfig::default(),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("JWKS URL: not a URL"), "{err}");
    assert!(!err.to_string().contains("pa55"), "{err}");
}

#[tokio::test]
async fn the_jwks_url_credentials_show_neither_in_debug_output_nor_in_fetch_errors() {
    let server = JwksServer::start(&[0]).await;
    let url = server.url.replace("http://", "http://jwks-user:s3cret-pw@");
    let verifier = Verifier::from_jwks_url(&url, VerifierConfig::default()).unwrap();
    // (The log lines use the same redacted URL; tests/domain reads them.)
    verifier.refresh_keys().await.unwrap();
    server.set_down(true);
    let err = verifier.refresh_keys().await.unwrap_err().to_string();
    let debug = format!("{verifier:?}");
    for text in [&debug, &err] {
        assert!(!text.contains("s3cret-pw"), "{text}");
        assert!(!text.contains("jwks-user"), "{text}");
        assert!(text.contains("http://***@127.0.0.1:"), "{text}");
    }
    server.stop().await;
}
