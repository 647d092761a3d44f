//! WebAuthn ceremonies, on a single Redis and on Redis Cluster: the shared
//! contract (`test_sessions.rs`), and how the keys look.

use redis::cluster_routing::Slot;

use super::*;
use crate::repository::test_sessions::{
    a_ceremony_expires_with_its_ttl, a_ceremony_is_taken_once_and_replaced_by_a_put,
    a_users_ceremony_is_no_session_and_goes_with_sign_out, anonymous_ceremony, challenge,
    concurrent_takes_of_a_ceremony_have_one_winner, hostile_challenges_name_no_ceremony,
    user_ceremony,
};

on_both!(a_ceremony_is_taken_once_and_replaced_by_a_put_on_redis);
async fn a_ceremony_is_taken_once_and_replaced_by_a_put_on_redis(f: Fixture) {
    a_ceremony_is_taken_once_and_replaced_by_a_put(&f.repo, f.uid).await;
    f.finish().await;
}

on_both!(
    concurrent_takes_of_a_ceremony_have_one_winner_on_redis,
    multi_thread
);
async fn concurrent_takes_of_a_ceremony_have_one_winner_on_redis(f: Fixture) {
    concurrent_takes_of_a_ceremony_have_one_winner(&f.repo, f.uid).await;
    f.finish().await;
}

on_both!(a_ceremony_expires_with_its_ttl_on_redis);
async fn a_ceremony_expires_with_its_ttl_on_redis(f: Fixture) {
    a_ceremony_expires_with_its_ttl(&f.repo, f.uid).await;
    f.finish().await;
}

on_both!(a_users_ceremony_is_no_session_and_goes_with_sign_out_on_redis);
async fn a_users_ceremony_is_no_session_and_goes_with_sign_out_on_redis(f: Fixture) {
    a_users_ceremony_is_no_session_and_goes_with_sign_out(&SHAPE, &f.repo, f.uid, f.now).await;
    f.finish().await;
}

on_both!(hostile_challenges_name_no_ceremony_on_redis);
async fn hostile_challenges_name_no_ceremony_on_redis(f: Fixture) {
    hostile_challenges_name_no_ceremony(&f.repo, f.uid).await;
    assert_eq!(f.user_keys().await, Vec::<String>::new());
    f.finish().await;
}

on_both!(a_ceremony_is_one_string_key_with_its_ttl);
async fn a_ceremony_is_one_string_key_with_its_ttl(f: Fixture) {
    let c = challenge(f.uid);
    let (mine, anon) = (user_ceremony(f.uid, &c), anonymous_ceremony(&c));
    let ttl = Duration::from_secs(300);
    f.repo
        .put_ceremony(&mine, "state of mine", ttl)
        .await
        .unwrap();
    f.repo.put_ceremony(&anon, "anonymous", ttl).await.unwrap();

    let key = f.repo.keys.ceremony(&mine).unwrap();
    let prefix = match f.mode {
        Mode::Standalone => format!("{}:", f.uid),
        Mode::Cluster => format!("{{{}}}:", f.uid),
    };
    assert_eq!(key, format!("{prefix}webauthn:{c}"));
    let anon_key = f.repo.keys.ceremony(&anon).unwrap();
    assert_eq!(anon_key, format!("webauthn:auth:{c}"), "untagged in both");
    if f.mode == Mode::Cluster {
        assert_eq!(
            Slot::for_key(&key),
            Slot::for_key(f.index()),
            "in the user's slot"
        );
    }
    assert_eq!(f.user_keys().await, vec![key.clone()], "found by the SCAN");
    for (name, value) in [(&key, "state of mine"), (&anon_key, "anonymous")] {
        let kind: String = f.cmd(redis::cmd("TYPE").arg(name)).await;
        assert_eq!(kind, "string", "{name}");
        assert_eq!(f.get(name).await.as_deref(), Some(value.as_bytes()));
        let pttl: i64 = f.cmd(redis::cmd("PTTL").arg(name)).await;
        assert!((290_000..=300_000).contains(&pttl), "{name}: PTTL {pttl}");
    }

    // Replaced with a sub-second TTL, kept in milliseconds.
    let short = Duration::from_millis(1500);
    f.repo.put_ceremony(&mine, "replaced", short).await.unwrap();
    assert_eq!(f.get(&key).await.as_deref(), Some(&b"replaced"[..]));
    let pttl: i64 = f.cmd(redis::cmd("PTTL").arg(&key)).await;
    assert!((1..=1500).contains(&pttl), "PTTL {pttl}");

    assert_eq!(
        f.repo.take_ceremony(&mine).await.unwrap().as_deref(),
        Some("replaced")
    );
    assert_eq!(
        f.repo.take_ceremony(&anon).await.unwrap().as_deref(),
        Some("anonymous")
    );
    assert!(!f.exists(&key).await, "taken: removed");
    assert!(!f.exists(&anon_key).await, "taken: removed");
    f.finish().await;
}
