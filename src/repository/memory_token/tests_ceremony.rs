//! WebAuthn ceremonies in process: the shared contract (`test_sessions.rs`)
//! and what the keyspace holds. (On disk: `tests_durable.rs`.)

use std::time::Duration;

use super::ceremony::ceremony_key;
use super::keyspace::Value;
use super::tests::{NOW, names, ttl, value};
use super::*;
use crate::repository::test_sessions::{
    Shape, a_ceremony_expires_with_its_ttl, a_ceremony_is_taken_once_and_replaced_by_a_put,
    a_users_ceremony_is_no_session_and_goes_with_sign_out, anonymous_ceremony, challenge,
    concurrent_takes_of_a_ceremony_have_one_winner, hostile_challenges_name_no_ceremony,
    user_ceremony,
};

const SHAPE: Shape = Shape {
    life: 3600,
    max_age: 30 * 24 * 3600,
    grace: 10,
    signin: ("first", "192.0.2.1"),
    refresh: ("later", "192.0.2.1"),
};

#[tokio::test]
async fn a_ceremony_is_taken_once_and_replaced_by_a_put_in_process() {
    let store = MemoryTokenRepository::new();
    a_ceremony_is_taken_once_and_replaced_by_a_put(&store, Uuid::new_v4()).await;
    assert!(store.is_empty(), "every take removed its key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takes_of_a_ceremony_have_one_winner_in_process() {
    let store = MemoryTokenRepository::new();
    concurrent_takes_of_a_ceremony_have_one_winner(&store, Uuid::new_v4()).await;
    assert!(store.is_empty());
}

#[tokio::test]
async fn a_ceremony_expires_with_its_ttl_in_process() {
    a_ceremony_expires_with_its_ttl(&MemoryTokenRepository::new(), Uuid::new_v4()).await;
}

#[tokio::test]
async fn a_users_ceremony_is_no_session_and_goes_with_sign_out_in_process() {
    let store = MemoryTokenRepository::new();
    a_users_ceremony_is_no_session_and_goes_with_sign_out(&SHAPE, &store, Uuid::new_v4(), NOW)
        .await;
    assert!(store.is_empty());
}

#[tokio::test]
async fn hostile_challenges_name_no_ceremony_in_process() {
    let store = MemoryTokenRepository::new();
    hostile_challenges_name_no_ceremony(&store, Uuid::new_v4()).await;
    assert!(store.is_empty(), "no key written, none left");
}

#[tokio::test(start_paused = true)]
async fn a_ceremony_is_one_key_whose_expiry_a_put_replaces() {
    let (store, uid) = (MemoryTokenRepository::new(), Uuid::new_v4());
    let c = challenge(uid);
    let (mine, anon) = (user_ceremony(uid, &c), anonymous_ceremony(&c));
    let five_minutes = Duration::from_secs(300);
    store
        .put_ceremony(&mine, "mine", five_minutes)
        .await
        .unwrap();
    store
        .put_ceremony(&anon, "anon", five_minutes)
        .await
        .unwrap();
    let key = ceremony_key(&mine).unwrap();
    let anon_key = ceremony_key(&anon).unwrap();
    assert_eq!(key, format!("{uid}:webauthn:{c}"));
    assert_eq!(anon_key, format!("webauthn:auth:{c}"));
    assert_eq!(names(&store, uid), vec![key.clone()], "a key of the user's");
    assert_eq!(value(&store, &key), Some(Value::Ceremony("mine".into())));
    assert_eq!(
        value(&store, &anon_key),
        Some(Value::Ceremony("anon".into()))
    );
    assert_eq!(ttl(&store, &key), Some(300));
    assert_eq!(ttl(&store, &anon_key), Some(300));

    // A put replaces the expiry too, shorter or longer.
    tokio::time::advance(Duration::from_secs(100)).await;
    let minute = Duration::from_secs(60);
    store.put_ceremony(&mine, "again", minute).await.unwrap();
    assert_eq!(ttl(&store, &key), Some(60));
    tokio::time::advance(Duration::from_millis(59_900)).await;
    assert_eq!(ttl(&store, &anon_key), Some(140));
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(store.take_ceremony(&mine).await.unwrap(), None, "expired");
    assert_eq!(store.len(), 1, "reclaimed by the take");
    assert_eq!(
        store.take_ceremony(&anon).await.unwrap().as_deref(),
        Some("anon")
    );
    assert!(store.is_empty());

    // A zero TTL still makes a key, for a millisecond (as `PX 1`).
    store
        .put_ceremony(&mine, "brief", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(store.len(), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(store.take_ceremony(&mine).await.unwrap(), None);
    assert!(store.is_empty());
    store.put_ceremony(&anon, "swept", minute).await.unwrap();
    tokio::time::advance(minute).await;
    assert_eq!(store.sweep_expired(), 1, "reclaimed by the sweep");
}
