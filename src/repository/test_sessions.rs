//! What the session-store tests of both token stores share (Redis in
//! `redis_token/tests/`, in process in `memory_token/tests.rs` and
//! `tests_durable.rs`): the session starts and refresh steps they send, a
//! session started and a token rotated through [`TokenRepository`], the
//! session-name contract both stores run, the two-step sign-in's
//! (`sign_in.rs`: pending sign-ins, raised sessions), the WebAuthn ceremonies'
//! (below: taken once, expiring, replaced, a user's swept by sign-out, hostile
//! challenges naming nothing), key lists compared sorted, the attempt
//! counters of a limit. Each suite keeps its own
//! lifetimes and clients in a [`Shape`], and its own ways into its store.

mod sign_in;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::model::{
    CeremonyKey, ClientInfo, RateCounter, RefreshOutcome, RefreshStep, SessionName, SessionStart,
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

/// How long a ceremony's state lives in these scenarios, but where they
/// expire one.
const CEREMONY: Duration = Duration::from_secs(600);

/// A fresh challenge of a test's own, 43 base64url characters as the
/// server's: starts with [`challenge_prefix`]`(uid)`, so a test can find and
/// remove its anonymous ceremonies' keys.
pub(super) fn challenge(uid: Uuid) -> String {
    let fresh = Uuid::new_v4().simple().to_string();
    format!("{}{}", challenge_prefix(uid), &fresh[..10])
}

/// What every [`challenge`] of `uid` starts with (33 characters).
pub(super) fn challenge_prefix(uid: Uuid) -> String {
    format!("{}_", uid.simple())
}

pub(super) fn user_ceremony(uid: Uuid, challenge: &str) -> CeremonyKey {
    CeremonyKey::User {
        uid,
        challenge: challenge.to_owned(),
    }
}

pub(super) fn anonymous_ceremony(challenge: &str) -> CeremonyKey {
    CeremonyKey::Anonymous {
        challenge: challenge.to_owned(),
    }
}

/// A ceremony's state as a WebAuthn library serializes it (JSON, with what
/// a text encoding could spoil: quotes, a newline, non-ASCII).
fn state(tag: &str) -> String {
    format!(r#"{{"rs":{{"policy":"required","tag":"{tag}"}},"note":"é \"x\"\n✓"}}"#)
}

/// A ceremony's state is taken once: read back exactly, then absent; never
/// put, absent; a put replaces the state; a user's ceremony and an anonymous
/// one with the same challenge, and two users' with the same challenge, are
/// different ceremonies; a challenge of 128 characters is still one.
pub(in crate::repository) async fn a_ceremony_is_taken_once_and_replaced_by_a_put(
    store: &impl TokenRepository,
    uid: Uuid,
) {
    let (c, d) = (challenge(uid), challenge(uid));
    let (mine, anon) = (user_ceremony(uid, &c), anonymous_ceremony(&c));
    assert_eq!(store.take_ceremony(&mine).await.unwrap(), None, "never put");
    assert_eq!(store.take_ceremony(&anon).await.unwrap(), None, "never put");

    store
        .put_ceremony(&mine, &state("a"), CEREMONY)
        .await
        .unwrap();
    assert_eq!(store.take_ceremony(&mine).await.unwrap(), Some(state("a")));
    assert_eq!(store.take_ceremony(&mine).await.unwrap(), None, "once");

    // Replaced: the last put is what is taken.
    store
        .put_ceremony(&mine, &state("b"), CEREMONY)
        .await
        .unwrap();
    store
        .put_ceremony(&mine, &state("c"), CEREMONY)
        .await
        .unwrap();
    assert_eq!(store.take_ceremony(&mine).await.unwrap(), Some(state("c")));
    assert_eq!(store.take_ceremony(&mine).await.unwrap(), None);

    // One challenge, three ceremonies: the user's, a stranger's, anonymous.
    let stranger = Uuid::new_v4();
    let theirs = user_ceremony(stranger, &c);
    store
        .put_ceremony(&mine, &state("mine"), CEREMONY)
        .await
        .unwrap();
    assert_eq!(store.take_ceremony(&theirs).await.unwrap(), None);
    assert_eq!(store.take_ceremony(&anon).await.unwrap(), None);
    store
        .put_ceremony(&anon, &state("anon"), CEREMONY)
        .await
        .unwrap();
    store
        .put_ceremony(&theirs, &state("theirs"), CEREMONY)
        .await
        .unwrap();
    let other = user_ceremony(uid, &d);
    assert_eq!(store.take_ceremony(&other).await.unwrap(), None);
    assert_eq!(
        store.take_ceremony(&theirs).await.unwrap(),
        Some(state("theirs"))
    );
    assert_eq!(
        store.take_ceremony(&anon).await.unwrap(),
        Some(state("anon"))
    );
    assert_eq!(
        store.take_ceremony(&mine).await.unwrap(),
        Some(state("mine"))
    );
    for key in [&mine, &theirs, &anon] {
        assert_eq!(store.take_ceremony(key).await.unwrap(), None);
    }

    // The longest challenge, and an empty state.
    let longest = format!("{c}{}", "A".repeat(128 - c.len()));
    for key in [user_ceremony(uid, &longest), anonymous_ceremony(&longest)] {
        store.put_ceremony(&key, "", CEREMONY).await.unwrap();
        assert_eq!(
            store.take_ceremony(&key).await.unwrap().as_deref(),
            Some("")
        );
        assert_eq!(store.take_ceremony(&key).await.unwrap(), None);
    }
}

/// Of `N` concurrent takes of one ceremony exactly one gets its state, a
/// user's and an anonymous one alike.
pub(in crate::repository) async fn concurrent_takes_of_a_ceremony_have_one_winner<S>(
    store: &S,
    uid: Uuid,
) where
    S: TokenRepository + Clone + 'static,
{
    const N: usize = 20;
    let c = challenge(uid);
    for key in [user_ceremony(uid, &c), anonymous_ceremony(&c)] {
        store
            .put_ceremony(&key, &state("race"), CEREMONY)
            .await
            .unwrap();
        let mut takes = tokio::task::JoinSet::new();
        for _ in 0..N {
            let (store, key) = (store.clone(), key.clone());
            takes.spawn(async move { store.take_ceremony(&key).await.unwrap() });
        }
        let taken = takes.join_all().await;
        let winners: Vec<&String> = taken.iter().flatten().collect();
        assert_eq!(winners, [&state("race")], "{key:?}: {taken:?}");
        assert_eq!(store.take_ceremony(&key).await.unwrap(), None);
    }
}

/// A ceremony expires after its TTL (then taken as absent); a put replaces
/// the TTL too. Real time: about 1.5 s.
pub(in crate::repository) async fn a_ceremony_expires_with_its_ttl(
    store: &impl TokenRepository,
    uid: Uuid,
) {
    let (c, kept) = (challenge(uid), challenge(uid));
    let short = Duration::from_secs(1);
    let (mine, anon, renewed) = (
        user_ceremony(uid, &c),
        anonymous_ceremony(&c),
        user_ceremony(uid, &kept),
    );
    let before = tokio::time::Instant::now();
    for key in [&mine, &anon, &renewed] {
        store
            .put_ceremony(key, &state("short"), short)
            .await
            .unwrap();
    }
    // Put again with a long TTL: it no longer expires with the first.
    store
        .put_ceremony(&renewed, &state("long"), CEREMONY)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(before.elapsed() >= Duration::from_millis(1500));
    assert_eq!(store.take_ceremony(&mine).await.unwrap(), None, "expired");
    assert_eq!(store.take_ceremony(&anon).await.unwrap(), None, "expired");
    assert_eq!(
        store.take_ceremony(&renewed).await.unwrap(),
        Some(state("long"))
    );
}

/// No session step sees a user's ceremony; sign-out everywhere removes it
/// (and counts it) with the user's other keys, and leaves an anonymous
/// ceremony and another user's with the same challenge alone.
pub(in crate::repository) async fn a_users_ceremony_is_no_session_and_goes_with_sign_out(
    shape: &Shape,
    store: &impl TokenRepository,
    uid: Uuid,
    now: u64,
) {
    let (sid, _) = shape.session(store, uid, now).await;
    let (c, d) = (challenge(uid), challenge(uid));
    let (mine, also) = (user_ceremony(uid, &c), user_ceremony(uid, &d));
    let (anon, stranger) = (anonymous_ceremony(&c), Uuid::new_v4());
    let theirs = user_ceremony(stranger, &c);
    for key in [&mine, &also, &anon, &theirs] {
        store
            .put_ceremony(key, &state("kept"), CEREMONY)
            .await
            .unwrap();
    }
    let listed: Vec<Uuid> = store
        .list_sessions(uid, now)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [sid], "no ceremony is a session");
    assert_eq!(
        store
            .end_other_sessions(uid, Some(sid), None)
            .await
            .unwrap(),
        0
    );

    // The session's entry and index, the legacy guard just written, and the
    // two ceremonies.
    assert_eq!(store.delete_user_refresh_tokens(uid).await.unwrap(), 5);
    assert_eq!(store.take_ceremony(&mine).await.unwrap(), None);
    assert_eq!(store.take_ceremony(&also).await.unwrap(), None);
    assert_eq!(
        store.take_ceremony(&anon).await.unwrap(),
        Some(state("kept"))
    );
    assert_eq!(
        store.take_ceremony(&theirs).await.unwrap(),
        Some(state("kept"))
    );
    assert_eq!(store.delete_user_refresh_tokens(stranger).await.unwrap(), 0);
}

/// Challenges no server makes (key or glob syntax, too long, empty) name no
/// ceremony: a put is refused, a take finds nothing, and neither touches
/// the ceremonies there are.
pub(in crate::repository) async fn hostile_challenges_name_no_ceremony(
    store: &impl TokenRepository,
    uid: Uuid,
) {
    let c = challenge(uid);
    let (mine, anon) = (user_ceremony(uid, &c), anonymous_ceremony(&c));
    store
        .put_ceremony(&mine, &state("mine"), CEREMONY)
        .await
        .unwrap();
    store
        .put_ceremony(&anon, &state("anon"), CEREMONY)
        .await
        .unwrap();
    let long = format!("{c}{}", "A".repeat(200 - c.len()));
    let hostile = [
        "*".to_owned(),
        "a:b".to_owned(),
        "{x}".to_owned(),
        long.clone(),
        long[..129].to_owned(),
        String::new(),
        format!("{c}*"),
        format!("{}*", challenge_prefix(uid)),
        format!("{}?", &c[..c.len() - 1]),
        format!("{}[a-z0-9]", &c[..c.len() - 1]),
        format!("{c}:x"),
        format!("{{{uid}}}"),
        format!("auth:{c}"),
        format!("x\n{c}"),
        format!("{c}="),
    ];
    for bad in &hostile {
        for key in [user_ceremony(uid, bad), anonymous_ceremony(bad)] {
            assert_eq!(store.take_ceremony(&key).await.unwrap(), None, "{key:?}");
            assert!(
                store
                    .put_ceremony(&key, &state("bad"), CEREMONY)
                    .await
                    .is_err(),
                "{key:?}"
            );
            assert_eq!(store.take_ceremony(&key).await.unwrap(), None, "{key:?}");
        }
    }
    // Nothing else was touched, and no key of the user's was written.
    assert_eq!(
        store.take_ceremony(&mine).await.unwrap(),
        Some(state("mine"))
    );
    assert_eq!(
        store.take_ceremony(&anon).await.unwrap(),
        Some(state("anon"))
    );
    assert_eq!(store.delete_user_refresh_tokens(uid).await.unwrap(), 0);
}
