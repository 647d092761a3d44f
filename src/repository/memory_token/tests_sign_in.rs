//! The two-step sign-in's keys in process: the shared contract
//! (`test_sessions/sign_in.rs`) and what the keyspace holds.

use std::time::Duration;

use super::keyspace::{SessionEntry, Value, index_key, pending_sign_in_key, token_key};
use super::tests::{NOW, entry, names, rotate, session, ttl, value};
use super::*;
use crate::model::Assurance;
use crate::repository::test_sessions::{
    Shape, a_pending_sign_in_expires_with_its_ttl,
    a_pending_sign_in_is_no_session_and_goes_with_sign_out, a_raised_assurance_follows_its_session,
    concurrent_steps_on_a_pending_sign_in_are_atomic,
    pending_sign_ins_count_failures_and_work_once, sorted, totp,
};

const SHAPE: Shape = Shape {
    life: 3600,
    max_age: 30 * 24 * 3600,
    grace: 10,
    signin: ("first", "192.0.2.1"),
    refresh: ("later", "192.0.2.1"),
};

#[tokio::test]
async fn pending_sign_ins_count_failures_and_work_once_in_process() {
    pending_sign_ins_count_failures_and_work_once(&MemoryTokenRepository::new(), Uuid::new_v4())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_steps_on_a_pending_sign_in_are_atomic_in_process() {
    concurrent_steps_on_a_pending_sign_in_are_atomic(&MemoryTokenRepository::new(), Uuid::new_v4())
        .await;
}

#[tokio::test]
async fn a_pending_sign_in_expires_with_its_ttl_in_process() {
    a_pending_sign_in_expires_with_its_ttl(&MemoryTokenRepository::new(), Uuid::new_v4()).await;
}

#[tokio::test]
async fn a_pending_sign_in_is_no_session_and_goes_with_sign_out_in_process() {
    let store = MemoryTokenRepository::new();
    a_pending_sign_in_is_no_session_and_goes_with_sign_out(&SHAPE, &store, Uuid::new_v4(), NOW)
        .await;
}

#[tokio::test]
async fn a_raised_assurance_follows_its_session_in_process() {
    let store = MemoryTokenRepository::new();
    a_raised_assurance_follows_its_session(&SHAPE, &store, Uuid::new_v4(), NOW).await;
}

#[tokio::test(start_paused = true)]
async fn a_pending_sign_in_is_one_key_whose_failures_keep_its_expiry() {
    let (store, uid, id) = (MemoryTokenRepository::new(), Uuid::new_v4(), Uuid::new_v4());
    store
        .put_pending_sign_in(uid, id, Duration::from_secs(300))
        .await
        .unwrap();
    let key = pending_sign_in_key(uid, id);
    assert_eq!(key, format!("{uid}:mfa:{id}"));
    assert_eq!(names(&store, uid), vec![key.clone()], "a key of the user's");
    assert_eq!(
        value(&store, &key),
        Some(Value::PendingSignIn { failures: 0 })
    );
    assert_eq!(ttl(&store, &key), Some(300));

    tokio::time::advance(Duration::from_secs(100)).await;
    assert_eq!(
        store.fail_pending_sign_in(uid, id, 5).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        value(&store, &key),
        Some(Value::PendingSignIn { failures: 1 })
    );
    assert_eq!(ttl(&store, &key), Some(200), "the expiry stays");

    tokio::time::advance(Duration::from_millis(199_900)).await;
    assert!(store.pending_sign_in(uid, id).await.unwrap());
    tokio::time::advance(Duration::from_millis(100)).await;
    assert!(!store.pending_sign_in(uid, id).await.unwrap(), "expired");
    assert_eq!(store.fail_pending_sign_in(uid, id, 5).await.unwrap(), None);
    assert!(!store.take_pending_sign_in(uid, id).await.unwrap());
    assert_eq!(store.sweep_expired(), 0, "reclaimed by the take");
    assert!(store.is_empty());

    // A zero TTL still makes a key, for a millisecond (as `PX 1`).
    store
        .put_pending_sign_in(uid, id, Duration::ZERO)
        .await
        .unwrap();
    assert!(store.pending_sign_in(uid, id).await.unwrap());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(!store.pending_sign_in(uid, id).await.unwrap());
    assert_eq!(store.sweep_expired(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_raised_assurance_is_kept_in_the_index_entry_only() {
    let (store, uid) = (MemoryTokenRepository::new(), Uuid::new_v4());
    let (sid, jti) = session(&store, uid, NOW).await;
    let before = entry(&store, uid, sid).unwrap();
    let json = serde_json::to_value(&before).unwrap();
    assert!(
        json.get("acr").is_none() && json.get("amr").is_none(),
        "{json}"
    );
    let token_before = value(&store, &token_key(uid, jti));

    assert!(store.raise_session(uid, sid, &totp(), NOW).await.unwrap());
    let raised = entry(&store, uid, sid).unwrap();
    assert_eq!(
        raised,
        SessionEntry {
            acr: Some("aal2".into()),
            amr: totp().amr,
            ..before.clone()
        }
    );
    let json = serde_json::to_value(&raised).unwrap();
    assert_eq!(json["acr"], "aal2");
    assert_eq!(json["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(value(&store, &token_key(uid, jti)), token_before);
    assert_eq!(ttl(&store, &index_key(uid)), Some(SHAPE.life));
    assert_eq!(
        names(&store, uid),
        sorted(vec![token_key(uid, jti), index_key(uid)])
    );

    let next = rotate(&store, uid, sid, jti, NOW + 5).await;
    let rotated = entry(&store, uid, sid).unwrap();
    assert_eq!(rotated.jti, next);
    assert_eq!((rotated.acr, rotated.amr), (raised.acr, raised.amr));
    assert_eq!(
        store.session_assurance(uid, sid).await.unwrap(),
        Some(Assurance {
            acr: "aal2".into(),
            amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
        })
    );
}
