//! The two-step sign-in's store contract, run on both stores: pending
//! sign-ins (`<uid>:mfa:<id>`: created, counted, removed at the maximum,
//! taken once, expiring, swept by sign-out everywhere, never a session) and
//! the assurance a second factor raises a session to (stored with the
//! session, kept by rotations and renames, gone with it).

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::{Shape, listed_name, name, rotated};
use crate::model::{Assurance, RefreshOutcome, TokenRepository};

/// The mfa token's lifetime in these scenarios, but where they expire one.
const PENDING: Duration = Duration::from_secs(600);

/// What a TOTP code raises a session to.
pub(in crate::repository) fn totp() -> Assurance {
    Assurance {
        acr: "aal2".into(),
        amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
    }
}

/// What a recovery code raises a session to.
fn recovery_code() -> Assurance {
    Assurance {
        acr: "aal2".into(),
        amr: vec!["pwd".into(), "mfa".into()],
    }
}

/// Polls `pending_sign_in` until it answers `false`; panics after `deadline`.
async fn until_gone(store: &impl TokenRepository, uid: Uuid, id: Uuid, deadline: Duration) {
    let give_up = Instant::now() + deadline;
    while store.pending_sign_in(uid, id).await.unwrap() {
        assert!(
            Instant::now() < give_up,
            "pending sign-in {id} still there after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A pending sign-in exists once put, counts its failures one by one and is
/// removed by the failure that reaches the maximum; a take removes it once;
/// each id, and each user's, stands alone; putting it again starts over.
pub(in crate::repository) async fn pending_sign_ins_count_failures_and_work_once(
    store: &impl TokenRepository,
    uid: Uuid,
) {
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    assert!(!store.pending_sign_in(uid, a).await.unwrap(), "never put");
    assert_eq!(store.fail_pending_sign_in(uid, a, 5).await.unwrap(), None);
    assert!(!store.take_pending_sign_in(uid, a).await.unwrap());
    for id in [a, b, c] {
        store.put_pending_sign_in(uid, id, PENDING).await.unwrap();
        assert!(store.pending_sign_in(uid, id).await.unwrap());
    }

    // Counted up to the maximum, which removes it.
    for expected in 1..=2 {
        let failures = store.fail_pending_sign_in(uid, a, 3).await.unwrap();
        assert_eq!(failures, Some(expected));
        assert!(store.pending_sign_in(uid, a).await.unwrap());
    }
    assert_eq!(
        store.fail_pending_sign_in(uid, a, 3).await.unwrap(),
        Some(3)
    );
    assert!(
        !store.pending_sign_in(uid, a).await.unwrap(),
        "removed at 3"
    );
    assert_eq!(store.fail_pending_sign_in(uid, a, 3).await.unwrap(), None);
    assert!(!store.take_pending_sign_in(uid, a).await.unwrap());

    // Taken once; the others untouched.
    assert!(store.take_pending_sign_in(uid, b).await.unwrap());
    assert!(!store.take_pending_sign_in(uid, b).await.unwrap(), "once");
    assert!(!store.pending_sign_in(uid, b).await.unwrap());
    assert_eq!(store.fail_pending_sign_in(uid, b, 5).await.unwrap(), None);
    assert!(store.pending_sign_in(uid, c).await.unwrap());

    // Another user's id of the same value is another key.
    let stranger = Uuid::new_v4();
    assert!(!store.pending_sign_in(stranger, c).await.unwrap());
    assert_eq!(
        store.fail_pending_sign_in(stranger, c, 1).await.unwrap(),
        None
    );
    assert!(!store.take_pending_sign_in(stranger, c).await.unwrap());
    assert!(store.pending_sign_in(uid, c).await.unwrap());

    // Put again: no failures.
    assert_eq!(
        store.fail_pending_sign_in(uid, c, 5).await.unwrap(),
        Some(1)
    );
    store.put_pending_sign_in(uid, c, PENDING).await.unwrap();
    assert_eq!(
        store.fail_pending_sign_in(uid, c, 5).await.unwrap(),
        Some(1)
    );
    // A maximum of one: the first failure removes it.
    assert_eq!(
        store.fail_pending_sign_in(uid, c, 1).await.unwrap(),
        Some(2)
    );
    assert!(!store.pending_sign_in(uid, c).await.unwrap());
    let d = Uuid::new_v4();
    store.put_pending_sign_in(uid, d, PENDING).await.unwrap();
    assert_eq!(
        store.fail_pending_sign_in(uid, d, 1).await.unwrap(),
        Some(1)
    );
    assert!(!store.pending_sign_in(uid, d).await.unwrap());
}

/// Of `n` concurrent takes of one pending sign-in exactly one gets it; of
/// `n` concurrent failures with a maximum of 5, the first five count 1 to 5
/// (the fifth removes it) and the rest find nothing.
pub(in crate::repository) async fn concurrent_steps_on_a_pending_sign_in_are_atomic<S>(
    store: &S,
    uid: Uuid,
) where
    S: TokenRepository + Clone + 'static,
{
    const N: usize = 20;
    let id = Uuid::new_v4();
    store.put_pending_sign_in(uid, id, PENDING).await.unwrap();
    let mut takes = tokio::task::JoinSet::new();
    for _ in 0..N {
        let store = store.clone();
        takes.spawn(async move { store.take_pending_sign_in(uid, id).await.unwrap() });
    }
    let taken = takes.join_all().await;
    assert_eq!(taken.iter().filter(|t| **t).count(), 1, "{taken:?}");
    assert!(!store.pending_sign_in(uid, id).await.unwrap());

    let id = Uuid::new_v4();
    store.put_pending_sign_in(uid, id, PENDING).await.unwrap();
    let mut fails = tokio::task::JoinSet::new();
    for _ in 0..N {
        let store = store.clone();
        fails.spawn(async move { store.fail_pending_sign_in(uid, id, 5).await.unwrap() });
    }
    let mut counted = fails.join_all().await;
    counted.sort();
    let mut expected = vec![None; N - 5];
    expected.extend((1..=5).map(Some));
    assert_eq!(counted, expected);
    assert!(!store.pending_sign_in(uid, id).await.unwrap());
}

/// A pending sign-in expires after its TTL, and a failure does not extend
/// it (nor keep it forever).
pub(in crate::repository) async fn a_pending_sign_in_expires_with_its_ttl(
    store: &impl TokenRepository,
    uid: Uuid,
) {
    let (id, failed) = (Uuid::new_v4(), Uuid::new_v4());
    let ttl = Duration::from_secs(1);
    let before = Instant::now();
    store.put_pending_sign_in(uid, id, ttl).await.unwrap();
    store.put_pending_sign_in(uid, failed, ttl).await.unwrap();
    let seen = store.pending_sign_in(uid, id).await.unwrap();
    let failures = store.fail_pending_sign_in(uid, failed, 5).await.unwrap();
    // Only what was read well inside the second says it was there.
    if before.elapsed() < Duration::from_millis(500) {
        assert!(seen);
        assert_eq!(failures, Some(1));
    }
    until_gone(store, uid, id, Duration::from_secs(30)).await;
    until_gone(store, uid, failed, Duration::from_secs(30)).await;
    assert!(
        before.elapsed() >= Duration::from_millis(900),
        "not before its TTL"
    );
    for gone in [id, failed] {
        assert_eq!(
            store.fail_pending_sign_in(uid, gone, 5).await.unwrap(),
            None
        );
        assert!(!store.take_pending_sign_in(uid, gone).await.unwrap());
    }
}

/// No session step sees a pending sign-in (listing, ending one or the
/// others, refreshing, a legacy rotation, raising), and sign-out everywhere
/// removes it with the user's other keys.
pub(in crate::repository) async fn a_pending_sign_in_is_no_session_and_goes_with_sign_out(
    shape: &Shape,
    store: &impl TokenRepository,
    uid: Uuid,
    now: u64,
) {
    let (sid, _) = shape.session(store, uid, now).await;
    let id = Uuid::new_v4();
    store.put_pending_sign_in(uid, id, PENDING).await.unwrap();
    let listed = |sessions: Vec<crate::model::SessionInfo>| -> Vec<Uuid> {
        sessions.into_iter().map(|s| s.id).collect()
    };
    assert_eq!(listed(store.list_sessions(uid, now).await.unwrap()), [sid]);

    assert!(!store.end_session(uid, id).await.unwrap());
    let step = shape.step(id, id, Uuid::new_v4(), now, b"x".to_vec());
    assert_eq!(
        store.refresh(uid, &step).await.unwrap(),
        RefreshOutcome::Unknown
    );
    let start = shape.new_start(now, 10);
    assert!(!store.rotate_legacy(uid, id, &start).await.unwrap());
    assert!(!store.raise_session(uid, id, &totp(), now).await.unwrap());
    assert_eq!(store.session_assurance(uid, id).await.unwrap(), None);
    assert!(store.pending_sign_in(uid, id).await.unwrap(), "untouched");
    assert_eq!(listed(store.list_sessions(uid, now).await.unwrap()), [sid]);

    // Ending the other sessions, or all of them, counts sessions only.
    let ended = store.end_other_sessions(uid, Some(sid), None).await;
    assert_eq!(ended.unwrap(), 0);
    assert_eq!(store.end_other_sessions(uid, None, None).await.unwrap(), 1);
    assert!(store.list_sessions(uid, now).await.unwrap().is_empty());
    assert!(
        store.pending_sign_in(uid, id).await.unwrap(),
        "not a session"
    );

    // Sign-out everywhere: a session's entry and index, the legacy guard
    // just written, and the pending sign-in.
    shape.session(store, uid, now).await;
    assert_eq!(store.delete_user_refresh_tokens(uid).await.unwrap(), 4);
    assert!(!store.pending_sign_in(uid, id).await.unwrap());
    assert!(!store.take_pending_sign_in(uid, id).await.unwrap());
    assert_eq!(store.fail_pending_sign_in(uid, id, 5).await.unwrap(), None);
    assert_eq!(store.delete_user_refresh_tokens(uid).await.unwrap(), 0);
}

/// The raised assurance of one session: read back, on that session only,
/// kept by rotations and renames, replaced by a new raise, refused (`false`,
/// nothing written) for an unknown session, another user's, or one past its
/// token's `exp` (which is ended); gone with its session, ended or signed
/// out everywhere.
pub(in crate::repository) async fn a_raised_assurance_follows_its_session(
    shape: &Shape,
    store: &impl TokenRepository,
    uid: Uuid,
    now: u64,
) {
    let (a, a_jti) = shape.session(store, uid, now).await;
    let (b, _) = shape.session(store, uid, now).await;
    assert_eq!(
        store.session_assurance(uid, a).await.unwrap(),
        None,
        "never raised"
    );
    assert!(store.raise_session(uid, a, &totp(), now).await.unwrap());
    assert_eq!(store.session_assurance(uid, a).await.unwrap(), Some(totp()));
    assert_eq!(
        store.session_assurance(uid, b).await.unwrap(),
        None,
        "only that one"
    );

    // Not a session of the user's: nothing raised.
    let stranger = Uuid::new_v4();
    assert!(
        !store
            .raise_session(stranger, a, &totp(), now)
            .await
            .unwrap()
    );
    assert_eq!(store.session_assurance(stranger, a).await.unwrap(), None);
    let unknown = Uuid::new_v4();
    assert!(
        !store
            .raise_session(uid, unknown, &totp(), now)
            .await
            .unwrap()
    );
    assert_eq!(store.session_assurance(uid, unknown).await.unwrap(), None);
    assert_eq!(store.list_sessions(uid, now).await.unwrap().len(), 2);

    // Rotations and renames keep it, and it keeps the name.
    let a_jti = rotated(
        store,
        uid,
        &shape.step(a, a_jti, Uuid::new_v4(), now + 1, a_jti.as_bytes().to_vec()),
    )
    .await;
    assert!(
        store
            .rename_session(uid, a, name("laptop"), now + 1)
            .await
            .unwrap()
    );
    assert_eq!(store.session_assurance(uid, a).await.unwrap(), Some(totp()));
    let a_jti = rotated(
        store,
        uid,
        &shape.step(a, a_jti, Uuid::new_v4(), now + 2, a_jti.as_bytes().to_vec()),
    )
    .await;
    assert!(store.rename_session(uid, a, None, now + 2).await.unwrap());
    assert_eq!(store.session_assurance(uid, a).await.unwrap(), Some(totp()));
    assert!(
        store
            .rename_session(uid, a, name("work"), now + 2)
            .await
            .unwrap()
    );

    // Raised again: replaced (an empty `amr` too), and the name stays.
    let recovery = recovery_code();
    assert!(
        store
            .raise_session(uid, a, &recovery, now + 2)
            .await
            .unwrap()
    );
    assert_eq!(
        store.session_assurance(uid, a).await.unwrap(),
        Some(recovery)
    );
    let bare = Assurance {
        acr: "aal2".into(),
        amr: Vec::new(),
    };
    assert!(store.raise_session(uid, a, &bare, now + 2).await.unwrap());
    rotated(
        store,
        uid,
        &shape.step(a, a_jti, Uuid::new_v4(), now + 3, a_jti.as_bytes().to_vec()),
    )
    .await;
    assert_eq!(store.session_assurance(uid, a).await.unwrap(), Some(bare));
    assert!(store.raise_session(uid, a, &totp(), now + 3).await.unwrap());
    assert_eq!(
        listed_name(store, uid, a, now + 3).await.as_deref(),
        Some("work")
    );

    // Past its token's exp: refused, and the session is ended.
    assert!(
        !store
            .raise_session(uid, b, &totp(), now + shape.life)
            .await
            .unwrap()
    );
    assert_eq!(store.session_assurance(uid, b).await.unwrap(), None);
    let ids: Vec<Uuid> = store
        .list_sessions(uid, now + 3)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, [a], "the expired one is ended");

    // Ended: the assurance goes with it.
    assert!(store.end_session(uid, a).await.unwrap());
    assert_eq!(store.session_assurance(uid, a).await.unwrap(), None);
    assert!(!store.raise_session(uid, a, &totp(), now + 3).await.unwrap());

    // Signed out everywhere: gone too, and a new session is not raised.
    let (c, _) = shape.session(store, uid, now + 3).await;
    assert!(store.raise_session(uid, c, &totp(), now + 3).await.unwrap());
    assert!(store.delete_user_refresh_tokens(uid).await.unwrap() > 0);
    assert_eq!(store.session_assurance(uid, c).await.unwrap(), None);
    assert!(!store.raise_session(uid, c, &totp(), now + 3).await.unwrap());
    let (d, _) = shape.session(store, uid, now + 4).await;
    assert_eq!(store.session_assurance(uid, d).await.unwrap(), None);
}
