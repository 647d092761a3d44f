//! Where a verifier's keys come from: a fixed set, or the account service's
//! JWKS, fetched on first use, cached, refetched on an unknown `kid` at most
//! once per interval, refreshed in the background when old, and kept while the
//! account service is unreachable.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;

use super::VerifyError;
use crate::jwks::{JwkSet, rsa_thumbprint};

/// How long a JWKS request may take before it counts as failed.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Before the first successful fetch, failed fetches are retried this often at
/// most (never more often than `refetch_interval`).
pub const COLD_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// A larger key set is refused (the fetch counts as failed).
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The failure of one JWKS fetch (logged; verification goes on with the cache).
/// The URL it names has its credentials, if any, redacted.
#[derive(Debug, thiserror::Error)]
#[error("cannot fetch the JWKS from {url}: {reason}")]
pub struct FetchError {
    url: String,
    reason: String,
}

/// Real time. Unit tests use a clock that stands still until advanced, so
/// "within the refetch interval" never depends on how fast the machine is.
#[cfg(not(test))]
#[derive(Default)]
pub(super) struct Clock;

#[cfg(not(test))]
impl Clock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
pub(super) use super::test_support::Clock;

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

/// The keys, by `kid`, and how to get more.
pub(super) struct KeySource {
    cache: RwLock<KeyCache>,
    /// `None` for a fixed key set.
    remote: Option<Remote>,
    refetch_interval: Duration,
    max_key_age: Duration,
    pub(super) clock: Clock,
}

impl KeySource {
    /// A fixed key set, never refreshed; keys without a `kid` are known by
    /// their RFC 7638 thumbprint. `None` if it has no RS256 signing key.
    pub fn fixed(keys: &JwkSet) -> Option<Self> {
        let map = key_map(keys);
        if map.is_empty() {
            return None;
        }
        Some(Self::new(map, None, Duration::MAX, Duration::MAX))
    }

    /// The JWKS at `url`, fetched on first use.
    pub fn remote(
        url: reqwest::Url,
        refetch_interval: Duration,
        max_key_age: Duration,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let remote = Remote {
            redacted_url: redact_url(&url),
            url,
            client,
            fetching: Arc::default(),
        };
        Ok(Self::new(
            KeyMap::new(),
            Some(remote),
            refetch_interval,
            max_key_age,
        ))
    }

    fn new(
        keys: KeyMap,
        remote: Option<Remote>,
        refetch_interval: Duration,
        max_key_age: Duration,
    ) -> Self {
        Self {
            cache: RwLock::new(KeyCache {
                keys: Arc::new(keys),
                ..KeyCache::default()
            }),
            remote,
            refetch_interval,
            max_key_age,
            clock: Default::default(),
        }
    }

    /// The JWKS URL, credentials redacted; `None` for a fixed key set.
    pub fn redacted_url(&self) -> Option<&str> {
        self.remote.as_ref().map(|r| r.redacted_url.as_str())
    }

    /// The kids of the cached keys.
    pub fn key_ids(&self) -> Vec<String> {
        self.cached().keys.keys().cloned().collect()
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    /// How long ago `at` was, by the source's clock.
    fn since(&self, at: Instant) -> Duration {
        self.now().saturating_duration_since(at)
    }

    fn cached(&self) -> std::sync::RwLockReadGuard<'_, KeyCache> {
        // The lock guards plain data and no code panics while holding it.
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lookup(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.cached().keys.get(kid).cloned()
    }

    /// Fetches the key set now (waiting for a fetch already under way).
    /// Returns how many keys are cached; a fixed set returns its key count.
    pub async fn refresh(&self) -> Result<usize, FetchError> {
        if let Some(remote) = &self.remote {
            let mut last_attempt = remote.fetching.lock().await;
            self.fetch(remote, &mut last_attempt).await?;
        }
        Ok(self.cached().keys.len())
    }

    /// The key `kid` names. A known key is answered from the cache (starting
    /// a background refresh when the cache is old); an unknown one causes a
    /// fetch when one is due.
    pub async fn key_for(self: &Arc<Self>, kid: &str) -> Result<Arc<DecodingKey>, VerifyError> {
        let Some(remote) = &self.remote else {
            return self.lookup(kid).ok_or(VerifyError::UnknownKey);
        };
        let (found, stale) = {
            let cache = self.cached();
            let stale = cache
                .fetched_at
                .is_none_or(|at| self.since(at) >= self.max_key_age);
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
    fn refresh_in_background(self: &Arc<Self>, remote: &Remote) {
        // Taken here and moved into the task: nobody else starts a fetch
        // until this one ends, and a miss waits for it.
        let Ok(mut last_attempt) = Arc::clone(&remote.fetching).try_lock_owned() else {
            return;
        };
        if !self.fetch_due(*last_attempt) {
            return;
        }
        let source = Arc::clone(self);
        tokio::spawn(async move {
            if let Some(remote) = &source.remote {
                let _ = source.fetch(remote, &mut last_attempt).await;
            }
        });
    }

    fn fetch_due(&self, last_attempt: Option<Instant>) -> bool {
        // Until a first fetch succeeds nothing can be verified, so retry
        // sooner: the account service may simply be starting.
        let interval = if self.cached().fetched_at.is_none() {
            self.refetch_interval.min(COLD_RETRY_INTERVAL)
        } else {
            self.refetch_interval
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
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
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

/// An http(s) URL; the error does not repeat a URL that may hold credentials.
pub(super) fn parse_jwks_url(url: &str) -> Result<reqwest::Url, String> {
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
