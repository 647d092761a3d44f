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
mod builder;
mod cache;
mod endpoint;
mod error;
mod policy;
mod shared;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

pub use crate::redis_conn::RedisMode;
pub use bearer::{BearerClient, BearerError};
pub use builder::TokenCacheBuilder;
pub use error::{AccessToken, BuildError, ClientSecret, SharedCacheError, TokenError};
pub use policy::{Margin, RetryPolicy, cache_ttl, default_cache_key};
pub use shared::{RedisCache, SharedCache};

use endpoint::TokenSource;

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
    fn from_parts(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }
}
