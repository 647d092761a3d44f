//! [`TokenCacheBuilder`]: the settings of a [`TokenCache`], checked when it
//! is built.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::endpoint::HttpTokenSource;
use super::{
    BuildError, ClientSecret, Flight, Inner, Margin, RedisCache, RedisMode, RetryPolicy,
    SharedCache, TokenCache, default_cache_key, defaults,
};

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
    /// [`TokenError::Timeout`](super::TokenError::Timeout) (default: the lock's TTL plus 1 s, so a
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
