//! The store every replica shares: the cached token and the fetch lock.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::error::SharedCacheError;

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

/// [`SharedCache`] on Redis, through a connection manager (it reconnects by
/// itself; while Redis is down every call fails fast and the cache fetches in
/// the process).
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
}

impl RedisCache {
    pub fn new(conn: ConnectionManager) -> Self {
        Self { conn }
    }

    /// Connects lazily to `url` (`redis://…`), with short timeouts: a Redis
    /// that is down costs a miss at most about a second before the process
    /// fetches for itself.
    pub fn from_url(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        Ok(Self::new(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
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
