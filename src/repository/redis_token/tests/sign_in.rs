//! The two-step sign-in's keys, on a single Redis and on Redis Cluster: the
//! shared contract (`test_sessions/sign_in.rs`), and how the keys look.

use redis::cluster_routing::Slot;

use super::*;
use crate::repository::test_sessions::{
    a_pending_sign_in_expires_with_its_ttl, a_pending_sign_in_is_no_session_and_goes_with_sign_out,
    a_raised_assurance_follows_its_session, concurrent_steps_on_a_pending_sign_in_are_atomic, name,
    pending_sign_ins_count_failures_and_work_once, totp,
};

on_both!(pending_sign_ins_count_failures_and_work_once_on_redis);
async fn pending_sign_ins_count_failures_and_work_once_on_redis(f: Fixture) {
    pending_sign_ins_count_failures_and_work_once(&f.repo, f.uid).await;
    f.finish().await;
}

on_both!(
    concurrent_steps_on_a_pending_sign_in_are_atomic_on_redis,
    multi_thread
);
async fn concurrent_steps_on_a_pending_sign_in_are_atomic_on_redis(f: Fixture) {
    concurrent_steps_on_a_pending_sign_in_are_atomic(&f.repo, f.uid).await;
    f.finish().await;
}

on_both!(a_pending_sign_in_expires_with_its_ttl_on_redis);
async fn a_pending_sign_in_expires_with_its_ttl_on_redis(f: Fixture) {
    a_pending_sign_in_expires_with_its_ttl(&f.repo, f.uid).await;
    f.finish().await;
}

on_both!(a_pending_sign_in_is_no_session_and_goes_with_sign_out_on_redis);
async fn a_pending_sign_in_is_no_session_and_goes_with_sign_out_on_redis(f: Fixture) {
    a_pending_sign_in_is_no_session_and_goes_with_sign_out(&SHAPE, &f.repo, f.uid, f.now).await;
    f.finish().await;
}

on_both!(a_raised_assurance_follows_its_session_on_redis);
async fn a_raised_assurance_follows_its_session_on_redis(f: Fixture) {
    a_raised_assurance_follows_its_session(&SHAPE, &f.repo, f.uid, f.now).await;
    f.finish().await;
}

on_both!(a_pending_sign_in_is_one_key_of_the_users_slot_that_keeps_its_ttl);
async fn a_pending_sign_in_is_one_key_of_the_users_slot_that_keeps_its_ttl(f: Fixture) {
    let id = Uuid::new_v4();
    f.repo
        .put_pending_sign_in(f.uid, id, Duration::from_secs(300))
        .await
        .unwrap();
    let key = f.repo.keys.pending_sign_in(f.uid, id);
    let prefix = match f.mode {
        Mode::Standalone => format!("{}:", f.uid),
        Mode::Cluster => format!("{{{}}}:", f.uid),
    };
    assert_eq!(key, format!("{prefix}mfa:{id}"));
    if f.mode == Mode::Cluster {
        assert_eq!(
            Slot::for_key(&key),
            Slot::for_key(f.index()),
            "in the user's slot"
        );
    }
    assert_eq!(f.user_keys().await, vec![key.clone()], "found by the SCAN");
    assert_eq!(f.get(&key).await.as_deref(), Some(&b"0"[..]));
    assert_ttl_near(f.ttl(&key).await, 300);

    assert_eq!(
        f.repo.fail_pending_sign_in(f.uid, id, 5).await.unwrap(),
        Some(1)
    );
    assert_eq!(f.get(&key).await.as_deref(), Some(&b"1"[..]));
    assert_ttl_near(f.ttl(&key).await, 300);
    assert_eq!(
        f.repo.fail_pending_sign_in(f.uid, id, 2).await.unwrap(),
        Some(2)
    );
    assert!(!f.exists(&key).await, "removed at the maximum");

    // Sub-second TTLs are kept in milliseconds.
    f.repo
        .put_pending_sign_in(f.uid, id, Duration::from_millis(1500))
        .await
        .unwrap();
    let pttl: i64 = f.cmd(redis::cmd("PTTL").arg(&key)).await;
    assert!((1..=1500).contains(&pttl), "PTTL {pttl}");
    assert!(f.repo.take_pending_sign_in(f.uid, id).await.unwrap());
    assert!(!f.exists(&key).await);
    f.finish().await;
}

on_both!(a_raised_assurance_is_kept_in_the_index_entry_only);
async fn a_raised_assurance_is_kept_in_the_index_entry_only(f: Fixture) {
    let (sid, jti) = f.session_at(f.now).await;
    assert!(
        f.repo
            .rename_session(f.uid, sid, name("laptop"), f.now)
            .await
            .unwrap()
    );
    let before = f.entry(sid).await.unwrap();
    let token_before = f.token_value(jti).await;
    assert!(before.get("acr").is_none() && before.get("amr").is_none());

    assert!(
        f.repo
            .raise_session(f.uid, sid, &totp(), f.now)
            .await
            .unwrap()
    );
    let mut expected = before.clone();
    expected["acr"] = Value::from("aal2");
    expected["amr"] = serde_json::json!(["pwd", "otp", "mfa"]);
    assert_eq!(f.entry(sid).await.unwrap(), expected, "only those added");
    assert_eq!(
        f.token_value(jti).await,
        token_before,
        "the entry untouched"
    );
    assert_ttl_near(f.ttl(&f.index()).await, LIFE);

    // A rotation re-encodes the entry and keeps them.
    let next = f.rotate(sid, jti, f.now + 1).await;
    let rotated = f.entry(sid).await.unwrap();
    assert_eq!(rotated["jti"], next.to_string());
    assert_eq!(rotated["acr"], "aal2");
    assert_eq!(rotated["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(rotated["name"], "laptop");

    // Lua's cjson writes an empty array as `{}`: still read as empty.
    let bare = crate::model::Assurance {
        acr: "aal2".into(),
        amr: Vec::new(),
    };
    assert!(
        f.repo
            .raise_session(f.uid, sid, &bare, f.now + 1)
            .await
            .unwrap()
    );
    assert_eq!(
        f.repo.session_assurance(f.uid, sid).await.unwrap(),
        Some(bare)
    );
    f.finish().await;
}
