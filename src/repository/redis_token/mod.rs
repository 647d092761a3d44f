//! The refresh-token whitelist and the sessions it records, in Redis.
//!
//! Key layout (every key of a user but the sign-out marker starts with `<uid>:`,
//! so sign-out everywhere, SCAN `<uid>:*` + UNLINK, removes them all):
//!
//! - `<uid>:<jti>`: a live refresh token; value `{"sid", "created", "last",
//!   "ua", "ip"}` (its session as of this token: id, start, last use, client),
//!   TTL to the token's `exp`. Entries from before sessions hold `1`.
//! - `<uid>:sessions`: the user's index, a HASH sid → JSON `{"jti", "exp",
//!   "prev", "rotated", "created", "last", "ends", "ua", "ip"}` (current and
//!   previous token, last rotation, start, last use, absolute end, client).
//!   Its TTL never falls below that of the user's longest-lived token.
//! - `<uid>:grace:<jti>`: the sealed successor of the rotated token `<jti>`,
//!   kept for the grace window (`REFRESH_REUSE_GRACE`).
//! - `signout:<uid>`: counts the sign-out sweeps in progress; while it exists
//!   no refresh writes anything (a key written behind the SCAN cursor would
//!   survive the sign-out).
//! - `ratelimit:…`: the attempt counters of the limits (`limits.rs`),
//!   each a count with its window as TTL.
//!
//! Every [`TokenRepository`] method is one Lua script (see [`scripts`] and
//! `lua/`), so each is one atomic step and one round trip; times are the
//! caller's (`now`), never Redis's clock. A single Redis is assumed: the
//! scripts derive `<uid>:<jti>` keys read from the index, which Redis Cluster
//! would only allow with hash tags (`{<uid>}:`), a later issue.

mod limits;
mod scripts;
#[cfg(test)]
mod tests;

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ScriptInvocation, ServerErrorKind};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::model::{
    CREDENTIAL_GUARD_SECS, CredentialChange, LEGACY_GUARD_SECS, RefreshOutcome, RefreshStep,
    SessionInfo, SessionStart, TokenRepository,
};
use scripts::{
    END_OTHER_SESSIONS, END_SESSION, LIST_SESSIONS, REFRESH, ROTATE_LEGACY, START_SESSION,
    SWEEP_BEGIN, SWEEP_END,
};

/// Keys found per SCAN step on sign-out; small COUNTs multiply round trips.
const SCAN_COUNT: usize = 1000;

/// Longest a sign-out marker lives if its sweep never finishes (a crash).
const SIGNOUT_MARKER_TTL_SECS: u64 = 60;

/// Marks a sign-out sweep in progress; outside the `<uid>:*` pattern.
fn signout_marker(uid: Uuid) -> String {
    format!("signout:{uid}")
}

/// A refresh token's whitelist entry.
fn key(uid: Uuid, jti: Uuid) -> String {
    format!("{uid}:{jti}")
}

/// The user's session index (the scripts derive every other key they learn
/// from it by its `<uid>:` prefix).
fn index_key(uid: Uuid) -> String {
    format!("{uid}:sessions")
}

/// The sealed successor of the rotated token `jti`.
fn grace_key(uid: Uuid, jti: Uuid) -> String {
    format!("{uid}:grace:{jti}")
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

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> AppResult<T> {
        let mut conn = self.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(map_redis_error)
    }

    /// Runs one command.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> AppResult<T> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(map_redis_error)
    }
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

/// The ARGV of a session start, shared by `start_session` and `rotate_legacy`.
fn start_args(invocation: &mut ScriptInvocation<'_>, start: &SessionStart) {
    invocation
        .arg(start.sid.to_string())
        .arg(start.jti.to_string())
        .arg(start.exp)
        .arg(start.now)
        .arg(start.ends_at)
        .arg(&start.client.user_agent)
        .arg(&start.client.ip)
        .arg(start.max_sessions)
        .arg(&start.credential);
}

/// What `list_sessions` reads of an index entry.
#[derive(Deserialize)]
struct IndexEntry {
    created: u64,
    last: u64,
    #[serde(default)]
    ua: String,
    #[serde(default)]
    ip: String,
}

fn session_info(sid: &str, entry: &str) -> AppResult<SessionInfo> {
    let id = Uuid::parse_str(sid).with_context(|| format!("session index field {sid:?}"))?;
    let entry: IndexEntry = serde_json::from_str(entry)
        .with_context(|| format!("session index entry of {sid}: {entry}"))?;
    Ok(SessionInfo {
        id,
        created_at: entry.created,
        last_used_at: entry.last,
        user_agent: entry.ua,
        ip: entry.ip,
    })
}

fn refresh_outcome(reply: Vec<Vec<u8>>) -> AppResult<RefreshOutcome> {
    let mut parts = reply.into_iter();
    let outcome = match (parts.next().as_deref(), parts.next()) {
        (Some(b"rotated"), None) => RefreshOutcome::Rotated,
        (Some(b"replay"), Some(sealed)) => RefreshOutcome::GraceReplay(sealed),
        (Some(b"reused"), None) => RefreshOutcome::Reused,
        (Some(b"unknown"), None) => RefreshOutcome::Unknown,
        (Some(b"expired"), None) => RefreshOutcome::Expired,
        (status, _) => {
            return Err(AppError::Internal(anyhow::anyhow!(
                "unexpected refresh script reply {:?}",
                status.map(String::from_utf8_lossy)
            )));
        }
    };
    Ok(outcome)
}

/// SCAN `<uid>:*` with a large COUNT and UNLINK each batch; how many keys.
async fn sweep(conn: &mut ConnectionManager, uid: Uuid) -> AppResult<u64> {
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
            .query_async(conn)
            .await
            .map_err(map_redis_error)?;
        if !keys.is_empty() {
            let n: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(conn)
                .await
                .map_err(map_redis_error)?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

#[async_trait]
impl TokenRepository for RedisTokenRepository {
    async fn start_session(&self, uid: Uuid, start: &SessionStart) -> AppResult<bool> {
        let mut invocation = START_SESSION.key(index_key(uid));
        invocation.key(key(uid, start.jti));
        start_args(&mut invocation, start);
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn refresh(&self, uid: Uuid, step: &RefreshStep) -> AppResult<RefreshOutcome> {
        let mut invocation = REFRESH.key(index_key(uid));
        invocation
            .key(signout_marker(uid))
            .key(key(uid, step.jti))
            .key(key(uid, step.new_jti))
            .key(grace_key(uid, step.jti))
            .arg(step.sid.to_string())
            .arg(step.jti.to_string())
            .arg(step.new_jti.to_string())
            .arg(step.new_exp)
            .arg(step.now)
            .arg(step.grace_secs)
            .arg(step.sealed_successor.as_slice())
            .arg(&step.client.user_agent)
            .arg(&step.client.ip);
        refresh_outcome(self.invoke(&invocation).await?)
    }

    async fn rotate_legacy(&self, uid: Uuid, jti: Uuid, start: &SessionStart) -> AppResult<bool> {
        let mut invocation = ROTATE_LEGACY.key(index_key(uid));
        invocation
            .key(signout_marker(uid))
            .key(key(uid, jti))
            .key(key(uid, start.jti));
        start_args(&mut invocation, start);
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn list_sessions(&self, uid: Uuid, now: u64) -> AppResult<Vec<SessionInfo>> {
        let mut invocation = LIST_SESSIONS.key(index_key(uid));
        invocation.arg(now);
        let flat: Vec<String> = self.invoke(&invocation).await?;
        let mut sessions = flat
            .chunks_exact(2)
            .map(|pair| session_info(&pair[0], &pair[1]))
            .collect::<AppResult<Vec<_>>>()?;
        sessions.sort_by(|a, b| {
            b.last_used_at
                .cmp(&a.last_used_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(sessions)
    }

    async fn end_session(&self, uid: Uuid, sid: Uuid) -> AppResult<bool> {
        let mut invocation = END_SESSION.key(index_key(uid));
        invocation.arg(sid.to_string());
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn end_other_sessions(
        &self,
        uid: Uuid,
        keep: Option<Uuid>,
        change: Option<CredentialChange>,
    ) -> AppResult<u64> {
        let mut invocation = END_OTHER_SESSIONS.key(index_key(uid));
        invocation
            .arg(keep.map(|sid| sid.to_string()).unwrap_or_default())
            .arg(change.map(|c| c.credential).unwrap_or_default())
            .arg(CREDENTIAL_GUARD_SECS)
            .arg(LEGACY_GUARD_SECS);
        self.invoke(&invocation).await
    }

    async fn delete_user_refresh_tokens(&self, uid: Uuid) -> AppResult<u64> {
        let mut conn = self.conn.clone();
        // Refreshes of this user write nothing from here on, so no key appears
        // behind the SCAN cursor: every key present now is found and removed.
        let marker = signout_marker(uid);
        SWEEP_BEGIN
            .key(&marker)
            .arg(SIGNOUT_MARKER_TTL_SECS)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(map_redis_error)?;
        let swept = sweep(&mut conn, uid).await;
        // Released on failure too: a sweep that stopped half-way must not
        // keep refusing the user's refreshes until the marker expires.
        let released = SWEEP_END
            .key(&marker)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(map_redis_error);
        let deleted = swept?;
        released?;
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
