//! The refresh-token whitelist in Redis: one key `<uid>:<jti>` per live token.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, Script, ServerErrorKind};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::model::TokenRepository;
use crate::model::{RefreshOutcome, RefreshStep, SessionInfo, SessionStart};

/// Keys found per SCAN step on sign-out; small COUNTs multiply round trips.
const SCAN_COUNT: usize = 1000;

/// Takes the old entry and, only if it was there, whitelists the new one, in
/// one atomic step and one round trip. The `DEL` count decides the winner.
/// While the user's sign-out sweep runs (its marker `KEYS[3]` exists), no
/// rotation succeeds: a key written during a SCAN might be missed by it.
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('EXISTS', KEYS[3]) == 1 then
            return 0
          end
          if redis.call('DEL', KEYS[1]) == 1 then
            redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
            return 1
          end
          return 0",
    )
});

/// Longest a sign-out marker lives if its sweep never finishes (a crash).
const SIGNOUT_MARKER_TTL_SECS: u64 = 60;

/// The marker counts the sweeps in progress, so that two concurrent sign-outs
/// of one user each stay protected until both have finished.
static SWEEP_BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('INCR', KEYS[1])
          redis.call('EXPIRE', KEYS[1], ARGV[1])
          return 1",
    )
});

static SWEEP_END: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local left = redis.call('DECR', KEYS[1])
          if left <= 0 then
            redis.call('DEL', KEYS[1])
          end
          return left",
    )
});

/// Marks a sign-out sweep in progress; outside the `<uid>:*` pattern.
fn signout_marker(uid: Uuid) -> String {
    format!("signout:{uid}")
}

/// A connection manager that connects lazily and reconnects by itself, so the
/// service starts while Redis is down and recovers when it comes back.
pub fn redis_connection_manager(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
}

/// [`TokenRepository`] on Redis.
#[derive(Clone)]
pub struct RedisTokenRepository {
    conn: ConnectionManager,
}

impl RedisTokenRepository {
    pub fn new(conn: ConnectionManager) -> Self {
        Self { conn }
    }
}

fn key(uid: Uuid, jti: Uuid) -> String {
    format!("{uid}:{jti}")
}

/// An unreachable or overloaded Redis is a 503; a reply we did not expect is a bug.
fn map_redis_error(err: RedisError) -> AppError {
    let is_bug = match err.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => true,
        ErrorKind::Server(kind) => !matches!(
            kind,
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        ),
        _ => false,
    };
    if is_bug {
        AppError::Internal(anyhow::Error::new(err).context("redis command failed"))
    } else {
        AppError::store_unavailable("token store", &err)
    }
}

fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

#[async_trait]
impl TokenRepository for RedisTokenRepository {
    async fn start_session(&self, _uid: Uuid, _start: &SessionStart) -> AppResult<()> {
        Err(pending())
    }

    async fn refresh(&self, _uid: Uuid, _step: &RefreshStep) -> AppResult<RefreshOutcome> {
        Err(pending())
    }

    async fn rotate_legacy(
        &self,
        _uid: Uuid,
        _jti: Uuid,
        _start: &SessionStart,
    ) -> AppResult<bool> {
        Err(pending())
    }

    async fn list_sessions(&self, _uid: Uuid, _now: u64) -> AppResult<Vec<SessionInfo>> {
        Err(pending())
    }

    async fn end_session(&self, _uid: Uuid, _sid: Uuid) -> AppResult<bool> {
        Err(pending())
    }

    async fn end_other_sessions(&self, _uid: Uuid, _keep: Uuid) -> AppResult<u64> {
        Err(pending())
    }

    async fn delete_user_refresh_tokens(&self, uid: Uuid) -> AppResult<u64> {
        let mut conn = self.conn.clone();
        // Rotations of this user fail from here on, so no key appears behind
        // the SCAN cursor: every key present now is found and removed.
        let marker = signout_marker(uid);
        SWEEP_BEGIN
            .key(&marker)
            .arg(SIGNOUT_MARKER_TTL_SECS)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(map_redis_error)?;
        // A uid is a hyphenated UUID: no glob metacharacters to escape.
        let pattern = format!("{uid}:*");
        let mut cursor: u64 = 0;
        let mut deleted: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await
                .map_err(map_redis_error)?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(map_redis_error)?;
                deleted += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        SWEEP_END
            .key(&marker)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(map_redis_error)?;
        Ok(deleted)
    }

    async fn ping(&self) -> AppResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(map_redis_error)
    }
}

// BASE placeholder, replaced by the sessions implementation of this store.
fn pending() -> crate::error::AppError {
    crate::error::AppError::Internal(anyhow::anyhow!(
        "sessions not implemented in this store yet"
    ))
}
