//! The store contract (issue 8), test for test with the
//! Redis store, on the in-process keyspace (in memory only: its durable copy
//! has its own tests, `tests_durable.rs`).

use std::time::Duration;

use super::keyspace::{SessionEntry, Value, grace_key, index_key, token_key};
use super::*;
use crate::model::{CREDENTIAL_GUARD_SECS, RateDecision, RateLimitRepository};
use crate::repository::test_sessions::{
    Shape, counters, name, names_follow_their_session, rotated, sorted,
};

pub(super) const NOW: u64 = 1_800_000_000;
pub(super) const HOUR: u64 = 3600;
pub(super) const DAY: u64 = 24 * HOUR;
pub(super) const GRACE: u64 = 10;

/// Tokens live an hour, sessions 30 days; one address for every client.
const SHAPE: Shape = Shape {
    life: HOUR,
    max_age: 30 * DAY,
    grace: GRACE,
    signin: ("first", "192.0.2.1"),
    refresh: ("later", "192.0.2.1"),
};

/// A new store and a new user.
fn store_and_user() -> (MemoryTokenRepository, Uuid) {
    (MemoryTokenRepository::new(), Uuid::new_v4())
}

/// The start of a new session and token at `now` (cap 10).
pub(super) fn new_start(now: u64) -> SessionStart {
    SHAPE.new_start(now, 10)
}

pub(super) fn step_at(sid: Uuid, jti: Uuid, now: u64, sealed: &[u8]) -> RefreshStep {
    SHAPE.step(sid, jti, Uuid::new_v4(), now, sealed.to_vec())
}

/// A session started at `now`: (sid, its first jti).
pub(super) async fn session(store: &MemoryTokenRepository, uid: Uuid, now: u64) -> (Uuid, Uuid) {
    SHAPE.session(store, uid, now).await
}

/// Rotates the session's current `jti` at `now`; the successor's jti.
pub(super) async fn rotate(
    store: &MemoryTokenRepository,
    uid: Uuid,
    sid: Uuid,
    jti: Uuid,
    now: u64,
) -> Uuid {
    rotated(store, uid, &step_at(sid, jti, now, jti.as_bytes())).await
}

/// Writes a whitelist entry from before sessions, for an hour.
fn set_legacy(store: &MemoryTokenRepository, uid: Uuid, jti: Uuid) {
    store
        .quick_step(|keys, at| {
            keys.set(
                token_key(uid, jti),
                Value::legacy_token(),
                at + Duration::from_secs(HOUR),
            );
        })
        .unwrap();
}

pub(super) fn entry(store: &MemoryTokenRepository, uid: Uuid, sid: Uuid) -> Option<SessionEntry> {
    store
        .quick_step(|keys, at| keys.index(uid, at).and_then(|i| i.get(&sid)).cloned())
        .unwrap()
}

pub(super) fn value(store: &MemoryTokenRepository, key: &str) -> Option<Value> {
    store
        .quick_step(|keys, at| keys.get(key, at).cloned())
        .unwrap()
}

/// Seconds to live of a key, `None` if it does not exist.
pub(super) fn ttl(store: &MemoryTokenRepository, key: &str) -> Option<u64> {
    store
        .live_entries(key)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, ttl)| ttl.as_secs_f64().round() as u64)
}

pub(super) fn names(store: &MemoryTokenRepository, uid: Uuid) -> Vec<String> {
    let entries = store.live_entries(&format!("{uid}:"));
    entries.into_iter().map(|(k, _)| k).collect()
}

#[tokio::test(start_paused = true)]
async fn start_session_whitelists_the_token_with_its_sid_and_indexes_the_session() {
    let (store, uid) = store_and_user();
    let (sid, jti) = session(&store, uid, NOW).await;

    let token = token_key(uid, jti);
    assert!(
        matches!(
            value(&store, &token),
            Some(Value::Token { sid: Some(s), created, last, .. }) if s == sid && created == NOW && last == NOW
        ),
        "the entry records its session"
    );
    assert_eq!(ttl(&store, &token), Some(HOUR));
    let expected = SessionEntry {
        jti,
        exp: NOW + HOUR,
        prev: None,
        rotated: None,
        created: NOW,
        last: NOW,
        ends: NOW + 30 * DAY,
        ua: "first".into(),
        ip: "192.0.2.1".into(),
        name: None,
        acr: None,
        amr: Vec::new(),
    };
    assert_eq!(entry(&store, uid, sid), Some(expected));
    assert_eq!(ttl(&store, &index_key(uid)), Some(HOUR));
    assert_eq!(names(&store, uid), sorted(vec![token, index_key(uid)]));
}

#[tokio::test(start_paused = true)]
async fn the_index_lives_as_long_as_the_longest_token_and_is_never_shortened() {
    let (store, uid) = store_and_user();
    let (sid, jti) = session(&store, uid, NOW).await;
    let mut short = new_start(NOW);
    short.exp = NOW + 100;
    store.start_session(uid, &short).await.unwrap();
    assert_eq!(ttl(&store, &index_key(uid)), Some(HOUR));

    let mut long = new_start(NOW);
    long.exp = NOW + 2 * HOUR;
    store.start_session(uid, &long).await.unwrap();
    assert_eq!(ttl(&store, &index_key(uid)), Some(2 * HOUR));

    let mut step = step_at(sid, jti, NOW, b"x");
    step.new_exp = NOW + 10;
    assert_eq!(
        store.refresh(uid, &step).await.unwrap(),
        RefreshOutcome::Rotated
    );
    assert_eq!(ttl(&store, &token_key(uid, step.new_jti)), Some(10));
    assert_eq!(ttl(&store, &index_key(uid)), Some(2 * HOUR));
}

#[tokio::test]
async fn the_cap_ends_the_least_recently_used_session_never_the_new_one() {
    let (store, uid) = store_and_user();
    let (s1, j1) = session(&store, uid, NOW).await;
    let (s2, j2) = session(&store, uid, NOW + 1).await;
    let j1 = rotate(&store, uid, s1, j1, NOW + 2).await;

    let mut third = new_start(NOW + 3);
    third.max_sessions = 2;
    store.start_session(uid, &third).await.unwrap();
    assert!(
        entry(&store, uid, s2).is_none(),
        "s2 was the least recently used"
    );
    assert!(value(&store, &token_key(uid, j2)).is_none());
    assert!(entry(&store, uid, s1).is_some() && entry(&store, uid, third.sid).is_some());
    assert!(value(&store, &token_key(uid, j1)).is_some());

    // Ties on `last` end the older session: s1 (created NOW, used NOW + 5)
    // goes before s4 (created NOW + 5).
    let j1 = rotate(&store, uid, s1, j1, NOW + 5).await;
    store.end_session(uid, third.sid).await.unwrap();
    let (s4, _) = session(&store, uid, NOW + 5).await;
    let mut fifth = new_start(NOW + 6);
    fifth.max_sessions = 2;
    store.start_session(uid, &fifth).await.unwrap();
    assert!(entry(&store, uid, s1).is_none() && value(&store, &token_key(uid, j1)).is_none());
    assert!(entry(&store, uid, s4).is_some());

    // A new session whose clock lags (the smallest `last` of all) is kept.
    let mut lagging = new_start(NOW - 100);
    lagging.max_sessions = 1;
    store.start_session(uid, &lagging).await.unwrap();
    let listed = store.list_sessions(uid, NOW).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![lagging.sid]
    );
    assert_eq!(
        names(&store, uid),
        sorted(vec![token_key(uid, lagging.jti), index_key(uid)])
    );
}

#[tokio::test(start_paused = true)]
async fn a_rotation_whitelists_the_successor_and_keeps_the_sealed_one_for_the_window() {
    let (store, uid) = store_and_user();
    let (sid, jti) = session(&store, uid, NOW).await;
    let step = step_at(sid, jti, NOW + 5, b"sealed pair");
    assert_eq!(
        store.refresh(uid, &step).await.unwrap(),
        RefreshOutcome::Rotated
    );

    assert!(
        value(&store, &token_key(uid, jti)).is_none(),
        "the presented token is taken"
    );
    let successor = token_key(uid, step.new_jti);
    assert!(
        matches!(
            value(&store, &successor),
            Some(Value::Token { sid: Some(s), .. }) if s == sid
        ),
        "the successor records the session"
    );
    assert_eq!(ttl(&store, &successor), Some(HOUR));
    let grace = grace_key(uid, jti);
    assert_eq!(
        value(&store, &grace),
        Some(Value::Grace(b"sealed pair".to_vec()))
    );
    assert_eq!(ttl(&store, &grace), Some(GRACE));
    let e = entry(&store, uid, sid).unwrap();
    assert_eq!(
        (e.jti, e.exp, e.prev),
        (step.new_jti, NOW + 5 + HOUR, Some(jti))
    );
    assert_eq!(
        (e.rotated, e.created, e.last),
        (Some(NOW + 5), NOW, NOW + 5)
    );
    assert_eq!(e.ua, "later", "the latest client is recorded");
    assert_eq!(
        names(&store, uid),
        sorted(vec![successor, grace, index_key(uid)])
    );

    // Without a grace window no successor is kept, and a second use is reuse.
    let mut no_grace = step_at(sid, step.new_jti, NOW + 6, b"unused");
    no_grace.grace_secs = 0;
    assert_eq!(
        store.refresh(uid, &no_grace).await.unwrap(),
        RefreshOutcome::Rotated
    );
    assert!(value(&store, &grace_key(uid, step.new_jti)).is_none());
    assert!(
        value(&store, &grace_key(uid, jti)).is_none(),
        "the older successor is dropped"
    );
    no_grace.new_jti = Uuid::new_v4();
    assert_eq!(
        store.refresh(uid, &no_grace).await.unwrap(),
        RefreshOutcome::Reused
    );
    assert!(names(&store, uid).is_empty());
}

#[tokio::test]
async fn a_replay_within_the_window_returns_the_sealed_bytes_and_changes_nothing() {
    let (store, uid) = store_and_user();
    let (sid, jti) = session(&store, uid, NOW).await;
    let first = step_at(sid, jti, NOW + 5, b"first pair");
    assert_eq!(
        store.refresh(uid, &first).await.unwrap(),
        RefreshOutcome::Rotated
    );
    let (keys, index) = (names(&store, uid), entry(&store, uid, sid));

    for now in [NOW + 5, NOW + 6, NOW + 5 + GRACE] {
        let replay = step_at(sid, jti, now, b"another pair");
        assert_eq!(
            store.refresh(uid, &replay).await.unwrap(),
            RefreshOutcome::GraceReplay(b"first pair".to_vec())
        );
        assert_eq!(
            (names(&store, uid), entry(&store, uid, sid)),
            (keys.clone(), index.clone())
        );
    }
    // The successor still rotates.
    rotate(&store, uid, sid, first.new_jti, NOW + 6).await;
}

#[tokio::test]
async fn the_window_is_pinned_to_the_first_rotation_then_a_replay_is_reuse() {
    let (store, uid) = store_and_user();
    let (sid, jti) = session(&store, uid, NOW).await;
    let current = rotate(&store, uid, sid, jti, NOW).await;
    let replay = |now| step_at(sid, jti, now, b"x");
    assert!(matches!(
        store.refresh(uid, &replay(NOW + GRACE - 1)).await.unwrap(),
        RefreshOutcome::GraceReplay(_)
    ));
    // The replay did not slide the window.
    assert_eq!(
        store.refresh(uid, &replay(NOW + GRACE + 1)).await.unwrap(),
        RefreshOutcome::Reused
    );

    // Theft: the whole session is over, its current token too.
    assert!(names(&store, uid).is_empty());
    assert!(
        store
            .list_sessions(uid, NOW + GRACE + 1)
            .await
            .unwrap()
            .is_empty()
    );
    let step = step_at(sid, current, NOW + GRACE + 2, b"y");
    assert_eq!(
        store.refresh(uid, &step).await.unwrap(),
        RefreshOutcome::Unknown
    );
}

#[tokio::test(start_paused = true)]
async fn the_grace_successor_expiring_on_the_store_clock_also_ends_the_window() {
    let (store, uid) = store_and_user();
    let (sid, jti) = session(&store, uid, NOW).await;
    rotate(&store, uid, sid, jti, NOW).await;
    tokio::time::advance(Duration::from_secs(GRACE + 1)).await;
    let step = step_at(sid, jti, NOW + 1, b"x");
    assert_eq!(
        store.refresh(uid, &step).await.unwrap(),
        RefreshOutcome::Reused
    );
    assert!(entry(&store, uid, sid).is_none());
}

#[tokio::test]
async fn only_the_immediately_previous_token_replays_an_older_one_is_reuse() {
    let (store, uid) = store_and_user();
    let (sid, a) = session(&store, uid, NOW).await;
    let b = rotate(&store, uid, sid, a, NOW).await;
    let c = rotate(&store, uid, sid, b, NOW + 1).await;
    assert!(
        value(&store, &grace_key(uid, a)).is_none(),
        "only one successor is kept"
    );
    assert!(value(&store, &grace_key(uid, b)).is_some());

    let step = step_at(sid, a, NOW + 2, b"x");
    assert_eq!(
        store.refresh(uid, &step).await.unwrap(),
        RefreshOutcome::Reused
    );
    assert!(
        value(&store, &token_key(uid, c)).is_none(),
        "the current token is dead"
    );
    assert!(names(&store, uid).is_empty());
}

#[tokio::test]
async fn a_predecessor_whose_successor_is_gone_is_reuse() {
    let (store, uid) = store_and_user();
    let (sid, a) = session(&store, uid, NOW).await;
    let b = rotate(&store, uid, sid, a, NOW).await;
    assert!(store.remove(&token_key(uid, b)));
    let step = step_at(sid, a, NOW + 1, b"x");
    assert_eq!(
        store.refresh(uid, &step).await.unwrap(),
        RefreshOutcome::Reused
    );
    assert!(entry(&store, uid, sid).is_none());
}

#[tokio::test]
async fn unknown_sessions_ended_sessions_and_signed_out_users_are_unknown() {
    let (store, uid) = store_and_user();
    let (sid, jti) = session(&store, uid, NOW).await;
    let keys = names(&store, uid);

    let stranger = step_at(Uuid::new_v4(), jti, NOW + 1, b"x");
    assert_eq!(
        store.refresh(uid, &stranger).await.unwrap(),
        RefreshOutcome::Unknown
    );
    assert_eq!(names(&store, uid), keys, "nothing written");
    let other_user = step_at(sid, jti, NOW + 1, b"x");
    assert_eq!(
        store.refresh(Uuid::new_v4(), &other_user).await.unwrap(),
        RefreshOutcome::Unknown
    );

    // The current token's entry removed behind the store's back: the session ends.
    assert!(store.remove(&token_key(uid, jti)));
    assert_eq!(
        store
            .refresh(uid, &step_at(sid, jti, NOW + 1, b"x"))
            .await
            .unwrap(),
        RefreshOutcome::Unknown
    );
    assert!(names(&store, uid).is_empty());

    // Ended (signed out here, evicted, revoked).
    let (sid, jti) = session(&store, uid, NOW).await;
    assert!(store.end_session(uid, sid).await.unwrap());
    assert_eq!(
        store
            .refresh(uid, &step_at(sid, jti, NOW + 1, b"x"))
            .await
            .unwrap(),
        RefreshOutcome::Unknown
    );

    // Signed out everywhere: nothing is written back.
    let (sid, jti) = session(&store, uid, NOW).await;
    assert_eq!(store.delete_user_refresh_tokens(uid).await.unwrap(), 2);
    assert_eq!(
        store
            .refresh(uid, &step_at(sid, jti, NOW + 1, b"x"))
            .await
            .unwrap(),
        RefreshOutcome::Unknown
    );
    assert!(store.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_racing_refreshes_leaves_nothing_and_later_refreshes_are_unknown() {
    // Redis needs the `signout:<uid>` marker because its sweep spans many
    // commands; here the sweep is one step under the one lock, so each
    // refresh runs wholly before it (and what it wrote is swept) or wholly
    // after it (and finds no session): never in between.
    for _ in 0..20 {
        let store = MemoryTokenRepository::new();
        let uid = Uuid::new_v4();
        let (sid, jti) = session(&store, uid, NOW).await;
        let refreshes: Vec<_> = (0..8u8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .refresh(uid, &step_at(sid, jti, NOW + 1, &[i]))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let sweep = {
            let store = store.clone();
            tokio::spawn(async move { store.delete_user_refresh_tokens(uid).await.unwrap() })
        };
        for outcome in futures::future::join_all(refreshes).await {
            assert!(matches!(
                outcome.unwrap(),
                RefreshOutcome::Rotated | RefreshOutcome::GraceReplay(_) | RefreshOutcome::Unknown
            ));
        }
        assert!(sweep.await.unwrap() >= 2);
        assert!(store.is_empty(), "nothing written behind the sweep");
        assert_eq!(
            store
                .refresh(uid, &step_at(sid, jti, NOW + 1, b"x"))
                .await
                .unwrap(),
            RefreshOutcome::Unknown
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_past_its_end_or_its_tokens_exp_is_expired_and_ended() {
    let (store, uid) = store_and_user();
    let (sid, jti) = session(&store, uid, NOW).await;
    let past_end = step_at(sid, jti, NOW + 30 * DAY, b"x");
    assert_eq!(
        store.refresh(uid, &past_end).await.unwrap(),
        RefreshOutcome::Expired
    );
    assert!(names(&store, uid).is_empty(), "ended");

    let (sid, jti) = session(&store, uid, NOW).await;
    let past_exp = step_at(sid, jti, NOW + HOUR, b"x");
    assert_eq!(
        store.refresh(uid, &past_exp).await.unwrap(),
        RefreshOutcome::Expired
    );
    assert!(names(&store, uid).is_empty(), "ended");

    // The entry's TTL ran out on the store's clock while the caller's clock
    // says the token is still valid: the entry is gone (DEL returns 0), as in
    // Redis the session ends and the refresh is Unknown.
    let (sid, jti) = session(&store, uid, NOW).await;
    let (other, _) = session(&store, uid, NOW).await;
    let mut longer = new_start(NOW);
    longer.exp = NOW + 2 * HOUR;
    store.start_session(uid, &longer).await.unwrap();
    tokio::time::advance(Duration::from_secs(HOUR + 1)).await;
    let lagging = step_at(sid, jti, NOW + 60, b"x");
    assert_eq!(
        store.refresh(uid, &lagging).await.unwrap(),
        RefreshOutcome::Unknown
    );
    assert!(entry(&store, uid, sid).is_none());
    assert!(
        entry(&store, uid, other).is_some(),
        "others stay until pruned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_with_one_token_rotate_once_and_replay_the_same_bytes() {
    let (store, uid) = store_and_user();
    let (sid, jti) = session(&store, uid, NOW).await;
    let tasks: Vec<_> = (0..20u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let step = step_at(sid, jti, NOW + 1, &[i; 32]);
                (
                    step.sealed_successor.clone(),
                    store.refresh(uid, &step).await.unwrap(),
                )
            })
        })
        .collect();
    let outcomes: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<&Vec<u8>> = outcomes
        .iter()
        .filter(|(_, o)| *o == RefreshOutcome::Rotated)
        .map(|(sealed, _)| sealed)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation");
    for (_, outcome) in outcomes
        .iter()
        .filter(|(_, o)| *o != RefreshOutcome::Rotated)
    {
        assert_eq!(*outcome, RefreshOutcome::GraceReplay(winners[0].clone()));
    }
    assert_eq!(store.list_sessions(uid, NOW + 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_legacy_entry_is_taken_once_and_starts_a_session() {
    let (store, uid) = store_and_user();
    let legacy = Uuid::new_v4();
    set_legacy(&store, uid, legacy);
    let start = new_start(NOW);
    assert!(store.rotate_legacy(uid, legacy, &start).await.unwrap());
    assert_eq!(
        names(&store, uid),
        sorted(vec![token_key(uid, start.jti), index_key(uid)])
    );
    assert_eq!(entry(&store, uid, start.sid).unwrap().jti, start.jti);

    let again = new_start(NOW);
    assert!(!store.rotate_legacy(uid, legacy, &again).await.unwrap());
    assert!(
        !store
            .rotate_legacy(uid, Uuid::new_v4(), &again)
            .await
            .unwrap()
    );
    assert!(entry(&store, uid, again.sid).is_none(), "nothing started");
}

#[tokio::test]
async fn list_sessions_prunes_and_orders_by_last_use() {
    let (store, uid) = store_and_user();
    let (old, _) = session(&store, uid, NOW).await;
    let (used, jti) = session(&store, uid, NOW).await;
    rotate(&store, uid, used, jti, NOW + 20).await;
    let (tie, _) = session(&store, uid, NOW + 20).await;
    let mut short = new_start(NOW);
    short.exp = NOW + 50;
    store.start_session(uid, &short).await.unwrap();
    let mut ending = new_start(NOW);
    ending.ends_at = NOW + 60;
    store.start_session(uid, &ending).await.unwrap();

    let listed = store.list_sessions(uid, NOW + 60).await.unwrap();
    let mut newest = [used, tie];
    newest.sort();
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![newest[0], newest[1], old]
    );
    let used_info = listed.iter().find(|s| s.id == used).unwrap();
    assert_eq!(
        (used_info.created_at, used_info.last_used_at),
        (NOW, NOW + 20)
    );
    assert_eq!(
        (used_info.user_agent.as_str(), used_info.ip.as_str()),
        ("later", "192.0.2.1")
    );

    for pruned in [&short, &ending] {
        assert!(entry(&store, uid, pruned.sid).is_none());
        assert!(value(&store, &token_key(uid, pruned.jti)).is_none());
    }
    assert!(
        store
            .list_sessions(Uuid::new_v4(), NOW)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn names_follow_their_session_on_the_in_process_store() {
    let (store, uid) = store_and_user();
    names_follow_their_session(&SHAPE, &store, uid, NOW).await;
}

#[tokio::test(start_paused = true)]
async fn a_name_is_kept_in_the_index_entry_only_and_changes_nothing_else() {
    let (store, uid) = store_and_user();
    let (sid, jti) = session(&store, uid, NOW).await;
    let before = entry(&store, uid, sid).unwrap();
    let token_before = value(&store, &token_key(uid, jti));

    assert!(
        store
            .rename_session(uid, sid, name("work laptop"), NOW)
            .await
            .unwrap()
    );

    assert_eq!(
        entry(&store, uid, sid),
        Some(SessionEntry {
            name: Some("work laptop".into()),
            ..before.clone()
        })
    );
    assert_eq!(value(&store, &token_key(uid, jti)), token_before);
    assert_eq!(
        ttl(&store, &index_key(uid)),
        Some(HOUR),
        "the index TTL stays"
    );
    assert_eq!(
        names(&store, uid),
        sorted(vec![token_key(uid, jti), index_key(uid)])
    );

    // Kept by a rotation, which changes the rest of the entry as before.
    let next = rotate(&store, uid, sid, jti, NOW + 5).await;
    let rotated = entry(&store, uid, sid).unwrap();
    assert_eq!(rotated.jti, next);
    assert_eq!(rotated.name.as_deref(), Some("work laptop"));

    // Cleared: the entry is as it would be unnamed, its JSON without `name`.
    assert!(store.rename_session(uid, sid, None, NOW + 5).await.unwrap());
    let cleared = entry(&store, uid, sid).unwrap();
    assert_eq!(
        cleared,
        SessionEntry {
            name: None,
            ..rotated
        }
    );
    let json = serde_json::to_value(&cleared).unwrap();
    assert!(json.get("name").is_none(), "{json}");
}

#[tokio::test]
async fn ending_one_or_the_other_sessions_counts_and_removes_their_keys() {
    let (store, uid) = store_and_user();
    let (s1, j1) = session(&store, uid, NOW).await;
    let (s2, j2) = session(&store, uid, NOW).await;
    let (s3, j3) = session(&store, uid, NOW).await;
    let (s4, _) = session(&store, uid, NOW).await;
    rotate(&store, uid, s1, j1, NOW + 1).await;
    rotate(&store, uid, s2, j2, NOW + 1).await;

    assert!(store.end_session(uid, s1).await.unwrap());
    assert!(!store.end_session(uid, s1).await.unwrap());
    assert!(!store.end_session(uid, Uuid::new_v4()).await.unwrap());
    assert!(
        value(&store, &grace_key(uid, j1)).is_none(),
        "its grace successor too"
    );

    assert_eq!(
        store.end_other_sessions(uid, Some(s3), None).await.unwrap(),
        2
    );
    assert_eq!(
        store.end_other_sessions(uid, Some(s3), None).await.unwrap(),
        0
    );
    assert!(entry(&store, uid, s2).is_none() && entry(&store, uid, s4).is_none());
    assert_eq!(
        names(&store, uid),
        sorted(vec![
            token_key(uid, j3),
            index_key(uid),
            format!("{uid}:nolegacy")
        ])
    );

    // The last session ended: the emptied index goes, as an empty hash does.
    assert_eq!(
        store
            .end_other_sessions(uid, Some(Uuid::new_v4()), None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        names(&store, uid),
        vec![format!("{uid}:nolegacy")],
        "only the guard against tokens from before sessions is left"
    );
}

#[tokio::test]
async fn signing_out_everywhere_removes_every_key_of_the_user_and_nothing_else() {
    let store = MemoryTokenRepository::new();
    let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let (sid, jti) = session(&store, ada, NOW).await;
    rotate(&store, ada, sid, jti, NOW + 1).await;
    session(&store, ada, NOW).await;
    session(&store, bob, NOW).await;
    // Two tokens, a grace successor and the index.
    assert_eq!(store.delete_user_refresh_tokens(ada).await.unwrap(), 4);
    assert!(names(&store, ada).is_empty());
    assert_eq!(names(&store, bob).len(), 2);
    assert_eq!(store.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn expired_keys_are_unusable_at_once_and_reclaimed_by_the_sweep() {
    let store = MemoryTokenRepository::new();
    let _sweeper = store.spawn_sweeper(Duration::from_secs(10));
    let (uid, other) = (Uuid::new_v4(), Uuid::new_v4());
    let mut brief = new_start(NOW);
    brief.exp = NOW + 3;
    store.start_session(uid, &brief).await.unwrap();
    let mut other_brief = new_start(NOW);
    other_brief.exp = NOW + 3;
    store.start_session(other, &other_brief).await.unwrap();
    session(&store, other, NOW).await;

    tokio::time::advance(Duration::from_secs(4)).await;
    // Expired but not yet swept: unusable already.
    assert_eq!(store.len(), 5);
    assert!(names(&store, uid).is_empty());
    let step = step_at(brief.sid, brief.jti, NOW + 1, b"x");
    assert_eq!(
        store.refresh(uid, &step).await.unwrap(),
        RefreshOutcome::Unknown
    );

    // The sweep reclaims the other expired keys without anyone reading them.
    tokio::time::advance(Duration::from_secs(10)).await;
    tokio::task::yield_now().await;
    assert_eq!(
        store.len(),
        2,
        "the other user's live token and its index are left"
    );
}

#[tokio::test(start_paused = true)]
async fn a_password_change_refuses_sessions_authenticated_with_the_previous_password() {
    let (store, uid) = store_and_user();
    let (keep, _) = session(&store, uid, NOW).await;
    let (other, _) = session(&store, uid, NOW).await;
    let change = CredentialChange {
        credential: "c2".into(),
    };
    let ended = store
        .end_other_sessions(uid, Some(keep), Some(change))
        .await
        .unwrap();
    assert_eq!(ended, 1);
    assert!(entry(&store, uid, other).is_none());

    // A sign-in that read the previous hash (credential c1) starts nothing.
    let stale = new_start(NOW);
    assert!(!store.start_session(uid, &stale).await.unwrap());
    assert!(value(&store, &token_key(uid, stale.jti)).is_none());
    assert!(entry(&store, uid, stale.sid).is_none());
    // One with the new password does.
    let fresh = SessionStart {
        credential: "c2".into(),
        ..new_start(NOW)
    };
    assert!(store.start_session(uid, &fresh).await.unwrap());
    // The guard lasts as long as a request can be in flight, then lifts.
    tokio::time::advance(Duration::from_secs(CREDENTIAL_GUARD_SECS + 1)).await;
    let later = new_start(NOW);
    assert!(store.start_session(uid, &later).await.unwrap());
}

#[tokio::test]
async fn ending_the_other_sessions_refuses_tokens_from_before_sessions_and_only_those_are_legacy() {
    let (store, uid) = store_and_user();
    // A session's own entry is not a legacy entry.
    let (_, jti) = session(&store, uid, NOW).await;
    let start = new_start(NOW);
    assert!(!store.rotate_legacy(uid, jti, &start).await.unwrap());
    assert!(value(&store, &token_key(uid, jti)).is_some(), "not taken");

    let legacy = Uuid::new_v4();
    set_legacy(&store, uid, legacy);
    store.end_other_sessions(uid, None, None).await.unwrap();
    assert!(!store.rotate_legacy(uid, legacy, &start).await.unwrap());
    assert!(
        entry(&store, uid, start.sid).is_none(),
        "no session started"
    );
}

// ------------------------------------------------------------ attempt counters

pub(super) const WINDOW: Duration = Duration::from_secs(60);

pub(super) fn count(store: &MemoryTokenRepository, key: &str) -> Option<u64> {
    match value(store, key) {
        Some(Value::Counter(count)) => Some(count),
        None => None,
        other => panic!("{key}: {other:?}"),
    }
}

fn limited(retry_after: Duration) -> RateDecision {
    RateDecision::Limited { retry_after }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_counts_on_every_counter_or_on_none() {
    let store = MemoryTokenRepository::new();
    let both = counters(&[("ratelimit:a", 2), ("ratelimit:b", 3)]);
    for _ in 0..2 {
        assert_eq!(
            store.attempt(&both, WINDOW).await.unwrap(),
            RateDecision::Allowed
        );
    }
    // `a` is full: refused, and `b` is not counted either.
    assert_eq!(store.attempt(&both, WINDOW).await.unwrap(), limited(WINDOW));
    assert_eq!(
        (count(&store, "ratelimit:a"), count(&store, "ratelimit:b")),
        (Some(2), Some(2))
    );
    // Each counter is one key, its window as its TTL.
    assert_eq!(ttl(&store, "ratelimit:a"), Some(WINDOW.as_secs()));
    let only_b = counters(&[("ratelimit:b", 3)]);
    assert_eq!(
        store.attempt(&only_b, WINDOW).await.unwrap(),
        RateDecision::Allowed
    );
    assert_eq!(
        store.attempt(&only_b, WINDOW).await.unwrap(),
        limited(WINDOW)
    );
    assert_eq!(
        store.attempt(&[], WINDOW).await.unwrap(),
        RateDecision::Allowed
    );
}

#[tokio::test(start_paused = true)]
async fn the_window_starts_with_the_first_count_and_the_longest_wait_is_answered() {
    let store = MemoryTokenRepository::new();
    let a = counters(&[("ratelimit:a", 2)]);
    store.attempt(&a, WINDOW).await.unwrap();
    tokio::time::advance(Duration::from_secs(40)).await;
    // `b` starts its window now; `a` keeps its own.
    let both = counters(&[("ratelimit:a", 2), ("ratelimit:b", 1)]);
    assert_eq!(
        store.attempt(&both, WINDOW).await.unwrap(),
        RateDecision::Allowed
    );
    assert_eq!(ttl(&store, "ratelimit:a"), Some(20));
    assert_eq!(
        store.attempt(&both, WINDOW).await.unwrap(),
        limited(WINDOW),
        "the longer of the full counters' windows"
    );
    assert_eq!(
        store.attempt(&a, WINDOW).await.unwrap(),
        limited(Duration::from_secs(20))
    );
    // Once a window ends, its counter lets attempts in again.
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(
        store.attempt(&a, WINDOW).await.unwrap(),
        RateDecision::Allowed
    );
    assert_eq!(count(&store, "ratelimit:a"), Some(1));
    assert_eq!(ttl(&store, "ratelimit:a"), Some(WINDOW.as_secs()));
}

#[tokio::test(start_paused = true)]
async fn a_refund_takes_one_back_never_below_zero_and_keeps_the_window() {
    let store = MemoryTokenRepository::new();
    let full = counters(&[("ratelimit:a", 2)]);
    for _ in 0..2 {
        store.attempt(&full, WINDOW).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    store.refund(&["ratelimit:a".into()]).await.unwrap();
    assert_eq!(count(&store, "ratelimit:a"), Some(1));
    assert_eq!(ttl(&store, "ratelimit:a"), Some(30), "the window is kept");
    assert_eq!(
        store.attempt(&full, WINDOW).await.unwrap(),
        RateDecision::Allowed
    );
    for _ in 0..3 {
        store
            .refund(&["ratelimit:a".into(), "ratelimit:gone".into()])
            .await
            .unwrap();
    }
    assert_eq!(count(&store, "ratelimit:a"), Some(0), "never below zero");
    assert_eq!(
        count(&store, "ratelimit:gone"),
        None,
        "a gone counter stays gone"
    );
}

#[tokio::test(start_paused = true)]
async fn cleared_counters_are_gone_and_others_kept() {
    let store = MemoryTokenRepository::new();
    let all = counters(&[
        ("ratelimit:a", 1),
        ("ratelimit:b", 1),
        ("ratelimit:kept", 1),
    ]);
    store.attempt(&all, WINDOW).await.unwrap();
    store
        .clear(&[
            "ratelimit:a".into(),
            "ratelimit:b".into(),
            "ratelimit:never".into(),
        ])
        .await
        .unwrap();
    assert_eq!(
        (count(&store, "ratelimit:a"), count(&store, "ratelimit:b")),
        (None, None)
    );
    assert_eq!(count(&store, "ratelimit:kept"), Some(1));
    assert_eq!(
        store
            .attempt(&counters(&[("ratelimit:a", 1)]), WINDOW)
            .await
            .unwrap(),
        RateDecision::Allowed,
        "a cleared counter starts a new window"
    );
}

#[tokio::test(start_paused = true)]
async fn counters_are_swept_when_their_window_ends() {
    let store = MemoryTokenRepository::new();
    let _sweeper = store.spawn_sweeper(Duration::from_secs(10));
    // Let the sweeper start its clock.
    tokio::task::yield_now().await;
    let uid = Uuid::new_v4();
    session(&store, uid, NOW).await;
    store
        .attempt(&counters(&[("ratelimit:a", 5)]), WINDOW)
        .await
        .unwrap();
    assert_eq!(store.len(), 3);

    tokio::time::advance(WINDOW + Duration::from_secs(10)).await;
    tokio::task::yield_now().await;
    assert_eq!(
        store.len(),
        2,
        "the counter is reclaimed, the session is not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_attempts_cannot_slip_past_a_limit() {
    let store = MemoryTokenRepository::new();
    let both = counters(&[("ratelimit:a", 5), ("ratelimit:b", 100)]);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (store, both) = (store.clone(), both.clone());
        tasks.spawn(async move { store.attempt(&both, WINDOW).await.unwrap() });
    }
    let decisions = tasks.join_all().await;
    let allowed = decisions
        .iter()
        .filter(|d| **d == RateDecision::Allowed)
        .count();
    assert_eq!(allowed, 5, "{decisions:?}");
    assert_eq!(
        count(&store, "ratelimit:b"),
        Some(5),
        "the refused burn nothing"
    );
}
