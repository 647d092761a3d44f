//! What the session-store tests of both token stores share (Redis in
//! `redis_token/tests/`, in process in `memory_token/tests.rs` and
//! `tests_durable.rs`): the session starts and refresh steps they send, a
//! session started and a token rotated through [`TokenRepository`], key lists
//! compared sorted, the attempt counters of a limit. Each suite keeps its own
//! lifetimes and clients in a [`Shape`], and its own ways into its store.

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::model::{
    ClientInfo, RateCounter, RefreshOutcome, RefreshStep, SessionStart, TokenRepository,
};

/// The lifetimes and clients of one suite's sessions (seconds).
pub(super) struct Shape {
    /// A token's lifetime: `exp` is `now` plus this.
    pub(super) life: u64,
    /// A session's absolute lifetime: `ends_at` is `now` plus this.
    pub(super) max_age: u64,
    /// The grace window of a rotation.
    pub(super) grace: u64,
    /// User agent and address of the sign-in that starts a session.
    pub(super) signin: (&'static str, &'static str),
    /// User agent and address of the refreshes.
    pub(super) refresh: (&'static str, &'static str),
}

impl Shape {
    /// Session `sid` with first token `jti`, started at `now` with the
    /// credential `c1`; at most `max_sessions` sessions are kept.
    pub(super) fn start(&self, sid: Uuid, jti: Uuid, now: u64, max_sessions: u32) -> SessionStart {
        SessionStart {
            sid,
            jti,
            exp: now + self.life,
            now,
            ends_at: now + self.max_age,
            client: ClientInfo::new(self.signin.0, self.signin.1),
            max_sessions,
            credential: "c1".into(),
        }
    }

    /// [`Self::start`] of a new session and token.
    pub(super) fn new_start(&self, now: u64, max_sessions: u32) -> SessionStart {
        self.start(Uuid::new_v4(), Uuid::new_v4(), now, max_sessions)
    }

    /// A refresh at `now` of `jti`, session `sid`, to `new_jti`, sealing
    /// `sealed` for the grace window.
    pub(super) fn step(
        &self,
        sid: Uuid,
        jti: Uuid,
        new_jti: Uuid,
        now: u64,
        sealed: Vec<u8>,
    ) -> RefreshStep {
        RefreshStep {
            sid,
            jti,
            new_jti,
            new_exp: now + self.life,
            now,
            grace_secs: self.grace,
            sealed_successor: sealed,
            client: ClientInfo::new(self.refresh.0, self.refresh.1),
        }
    }

    /// Starts a new session of `uid` at `now` (cap 10): (sid, its first jti).
    pub(super) async fn session(
        &self,
        store: &impl TokenRepository,
        uid: Uuid,
        now: u64,
    ) -> (Uuid, Uuid) {
        started(store, uid, &self.new_start(now, 10)).await
    }
}

/// Starts `start` for `uid` (refused or not): its (sid, jti).
pub(super) async fn started(
    store: &impl TokenRepository,
    uid: Uuid,
    start: &SessionStart,
) -> (Uuid, Uuid) {
    store.start_session(uid, start).await.unwrap();
    (start.sid, start.jti)
}

/// Refreshes with `step`, which must rotate; the successor's jti.
pub(super) async fn rotated(store: &impl TokenRepository, uid: Uuid, step: &RefreshStep) -> Uuid {
    let outcome = store.refresh(uid, step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Rotated);
    step.new_jti
}

pub(super) fn sorted(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys
}

/// Now, in Unix seconds (the real clock).
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The counters of a limit: (key, limit) pairs.
pub(super) fn counters(pairs: &[(&str, u64)]) -> Vec<RateCounter> {
    pairs
        .iter()
        .map(|(key, limit)| RateCounter {
            key: (*key).to_owned(),
            limit: *limit,
        })
        .collect()
}
