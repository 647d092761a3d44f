//! The store every replica shares: the cached token and the fetch lock.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use super::error::SharedCacheError;
use crate::redis_conn::{RedisConn, RedisMode, Timeouts};

/// What the token cache needs from a shared store. [`RedisCache`] is the one
/// implementation; another store can be plugged in with
/// [`TokenCacheBuilder::shared_cache`](super::TokenCacheBuilder::shared_cache).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SharedCache: Send + Sync {
    /// The token under `key` and the time it has left.
    async fn get(&self, key: &str) -> Result<Option<(String, Duration)>, SharedCacheError>;
    /// Stores `token` under `key` for `ttl`, replacing what was there.
    async fn set(&self, key: &str, token: &str, ttl: Duration) -> Result<(), SharedCacheError>;
    /// Deletes `key` only if it still holds `token`; whether it did.
    async fn compare_and_delete(&self, key: &str, token: &str) -> Result<bool, SharedCacheError>;
    /// Takes the lock `key` for `ttl` if nobody holds it; whether it did.
    async fn lock(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, SharedCacheError>;
    /// Releases the lock `key` only if `owner` still holds it.
    async fn unlock(&self, key: &str, owner: &str) -> Result<bool, SharedCacheError>;
}

/// `DEL` only if the value is still the expected one (the token, or the lock
/// owner's random value).
static DELETE_IF_EQUAL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then\n",
        "  return redis.call('DEL', KEYS[1])\n",
        "end\n",
        "return 0\n",
    ))
});

/// [`SharedCache`] on Redis or Redis Cluster (it reconnects by itself; while
/// Redis is down every call fails fast and the cache fetches in the process).
/// Its keys are single keys and `<key>:lock`, each used on its own, so they
/// may live in any slot of a cluster.
#[derive(Clone)]
pub struct RedisCache {
    conn: RedisConn,
}

impl RedisCache {
    /// On an existing connection to a single Redis.
    pub fn new(conn: ConnectionManager) -> Self {
        Self {
            conn: RedisConn::Standalone(conn),
        }
    }

    /// Connects lazily to a single Redis at `url` (`redis://…`); see
    /// [`from_url_in_mode`](Self::from_url_in_mode).
    pub fn from_url(url: &str) -> Result<Self, String> {
        Self::from_url_in_mode(url, RedisMode::Standalone)
    }

    /// Connects lazily to `url`: one `redis://…` URL, or in
    /// [`RedisMode::Cluster`] one or more comma-separated seed nodes. Short
    /// timeouts: a Redis that is down costs a miss at most about a second
    /// before the process fetches for itself. Errors name `REDIS_URL`, never
    /// show the URL. In cluster mode, call it inside a Tokio runtime.
    pub fn from_url_in_mode(url: &str, mode: RedisMode) -> Result<Self, String> {
        let conn = RedisConn::open(
            mode,
            url,
            Timeouts {
                connect: Duration::from_millis(500),
                response: Duration::from_secs(1),
                overall: Duration::from_millis(1500),
                retries: 1,
                max_retry_wait: Duration::from_millis(200),
            },
        )?;
        Ok(Self { conn })
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl SharedCache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<(String, Duration)>, SharedCacheError> {
        let mut conn = self.conn.clone();
        let (token, pttl): (Option<String>, i64) = redis::pipe()
            .atomic()
            .get(key)
            .pttl(key)
            .query_async(&mut conn)
            .await?;
        // A key without expiry (-1) was not written by a token cache: ignored.
        Ok(token
            .filter(|_| pttl > 0)
            .map(|token| (token, Duration::from_millis(pttl.unsigned_abs()))))
    }

    async fn set(&self, key: &str, token: &str, ttl: Duration) -> Result<(), SharedCacheError> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(key)
            .arg(token)
            .arg("PX")
            .arg(millis(ttl))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn compare_and_delete(&self, key: &str, token: &str) -> Result<bool, SharedCacheError> {
        let mut conn = self.conn.clone();
        let deleted: i64 = DELETE_IF_EQUAL
            .key(key)
            .arg(token)
            .invoke_async(&mut conn)
            .await?;
        Ok(deleted == 1)
    }

    async fn lock(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, SharedCacheError> {
        let mut conn = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await?;
        Ok(taken.is_some())
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<bool, SharedCacheError> {
        self.compare_and_delete(key, owner).await
    }
}
