//! OAuth2 client-credentials tokens for API clients, fetched once and shared
//! by every replica.
//!
//! A [`TokenCache`] hands out a valid bearer token for one client at one
//! token endpoint (and scope):
//!
//! - the token is cached in Redis under one key (default
//!   `oauth-token:<client id>:<hex SHA-256 of "<token URL>\n<scope>">`) for its
//!   `expires_in` less a [`Margin`] (default the larger of 30 s and 10 %), so
//!   every replica shares it and none is handed out close to its end; a token
//!   whose `expires_in` is at most the margin is given to the caller that
//!   fetched it and not cached;
//! - an in-process copy sits in front (and is the only cache without Redis),
//!   so a warm process does not ask Redis per call;
//! - on a miss one caller across all replicas fetches: it takes a short Redis
//!   lock (`SET NX PX`, a random value, released only by its owner). The
//!   others poll for the token it stores; if the lock is released without a
//!   token (the fetch failed) or expires (the replica died), the next poller
//!   takes it and fetches. A caller that has no token within the wait bound
//!   gets [`TokenError::Timeout`] (it does not fetch past the lock: the bound
//!   is there to keep one stuck replica from turning into a thundering herd).
//!   Within a process, concurrent callers share one fetch, and its error;
//! - with Redis configured but down, each process fetches for itself and says
//!   so once in the log (and again once Redis is back);
//! - [`TokenCache::invalidate`] drops a token only while it is still the
//!   cached one (compare-and-delete), so a late invalidate from one replica
//!   never deletes the fresh token another has just fetched.
//!
//! The token endpoint is called with `grant_type=client_credentials` (and
//! `scope`), the client authenticated by `Authorization: Basic`. 5xx, 408,
//! 429 and connection errors are retried with capped, jittered backoff
//! ([`RetryPolicy`]); other answers are [`TokenError`]s at once. The client
//! secret is never logged, and neither it nor a token shows in `Debug`.
//!
//! ```no_run
//! use account::token_cache::{BearerClient, TokenCache};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = std::env::var("CLIENT_SECRET")?;
//! let cache = TokenCache::builder("https://account.example/oauth/token", "billing", secret)
//!     .scope("todos:read")
//!     .redis_url("redis://127.0.0.1:6379")
//!     .build()?;
//! let token = cache.token().await?;
//! println!("Authorization: Bearer {}", token.secret());
//!
//! // Or let a client attach it, refetching once on a 401:
//! let api = BearerClient::new(reqwest::Client::new(), cache);
//! let answer = api.send(|http| http.get("https://todos.example/todos")).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Depend on `account` with `default-features = false, features =
//! ["token-cache"]`: no sqlx, argon2 or axum.

mod bearer;
mod endpoint;
mod error;
mod policy;
mod shared;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

pub use crate::redis_conn::RedisMode;
pub use bearer::{BearerClient, BearerError};
pub use error::{AccessToken, BuildError, ClientSecret, SharedCacheError, TokenError};
pub use policy::{Margin, RetryPolicy, cache_ttl, default_cache_key};
pub use shared::{RedisCache, SharedCache};

use endpoint::{HttpTokenSource, TokenResponse, TokenSource, fetch_with_retries};

/// Defaults of the builder's settings.
pub mod defaults {
    use std::time::Duration;

    /// The lifetime assumed for a token whose response has no `expires_in`.
    pub const EXPIRES_IN: Duration = Duration::from_secs(300);
    /// The first pause of a caller waiting for another replica's fetch; it
    /// doubles up to [`MAX_POLL_INTERVAL`].
    pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
    pub const MAX_POLL_INTERVAL: Duration = Duration::from_millis(250);
}

/// Hands out a valid bearer token; see the [module](self). Cheap to clone
/// (clones share the in-process cache and the fetch).
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

struct Inner {
    client_id: String,
    token_url: String,
    cache_key: String,
    lock_key: String,
    margin: Margin,
    default_expires_in: Duration,
    retry: RetryPolicy,
    lock_ttl: Duration,
    wait: Duration,
    source: Box<dyn TokenSource>,
    shared: Option<Arc<dyn SharedCache>>,
    local: Mutex<Option<Local>>,
    /// Held by the one caller of this process that fetches (or waits on
    /// another replica); `last_error` is the result of the last fetch.
    flight: tokio::sync::Mutex<Flight>,
    /// Fetches completed, so that callers that queued behind a failed fetch
    /// get its error instead of starting another.
    completed: AtomicU64,
    shared_down: AtomicBool,
}

struct Local {
    token: String,
    until: Instant,
}

#[derive(Default)]
struct Flight {
    last_error: Option<TokenError>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("token_url", &self.inner.token_url)
            .field("client_id", &self.inner.client_id)
            .field("cache_key", &self.inner.cache_key)
            .field("shared", &self.inner.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache for `client_id` at `token_url`; see [`TokenCacheBuilder`] for
    /// the settings.
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> TokenCacheBuilder {
        TokenCacheBuilder {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scope: None,
            cache_key: None,
            margin: Margin::default(),
            default_expires_in: defaults::EXPIRES_IN,
            retry: RetryPolicy::default(),
            lock_ttl: None,
            wait: None,
            redis_url: None,
            redis_mode: RedisMode::Standalone,
            shared: None,
            http: None,
        }
    }

    /// The key the token is cached under (the lock is `<key>:lock`).
    pub fn cache_key(&self) -> &str {
        &self.inner.cache_key
    }

    /// A valid token: the in-process copy, else the shared one, else a
    /// fresh one from the token endpoint.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        if let Some(token) = self.local_token() {
            return Ok(token);
        }
        let ticket = self.inner.completed.load(Ordering::Acquire);
        let mut flight = self.inner.flight.lock().await;
        if let Some(token) = self.local_token() {
            return Ok(token);
        }
        if self.inner.completed.load(Ordering::Acquire) != ticket
            && let Some(err) = &flight.last_error
        {
            return Err(err.clone());
        }
        // On a task of its own: a caller that goes away mid-fetch (a dropped
        // request) must not leave the Redis lock held until it expires, with
        // every other replica waiting on it; the fetch finishes, stores the
        // token and releases the lock whether or not anybody still waits.
        let this = self.clone();
        let result = match tokio::spawn(async move { this.obtain().await }).await {
            Ok(result) => result,
            Err(err) => Err(TokenError::Protocol(format!(
                "the token fetch stopped: {err}"
            ))),
        };
        flight.last_error = result.as_ref().err().cloned();
        self.inner.completed.fetch_add(1, Ordering::AcqRel);
        result
    }

    /// Drops `token` from the caches if it is still the cached one (after
    /// the API answered 401 to it, say). Never fails: with Redis down, only
    /// the in-process copy is dropped.
    pub async fn invalidate(&self, token: &str) {
        {
            let mut local = self.lock_local();
            if local.as_ref().is_some_and(|l| l.token == token) {
                *local = None;
            }
        }
        if let Some(shared) = &self.inner.shared {
            match shared
                .compare_and_delete(&self.inner.cache_key, token)
                .await
            {
                Ok(_) => self.shared_up(),
                Err(err) => self.shared_failed(&err),
            }
        }
    }

    fn lock_local(&self) -> std::sync::MutexGuard<'_, Option<Local>> {
        self.inner
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn local_token(&self) -> Option<AccessToken> {
        let local = self.lock_local();
        local
            .as_ref()
            .filter(|l| Instant::now() < l.until)
            .map(|l| AccessToken::new(l.token.clone()))
    }

    fn keep_locally(&self, token: &str, ttl: Duration) {
        *self.lock_local() = Some(Local {
            token: token.to_owned(),
            until: Instant::now() + ttl,
        });
    }

    async fn obtain(&self) -> Result<AccessToken, TokenError> {
        match &self.inner.shared {
            Some(shared) => self.obtain_shared(shared.as_ref()).await,
            None => self.fetch_for_this_process().await,
        }
    }

    /// The shared token, or the lock and a fetch, or a wait for the replica
    /// that holds the lock.
    async fn obtain_shared(&self, shared: &dyn SharedCache) -> Result<AccessToken, TokenError> {
        let inner = &*self.inner;
        let deadline = Instant::now() + inner.wait;
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let mut pause = defaults::POLL_INTERVAL;
        loop {
            match shared.get(&inner.cache_key).await {
                Ok(Some((token, ttl))) => {
                    self.shared_up();
                    self.keep_locally(&token, ttl);
                    return Ok(AccessToken::new(token));
                }
                Ok(None) => {}
                Err(err) => {
                    self.shared_failed(&err);
                    return self.fetch_for_this_process().await;
                }
            }
            match shared.lock(&inner.lock_key, &owner, inner.lock_ttl).await {
                Ok(true) => {
                    self.shared_up();
                    return self.fetch_holding_lock(shared, &owner).await;
                }
                Ok(false) => {}
                Err(err) => {
                    self.shared_failed(&err);
                    return self.fetch_for_this_process().await;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TokenError::Timeout { waited: inner.wait });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(defaults::MAX_POLL_INTERVAL);
        }
    }

    async fn fetch_holding_lock(
        &self,
        shared: &dyn SharedCache,
        owner: &str,
    ) -> Result<AccessToken, TokenError> {
        let inner = &*self.inner;
        // Another replica may have stored a token between our GET and our lock.
        let result = match shared.get(&inner.cache_key).await {
            Ok(Some((token, ttl))) => {
                self.keep_locally(&token, ttl);
                Ok(AccessToken::new(token))
            }
            _ => match self.fetch().await {
                Ok((token, Some(ttl))) => {
                    if let Err(err) = shared.set(&inner.cache_key, &token, ttl).await {
                        self.shared_failed(&err);
                    }
                    self.keep_locally(&token, ttl);
                    Ok(AccessToken::new(token))
                }
                Ok((token, None)) => Ok(AccessToken::new(token)),
                Err(err) => Err(err),
            },
        };
        if let Err(err) = shared.unlock(&inner.lock_key, owner).await {
            self.shared_failed(&err);
        }
        result
    }

    async fn fetch_for_this_process(&self) -> Result<AccessToken, TokenError> {
        let (token, ttl) = self.fetch().await?;
        if let Some(ttl) = ttl {
            self.keep_locally(&token, ttl);
        }
        Ok(AccessToken::new(token))
    }

    /// A fresh token and how long it may be cached (`None`: not at all).
    async fn fetch(&self) -> Result<(String, Option<Duration>), TokenError> {
        let inner = &*self.inner;
        let TokenResponse {
            access_token,
            expires_in,
        } = fetch_with_retries(inner.source.as_ref(), &inner.retry).await?;
        let expires_in = expires_in.unwrap_or(inner.default_expires_in);
        let ttl = cache_ttl(expires_in, &inner.margin);
        tracing::debug!(
            client_id = %inner.client_id,
            expires_in = expires_in.as_secs(),
            cached_for_ms = ttl.map(|t| t.as_millis() as u64),
            "fetched a token"
        );
        Ok((access_token, ttl))
    }

    fn shared_failed(&self, err: &SharedCacheError) {
        if !self.inner.shared_down.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                client_id = %self.inner.client_id,
                error = %err,
                "token cache: Redis is unavailable, this process fetches its own tokens until it is back"
            );
        }
    }

    fn shared_up(&self) {
        if self.inner.shared_down.load(Ordering::Acquire)
            && self.inner.shared_down.swap(false, Ordering::AcqRel)
        {
            tracing::info!(client_id = %self.inner.client_id, "token cache: Redis is back");
        }
    }
}

/// The settings of a [`TokenCache`]; [`TokenCache::builder`] starts one.
pub struct TokenCacheBuilder {
    token_url: String,
    client_id: String,
    client_secret: ClientSecret,
    scope: Option<String>,
    cache_key: Option<String>,
    margin: Margin,
    default_expires_in: Duration,
    retry: RetryPolicy,
    lock_ttl: Option<Duration>,
    wait: Option<Duration>,
    redis_url: Option<String>,
    redis_mode: RedisMode,
    shared: Option<Arc<dyn SharedCache>>,
    http: Option<reqwest::Client>,
}

impl std::fmt::Debug for TokenCacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCacheBuilder")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scope", &self.scope)
            .field("cache_key", &self.cache_key)
            .finish_non_exhaustive()
    }
}

impl TokenCacheBuilder {
    /// The `scope` asked for (none by default).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The Redis key (default: [`default_cache_key`]).
    pub fn cache_key(mut self, key: impl Into<String>) -> Self {
        self.cache_key = Some(key.into());
        self
    }

    /// How long before its end a token stops being handed out.
    pub fn margin(mut self, margin: Margin) -> Self {
        self.margin = margin;
        self
    }

    /// The lifetime assumed when a response has no `expires_in` (default 5 min).
    pub fn default_expires_in(mut self, lifetime: Duration) -> Self {
        self.default_expires_in = lifetime;
        self
    }

    /// How the token endpoint is retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How long the fetch lock lives if its holder never releases it
    /// (default: the retry policy's worst case plus 2 s).
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = Some(ttl);
        self
    }

    /// How long a caller waits for another replica's fetch before
    /// [`TokenError::Timeout`] (default: the lock's TTL plus 1 s, so a
    /// replica that died holding the lock is outlived).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }

    /// Share tokens through Redis at `url` (`redis://…`); it connects lazily.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// How the Redis at [`redis_url`](Self::redis_url) is deployed (default
    /// [`RedisMode::Standalone`]); with [`RedisMode::Cluster`] the URL holds
    /// one or more comma-separated seed nodes, and [`build`](Self::build)
    /// must run inside a Tokio runtime (the cluster client starts a task).
    pub fn redis_mode(mut self, mode: RedisMode) -> Self {
        self.redis_mode = mode;
        self
    }

    /// Share tokens through an existing Redis connection.
    pub fn redis(self, conn: redis::aio::ConnectionManager) -> Self {
        self.shared_cache(Arc::new(RedisCache::new(conn)))
    }

    /// Share tokens through any [`SharedCache`].
    pub fn shared_cache(mut self, shared: Arc<dyn SharedCache>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The HTTP client for the token endpoint (default: a new one that does
    /// not follow redirects).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    pub fn build(self) -> Result<TokenCache, BuildError> {
        let err = |message: String| BuildError(message);
        let url = reqwest::Url::parse(self.token_url.trim())
            .map_err(|e| err(format!("token URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
            return Err(err(
                "token URL: must be http(s)://, without credentials".into()
            ));
        }
        if self.client_id.is_empty() || self.client_id.contains(char::is_control) {
            return Err(err(
                "client id: must be set, without control characters".into()
            ));
        }
        if self.client_secret.expose().is_empty() {
            return Err(err("client secret: must be set".into()));
        }
        if self.retry.max_attempts == 0 || self.retry.request_timeout.is_zero() {
            return Err(err(
                "retry policy: at least one attempt and a non-zero timeout".into(),
            ));
        }
        if self.margin.fraction.is_nan() {
            return Err(err("margin: the fraction must be a number".into()));
        }
        let scope = self.scope.filter(|s| !s.trim().is_empty());
        let cache_key = match self.cache_key {
            Some(key) if key.trim().is_empty() => {
                return Err(err("cache key: must not be empty".into()));
            }
            Some(key) => key,
            None => default_cache_key(&self.client_id, url.as_str(), scope.as_deref()),
        };
        let lock_ttl = self
            .lock_ttl
            .unwrap_or_else(|| self.retry.worst_case() + Duration::from_secs(2));
        let wait = self.wait.unwrap_or(lock_ttl + Duration::from_secs(1));
        let shared = match (self.shared, self.redis_url) {
            (Some(shared), _) => Some(shared),
            (None, Some(redis_url)) => Some(Arc::new(
                RedisCache::from_url_in_mode(&redis_url, self.redis_mode).map_err(err)?,
            ) as Arc<dyn SharedCache>),
            (None, None) => None,
        };
        let client = match self.http {
            Some(client) => client,
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| err(format!("HTTP client: {e}")))?,
        };
        let source = HttpTokenSource {
            client,
            url: url.clone(),
            client_id: self.client_id.clone(),
            secret: self.client_secret,
            scope,
            timeout: self.retry.request_timeout,
        };
        Ok(TokenCache::from_parts(Inner {
            client_id: self.client_id,
            token_url: url.to_string(),
            lock_key: format!("{cache_key}:lock"),
            cache_key,
            margin: self.margin,
            default_expires_in: self.default_expires_in,
            retry: self.retry,
            lock_ttl,
            wait,
            source: Box::new(source),
            shared,
            local: Mutex::new(None),
            flight: tokio::sync::Mutex::new(Flight::default()),
            completed: AtomicU64::new(0),
            shared_down: AtomicBool::new(false),
        }))
    }
}

impl TokenCache {
    fn from_parts(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }
}
