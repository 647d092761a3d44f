//! Verifying the account service's ID tokens in a domain service: offline, with
//! the public keys the account service publishes at `/.well-known/jwks.json`,
//! and without any secret.
//!
//! A [`Verifier`] pins the algorithm to RS256, requires `kid`, `exp`, `iss`,
//! `aud` and `sub` (a UUID), and allows at most 5 seconds of clock skew. It keeps
//! the keys it fetched in memory: tokens signed with a known key never cause a
//! request to the account service, an unknown `kid` (a rotated key) causes at
//! most one fetch per `refetch_interval` however many such tokens arrive, keys
//! older than `max_key_age` are refreshed in the background (the request that
//! notices is answered from the cache), and while the account service is down
//! the cached keys go on verifying.
//!
//! In a domain service (depend on `account` with `default-features = false,
//! features = ["verifier"]`):
//!
//! ```no_run
//! use account::verifier::{AuthenticatedUser, Verifier};
//! use axum::{Router, routing::get};
//!
//! async fn whoami(AuthenticatedUser(user): AuthenticatedUser) -> String {
//!     format!("{} <{}>", user.sub, user.email)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // JWKS_URL, ID_TOKEN_ISSUER, ID_TOKEN_AUDIENCE, JWKS_REFETCH_INTERVAL
//! let verifier = Verifier::from_env()?;
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .with_state(verifier); // or any state `S` with `Verifier: FromRef<S>`
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! A request without `Authorization: Bearer <token>` is answered 401 with
//! `WWW-Authenticate: Bearer`, one whose token does not verify 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"`, both in the product's JSON
//! error shape; see [`AuthRejection`].

mod extract;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;

pub use extract::{AuthRejection, AuthenticatedUser};

use crate::jwks::{Jwk, JwkSet, rsa_thumbprint};

/// The largest clock skew a verifier may allow.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5);
/// How long a JWKS request may take before it counts as failed.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Before the first successful fetch, failed fetches are retried this often at
/// most (never more often than `refetch_interval`).
pub const COLD_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// A larger key set is refused (the fetch counts as failed).
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Longer tokens are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What a token must say, and how keys are refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// The required `iss` (the account service's `ID_TOKEN_ISSUER`).
    pub issuer: String,
    /// The required `aud` (the account service's `ID_TOKEN_AUDIENCE`).
    pub audience: String,
    /// Clock skew allowed on `exp` (and `nbf`, if present); at most [`MAX_LEEWAY`],
    /// whole seconds.
    pub leeway: Duration,
    /// An unknown `kid` triggers a JWKS fetch only when the last fetch is older
    /// than this, so a flood of tokens with made-up key ids costs at most one
    /// request per interval.
    pub refetch_interval: Duration,
    /// Keys older than this are refetched in the background when the next
    /// token arrives (no more often than `refetch_interval`, one fetch at a
    /// time), so a key the account service withdrew stops verifying even if no
    /// token with a new `kid` ever arrives. Tokens go on being checked against
    /// the old keys until the fetch succeeds; while the account service is
    /// unreachable the old keys stay in use.
    pub max_key_age: Duration,
}

impl Default for VerifierConfig {
    /// The account service's defaults: issuer `account`, audience
    /// `domain-services`, 5 s leeway, 30 s refetch interval, 5 min key age
    /// (the JWKS's `Cache-Control: max-age`).
    fn default() -> Self {
        Self {
            issuer: defaults::ISSUER.into(),
            audience: defaults::AUDIENCE.into(),
            leeway: MAX_LEEWAY,
            refetch_interval: defaults::REFETCH_INTERVAL,
            max_key_age: defaults::MAX_KEY_AGE,
        }
    }
}

/// Defaults shared with the account service's configuration table.
pub mod defaults {
    use std::time::Duration;

    pub const ISSUER: &str = "account";
    pub const AUDIENCE: &str = "domain-services";
    pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
    pub const MAX_KEY_AGE: Duration = Duration::from_secs(300);
}

/// A verifier that cannot be built: the message names the variable or setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// A configuration error; start `message` with the variable's name.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Why a token was refused. Messages are fixed texts: they never repeat any
/// part of the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token must be signed with RS256")]
    Algorithm,
    #[error("the token header has no kid")]
    MissingKeyId,
    #[error("the token is signed with an unknown key")]
    UnknownKey,
    #[error("the token signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    #[error("the token has the wrong issuer")]
    Issuer,
    #[error("the token has the wrong audience")]
    Audience,
    #[error("the token subject is not a user id")]
    Subject,
    /// The token names a key we do not have and the account service's JWKS
    /// could not be fetched: the token may be fine, we cannot tell now.
    #[error("token keys are unavailable, try again later")]
    KeysUnavailable,
}

/// The user an ID token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    /// The user's uid.
    pub sub: Uuid,
    /// Empty when the token carries none.
    pub email: String,
    /// Empty when the token carries none.
    pub name: String,
    /// When the token expires, Unix seconds.
    pub exp: u64,
}

/// The failure of one JWKS fetch (logged; verification goes on with the cache).
/// The URL it names has its credentials, if any, redacted.
#[derive(Debug, thiserror::Error)]
#[error("cannot fetch the JWKS from {url}: {reason}")]
pub struct FetchError {
    url: String,
    reason: String,
}

/// Verifies ID tokens. Cheap to clone (the state is shared behind an `Arc`),
/// so it can be the router's state itself or a field of it with `FromRef`.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = self.inner.cache.read().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.config.issuer)
            .field("audience", &self.inner.config.audience)
            .field(
                "jwks_url",
                &self.inner.remote.as_ref().map(|r| r.redacted_url.as_str()),
            )
            .field("key_ids", &cache.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

struct Inner {
    config: VerifierConfig,
    validation: Validation,
    cache: RwLock<KeyCache>,
    /// `None` for a static key source.
    remote: Option<Remote>,
    clock: Clock,
}

/// Real time. Unit tests use a clock that stands still until advanced, so
/// "within the refetch interval" never depends on how fast the machine is.
#[cfg(not(test))]
#[derive(Default)]
struct Clock;

#[cfg(not(test))]
impl Clock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
use test_support::Clock;

/// kid → key; replaced whole on every successful fetch.
type KeyMap = HashMap<String, Arc<DecodingKey>>;

#[derive(Default)]
struct KeyCache {
    keys: Arc<KeyMap>,
    /// When the keys were last fetched successfully.
    fetched_at: Option<Instant>,
    /// Whether the latest fetch attempt failed.
    last_fetch_failed: bool,
}

struct Remote {
    url: reqwest::Url,
    /// `url` without its credentials, for logs and messages.
    redacted_url: String,
    client: reqwest::Client,
    /// Held while fetching (also by a background refresh), so concurrent
    /// misses share one fetch; holds the time of the last attempt,
    /// successful or not.
    fetching: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl Verifier {
    /// Keys from the JWKS at `url`, fetched on first use and refreshed as
    /// [`VerifierConfig`] says.
    pub fn from_jwks_url(url: &str, config: VerifierConfig) -> Result<Self, ConfigError> {
        let url = parse_jwks_url(url).map_err(|e| ConfigError::new(format!("JWKS URL: {e}")))?;
        Self::remote(url, config)
    }

    /// Reads `JWKS_URL` (required), `ID_TOKEN_ISSUER` (default `account`),
    /// `ID_TOKEN_AUDIENCE` (default `domain-services`) and
    /// `JWKS_REFETCH_INTERVAL` (seconds, default 30). Errors name the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Verifier::from_env`] with the variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let url = var("JWKS_URL")
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                ConfigError::new(concat!(
                    "JWKS_URL: must be set to the account service's key set, ",
                    "e.g. http://127.0.0.1:8080/.well-known/jwks.json"
                ))
            })?;
        let url =
            parse_jwks_url(url.trim()).map_err(|e| ConfigError::new(format!("JWKS_URL: {e}")))?;
        let mut config = VerifierConfig::default();
        if let Some(issuer) = var("ID_TOKEN_ISSUER") {
            config.issuer = issuer;
        }
        if let Some(audience) = var("ID_TOKEN_AUDIENCE") {
            config.audience = audience;
        }
        if let Some(secs) = var("JWKS_REFETCH_INTERVAL") {
            let secs: u64 = secs
                .trim()
                .parse()
                .ok()
                .filter(|s| *s >= 1)
                .ok_or_else(|| {
                    ConfigError::new(format!(
                        "JWKS_REFETCH_INTERVAL: expected a whole number of seconds ≥ 1, got {secs:?}"
                    ))
                })?;
            config.refetch_interval = Duration::from_secs(secs);
        }
        for (name, value) in [
            ("ID_TOKEN_ISSUER", &config.issuer),
            ("ID_TOKEN_AUDIENCE", &config.audience),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::new(format!("{name}: must not be empty")));
            }
        }
        Self::remote(url, config)
    }

    /// A fixed key set, never refreshed; keys without a `kid` are known by
    /// their RFC 7638 thumbprint. Only RS256 signing keys are kept.
    pub fn from_jwks(keys: JwkSet, config: VerifierConfig) -> Result<Self, ConfigError> {
        let map = key_map(&keys);
        if map.is_empty() {
            return Err(ConfigError::new(
                "the key set has no usable RS256 signing key",
            ));
        }
        Self::build(config, map, None)
    }

    /// One RSA public key in PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`), never
    /// refreshed; its `kid` is the RFC 7638 thumbprint, as the account
    /// service's tokens carry.
    pub fn from_public_pem(pem: &[u8], config: VerifierConfig) -> Result<Self, ConfigError> {
        let jwk =
            Jwk::rsa_from_pem(pem).map_err(|e| ConfigError::new(format!("public key: {e}")))?;
        Self::from_jwks(JwkSet { keys: vec![jwk] }, config)
    }

    fn remote(url: reqwest::Url, config: VerifierConfig) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| ConfigError::new(format!("cannot build the HTTP client: {e}")))?;
        let remote = Remote {
            redacted_url: redact_url(&url),
            url,
            client,
            fetching: Arc::default(),
        };
        Self::build(config, KeyMap::new(), Some(remote))
    }

    fn build(
        config: VerifierConfig,
        keys: KeyMap,
        remote: Option<Remote>,
    ) -> Result<Self, ConfigError> {
        check_config(&config)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.leeway = config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        let cache = KeyCache {
            keys: Arc::new(keys),
            ..KeyCache::default()
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                validation,
                cache: RwLock::new(cache),
                remote,
                clock: Default::default(),
            }),
        })
    }

    /// The settings this verifier checks tokens against.
    pub fn config(&self) -> &VerifierConfig {
        &self.inner.config
    }

    /// The verifier's clock (in unit tests, one that only moves when told).
    #[cfg(test)]
    pub(crate) fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    fn now(&self) -> Instant {
        self.inner.clock.now()
    }

    /// How long ago `at` was, by the verifier's clock.
    fn since(&self, at: Instant) -> Duration {
        self.now().saturating_duration_since(at)
    }

    /// Checks an ID token: header `alg` RS256 and a known `kid`, the
    /// signature, `exp` (with the leeway), `iss`, `aud`, and a UUID `sub`.
    pub async fn verify(&self, token: &str) -> Result<VerifiedUser, VerifyError> {
        let kid = read_header(token)?;
        let key = self.key_for(&kid).await?;
        let data = jsonwebtoken::decode::<IdClaims>(token, &key, &self.inner.validation)
            .map_err(|e| map_jwt_error(e.into_kind()))?;
        let claims = data.claims;
        let sub = claims
            .sub
            .as_deref()
            .and_then(|sub| Uuid::parse_str(sub).ok())
            .ok_or(VerifyError::Subject)?;
        Ok(VerifiedUser {
            sub,
            email: claims.email,
            name: claims.name,
            exp: claims.exp.ok_or(VerifyError::MissingClaim("exp".into()))?,
        })
    }

    /// Fetches the key set now (waiting for a fetch already under way), e.g.
    /// to warm the cache at start-up. Returns how many keys are cached. A
    /// static source returns its key count.
    pub async fn refresh_keys(&self) -> Result<usize, FetchError> {
        if let Some(remote) = &self.inner.remote {
            let mut last_attempt = remote.fetching.lock().await;
            self.fetch(remote, &mut last_attempt).await?;
        }
        Ok(self.cached().keys.len())
    }

    fn cached(&self) -> std::sync::RwLockReadGuard<'_, KeyCache> {
        // The lock guards plain data and no code panics while holding it.
        self.inner.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lookup(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.cached().keys.get(kid).cloned()
    }

    async fn key_for(&self, kid: &str) -> Result<Arc<DecodingKey>, VerifyError> {
        let Some(remote) = &self.inner.remote else {
            return self.lookup(kid).ok_or(VerifyError::UnknownKey);
        };
        let (found, stale) = {
            let cache = self.cached();
            let stale = cache
                .fetched_at
                .is_none_or(|at| self.since(at) >= self.inner.config.max_key_age);
            (cache.keys.get(kid).cloned(), stale)
        };
        if let Some(key) = found {
            if stale {
                self.refresh_in_background(remote);
            }
            return Ok(key);
        }
        // Unknown kid: maybe the account service rotated its key. Concurrent
        // misses queue here and share the one fetch.
        let mut last_attempt = remote.fetching.lock().await;
        if let Some(key) = self.lookup(kid) {
            return Ok(key);
        }
        if self.fetch_due(*last_attempt) {
            let _ = self.fetch(remote, &mut last_attempt).await;
        }
        match self.lookup(kid) {
            Some(key) => Ok(key),
            None if self.cached().last_fetch_failed => Err(VerifyError::KeysUnavailable),
            None => Err(VerifyError::UnknownKey),
        }
    }

    /// Old keys: starts a fetch in the background unless one is under way or
    /// the last attempt is more recent than the refetch interval. The caller
    /// is answered from the cache at once; a failed fetch keeps the old keys.
    fn refresh_in_background(&self, remote: &Remote) {
        // Taken here and moved into the task: nobody else starts a fetch
        // until this one ends, and a miss waits for it.
        let Ok(mut last_attempt) = Arc::clone(&remote.fetching).try_lock_owned() else {
            return;
        };
        if !self.fetch_due(*last_attempt) {
            return;
        }
        let verifier = self.clone();
        tokio::spawn(async move {
            if let Some(remote) = &verifier.inner.remote {
                let _ = verifier.fetch(remote, &mut last_attempt).await;
            }
        });
    }

    fn fetch_due(&self, last_attempt: Option<Instant>) -> bool {
        // Until a first fetch succeeds nothing can be verified, so retry
        // sooner: the account service may simply be starting.
        let interval = if self.cached().fetched_at.is_none() {
            self.inner.config.refetch_interval.min(COLD_RETRY_INTERVAL)
        } else {
            self.inner.config.refetch_interval
        };
        last_attempt.is_none_or(|at| self.since(at) >= interval)
    }

    /// Fetches the JWKS and replaces the cache with its RS256 signing keys;
    /// on failure keeps the cache. The caller holds `remote.fetching`.
    async fn fetch(
        &self,
        remote: &Remote,
        last_attempt: &mut Option<Instant>,
    ) -> Result<(), FetchError> {
        *last_attempt = Some(self.now());
        let result = fetch_jwks(remote).await;
        let mut cache = self.inner.cache.write().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(set) => {
                let keys = key_map(&set);
                tracing::info!(url = %remote.redacted_url, keys = keys.len(), "fetched the token signing keys");
                cache.keys = Arc::new(keys);
                cache.fetched_at = Some(self.now());
                cache.last_fetch_failed = false;
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(
                    url = %remote.redacted_url,
                    error = %reason,
                    cached_keys = cache.keys.len(),
                    "cannot fetch the token signing keys; verifying with the cached keys"
                );
                cache.last_fetch_failed = true;
                Err(FetchError {
                    url: remote.redacted_url.clone(),
                    reason,
                })
            }
        }
    }
}

async fn fetch_jwks(remote: &Remote) -> Result<JwkSet, String> {
    let mut response = remote
        .client
        .get(remote.url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| error_chain(&e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| error_chain(&e.without_url()))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("the key set is larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("not a JWK set: {e}"))
}

/// An error with its causes: reqwest's own message alone ("error sending
/// request") does not say what went wrong.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn parse_jwks_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        // It may carry credentials that cannot be told apart reliably.
        if url.contains('@') {
            format!("not a URL ({e})")
        } else {
            format!("not a URL ({e}): {url:?}")
        }
    })?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(format!("expected an http(s) URL, got scheme {other:?}")),
    }
}

/// `url` as it may be logged: a user name and password in it
/// (`https://user:pass@host/…`) are replaced by `***`.
pub(crate) fn redact_url(url: &reqwest::Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut redacted = url.clone();
    // Both succeed on a URL with a host, as every http(s) URL has; should
    // they not, the credentials must not show, so say nothing of them.
    if redacted.set_password(None).is_err() || redacted.set_username("***").is_err() {
        return format!(
            "{}://***@{}",
            url.scheme(),
            url.host_str().unwrap_or_default()
        );
    }
    redacted.to_string()
}

fn check_config(config: &VerifierConfig) -> Result<(), ConfigError> {
    if config.issuer.trim().is_empty() {
        return Err(ConfigError::new("issuer: must not be empty"));
    }
    if config.audience.trim().is_empty() {
        return Err(ConfigError::new("audience: must not be empty"));
    }
    if config.leeway > MAX_LEEWAY {
        return Err(ConfigError::new(format!(
            "leeway: must be at most {} seconds",
            MAX_LEEWAY.as_secs()
        )));
    }
    Ok(())
}

/// The RS256 signing keys of a set, by `kid` (or thumbprint when it has none).
fn key_map(set: &JwkSet) -> KeyMap {
    set.keys
        .iter()
        .filter(|jwk| jwk.is_rs256_signing_key())
        .filter_map(|jwk| {
            let key = jwk.decoding_key().ok()?;
            let kid = match &jwk.kid {
                Some(kid) => kid.clone(),
                None => rsa_thumbprint(jwk.n.as_deref()?, jwk.e.as_deref()?),
            };
            Some((kid, Arc::new(key)))
        })
        .collect()
}

/// Checks the header before anything else: the algorithm must be RS256 and a
/// `kid` must name the key. Returns the `kid`.
fn read_header(token: &str) -> Result<String, VerifyError> {
    #[derive(Deserialize)]
    struct RawHeader {
        alg: String,
        kid: Option<String>,
    }
    if token.len() > MAX_TOKEN_BYTES || token.split('.').count() != 3 {
        return Err(VerifyError::Malformed);
    }
    let header_b64 = token.split('.').next().unwrap_or_default();
    let bytes = B64.decode(header_b64).map_err(|_| VerifyError::Malformed)?;
    let header: RawHeader = serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)?;
    if header.alg != "RS256" {
        return Err(VerifyError::Algorithm);
    }
    header
        .kid
        .filter(|kid| !kid.is_empty())
        .ok_or(VerifyError::MissingKeyId)
}

/// Presence of `sub` and `exp` is checked by the validation, which runs after
/// deserialization: optional here so a missing claim is reported as missing.
#[derive(Deserialize)]
struct IdClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
}

fn map_jwt_error(kind: ErrorKind) -> VerifyError {
    match kind {
        ErrorKind::InvalidSignature => VerifyError::Signature,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidIssuer => VerifyError::Issuer,
        ErrorKind::InvalidAudience => VerifyError::Audience,
        ErrorKind::InvalidSubject => VerifyError::Subject,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => VerifyError::Algorithm,
        ErrorKind::MissingRequiredClaim(claim) => VerifyError::MissingClaim(claim),
        _ => VerifyError::Malformed,
    }
}
