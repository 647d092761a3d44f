//! The service on Redis Cluster (`REDIS_MODE=cluster`): the in-process app
//! on PostgreSQL and a local three-master cluster
//! (`tests/common/redis_cluster.rs`). The multi-process scenarios (several
//! replicas, failover under load) live with the end-to-end tests.

use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    Backend, PASSWORD, Tokens, assert_error, claims, function_name, spawn_app, unique_email,
};
use crate::redis_cluster::{self, ClusterPorts, RedisCluster};

/// Every key of `uid` on the master that owns the user's slot, sorted.
fn user_keys(cluster: &RedisCluster, uid: Uuid) -> Vec<String> {
    let port = cluster.master_for_key(&format!("{{{uid}}}"));
    let mut conn = redis::Client::open(cluster.node_url(port))
        .unwrap()
        .get_connection()
        .unwrap();
    let mut keys: Vec<String> =
        redis::Commands::scan_match::<_, String>(&mut conn, format!("{{{uid}}}:*"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    keys.sort();
    keys
}

fn uid_of(tokens: &Tokens) -> Uuid {
    claims(&tokens.id_token)["sub"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn sign_up_refresh_and_sign_out_on_redis_cluster() {
    let Some(cluster) = redis_cluster::shared(function_name!()) else {
        return;
    };
    let seeds = cluster.seed_url();
    let app = spawn_app!(
        Backend::Real,
        &[
            ("REDIS_MODE", "cluster"),
            ("REDIS_URL", &seeds),
            ("SIGNIN_RATE_LIMIT", "2"),
        ]
    );
    assert_eq!(status_of(&app, "/readyz").await, 200);

    let email = unique_email();
    let (uid, first) = app.signup(&email).await;
    assert_eq!(
        user_keys(cluster, uid),
        {
            let mut k = vec![
                format!("{{{uid}}}:{}", first.jti()),
                format!("{{{uid}}}:sessions"),
            ];
            k.sort();
            k
        },
        "the user's keys carry the hash tag"
    );

    // Rotation, and the grace window's replay of the same pair.
    let response = app.refresh(&first.refresh_token).await;
    assert_eq!(response.status(), 200);
    let second = Tokens::from_body(&response.json().await.unwrap());
    assert_eq!(second.sid(), first.sid());
    let replay = app.refresh(&first.refresh_token).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(Tokens::from_body(&replay.json().await.unwrap()), second);
    assert!(user_keys(cluster, uid).contains(&format!("{{{uid}}}:grace:{}", first.jti())));

    // The sign-in limit counts across slots: two wrong passwords, then 429.
    for _ in 0..2 {
        let response = app
            .post_json(
                "/signin",
                &json!({"email": email, "password": "wrong password!"}),
            )
            .await;
        assert_eq!(response.status(), 401);
    }
    let response = app
        .post_json("/signin", &json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), 429, "the third attempt is refused");

    // Sign-out everywhere: every key of the user goes; the pair is dead.
    assert_eq!(app.signout(&second.id_token).await.status(), 200);
    assert_eq!(user_keys(cluster, uid), Vec::<String>::new());
    assert_error(
        app.refresh(&second.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert_eq!(uid_of(&second), uid);
}

/// The status of a probe (`/healthz`, `/readyz`: outside the API's base path).
async fn status_of(app: &crate::helpers::TestApp, path: &str) -> u16 {
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn starts_while_the_cluster_is_down_answers_503_and_recovers() {
    if !redis_cluster::require(function_name!()) {
        return;
    }
    let ports = ClusterPorts::pick(3, 0);
    let seeds = ports.seed_url();
    // A handler timeout far off: the 503 below must come from the store.
    let app = spawn_app!(
        Backend::Real,
        &[
            ("REDIS_MODE", "cluster"),
            ("REDIS_URL", &seeds),
            ("HANDLER_TIMEOUT", "120")
        ]
    );

    // No node answers: alive, not ready, token work is a 503 in the one shape.
    assert_eq!(status_of(&app, "/healthz").await, 200);
    assert_eq!(status_of(&app, "/readyz").await, 503);
    let email = unique_email();
    let started = Instant::now();
    let body = assert_error(
        app.signup_response(&email, PASSWORD).await,
        503,
        "SERVICE_UNAVAILABLE",
    )
    .await;
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out"),
        "answered by the store, not the handler timeout: {body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered within a few command budgets: {:?}",
        started.elapsed()
    );

    // The cluster comes up on those ports: the same process recovers.
    let _cluster = RedisCluster::start_on(ports).unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_of(&app, "/readyz").await != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready after the cluster started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, tokens) = app.signup(&email).await;
    assert_eq!(app.refresh(&tokens.refresh_token).await.status(), 200);
}
