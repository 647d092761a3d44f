//! The refresh-token whitelist and the sessions it records, in Redis or
//! Redis Cluster.
//!
//! Key layout (`keys.rs`; shown for a single Redis, on Redis Cluster the uid
//! is a hash tag, `{<uid>}:<jti>`, … `signout:{<uid>}`, so that all of a
//! user's keys share one slot). Every key of a user but the sign-out marker
//! starts with the user's prefix, so sign-out everywhere, SCAN `<uid>:*` +
//! UNLINK (`signout.rs`), removes them all:
//!
//! - `<uid>:<jti>`: a live refresh token; value `{"sid", "created", "last",
//!   "ua", "ip"}` (its session as of this token: id, start, last use, client),
//!   TTL to the token's `exp`. Entries from before sessions hold `1`.
//! - `<uid>:sessions`: the user's index, a HASH sid → JSON `{"jti", "exp",
//!   "prev", "rotated", "created", "last", "ends", "ua", "ip", "name"?,
//!   "acr"?, "amr"?}` (current and previous token, last rotation, start, last
//!   use, absolute end, client, the name its user gave it, and the assurance
//!   a second factor raised it to, `sign_in.rs`; each absent when none).
//!   Its TTL never falls below that of the user's longest-lived token.
//! - `<uid>:grace:<jti>`: the sealed successor of the rotated token `<jti>`,
//!   kept for the grace window (`REFRESH_REUSE_GRACE`).
//! - `<uid>:nolegacy`, `<uid>:credential`: the guards written when other
//!   sessions are ended and when the password changes.
//! - `<uid>:mfa:<id>`: a pending two-step sign-in (the mfa token a right
//!   password earns), its failed second steps so far, with the token's TTL
//!   (`sign_in.rs`).
//! - `<uid>:webauthn:<challenge>`: the state of a user's WebAuthn ceremony
//!   (registering a passkey, a second step), with its TTL; and outside any
//!   user, `webauthn:auth:<challenge>`, a sign-in with a passkey alone
//!   (`ceremony.rs`). Taken once, by `GETDEL`.
//! - `signout:<uid>`: counts the sign-out sweeps in progress; while it exists
//!   no refresh writes anything (a key written behind the SCAN cursor would
//!   survive the sign-out).
//! - `ratelimit:…`: the attempt counters of the limits (`limits.rs`),
//!   each a count with its window as TTL.
//!
//! Every [`TokenRepository`] method is one Lua script (see [`scripts`] and
//! `lua/`), or one command where a single command is the whole step (reading
//! a session's assurance, most steps of a pending sign-in, a ceremony's
//! steps), so each is one atomic step and one round trip; times are the
//! caller's (`now`), never Redis's clock. The scripts derive the keys they
//! read from the index (a session's current token, its grace successor) from
//! the prefix of `KEYS[1]`, the index: the same slot on Redis Cluster, where
//! the script runs on the master owning it.

mod ceremony;
mod keys;
mod limits;
mod scripts;
mod sign_in;
mod signout;
#[cfg(test)]
mod tests;

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use redis::{ErrorKind, RedisError, ScriptInvocation, ServerErrorKind};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::model::{
    Assurance, CREDENTIAL_GUARD_SECS, CeremonyKey, CredentialChange, LEGACY_GUARD_SECS,
    RefreshOutcome, RefreshStep, SessionInfo, SessionName, SessionStart, TokenRepository,
};
use crate::redis_conn::{RedisConn, RedisMode, Timeouts};
pub(crate) use keys::KeyScheme;
pub(in crate::repository) use keys::ceremony_challenge_ok;
use scripts::{
    END_OTHER_SESSIONS, END_SESSION, LIST_SESSIONS, REFRESH, RENAME_SESSION, ROTATE_LEGACY,
    START_SESSION, SWEEP_BEGIN, SWEEP_END,
};

/// Longest a sign-out marker lives if its sweep never finishes (a crash).
const SIGNOUT_MARKER_TTL_SECS: u64 = 60;

/// The token store's connection to `REDIS_URL` in `mode`: lazy (nothing is
/// reached before the first command, so the service starts while Redis is
/// down and answers 503 until it is up), reconnecting by itself, with short
/// timeouts so a request fails before the handler timeout. In cluster mode a
/// command is retried through a failover (CLUSTERDOWN, TRYAGAIN, a lost
/// master) for up to 3 s in all, then fails (503).
pub fn redis_connection(mode: RedisMode, url: &str) -> Result<RedisConn, String> {
    RedisConn::open(
        mode,
        url,
        Timeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(2),
            overall: Duration::from_secs(3),
            retries: 4,
            max_retry_wait: Duration::from_millis(500),
        },
    )
}

/// [`TokenRepository`] on Redis or Redis Cluster.
#[derive(Clone)]
pub struct RedisTokenRepository {
    conn: RedisConn,
    keys: KeyScheme,
}

impl RedisTokenRepository {
    /// The key names follow the connection's mode (tagged on a cluster).
    pub fn new(conn: RedisConn) -> Self {
        let keys = KeyScheme::for_mode(conn.mode());
        Self { conn, keys }
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

/// An unreachable or overloaded Redis is a 503, and so is a cluster in the
/// middle of a failover or a resharding (CLUSTERDOWN, TRYAGAIN, MASTERDOWN,
/// READONLY, MOVED/ASK past the client's retries, no connection to the
/// slot's node, I/O errors and timeouts): it recovers by itself. A reply we
/// did not expect, or CROSSSLOT (keys of one step in two slots), is a bug.
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
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
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
    #[serde(default)]
    name: Option<String>,
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
        name: entry.name,
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

#[async_trait]
impl TokenRepository for RedisTokenRepository {
    async fn start_session(&self, uid: Uuid, start: &SessionStart) -> AppResult<bool> {
        let mut invocation = START_SESSION.key(self.keys.index(uid));
        invocation.key(self.keys.token(uid, start.jti));
        start_args(&mut invocation, start);
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn refresh(&self, uid: Uuid, step: &RefreshStep) -> AppResult<RefreshOutcome> {
        let mut invocation = REFRESH.key(self.keys.index(uid));
        invocation
            .key(self.keys.signout_marker(uid))
            .key(self.keys.token(uid, step.jti))
            .key(self.keys.token(uid, step.new_jti))
            .key(self.keys.grace(uid, step.jti))
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
        let mut invocation = ROTATE_LEGACY.key(self.keys.index(uid));
        invocation
            .key(self.keys.signout_marker(uid))
            .key(self.keys.token(uid, jti))
            .key(self.keys.token(uid, start.jti));
        start_args(&mut invocation, start);
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn list_sessions(&self, uid: Uuid, now: u64) -> AppResult<Vec<SessionInfo>> {
        let mut invocation = LIST_SESSIONS.key(self.keys.index(uid));
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
        let mut invocation = END_SESSION.key(self.keys.index(uid));
        invocation.arg(sid.to_string());
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn rename_session(
        &self,
        uid: Uuid,
        sid: Uuid,
        name: Option<SessionName>,
        now: u64,
    ) -> AppResult<bool> {
        let mut invocation = RENAME_SESSION.key(self.keys.index(uid));
        invocation
            .arg(sid.to_string())
            .arg(now)
            .arg(name.as_ref().map_or("", SessionName::as_str));
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn end_other_sessions(
        &self,
        uid: Uuid,
        keep: Option<Uuid>,
        change: Option<CredentialChange>,
    ) -> AppResult<u64> {
        let mut invocation = END_OTHER_SESSIONS.key(self.keys.index(uid));
        invocation
            .arg(keep.map(|sid| sid.to_string()).unwrap_or_default())
            .arg(change.map(|c| c.credential).unwrap_or_default())
            .arg(CREDENTIAL_GUARD_SECS)
            .arg(LEGACY_GUARD_SECS);
        self.invoke(&invocation).await
    }

    async fn raise_session(
        &self,
        uid: Uuid,
        sid: Uuid,
        assurance: &Assurance,
        now: u64,
    ) -> AppResult<bool> {
        self.raise(uid, sid, assurance, now).await
    }

    async fn session_assurance(&self, uid: Uuid, sid: Uuid) -> AppResult<Option<Assurance>> {
        self.assurance(uid, sid).await
    }

    async fn put_pending_sign_in(&self, uid: Uuid, id: Uuid, ttl: Duration) -> AppResult<()> {
        self.put_pending(uid, id, ttl).await
    }

    async fn pending_sign_in(&self, uid: Uuid, id: Uuid) -> AppResult<bool> {
        self.pending(uid, id).await
    }

    async fn fail_pending_sign_in(
        &self,
        uid: Uuid,
        id: Uuid,
        max_failures: u32,
    ) -> AppResult<Option<u32>> {
        self.fail_pending(uid, id, max_failures).await
    }

    async fn take_pending_sign_in(&self, uid: Uuid, id: Uuid) -> AppResult<bool> {
        self.take_pending(uid, id).await
    }

    async fn put_ceremony(&self, key: &CeremonyKey, state: &str, ttl: Duration) -> AppResult<()> {
        self.put_ceremony_state(key, state, ttl).await
    }

    async fn take_ceremony(&self, key: &CeremonyKey) -> AppResult<Option<String>> {
        self.take_ceremony_state(key).await
    }

    async fn delete_user_refresh_tokens(&self, uid: Uuid) -> AppResult<u64> {
        let mut conn = self.conn.clone();
        // Refreshes of this user write nothing from here on, so no key appears
        // behind the SCAN cursor: every key present now is found and removed.
        let marker = self.keys.signout_marker(uid);
        SWEEP_BEGIN
            .key(&marker)
            .arg(SIGNOUT_MARKER_TTL_SECS)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(map_redis_error)?;
        let swept = signout::sweep(&mut conn, self.keys, uid)
            .await
            .map_err(map_redis_error);
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
