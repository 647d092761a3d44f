use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::super::test_support::{claims_for, key};
use super::super::*;
use super::{refusal, user};
use crate::jwks::JwkSet;

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
pub(super) struct JwksServer {
    pub(super) url: String,
    published: Published,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl JwksServer {
    pub(super) async fn start(keys: &[usize]) -> Self {
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

    pub(super) fn publish(&self, keys: &[usize]) {
        *self.published.keys.lock().unwrap() = JwkSet {
            keys: keys.iter().map(|i| key(*i).jwk.clone()).collect(),
        };
    }

    pub(super) fn set_down(&self, down: bool) {
        self.published.down.store(down, Ordering::SeqCst);
    }

    /// Holds every answer back until called with `false`.
    pub(super) fn hold(&self, held: bool) {
        self.published.held.send_replace(held);
    }

    pub(super) fn hits(&self) -> usize {
        self.published.hits.load(Ordering::SeqCst)
    }

    /// Waits (10 s at most) until `count` requests have arrived.
    pub(super) async fn wait_for_hits(&self, count: usize) {
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

    pub(super) fn verifier(&self, config: VerifierConfig) -> Verifier {
        Verifier::from_jwks_url(&self.url, config).unwrap()
    }

    pub(super) async fn stop(mut self) {
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
