//! The token cache (`account::token_cache`) and `account token` against the
//! real `POST /oauth/token` and the real Redis. Every grant issues a token
//! with a fresh `jti`, so callers that all hold the same token caused exactly
//! one token request.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use account::cli::clients_add;
use account::token_cache::{Margin, TokenCache};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, claims, spawn_app, test_redis_url};

/// `client_id: …` and `client_secret: …` of a new client with `todos:read`.
async fn new_client(app: &TestApp) -> (String, String) {
    let output = clients_add(app.config(), "cache-test", "todos:read")
        .await
        .expect("clients add");
    let field = |name: &str| {
        output
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .expect("credentials line")
            .trim()
            .to_owned()
    };
    (field("client_id:"), field("client_secret:"))
}

/// A cache of its own (its own Redis connection: a replica), tokens cached
/// for their lifetime less one second.
fn replica(app: &TestApp, id: &str, secret: &str, key: &str) -> TokenCache {
    TokenCache::builder(format!("{}/oauth/token", app.address), id, secret)
        .scope("todos:read")
        .cache_key(key)
        .margin(Margin {
            min: Duration::from_secs(1),
            fraction: 0.0,
        })
        .redis_url(test_redis_url())
        .build()
        .expect("token cache")
}

/// 150 concurrent calls over three replicas: the tokens they got.
async fn fifty_callers_on_each(replicas: &[TokenCache]) -> BTreeSet<String> {
    let calls = replicas.iter().flat_map(|cache| {
        (0..50).map(move |_| async move { cache.token().await.expect("token").secret().to_owned() })
    });
    futures::future::join_all(calls).await.into_iter().collect()
}

async fn delete_keys(key: &str) {
    let client = redis::Client::open(test_redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(key)
        .arg(format!("{key}:lock"))
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_with_fifty_callers_each_share_one_grant_per_lifetime() {
    let app = spawn_app!(Backend::Real, &[("CLIENT_TOKEN_EXP", "3")]);
    let (id, secret) = new_client(&app).await;
    let key = format!("test-oauth-token:{}", Uuid::new_v4());
    let replicas: Vec<_> = (0..3).map(|_| replica(&app, &id, &secret, &key)).collect();

    let first = fifty_callers_on_each(&replicas).await;
    assert_eq!(first.len(), 1, "one grant for 150 callers");
    let token = first.first().unwrap();
    assert_eq!(claims(token)["client_id"], id.as_str());

    // Cached for 2 s (3 s less the margin): then exactly one more grant.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let second = fifty_callers_on_each(&replicas).await;
    assert_eq!(second.len(), 1, "one more grant for 150 callers");
    assert_ne!(second, first);

    delete_keys(&key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_token_commands_at_once_print_one_token() {
    let app = spawn_app!(Backend::Real);
    let (id, secret) = new_client(&app).await;
    let key = format!("test-oauth-token:{}", Uuid::new_v4());
    let url = format!("{}/oauth/token", app.address);
    let children: Vec<_> = (0..20)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_account"))
                .args(["token", "--token-url", &url, "--client-id", &id])
                .args(["--scope", "todos:read", "--cache-key", &key])
                .env("CLIENT_SECRET", &secret)
                .env("REDIS_URL", test_redis_url())
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("account token")
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut printed = BTreeSet::new();
    for output in outputs {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        printed.insert(String::from_utf8(output.stdout).unwrap());
    }
    assert_eq!(
        printed.len(),
        1,
        "one grant, the same token printed 20 times"
    );
    let token = printed.first().unwrap().trim_end();
    assert_eq!(claims(token)["client_id"], id.as_str());

    delete_keys(&key).await;
}
