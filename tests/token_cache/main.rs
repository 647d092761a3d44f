//! The token cache against a fake token endpoint (`fake.rs`) and the real
//! Redis (`TEST_REDIS_URL`, default `redis://127.0.0.1:6379`; only keys with a
//! per-test unique prefix are written, and they are removed at the end). When
//! Redis does not answer, the tests that need it print `SKIPPED …` and pass,
//! unless `REQUIRE_REAL_STORES=1`.

mod fake;
#[path = "../common/redis_cluster.rs"]
mod redis_cluster;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use account::token_cache::{
    BearerClient, Margin, RedisCache, RedisMode, RetryPolicy, SharedCache, TokenCache, TokenError,
};
use fake::{Behaviour, CLIENT_ID, CLIENT_SECRET, FakeEndpoint};

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether Redis answers; else skipped visibly, or a failure under
/// `REQUIRE_REAL_STORES=1`.
async fn redis_available(test: &str) -> bool {
    let ping = async {
        let client = redis::Client::open(redis_url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    let up = matches!(
        tokio::time::timeout(Duration::from_secs(5), ping).await,
        Ok(Ok(_))
    );
    let required = std::env::var("REQUIRE_REAL_STORES").is_ok_and(|v| v == "1" || v == "true");
    if !up && required {
        panic!(
            "Redis at {} is unreachable and REQUIRE_REAL_STORES=1",
            redis_url()
        );
    }
    if !up {
        eprintln!("SKIPPED {test}: Redis at {} is unreachable", redis_url());
    }
    up
}

/// A key of this test's own.
fn unique_key(test: &str) -> String {
    format!("test-token-cache:{test}:{}", uuid::Uuid::new_v4().simple())
}

/// Removes the token and lock keys of `key`.
async fn delete_keys(key: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("DEL")
        .arg(key)
        .arg(format!("{key}:lock"))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

/// Tokens that live 3 s, cached for 2 s (a 1 s margin).
fn short_lived() -> Margin {
    Margin {
        min: Duration::from_secs(1),
        fraction: 0.0,
    }
}

fn replica(endpoint: &FakeEndpoint, key: &str) -> TokenCache {
    TokenCache::builder(endpoint.token_url(), CLIENT_ID, CLIENT_SECRET)
        .cache_key(key)
        .margin(short_lived())
        .redis_url(redis_url())
        .build()
        .unwrap()
}

/// Fifty concurrent `token()` calls on each cache; the tokens they got.
async fn fifty_callers_each(caches: &[TokenCache]) -> Vec<String> {
    let calls = caches.iter().flat_map(|cache| {
        (0..50).map(move |_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await })
        })
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|call| call.unwrap().unwrap().into_secret())
        .collect()
}

fn all_same(tokens: &[String]) -> &str {
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    &tokens[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_with_fifty_callers_each_cause_one_request_then_one_more_after_the_ttl() {
    if !redis_available("three_replicas").await {
        return;
    }
    let endpoint = FakeEndpoint::start(Behaviour::Issue {
        expires_in: Some(3),
        delay: Duration::from_millis(200),
    })
    .await;
    let key = unique_key("replicas");
    // Three instances with connections of their own stand for three replicas.
    let replicas: Vec<_> = (0..3).map(|_| replica(&endpoint, &key)).collect();

    let first = fifty_callers_each(&replicas).await;
    assert_eq!(endpoint.token_requests(), 1);
    let first = all_same(&first).to_owned();

    // Cached for 3 s − 1 s; past that every replica needs a new one.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let second = fifty_callers_each(&replicas).await;
    assert_eq!(endpoint.token_requests(), 2);
    assert_ne!(all_same(&second), first);

    delete_keys(&key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_token_commands_at_once_cause_one_request_and_print_the_same_token() {
    if !redis_available("twenty_token_commands").await {
        return;
    }
    let endpoint = FakeEndpoint::start(Behaviour::Issue {
        expires_in: Some(300),
        delay: Duration::from_millis(300),
    })
    .await;
    let key = unique_key("commands");
    let children: Vec<_> = (0..20)
        .map(|_| {
            token_command(&endpoint, &key)
                .env("REDIS_URL", redis_url())
                .spawn()
                .expect("start account token")
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

    let printed: Vec<String> = outputs
        .iter()
        .map(|output| {
            assert!(
                output.status.success(),
                "{:?}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout.clone()).unwrap()
        })
        .collect();
    let token = all_same(&printed);
    assert!(
        token.starts_with("tok-") && token.ends_with('\n'),
        "{token:?}"
    );
    assert_eq!(token.lines().count(), 1);
    assert_eq!(endpoint.token_requests(), 1);

    delete_keys(&key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_commands_share_one_token_through_redis_cluster() {
    let test = "token_commands_share_one_token_through_redis_cluster";
    let Some(cluster) = redis_cluster::shared(test) else {
        return;
    };
    let endpoint = FakeEndpoint::start(Behaviour::Issue {
        expires_in: Some(300),
        delay: Duration::from_millis(300),
    })
    .await;
    let key = unique_key("cluster");
    let seeds = cluster.seed_url();
    let children: Vec<_> = (0..5)
        .map(|_| {
            token_command(&endpoint, &key)
                .env("REDIS_MODE", "cluster")
                .env("REDIS_URL", &seeds)
                .spawn()
                .expect("start account token")
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
    let printed: Vec<String> = outputs
        .iter()
        .map(|output| {
            assert!(
                output.status.success(),
                "{:?}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout.clone()).unwrap()
        })
        .collect();
    let token = all_same(&printed);
    assert_eq!(endpoint.token_requests(), 1, "one fetch for all of them");

    // The token is in the cluster under the key, the lock released.
    let shared = RedisCache::from_url_in_mode(&seeds, RedisMode::Cluster).unwrap();
    let (stored, _) = shared
        .get(&key)
        .await
        .unwrap()
        .expect("cached in the cluster");
    assert_eq!(format!("{stored}\n"), token);
    assert!(shared.get(&format!("{key}:lock")).await.unwrap().is_none());

    // An unknown mode stops the command with the variable's name.
    let output = token_command(&endpoint, &key)
        .env("REDIS_MODE", "sentinel")
        .env("REDIS_URL", &seeds)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("REDIS_MODE:"), "{stderr}");
}

fn token_command(endpoint: &FakeEndpoint, key: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_account"));
    command
        .args(["token", "--token-url", &endpoint.token_url()])
        .args(["--client-id", CLIENT_ID, "--cache-key", key])
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("RUST_LOG", "warn")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_MODE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_fails_with_one_line_on_stderr() {
    let endpoint = FakeEndpoint::start(Behaviour::Status(400)).await;
    // A refusal of the endpoint.
    let output = token_command(&endpoint, "unused").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("400: invalid_request"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");

    // No secret in the environment.
    let output = token_command(&endpoint, "unused")
        .env_remove("CLIENT_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.trim(),
        "error: CLIENT_SECRET: must be set to the client's secret"
    );
    assert_eq!(endpoint.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_works_without_redis() {
    let endpoint = FakeEndpoint::start(Behaviour::Issue {
        expires_in: Some(300),
        delay: Duration::ZERO,
    })
    .await;
    let output = token_command(&endpoint, "unused").output().unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap();
    assert!(token.starts_with("tok-"));
    assert_eq!(endpoint.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_from_the_api_causes_one_refetch_and_one_retry() {
    if !redis_available("a_401_from_the_api").await {
        return;
    }
    let endpoint = FakeEndpoint::start(Behaviour::Issue {
        expires_in: Some(300),
        delay: Duration::ZERO,
    })
    .await;
    let key = unique_key("bearer");
    let api = BearerClient::new(reqwest::Client::new(), replica(&endpoint, &key));
    let first = api.tokens().token().await.unwrap();
    assert_eq!(endpoint.token_requests(), 1);

    // The API stops accepting the cached token.
    endpoint.revoke(first.secret());
    let answer = api.send(|http| http.get(endpoint.api_url())).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(endpoint.token_requests(), 2);
    assert_eq!(endpoint.api_requests(), 2);
    // The fresh token is the cached one now.
    assert_ne!(api.tokens().token().await.unwrap(), first);
    assert_eq!(endpoint.token_requests(), 2);

    // An API that refuses every token: one retry, never more.
    endpoint.api_always_401();
    let answer = api.send(|http| http.get(endpoint.api_url())).await.unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(endpoint.api_requests(), 4);
    assert_eq!(endpoint.token_requests(), 3);

    delete_keys(&key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_invalidate_never_deletes_the_token_another_replica_fetched() {
    if !redis_available("a_late_invalidate").await {
        return;
    }
    let endpoint = FakeEndpoint::start(Behaviour::Issue {
        expires_in: Some(300),
        delay: Duration::ZERO,
    })
    .await;
    let key = unique_key("invalidate");
    let (a, b, c) = (
        replica(&endpoint, &key),
        replica(&endpoint, &key),
        replica(&endpoint, &key),
    );
    let old = a.token().await.unwrap();
    assert_eq!(b.token().await.unwrap(), old);
    // A drops it; B fetches the next one; B's late invalidate of the old one
    // leaves the new one in place.
    a.invalidate(old.secret()).await;
    b.invalidate(old.secret()).await;
    let new = b.token().await.unwrap();
    assert_ne!(new, old);
    b.invalidate(old.secret()).await;
    a.invalidate(old.secret()).await;
    assert_eq!(c.token().await.unwrap(), new);
    assert_eq!(endpoint.token_requests(), 2);

    let redis = RedisCache::from_url(&redis_url()).unwrap();
    let (stored, ttl) = redis.get(&key).await.unwrap().unwrap();
    assert_eq!(stored, new.secret());
    // 300 s less the replicas' 1 s margin.
    assert!(
        ttl <= Duration::from_secs(299) && ttl > Duration::from_secs(290),
        "{ttl:?}"
    );

    delete_keys(&key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_key_is_used_without_a_configured_one() {
    if !redis_available("the_default_key").await {
        return;
    }
    let endpoint = FakeEndpoint::start(Behaviour::Issue {
        expires_in: Some(300),
        delay: Duration::ZERO,
    })
    .await;
    // A client id of this test's own keeps the default key unique.
    let client = format!("client-{}", uuid::Uuid::new_v4().simple());
    let cache = TokenCache::builder(endpoint.token_url(), client.as_str(), CLIENT_SECRET)
        .scope("todos:read")
        .redis_url(redis_url())
        .build()
        .unwrap();
    assert!(
        cache
            .cache_key()
            .starts_with(&format!("oauth-token:{client}:"))
    );
    // The fake endpoint refuses this client (its Basic credentials differ).
    let err = cache.token().await.unwrap_err();
    assert!(matches!(
        err,
        TokenError::Endpoint { status: 401, error: Some(ref code), .. } if code == "invalid_client"
    ));
    assert_eq!(endpoint.token_requests(), 1);
    let key = cache.cache_key().to_owned();
    delete_keys(&key).await;
}

#[tokio::test]
async fn with_redis_down_each_process_fetches_for_itself() {
    let endpoint = FakeEndpoint::start(Behaviour::Issue {
        expires_in: Some(300),
        delay: Duration::ZERO,
    })
    .await;
    let closed = closed_port().await;
    let cache = TokenCache::builder(endpoint.token_url(), CLIENT_ID, CLIENT_SECRET)
        .redis_url(format!("redis://127.0.0.1:{closed}"))
        .build()
        .unwrap();
    let started = Instant::now();
    let token = cache.token().await.unwrap();
    assert_eq!(cache.token().await.unwrap(), token);
    assert_eq!(endpoint.token_requests(), 1);
    // Refused at once: no wait for a Redis timeout (a loaded machine's bound).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn the_token_endpoint_down_gives_a_clear_error_quickly_without_a_hot_loop() {
    // Nothing listening: connection refused, four attempts, 0.7 to 1.4 s of backoff.
    let url = format!("http://127.0.0.1:{}/oauth/token", closed_port().await);
    let cache = TokenCache::builder(url, CLIENT_ID, CLIENT_SECRET)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = cache.token().await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&err, TokenError::Unavailable { attempts: 4, last } if last.starts_with("cannot connect")),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("the token endpoint is unavailable after 4 attempt(s)")
    );
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(10),
        "{took:?}"
    );

    // Answering 503: exactly the policy's attempts, spaced by the backoff.
    let endpoint = FakeEndpoint::start(Behaviour::Status(503)).await;
    let cache = TokenCache::builder(endpoint.token_url(), CLIENT_ID, CLIENT_SECRET)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = cache.token().await.unwrap_err();
    assert!(
        matches!(err, TokenError::Unavailable { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(endpoint.token_requests(), 4);
    assert!(started.elapsed() >= Duration::from_millis(700));

    // Hanging: each attempt times out.
    let endpoint = FakeEndpoint::start(Behaviour::Hang).await;
    let cache = TokenCache::builder(endpoint.token_url(), CLIENT_ID, CLIENT_SECRET)
        .retry(RetryPolicy {
            max_attempts: 2,
            request_timeout: Duration::from_millis(300),
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    let started = Instant::now();
    let err = cache.token().await.unwrap_err();
    assert!(
        matches!(&err, TokenError::Unavailable { attempts: 2, last } if last.starts_with("timed out")),
        "{err:?}"
    );
    // The endpoint never answers: only the request timeouts end the wait.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(endpoint.token_requests(), 2);

    // A 4xx is not retried.
    let endpoint = FakeEndpoint::start(Behaviour::Status(400)).await;
    let cache = TokenCache::builder(endpoint.token_url(), CLIENT_ID, CLIENT_SECRET)
        .build()
        .unwrap();
    let err = cache.token().await.unwrap_err();
    assert_eq!(
        err,
        TokenError::Endpoint {
            status: 400,
            error: Some("invalid_request".into()),
            description: Some("from the fake endpoint".into())
        }
    );
    assert_eq!(endpoint.token_requests(), 1);
}

#[tokio::test]
async fn a_response_without_expires_in_gets_the_default_and_short_tokens_are_not_cached() {
    let endpoint = FakeEndpoint::start(Behaviour::Issue {
        expires_in: None,
        delay: Duration::ZERO,
    })
    .await;
    // Default lifetime 1 s, margin 1 s: every token is used once.
    let cache = TokenCache::builder(endpoint.token_url(), CLIENT_ID, CLIENT_SECRET)
        .default_expires_in(Duration::from_secs(1))
        .margin(short_lived())
        .build()
        .unwrap();
    let a = cache.token().await.unwrap();
    let b = cache.token().await.unwrap();
    assert_ne!(a, b);
    assert_eq!(endpoint.token_requests(), 2);
    let shown = format!("{a:?} {cache:?}");
    assert!(
        !shown.contains(a.secret()) && !shown.contains("s3cret"),
        "{shown}"
    );
}
