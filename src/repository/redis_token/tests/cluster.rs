//! What only Redis Cluster has: several masters, a sign-out SCAN that must
//! stay on one of them, a cluster that is down at start, a failover. Each
//! test starts a cluster of its own (it counts commands or kills nodes).

use std::time::Instant;

use super::redis_cluster::{ClusterPorts, RedisCluster};
use super::*;
use crate::error::AppError;

/// A repository in cluster mode on `url`, for user `uid`.
fn cluster_fixture(url: &str) -> Fixture {
    let conn = redis_connection(RedisMode::Cluster, url).expect("seed URLs");
    Fixture {
        repo: RedisTokenRepository::new(conn),
        mode: Mode::Cluster,
        uid: Uuid::new_v4(),
        now: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    }
}

fn is_unavailable<T: std::fmt::Debug>(result: &AppResult<T>) -> bool {
    matches!(result, Err(AppError::ServiceUnavailable { .. }))
}

#[tokio::test]
async fn sign_out_scans_only_the_master_of_the_users_slot_and_removes_only_the_users_keys() {
    let test = "redis_token::tests::cluster::sign_out_scans_only_the_master_of_the_users_slot";
    if !redis_cluster::require(test) {
        return;
    }
    let cluster = RedisCluster::start(3, 0).unwrap_or_else(|e| panic!("{e}"));
    let f = cluster_fixture(&cluster.seed_url());
    let mut conn = f.repo.conn.clone();

    // Unrelated keys on every master, some close to the user's names: the
    // untagged `<uid>:…` form, another user's tagged keys.
    let other = Uuid::new_v4();
    let mut unrelated: Vec<String> = (0..3000).map(|i| format!("unrelated:{i}")).collect();
    unrelated.push(format!("{}:not-tagged", f.uid));
    unrelated.push(format!("{{{other}}}:sessions"));
    unrelated.push(format!("signout:{{{other}}}"));
    for key in &unrelated {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for master in cluster.masters() {
        assert!(cluster.key_count(master) > 500, "keys on every master");
    }

    let (sid, jti) = f.session_at(f.now).await;
    f.rotate(sid, jti, f.now + 1).await;
    f.session_at(f.now + 2).await;
    let keys = f.user_keys().await;
    assert_eq!(
        keys.len(),
        4,
        "two tokens, the index, a grace successor: {keys:?}"
    );
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("{{{}}}:", f.uid)))
    );

    let home = cluster.master_for_key(&f.repo.keys.slot_key(f.uid));
    cluster.reset_stats();
    assert_eq!(f.repo.delete_user_refresh_tokens(f.uid).await.unwrap(), 4);

    for master in cluster.masters() {
        let scans = cluster.command_calls(master, "scan");
        if master == home {
            assert!(scans >= 1, "the user's master was scanned");
        } else {
            assert_eq!(scans, 0, "master {master} (not the user's) was scanned");
        }
    }
    assert_eq!(f.user_keys().await, Vec::<String>::new());
    let left: u64 = cluster
        .masters()
        .iter()
        .map(|&m| cluster.key_count(m))
        .sum();
    assert_eq!(left, unrelated.len() as u64, "no other key was removed");
    assert!(!f.exists(&f.repo.keys.signout_marker(f.uid)).await);
}

#[tokio::test]
async fn a_store_started_while_the_cluster_is_down_answers_unavailable_then_recovers() {
    let test = "redis_token::tests::cluster::a_store_started_while_the_cluster_is_down";
    if !redis_cluster::require(test) {
        return;
    }
    let ports = ClusterPorts::pick(3, 0);
    // Nothing listens yet: building the store must not need the cluster.
    let f = cluster_fixture(&ports.seed_url());
    let started = Instant::now();
    let down = f.repo.list_sessions(f.uid, f.now).await;
    assert!(is_unavailable(&down), "{down:?}");
    // Within a few times the 3 s command budget, on a loaded machine too.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a down cluster fails fast: {:?}",
        started.elapsed()
    );

    let _cluster = RedisCluster::start_on(ports).unwrap_or_else(|e| panic!("{e}"));
    // The same store, no restart: it connects once the cluster answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match f.repo.list_sessions(f.uid, f.now).await {
            Ok(sessions) => {
                assert!(sessions.is_empty());
                break;
            }
            Err(AppError::ServiceUnavailable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("no recovery: {other:?}"),
        }
    }
    let (sid, jti) = f.session_at(f.now).await;
    f.rotate(sid, jti, f.now + 1).await;
    assert_eq!(f.listed(f.now + 1).await, vec![sid]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_unavailable_at_worst_and_keeps_what_was_replicated() {
    let test = "redis_token::tests::cluster::a_failover_is_unavailable_at_worst";
    if !redis_cluster::require(test) {
        return;
    }
    let cluster = RedisCluster::start(3, 1).unwrap_or_else(|e| panic!("{e}"));
    let f = cluster_fixture(&cluster.seed_url());
    let (sid, jti) = f.session_at(f.now).await;
    let current = f.rotate(sid, jti, f.now + 1).await;
    // Acknowledged by the replica too (Redis replicates asynchronously: a
    // write not yet replicated when its master dies is lost).
    // Asked again until it is, for up to a minute: a loaded machine may take
    // seconds to replicate.
    let slot_key = f.repo.keys.slot_key(f.uid);
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let replicated: i64 = f
            .repo
            .conn
            .clone()
            .query_on_master_of(redis::cmd("WAIT").arg(1).arg(500), slot_key.as_bytes())
            .await
            .unwrap();
        if replicated == 1 {
            break;
        }
        assert!(Instant::now() < give_up, "not replicated within a minute");
    }

    let old = cluster.master_for_key(&slot_key);
    cluster.kill_master(old);
    let killed = Instant::now();
    let mut unavailable = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let sessions = loop {
        match f.repo.list_sessions(f.uid, f.now + 2).await {
            Ok(sessions) => break sessions,
            Err(AppError::ServiceUnavailable { .. }) if Instant::now() < deadline => {
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("during the failover, only 503s: {other:?}"),
        }
    };
    let recovered_after = killed.elapsed();
    let new = cluster.wait_for_failover(slot(&slot_key), old).unwrap();
    assert_ne!(new, old);
    assert_eq!(sessions.iter().map(|s| s.id).collect::<Vec<_>>(), vec![sid]);
    let _ = writeln!(
        std::io::stderr(),
        "failover: {unavailable} unavailable answers, served again {:?} after the kill \
         (node timeout 1 s), by the new master {new}",
        recovered_after
    );
    // The replicated state decides on the new master: the current token
    // rotates, its predecessor replays within the grace window.
    let next = f.rotate(sid, current, f.now + 3).await;
    assert!(f.exists(&f.key(next)).await);

    // The old master comes back as a replica of the new one; nothing moves.
    cluster.restart(old).unwrap();
    assert_eq!(cluster.role(old), redis_cluster::Role::Replica);
    assert_eq!(cluster.master_for_key(&slot_key), new);
    assert_eq!(f.listed(f.now + 3).await, vec![sid]);
    assert_eq!(f.repo.delete_user_refresh_tokens(f.uid).await.unwrap(), 3);
}

fn slot(key: &str) -> u16 {
    redis_cluster::slot_of(key)
}
