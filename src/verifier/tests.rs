use std::sync::atomic::{AtomicUsize, Ordering};
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
use tokio::sync::oneshot;
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
    let verifier = Verifier::from_jwks_url(&closed_port_url(), fast_config()).unwrap();
    let token = key(0).sign(&claims_for(user()));
    let (status, challenge, body) =
        call(protected_app(verifier), Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(challenge, None);
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["type"], "SERVICE_UNAVAILABLE");
}

// ---- fetching from a JWKS server -------------------------------------------

const INTERVAL: Duration = Duration::from_millis(200);

fn fast_config() -> VerifierConfig {
    VerifierConfig {
        refetch_interval: INTERVAL,
        ..VerifierConfig::default()
    }
}

/// Waits out the refetch interval.
async fn after_the_interval() {
    tokio::time::sleep(INTERVAL + Duration::from_millis(50)).await;
}

fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/.well-known/jwks.json")
}

#[derive(Clone, Default)]
struct Published {
    keys: Arc<Mutex<JwkSet>>,
    hits: Arc<AtomicUsize>,
    /// Answer 503, as an account service that is starting or failing.
    down: Arc<std::sync::atomic::AtomicBool>,
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
            if published.down.load(Ordering::SeqCst) {
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            }
            Ok(Json(published.keys.lock().unwrap().clone()))
        }
        let published = Published::default();
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(published.clone());
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

    fn hits(&self) -> usize {
        self.published.hits.load(Ordering::SeqCst)
    }

    fn verifier(&self, config: VerifierConfig) -> Verifier {
        Verifier::from_jwks_url(&self.url, config).unwrap()
    }

    async fn stop(mut self) {
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

#[tokio::test]
async fn the_first_verification_fetches_and_a_known_kid_never_refetches() {
    let server = JwksServer::start(&[0]).await;
    let verifier = server.verifier(fast_config());
    assert_eq!(server.hits(), 0, "nothing is fetched before first use");
    for _ in 0..20 {
        let token = key(0).sign(&claims_for(user()));
        verifier.verify(&token).await.unwrap();
    }
    after_the_interval().await;
    verifier
        .verify(&key(0).sign(&claims_for(user())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refetch_and_unknown_kids_are_rate_limited() {
    let server = JwksServer::start(&[0]).await;
    let verifier = server.verifier(fast_config());
    verifier
        .verify(&key(0).sign(&claims_for(user())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);

    // The account service rotates to key 1 and publishes both.
    server.publish(&[0, 1]);
    after_the_interval().await;
    let sub = user();
    let rotated = verifier
        .verify(&key(1).sign(&claims_for(sub)))
        .await
        .unwrap();
    assert_eq!(rotated.sub, sub);
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
    after_the_interval().await;
    for _ in 0..5 {
        refusal(&verifier, &token_with_random_kid()).await;
    }
    assert_eq!(server.hits(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_fetch() {
    let server = JwksServer::start(&[1]).await;
    let verifier = server.verifier(VerifierConfig::default());
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
async fn cached_keys_go_on_verifying_while_the_jwks_is_unreachable() {
    let server = JwksServer::start(&[0]).await;
    // Old keys are due for a refresh on every use: the failed refresh must
    // not lose them.
    let verifier = server.verifier(VerifierConfig {
        max_key_age: INTERVAL,
        ..fast_config()
    });
    verifier
        .verify(&key(0).sign(&claims_for(user())))
        .await
        .unwrap();
    server.stop().await;
    after_the_interval().await;
    for _ in 0..3 {
        verifier
            .verify(&key(0).sign(&claims_for(user())))
            .await
            .expect("cached key still verifies");
    }
    assert_eq!(
        refusal(&verifier, &key(1).sign(&claims_for(user()))).await,
        VerifyError::KeysUnavailable,
        "an unknown kid cannot be checked while the JWKS is down"
    );
}

#[tokio::test]
async fn a_withdrawn_key_is_refused_after_a_refetch() {
    let server = JwksServer::start(&[0, 1]).await;
    let verifier = server.verifier(fast_config());
    verifier
        .verify(&key(0).sign(&claims_for(user())))
        .await
        .unwrap();
    server.publish(&[1]);
    after_the_interval().await;
    // Any unknown kid triggers the refetch, which replaces the whole cache.
    refusal(&verifier, &token_with_random_kid()).await;
    assert_eq!(server.hits(), 2);
    assert_eq!(
        refusal(&verifier, &key(0).sign(&claims_for(user()))).await,
        VerifyError::UnknownKey
    );
    assert!(
        verifier
            .verify(&key(1).sign(&claims_for(user())))
            .await
            .is_ok()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_withdrawn_key_is_refused_once_the_cached_keys_are_older_than_max_key_age() {
    let server = JwksServer::start(&[0]).await;
    let verifier = server.verifier(VerifierConfig {
        max_key_age: INTERVAL,
        ..fast_config()
    });
    verifier
        .verify(&key(0).sign(&claims_for(user())))
        .await
        .unwrap();
    server.publish(&[1]);
    after_the_interval().await;
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
    let verifier = server.verifier(fast_config());
    assert_eq!(verifier.refresh_keys().await.unwrap(), 2);
    verifier
        .verify(&key(1).sign(&claims_for(user())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
    server.stop().await;
    let err = verifier.refresh_keys().await.unwrap_err();
    assert!(err.to_string().contains("cannot fetch the JWKS"), "{err}");
}

#[tokio::test]
async fn before_the_first_successful_fetch_failures_are_retried_within_a_second() {
    let server = JwksServer::start(&[0]).await;
    server.set_down(true);
    // The default 30 s interval applies only once keys were fetched.
    let verifier = server.verifier(VerifierConfig::default());
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
    tokio::time::sleep(COLD_RETRY_INTERVAL + Duration::from_millis(50)).await;
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(server.hits(), 2);
    server.stop().await;
}
