//! What the session-store tests of both token stores share (Redis in
//! `redis_token/tests/`, in process in `memory_token/tests.rs` and
//! `tests_durable.rs`): the session starts and refresh steps they send, a
//! session started and a token rotated through [`TokenRepository`], the
//! session-name contract both stores run, the two-step sign-in's
//! (`sign_in.rs`: pending sign-ins, raised sessions), key lists compared sorted, the
//! attempt counters of a limit. Each suite keeps its own
//! lifetimes and clients in a [`Shape`], and its own ways into its store.

mod sign_in;

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::model::{
    ClientInfo, RateCounter, RefreshOutcome, RefreshStep, SessionName, SessionStart,
    TokenRepository,
};
pub(super) use sign_in::{
    a_pending_sign_in_expires_with_its_ttl, a_pending_sign_in_is_no_session_and_goes_with_sign_out,
    a_raised_assurance_follows_its_session, concurrent_steps_on_a_pending_sign_in_are_atomic,
    pending_sign_ins_count_failures_and_work_once, totp,
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

/// A valid session name, as the handler passes it on.
pub(super) fn name(raw: &str) -> Option<SessionName> {
    Some(SessionName::parse(raw).expect("a valid name"))
}

/// The name the store lists for session `sid` at `now` (`None`: unnamed);
/// panics if the session is not listed.
pub(super) async fn listed_name(
    store: &impl TokenRepository,
    uid: Uuid,
    sid: Uuid,
    now: u64,
) -> Option<String> {
    let sessions = store.list_sessions(uid, now).await.unwrap();
    sessions
        .into_iter()
        .find(|s| s.id == sid)
        .unwrap_or_else(|| panic!("session {sid} listed"))
        .name
}

/// The session-name contract, through [`TokenRepository`] from `now`: a name
/// is set and cleared on one session only, kept by rotations, refused
/// (`false`, nothing written) for an unknown session, another user's, or one
/// past its token's `exp` (which is ended, as listing prunes it), and gone
/// with its session (ended, or the user signed out everywhere).
pub(super) async fn names_follow_their_session(
    shape: &Shape,
    store: &impl TokenRepository,
    uid: Uuid,
    now: u64,
) {
    let (a, a_jti) = shape.session(store, uid, now).await;
    let (b, _) = shape.session(store, uid, now).await;
    assert!(
        store
            .rename_session(uid, a, name("laptop"), now)
            .await
            .unwrap()
    );
    assert_eq!(
        listed_name(store, uid, a, now).await.as_deref(),
        Some("laptop")
    );
    assert_eq!(listed_name(store, uid, b, now).await, None, "only that one");

    // Not a session of the user's: nothing named.
    let stranger = Uuid::new_v4();
    assert!(
        !store
            .rename_session(stranger, a, name("mine"), now)
            .await
            .unwrap()
    );
    assert!(store.list_sessions(stranger, now).await.unwrap().is_empty());
    let unknown = Uuid::new_v4();
    assert!(
        !store
            .rename_session(uid, unknown, name("x"), now)
            .await
            .unwrap()
    );
    assert_eq!(store.list_sessions(uid, now).await.unwrap().len(), 2);

    // Rotations keep it.
    let sealed = a_jti.as_bytes().to_vec();
    let a_jti = rotated(
        store,
        uid,
        &shape.step(a, a_jti, Uuid::new_v4(), now + 1, sealed),
    )
    .await;
    let sealed = a_jti.as_bytes().to_vec();
    let a_jti = rotated(
        store,
        uid,
        &shape.step(a, a_jti, Uuid::new_v4(), now + 2, sealed),
    )
    .await;
    assert_eq!(
        listed_name(store, uid, a, now + 2).await.as_deref(),
        Some("laptop")
    );

    // Renamed, cleared (twice), named again.
    assert!(
        store
            .rename_session(uid, a, name("work laptop"), now + 2)
            .await
            .unwrap()
    );
    assert_eq!(
        listed_name(store, uid, a, now + 2).await.as_deref(),
        Some("work laptop")
    );
    assert!(store.rename_session(uid, a, None, now + 2).await.unwrap());
    assert!(store.rename_session(uid, a, None, now + 2).await.unwrap());
    assert_eq!(listed_name(store, uid, a, now + 2).await, None);
    let sealed = a_jti.as_bytes().to_vec();
    rotated(
        store,
        uid,
        &shape.step(a, a_jti, Uuid::new_v4(), now + 3, sealed),
    )
    .await;
    assert_eq!(
        listed_name(store, uid, a, now + 3).await,
        None,
        "cleared stays cleared"
    );
    assert!(
        store
            .rename_session(uid, a, name("again"), now + 3)
            .await
            .unwrap()
    );

    // Past its token's exp: refused, and the session is ended.
    assert!(
        !store
            .rename_session(uid, b, name("late"), now + shape.life)
            .await
            .unwrap()
    );
    let ids: Vec<Uuid> = store
        .list_sessions(uid, now + 3)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, [a], "the expired one is ended");

    // Ended: the name goes with it.
    assert!(store.end_session(uid, a).await.unwrap());
    assert!(
        !store
            .rename_session(uid, a, name("back"), now + 3)
            .await
            .unwrap()
    );
    assert!(store.list_sessions(uid, now + 3).await.unwrap().is_empty());

    // Signed out everywhere: gone too, and a new session has no name.
    let (c, _) = shape.session(store, uid, now + 3).await;
    assert!(
        store
            .rename_session(uid, c, name("phone"), now + 3)
            .await
            .unwrap()
    );
    assert!(store.delete_user_refresh_tokens(uid).await.unwrap() > 0);
    assert!(
        !store
            .rename_session(uid, c, name("phone"), now + 3)
            .await
            .unwrap()
    );
    assert!(store.list_sessions(uid, now + 3).await.unwrap().is_empty());
    let (d, _) = shape.session(store, uid, now + 4).await;
    assert_eq!(listed_name(store, uid, d, now + 4).await, None);
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
