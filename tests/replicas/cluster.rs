//! Two replicas on a local Redis Cluster (`REDIS_MODE=cluster`, every node a
//! seed): the scenarios of a single Redis, sign-out's SCAN confined to the
//! master of the user's slot among many unrelated keys, and a master's
//! failover under load survived by the same processes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::{Replicas, Tokens, http, notice, refresh, unique_email};
use crate::redis_cluster::{self, RedisCluster, slot_of};
use crate::scenarios;

/// Replicas on the cluster shared by this binary's tests, or return (skipped).
macro_rules! on_shared_cluster {
    ($test:expr) => {{
        let Some(cluster) = redis_cluster::shared($test) else {
            return;
        };
        match Replicas::cluster($test, cluster).await {
            Some(replicas) => replicas,
            None => return,
        }
    }};
}

/// A cluster of this test's own, or return (skipped).
macro_rules! own_cluster {
    ($test:expr, $masters:expr, $replicas:expr) => {{
        if !redis_cluster::require($test) {
            return;
        }
        let cluster = tokio::task::spawn_blocking(|| RedisCluster::start($masters, $replicas))
            .await
            .expect("cluster start task")
            .unwrap_or_else(|e| panic!("{}: {e}", $test));
        Arc::new(cluster)
    }};
}

#[tokio::test]
async fn lifecycle_across_replicas_on_a_cluster() {
    let r = on_shared_cluster!("lifecycle_across_replicas_on_a_cluster");
    scenarios::lifecycle_across_replicas(&r).await;
}

#[tokio::test]
async fn concurrent_rotation_across_replicas_on_a_cluster() {
    let r = on_shared_cluster!("concurrent_rotation_across_replicas_on_a_cluster");
    scenarios::concurrent_rotation_across_replicas(&r).await;
}

/// Unrelated keys written before a sign-out.
const UNRELATED: usize = 100_000;
/// Hash tags they are spread over (so over many slots of every master).
const UNRELATED_TAGS: usize = 64;

/// Writes `UNRELATED` keys spread over every master; how many each got.
fn write_unrelated_keys(cluster: &RedisCluster) -> HashMap<u16, usize> {
    let run = Uuid::new_v4().simple();
    let masters: Vec<u16> = (0..UNRELATED_TAGS)
        .map(|t| cluster.master_for_key(&format!("{{unrelated-{run}-{t}}}")))
        .collect();
    let mut by_master: HashMap<u16, Vec<String>> = HashMap::new();
    for i in 0..UNRELATED {
        let tag = i % UNRELATED_TAGS;
        by_master
            .entry(masters[tag])
            .or_default()
            .push(format!("{{unrelated-{run}-{tag}}}:{i}"));
    }
    let mut written = HashMap::new();
    for (port, keys) in by_master {
        let mut conn = redis::Client::open(cluster.node_url(port))
            .and_then(|c| c.get_connection())
            .expect("connection to a master");
        for chunk in keys.chunks(10_000) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.cmd("SET").arg(key).arg("x").ignore();
            }
            pipe.query::<()>(&mut conn).expect("SET pipeline");
        }
        written.insert(port, keys.len());
    }
    written
}

/// A sign-out everywhere with 100,000 unrelated keys spread over three
/// masters removes every key of the user and no other, and SCANs on the
/// master of the user's slot only (`INFO commandstats` of each master).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_scans_one_master_among_unrelated_keys() {
    const TEST: &str = "sign_out_scans_one_master_among_unrelated_keys";
    let cluster = own_cluster!(TEST, 3, 0);
    let Some(r) = Replicas::cluster(TEST, cluster.clone()).await else {
        return;
    };
    let written = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || write_unrelated_keys(&cluster))
            .await
            .unwrap()
    };
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    assert!(
        masters
            .iter()
            .all(|m| written.get(m).is_some_and(|&n| n > 0)),
        "unrelated keys on every master: {written:?}"
    );

    // A user with three sessions and a grace key, on A and B.
    let email = unique_email();
    let first = r.sign_up(&r.a, &email).await;
    let uid = first.uid();
    for base in [&r.b, &r.a] {
        let response = http()
            .post(format!("{base}/api/account/signin"))
            .json(&serde_json::json!({"email": email, "password": crate::helpers::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let second = refresh(&r.b, &first.refresh_token).await;
    assert_eq!(second.status(), StatusCode::OK);
    let second = Tokens::from_body(&second.json().await.unwrap());
    let user_keys = r.redis.user_keys(uid);
    assert!(
        user_keys.len() >= 5,
        "sessions, index, grace: {user_keys:?}"
    );
    let owner = cluster.master_for_key(&format!("{{{uid}}}"));
    let before: HashMap<u16, u64> = masters.iter().map(|&m| (m, cluster.key_count(m))).collect();

    cluster.reset_stats();
    let started = Instant::now();
    let response = http()
        .post(format!("{}/api/account/signout", r.a))
        .bearer_auth(&second.id_token)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK, "sign-out");
    let scans: HashMap<u16, u64> = masters
        .iter()
        .map(|&m| (m, cluster.command_calls(m, "scan")))
        .collect();
    assert!(scans[&owner] >= 1, "SCAN on the user's master: {scans:?}");
    for (master, calls) in &scans {
        if *master != owner {
            assert_eq!(*calls, 0, "no SCAN on master {master}: {scans:?}");
        }
    }

    assert_eq!(
        r.redis.user_keys(uid),
        Vec::<String>::new(),
        "the user's keys"
    );
    for &master in &masters {
        let expected = if master == owner {
            before[&master] - user_keys.len() as u64
        } else {
            before[&master]
        };
        assert_eq!(
            cluster.key_count(master),
            expected,
            "keys of master {master}"
        );
    }
    // Besides the unrelated keys, the limits' counters of the sign-ins.
    let total: u64 = masters.iter().map(|&m| cluster.key_count(m)).sum();
    assert!(total >= UNRELATED as u64, "every unrelated key is left");
    assert_eq!(
        refresh(&r.b, &second.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED,
        "B after the sign-out on A"
    );
    notice(&format!(
        "{TEST}: {} SCAN calls on the user's master ({} keys), none on the other two; \
         sign-out took {took:?}",
        scans[&owner], before[&owner]
    ));
}

/// Waits until every replica of the master on `port` has acknowledged all
/// it was sent (`INFO replication`: each `slaveN` offset reaches
/// `master_repl_offset`).
fn wait_replicated(port: u16) {
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection())
        .expect("connection to the master");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut conn)
            .expect("INFO replication");
        let master: Option<u64> = info
            .lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))
            .and_then(|v| v.trim().parse().ok());
        // slave0:ip=127.0.0.1,port=…,state=online,offset=693,lag=0
        let replicas: Vec<u64> = info
            .lines()
            .filter(|l| l.starts_with("slave"))
            .filter_map(|l| l.split(',').find_map(|kv| kv.strip_prefix("offset=")))
            .filter_map(|v| v.trim().parse().ok())
            .collect();
        if let Some(master) = master
            && !replicas.is_empty()
            && replicas.iter().all(|&o| o >= master)
        {
            return;
        }
        assert!(Instant::now() < deadline, "not replicated: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one round of the load loop saw.
struct Round {
    /// When its first request was sent, and when its last was answered.
    started: Instant,
    at: Instant,
    sessions: StatusCode,
    refresh: StatusCode,
}

/// While both replicas list the user's sessions and rotate its refresh
/// token in a loop, the master of the user's slot is killed: requests may
/// answer 503 during the switch (never 500, never a lost token), then the
/// same processes succeed again by themselves once the replica has taken
/// over, and rotations after the failover keep working on either replica.
/// From the failover on, after which a request begun is answered 200: the
/// command budget of the Redis client (3 s) to notice the new master.
const RECOVERY_GRACE: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_fails_over_under_load_without_a_restart() {
    const TEST: &str = "a_master_fails_over_under_load_without_a_restart";
    let cluster = own_cluster!(TEST, 3, 1);
    let Some(r) = Replicas::cluster(TEST, cluster.clone()).await else {
        return;
    };
    let first = r.sign_up(&r.a, &unique_email()).await;
    let uid = first.uid();
    let slot = slot_of(&format!("{{{uid}}}"));
    let master = cluster.master_for_slot(slot);
    tokio::task::spawn_blocking(move || wait_replicated(master))
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let load = {
        let (a, b, stop, done) = (r.a.clone(), r.b.clone(), stop.clone(), done.clone());
        let mut current = first.clone();
        tokio::spawn(async move {
            let mut rounds = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let base = if i.is_multiple_of(2) { &a } else { &b };
                let started = Instant::now();
                let sessions = http()
                    .get(format!("{base}/api/account/sessions"))
                    .bearer_auth(&current.id_token)
                    .send()
                    .await
                    .expect("sessions request")
                    .status();
                let response = refresh(base, &current.refresh_token).await;
                let status = response.status();
                if status == StatusCode::OK {
                    current = Tokens::from_body(&response.json().await.unwrap());
                }
                rounds.push(Round {
                    started,
                    at: Instant::now(),
                    sessions,
                    refresh: status,
                });
                i += 1;
                done.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (current, rounds)
        })
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    cluster.kill_master(master);
    let new_master = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.wait_for_failover(slot, master))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let failed_over = Instant::now();
    // Let the load run on until both replicas have served a dozen rounds
    // begun past the grace (at most one round was under way at the mark),
    // however long a loaded machine takes for them.
    tokio::time::sleep_until((failed_over + RECOVERY_GRACE).into()).await;
    let mark = done.load(Ordering::Relaxed);
    let give_up = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::Relaxed) < mark + 12 {
        assert!(
            Instant::now() < give_up,
            "the load stalled after the failover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (current, rounds) = load.await.expect("load task");

    let statuses = |round: &Round| [round.sessions, round.refresh];
    for round in &rounds {
        for status in statuses(round) {
            assert!(
                status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
                "only 200 or 503 during a failover, got {status} {:?} after the kill \
                 (a 401 here is a rotation acknowledged but lost with the master)",
                round.at.saturating_duration_since(killed)
            );
        }
    }
    let unavailable = rounds
        .iter()
        .flat_map(statuses)
        .filter(|s| *s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    let last_503 = rounds
        .iter()
        .rfind(|round| statuses(round).contains(&StatusCode::SERVICE_UNAVAILABLE))
        .map(|round| round.at);
    // Rounds begun past the grace: one begun before it may still spend its
    // retries on the old master and answer 503 later.
    let after: Vec<&Round> = rounds
        .iter()
        .filter(|round| round.started > failed_over + RECOVERY_GRACE)
        .collect();
    assert!(after.len() >= 10, "the load ran on after the failover");
    assert!(
        after
            .iter()
            .all(|round| statuses(round) == [StatusCode::OK; 2]),
        "every request succeeds again after the failover"
    );

    // The same processes, without a restart: rotations after the failover
    // are kept (the second rotation proves the first was stored).
    let next = refresh(&r.a, &current.refresh_token).await;
    assert_eq!(next.status(), StatusCode::OK);
    let next = Tokens::from_body(&next.json().await.unwrap());
    let last = refresh(&r.b, &next.refresh_token).await;
    assert_eq!(last.status(), StatusCode::OK);
    let last = Tokens::from_body(&last.json().await.unwrap());
    assert_eq!(cluster.master_for_key(&format!("{{{uid}}}")), new_master);
    assert_eq!(r.redis.whitelisted_jtis(uid), [last.refresh_jti()]);
    let response = http()
        .post(format!("{}/api/account/signout", r.b))
        .bearer_auth(&last.id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "sign-out after failover");
    assert_eq!(
        refresh(&r.a, &last.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(r.redis.user_keys(uid), Vec::<String>::new());
    notice(&format!(
        "{TEST}: {} rounds, {unavailable} answers 503; failover {:?} after the kill, \
         last 503 {:?} after the kill",
        rounds.len(),
        failed_over - killed,
        last_503.map(|at| at.saturating_duration_since(killed))
    ));
}
