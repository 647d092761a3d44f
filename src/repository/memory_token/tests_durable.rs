//! The durable copy (issue 13): what a step answered is in the SQLite table
//! the moment it is answered, so a store opened on the same file right then
//! (as a restart after `kill -9` would) holds it; failed commits answer 503
//! and the store recovers on its own. Real time: the writer's SQLite
//! connection runs on a thread of its own.

use std::path::Path;
use std::time::Duration;

use sqlx::{Connection as _, SqliteConnection};

use super::keyspace::{Value, grace_key, index_key, pending_sign_in_key, token_key};
use super::tests::{NOW, WINDOW, entry, names, new_start, rotate, session, step_at, ttl, value};
use super::*;
use crate::error::AppError;
use crate::model::RefreshOutcome;
use crate::repository::test_sessions::{counters, listed_name, name, sorted, totp, unix_now};

const DB: &str = "tokens.db";
const SNAPSHOT: &str = "refresh-tokens.json";

async fn open(dir: &Path) -> MemoryTokenRepository {
    open_waiting(dir, COMMIT_WAIT).await
}

/// A durable store in a new folder (removed when dropped).
async fn open_new() -> (tempfile::TempDir, MemoryTokenRepository) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    (dir, store)
}

async fn open_waiting(dir: &Path, commit_wait: Duration) -> MemoryTokenRepository {
    MemoryTokenRepository::open(&dir.join(DB), &dir.join(SNAPSHOT), commit_wait)
        .await
        .expect("open the durable store")
}

async fn connect(dir: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", dir.join(DB).display()))
        .await
        .unwrap()
}

/// The rows of the table, by key.
async fn rows(dir: &Path) -> Vec<String> {
    let mut conn = connect(dir).await;
    sqlx::query_scalar("SELECT key FROM token_keys ORDER BY key")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_answered_change_is_on_disk_sessions_grace_successors_and_sign_outs() {
    let (dir, store) = open_new().await;
    let uid = Uuid::new_v4();
    let (sid, jti) = session(&store, uid, NOW).await;
    let first = step_at(sid, jti, NOW + 1, &[0, 1, 2, 255]);
    assert_eq!(
        store.refresh(uid, &first).await.unwrap(),
        RefreshOutcome::Rotated
    );
    let (other, _) = session(&store, uid, NOW + 2).await;
    let (ended, _) = session(&store, uid, NOW + 3).await;
    assert!(store.end_session(uid, ended).await.unwrap());
    let gone = Uuid::new_v4();
    session(&store, gone, NOW).await;
    assert_eq!(store.delete_user_refresh_tokens(gone).await.unwrap(), 2);
    let sessions = store.list_sessions(uid, NOW + 3).await.unwrap();

    // Opened at once on the same file, while the first store still runs:
    // what a restart right after a crash would read.
    let restored = open(dir.path()).await;
    assert_eq!(names(&restored, uid), names(&store, uid));
    assert_eq!(
        names(&restored, uid),
        sorted(vec![
            token_key(uid, first.new_jti),
            grace_key(uid, jti),
            index_key(uid),
            token_key(uid, entry(&store, uid, other).unwrap().jti),
        ])
    );
    assert!(names(&restored, gone).is_empty(), "signed out stays out");
    for (key, left) in restored.live_entries(&format!("{uid}:")) {
        let before = store.live_entries(&key)[0].1;
        let gap = before.abs_diff(left);
        assert!(
            gap < Duration::from_secs(1),
            "{key}: {left:?} vs {before:?}"
        );
    }
    assert_eq!(entry(&restored, uid, sid), entry(&store, uid, sid));
    assert_eq!(
        restored.list_sessions(uid, NOW + 3).await.unwrap(),
        sessions
    );
    // The grace successor replays, the rotated-away token is reuse.
    assert_eq!(
        restored
            .refresh(uid, &step_at(sid, jti, NOW + 4, b"x"))
            .await
            .unwrap(),
        RefreshOutcome::GraceReplay(vec![0, 1, 2, 255])
    );
    rotate(&restored, uid, sid, first.new_jti, NOW + 5).await;
    assert_eq!(
        restored
            .refresh(uid, &step_at(sid, jti, NOW + 6, b"x"))
            .await
            .unwrap(),
        RefreshOutcome::Reused
    );
}

#[tokio::test]
async fn a_session_name_is_on_disk_when_answered_kept_by_rotations_and_gone_with_its_session() {
    let (dir, store) = open_new().await;
    let uid = Uuid::new_v4();
    let (named, jti) = session(&store, uid, NOW).await;
    let (other, _) = session(&store, uid, NOW).await;
    assert!(
        store
            .rename_session(uid, named, name("work laptop"), NOW)
            .await
            .unwrap()
    );
    assert!(
        store
            .rename_session(uid, other, name("phone"), NOW)
            .await
            .unwrap()
    );

    // Reopened at once: the name is there, and a rotation keeps it.
    let restored = open(dir.path()).await;
    assert_eq!(entry(&restored, uid, named), entry(&store, uid, named));
    assert_eq!(
        listed_name(&restored, uid, named, NOW).await.as_deref(),
        Some("work laptop")
    );
    let next = rotate(&restored, uid, named, jti, NOW + 1).await;
    // Cleared on one, the other ended.
    assert!(
        restored
            .rename_session(uid, other, None, NOW + 1)
            .await
            .unwrap()
    );

    let reopened = open(dir.path()).await;
    assert_eq!(entry(&reopened, uid, named).unwrap().jti, next);
    assert_eq!(
        listed_name(&reopened, uid, named, NOW + 1).await.as_deref(),
        Some("work laptop"),
        "kept across the rotation, on disk"
    );
    assert_eq!(listed_name(&reopened, uid, other, NOW + 1).await, None);
    assert!(reopened.end_session(uid, named).await.unwrap());
    assert!(reopened.delete_user_refresh_tokens(uid).await.unwrap() > 0);

    let last = open(dir.path()).await;
    assert!(last.list_sessions(uid, NOW + 1).await.unwrap().is_empty());
    assert!(
        names(&last, uid).is_empty(),
        "the names went with their sessions"
    );
    assert!(
        !rows(dir.path())
            .await
            .iter()
            .any(|key| key.starts_with(&format!("{uid}:"))),
        "no row of the user's left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_have_one_winner_on_disk_too() {
    let (dir, store) = open_new().await;
    let uid = Uuid::new_v4();
    let (sid, jti) = session(&store, uid, NOW).await;
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let step = step_at(sid, jti, NOW + 1, b"sealed");
            tokio::spawn(async move { (store.refresh(uid, &step).await.unwrap(), step.new_jti) })
        })
        .collect();
    let mut winners = Vec::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            (RefreshOutcome::Rotated, new_jti) => winners.push(new_jti),
            (RefreshOutcome::GraceReplay(sealed), _) => assert_eq!(sealed, b"sealed"),
            (other, _) => panic!("{other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner");
    let restored = open(dir.path()).await;
    assert_eq!(
        names(&restored, uid),
        sorted(vec![
            token_key(uid, winners[0]),
            grace_key(uid, jti),
            index_key(uid)
        ])
    );
    assert_eq!(rows(dir.path()).await, names(&restored, uid));
}

#[tokio::test]
async fn expired_keys_are_skipped_and_deleted_at_start_and_by_the_sweep() {
    let (dir, store) = open_new().await;
    let (short, long) = (Uuid::new_v4(), Uuid::new_v4());
    let mut start = new_start(NOW);
    start.exp = NOW + 1;
    store.start_session(short, &start).await.unwrap();
    session(&store, long, NOW).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(names(&store, short).is_empty(), "unusable at once");

    let restored = open(dir.path()).await;
    assert!(names(&restored, short).is_empty());
    assert_eq!(names(&restored, long).len(), 2);
    assert_eq!(
        rows(dir.path()).await,
        names(&restored, long),
        "deleted at start"
    );

    let mut start = new_start(NOW);
    start.exp = NOW + 1;
    restored.start_session(short, &start).await.unwrap();
    assert_eq!(rows(dir.path()).await.len(), 4);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(restored.sweep_expired(), 2);
    restored.ping().await.unwrap();
    assert_eq!(rows(dir.path()).await, names(&restored, long), "swept");
}

#[tokio::test]
async fn counters_stay_in_memory() {
    let (dir, store) = open_new().await;
    let uid = Uuid::new_v4();
    session(&store, uid, NOW).await;
    store
        .attempt(&counters(&[("ratelimit:a", 5)]), WINDOW)
        .await
        .unwrap();
    assert_eq!(store.len(), 3);
    store.ping().await.unwrap();
    assert_eq!(rows(dir.path()).await, names(&store, uid), "no counter row");
    let restored = open(dir.path()).await;
    assert_eq!(value(&restored, "ratelimit:a"), None);
    assert_eq!(restored.len(), 2);
}

#[tokio::test]
async fn a_failing_commit_answers_503_and_the_store_recovers_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_waiting(dir.path(), Duration::from_millis(300)).await;
    let uid = Uuid::new_v4();
    let (sid, jti) = session(&store, uid, NOW).await;

    // Another connection holds the write lock: the writer cannot commit.
    let mut lock = connect(dir.path()).await;
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut lock)
        .await
        .unwrap();
    let step = step_at(sid, jti, NOW + 1, b"sealed");
    let err = store.refresh(uid, &step).await.unwrap_err();
    assert!(
        matches!(err, AppError::ServiceUnavailable { .. }),
        "{err:?}"
    );
    // Nor is what that step changed answered to anyone else.
    let err = store.list_sessions(uid, NOW + 1).await.unwrap_err();
    assert!(
        matches!(err, AppError::ServiceUnavailable { .. }),
        "{err:?}"
    );
    assert!(store.ping().await.is_err());

    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "not recovered");
    }
    // The retried commit holds the rotation: the client's retry gets the
    // same successor, on disk too.
    let restored = open(dir.path()).await;
    assert_eq!(
        restored
            .refresh(uid, &step_at(sid, jti, NOW + 2, b"x"))
            .await
            .unwrap(),
        RefreshOutcome::GraceReplay(b"sealed".to_vec())
    );
    assert_eq!(entry(&restored, uid, sid).unwrap().jti, step.new_jti);
}

#[tokio::test]
async fn a_snapshot_of_an_earlier_version_moves_into_the_table_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SNAPSHOT);
    let (uid, live, gone) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (other, grace) = (Uuid::new_v4(), Uuid::new_v4());
    let old = serde_json::json!({"entries": {
        // From before sessions: a whitelist entry's expiry only.
        token_key(uid, live): unix_now() + 600,
        token_key(uid, gone): unix_now() - 5,
        // Written by the version with sessions.
        grace_key(other, grace): {"expires_at": unix_now() + 60, "value": {"grace": "AAEC"}},
    }});
    std::fs::write(&path, old.to_string()).unwrap();

    let store = open(dir.path()).await;
    assert!(!path.exists(), "the snapshot is removed once moved");
    assert_eq!(store.len(), 2, "the expired entry is skipped");
    assert_eq!(
        value(&store, &token_key(uid, live)),
        Some(Value::legacy_token())
    );
    let left = ttl(&store, &token_key(uid, live)).unwrap();
    assert!((598..=600).contains(&left), "{left}");
    assert_eq!(
        value(&store, &grace_key(other, grace)),
        Some(Value::Grace(vec![0, 1, 2]))
    );
    assert_eq!(rows(dir.path()).await.len(), 2);

    let start = new_start(NOW);
    assert!(store.rotate_legacy(uid, live, &start).await.unwrap());
    let restored = open(dir.path()).await;
    assert!(!restored.rotate_legacy(uid, live, &start).await.unwrap());
    assert_eq!(restored.list_sessions(uid, NOW).await.unwrap().len(), 1);

    std::fs::write(&path, "{\"entries\": {\"k\": \"nonsense\"}}").unwrap();
    let err = MemoryTokenRepository::open(&dir.path().join(DB), &path, COMMIT_WAIT)
        .await
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("not a token-store snapshot"),
        "{err:#}"
    );
}

#[tokio::test]
async fn pending_sign_ins_and_raised_sessions_are_on_disk_when_answered() {
    let (dir, store) = open_new().await;
    let uid = Uuid::new_v4();
    let (sid, jti) = session(&store, uid, NOW).await;
    assert!(store.raise_session(uid, sid, &totp(), NOW).await.unwrap());
    let (failed, taken) = (Uuid::new_v4(), Uuid::new_v4());
    for id in [failed, taken] {
        store
            .put_pending_sign_in(uid, id, Duration::from_secs(300))
            .await
            .unwrap();
    }
    assert_eq!(
        store.fail_pending_sign_in(uid, failed, 3).await.unwrap(),
        Some(1)
    );

    // Reopened at once: all there, the failure counted, the expiry kept.
    let restored = open(dir.path()).await;
    assert_eq!(
        restored.session_assurance(uid, sid).await.unwrap(),
        Some(totp())
    );
    let key = pending_sign_in_key(uid, failed);
    assert_eq!(
        value(&restored, &key),
        Some(Value::PendingSignIn { failures: 1 })
    );
    let left = ttl(&restored, &key).unwrap();
    assert!((298..=300).contains(&left), "{left}");
    assert!(restored.pending_sign_in(uid, taken).await.unwrap());
    // A rotation keeps the assurance, on disk too; the take and the last
    // failure remove their keys there.
    rotate(&restored, uid, sid, jti, NOW + 1).await;
    assert!(restored.take_pending_sign_in(uid, taken).await.unwrap());
    assert_eq!(
        restored.fail_pending_sign_in(uid, failed, 2).await.unwrap(),
        Some(2)
    );

    let reopened = open(dir.path()).await;
    assert_eq!(
        reopened.session_assurance(uid, sid).await.unwrap(),
        Some(totp())
    );
    assert!(
        !reopened.take_pending_sign_in(uid, taken).await.unwrap(),
        "once"
    );
    assert!(!reopened.pending_sign_in(uid, failed).await.unwrap());
    assert_eq!(
        rows(dir.path()).await,
        names(&reopened, uid),
        "no row of a pending sign-in left"
    );
    assert!(reopened.end_session(uid, sid).await.unwrap());
    let last = open(dir.path()).await;
    assert_eq!(last.session_assurance(uid, sid).await.unwrap(), None);
}

#[tokio::test]
async fn ceremonies_are_on_disk_when_answered_and_a_take_stays_taken() {
    use crate::repository::test_sessions::{anonymous_ceremony, challenge, user_ceremony};

    let (dir, store) = open_new().await;
    let uid = Uuid::new_v4();
    let (c, d) = (challenge(uid), challenge(uid));
    let (mine, taken, anon) = (
        user_ceremony(uid, &c),
        user_ceremony(uid, &d),
        anonymous_ceremony(&c),
    );
    let ttl_of = Duration::from_secs(300);
    for (key, state) in [(&mine, "mine"), (&taken, "taken"), (&anon, "anon")] {
        store.put_ceremony(key, state, ttl_of).await.unwrap();
    }
    assert_eq!(
        store.take_ceremony(&taken).await.unwrap().as_deref(),
        Some("taken")
    );
    let anon_key = format!("webauthn:auth:{c}");
    assert_eq!(
        rows(dir.path()).await,
        sorted(vec![anon_key.clone(), format!("{uid}:webauthn:{c}")]),
        "on disk as answered: the put ones, not the taken one"
    );

    // Reopened at once: there with their expiry; the taken one stays taken.
    let restored = open(dir.path()).await;
    assert_eq!(restored.take_ceremony(&taken).await.unwrap(), None, "once");
    assert_eq!(
        value(&restored, &anon_key),
        Some(Value::Ceremony("anon".into()))
    );
    let left = ttl(&restored, &anon_key).unwrap();
    assert!((298..=300).contains(&left), "{left}");
    assert_eq!(
        restored.take_ceremony(&anon).await.unwrap().as_deref(),
        Some("anon")
    );
    // Sign-out everywhere removes the user's, on disk too.
    assert_eq!(restored.delete_user_refresh_tokens(uid).await.unwrap(), 1);
    assert_eq!(rows(dir.path()).await, Vec::<String>::new());

    let reopened = open(dir.path()).await;
    for key in [&mine, &taken, &anon] {
        assert_eq!(reopened.take_ceremony(key).await.unwrap(), None, "{key:?}");
    }
    assert!(reopened.is_empty());
}
