//! The cache's decisions against mocks: the shared store (`MockSharedCache`)
//! and the token endpoint (`MockTokenSource`), on tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use mockall::predicate::eq;
use tokio::time::Instant;

use super::endpoint::{AttemptError, MockTokenSource, TokenResponse, TokenSource};
use super::shared::MockSharedCache;
use super::*;

const KEY: &str = "oauth-token:test";
const LOCK: &str = "oauth-token:test:lock";

fn cache(source: MockTokenSource, shared: Option<MockSharedCache>) -> TokenCache {
    cache_from(Box::new(source), shared)
}

fn cache_from(source: Box<dyn TokenSource>, shared: Option<MockSharedCache>) -> TokenCache {
    TokenCache::from_parts(Inner {
        client_id: "client".into(),
        token_url: "http://127.0.0.1/oauth/token".into(),
        cache_key: KEY.into(),
        lock_key: LOCK.into(),
        margin: Margin::default(),
        default_expires_in: defaults::EXPIRES_IN,
        retry: RetryPolicy::default(),
        lock_ttl: Duration::from_secs(10),
        wait: Duration::from_secs(3),
        source,
        shared: shared.map(|s| Arc::new(s) as Arc<dyn SharedCache>),
        local: Mutex::new(None),
        flight: tokio::sync::Mutex::new(Flight::default()),
        completed: AtomicU64::new(0),
        shared_down: AtomicBool::new(false),
    })
}

fn issues(source: &mut MockTokenSource, times: usize, token: &'static str, expires_in: u64) {
    source.expect_request().times(times).returning(move || {
        Ok(TokenResponse {
            access_token: token.into(),
            expires_in: Some(Duration::from_secs(expires_in)),
        })
    });
}

fn down() -> SharedCacheError {
    SharedCacheError("connection refused".into())
}

#[tokio::test(start_paused = true)]
async fn a_lock_loser_waits_and_takes_the_winners_token() {
    let mut shared = MockSharedCache::new();
    let mut seq = mockall::Sequence::new();
    // Nothing cached, the lock is someone else's, three polls later the token.
    for _ in 0..3 {
        shared
            .expect_get()
            .with(eq(KEY))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(None));
        shared
            .expect_lock()
            .withf(|key, _, ttl| key == LOCK && *ttl == Duration::from_secs(10))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(false));
    }
    shared
        .expect_get()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(Some(("winner".into(), Duration::from_secs(60)))));
    let mut source = MockTokenSource::new();
    source.expect_request().never();
    let cache = cache(source, Some(shared));

    let start = Instant::now();
    assert_eq!(cache.token().await.unwrap().secret(), "winner");
    // 20 + 40 + 80 ms of polling.
    assert_eq!(start.elapsed(), Duration::from_millis(140));
    // Then from the process's own copy (no further get is expected)...
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(cache.token().await.unwrap().secret(), "winner");
}

#[tokio::test(start_paused = true)]
async fn a_lock_loser_gives_up_after_the_wait_bound() {
    let mut shared = MockSharedCache::new();
    shared.expect_get().returning(|_| Ok(None));
    shared.expect_lock().returning(|_, _, _| Ok(false));
    let mut source = MockTokenSource::new();
    source.expect_request().never();
    let cache = cache(source, Some(shared));

    let start = Instant::now();
    let err = cache.token().await.unwrap_err();
    assert_eq!(
        err,
        TokenError::Timeout {
            waited: Duration::from_secs(3)
        }
    );
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_poller_takes_the_lock_a_failed_winner_released_and_fetches() {
    let mut shared = MockSharedCache::new();
    shared.expect_get().returning(|_| Ok(None));
    let mut seq = mockall::Sequence::new();
    shared
        .expect_lock()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(false));
    shared
        .expect_lock()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(true));
    shared
        .expect_set()
        .withf(|key, token, ttl| key == KEY && token == "mine" && *ttl == Duration::from_secs(270))
        .times(1)
        .returning(|_, _, _| Ok(()));
    shared
        .expect_unlock()
        .withf(|key, owner| key == LOCK && owner.len() == 32)
        .times(1)
        .returning(|_, _| Ok(true));
    let mut source = MockTokenSource::new();
    issues(&mut source, 1, "mine", 300);
    let cache = cache(source, Some(shared));
    assert_eq!(cache.token().await.unwrap().secret(), "mine");
}

#[tokio::test(start_paused = true)]
async fn the_winner_stores_the_token_for_its_lifetime_less_the_margin_and_unlocks_as_owner() {
    let mut shared = MockSharedCache::new();
    shared.expect_get().times(2).returning(|_| Ok(None));
    let owner = Arc::new(Mutex::new(String::new()));
    let taken = owner.clone();
    shared.expect_lock().times(1).returning(move |_, owner, _| {
        *taken.lock().unwrap() = owner.to_owned();
        Ok(true)
    });
    shared
        .expect_set()
        .withf(|key, token, ttl| {
            key == KEY && token == "fresh" && *ttl == Duration::from_secs(3240)
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let released = owner.clone();
    shared
        .expect_unlock()
        .withf(move |key, owner| key == LOCK && *owner == *released.lock().unwrap())
        .times(1)
        .returning(|_, _| Ok(true));
    let mut source = MockTokenSource::new();
    issues(&mut source, 1, "fresh", 3600);
    let cache = cache(source, Some(shared));

    assert_eq!(cache.token().await.unwrap().secret(), "fresh");
    // Served from the process until the cached TTL ends.
    tokio::time::advance(Duration::from_secs(3239)).await;
    assert_eq!(cache.token().await.unwrap().secret(), "fresh");
}

#[tokio::test(start_paused = true)]
async fn a_short_lived_token_is_used_once_and_never_cached() {
    let mut shared = MockSharedCache::new();
    shared.expect_get().returning(|_| Ok(None));
    shared.expect_lock().times(2).returning(|_, _, _| Ok(true));
    shared.expect_set().never();
    shared.expect_unlock().times(2).returning(|_, _| Ok(true));
    let mut source = MockTokenSource::new();
    issues(&mut source, 2, "brief", 30);
    let cache = cache(source, Some(shared));
    cache.token().await.unwrap();
    cache.token().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_response_without_expires_in_gets_the_default_lifetime() {
    let mut source = MockTokenSource::new();
    source.expect_request().times(1).returning(|| {
        Ok(TokenResponse {
            access_token: "t".into(),
            expires_in: None,
        })
    });
    let cache = cache(source, None);
    cache.token().await.unwrap();
    // 300 s less 30 s.
    tokio::time::advance(Duration::from_secs(269)).await;
    cache.token().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn with_redis_down_the_process_fetches_for_itself_and_keeps_the_token() {
    let mut shared = MockSharedCache::new();
    shared.expect_get().times(1).returning(|_| Err(down()));
    shared.expect_lock().never();
    let mut source = MockTokenSource::new();
    issues(&mut source, 1, "local", 300);
    let cache = cache(source, Some(shared));
    for _ in 0..5 {
        assert_eq!(cache.token().await.unwrap().secret(), "local");
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_lock_falls_back_to_fetching_in_the_process() {
    let mut shared = MockSharedCache::new();
    shared.expect_get().times(1).returning(|_| Ok(None));
    shared
        .expect_lock()
        .times(1)
        .returning(|_, _, _| Err(down()));
    let mut source = MockTokenSource::new();
    issues(&mut source, 1, "local", 300);
    let cache = cache(source, Some(shared));
    assert_eq!(cache.token().await.unwrap().secret(), "local");
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_of_one_process_share_one_fetch() {
    let mut source = MockTokenSource::new();
    issues(&mut source, 1, "shared", 300);
    let cache = cache(source, None);
    let calls = (0..50).map(|_| {
        let cache = cache.clone();
        tokio::spawn(async move { cache.token().await })
    });
    for call in futures::future::join_all(calls).await {
        assert_eq!(call.unwrap().unwrap().secret(), "shared");
    }
}

#[tokio::test(start_paused = true)]
async fn callers_queued_behind_a_failed_fetch_get_its_error() {
    let mut source = MockTokenSource::new();
    source
        .expect_request()
        .times(4)
        .returning(|| Err(AttemptError::Retryable("answered 503".into())));
    let cache = cache(source, None);
    let calls = (0..10).map(|_| {
        let cache = cache.clone();
        tokio::spawn(async move { cache.token().await })
    });
    for call in futures::future::join_all(calls).await {
        assert!(matches!(
            call.unwrap(),
            Err(TokenError::Unavailable { attempts: 4, .. })
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn invalidate_compares_and_deletes_and_drops_only_the_same_local_token() {
    let mut shared = MockSharedCache::new();
    shared
        .expect_get()
        .times(1)
        .returning(|_| Ok(Some(("current".into(), Duration::from_secs(60)))));
    shared
        .expect_compare_and_delete()
        .with(eq(KEY), eq("stale"))
        .times(1)
        .returning(|_, _| Ok(false));
    shared
        .expect_compare_and_delete()
        .with(eq(KEY), eq("current"))
        .times(1)
        .returning(|_, _| Ok(true));
    let source = MockTokenSource::new();
    let cache = cache(source, Some(shared));
    assert_eq!(cache.token().await.unwrap().secret(), "current");
    cache.invalidate("stale").await;
    // Still the local copy: no get expected.
    assert_eq!(cache.token().await.unwrap().secret(), "current");
    cache.invalidate("current").await;
    assert!(cache.lock_local().is_none());
}

#[test]
fn the_builder_checks_its_settings_and_keeps_the_secret_out_of_debug() {
    let build = |url: &str, id: &str, secret: &str| TokenCache::builder(url, id, secret).build();
    let ok = build(
        "http://127.0.0.1:9/oauth/token",
        "billing",
        "hunter2-secret",
    )
    .unwrap();
    assert!(ok.cache_key().starts_with("oauth-token:billing:"));
    assert!(!format!("{ok:?}").contains("hunter2"));
    let builder = TokenCache::builder("http://a/t", "c", "hunter2-secret");
    assert!(!format!("{builder:?}").contains("hunter2"));
    assert!(build("ftp://a/t", "c", "s").is_err());
    assert!(build("http://u:p@a/t", "c", "s").is_err());
    assert!(build("not a url", "c", "s").is_err());
    assert!(build("http://a/t", "", "s").is_err());
    assert!(build("http://a/t", "c", "").is_err());
    let keyed = TokenCache::builder("http://a/t", "c", "s")
        .cache_key("mine")
        .build()
        .unwrap();
    assert_eq!(keyed.cache_key(), "mine");
}

/// Counts the `warn` events of the thread it is the default subscriber of.
struct WarnCounter(Arc<AtomicU64>);

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(start_paused = true)]
async fn redis_down_is_said_once_however_many_misses_and_invalidations() {
    let warnings = Arc::new(AtomicU64::new(0));
    let _guard = tracing::subscriber::set_default(WarnCounter(warnings.clone()));
    let mut shared = MockSharedCache::new();
    shared.expect_get().returning(|_| Err(down()));
    shared
        .expect_compare_and_delete()
        .returning(|_, _| Err(down()));
    let mut source = MockTokenSource::new();
    // Short-lived: every call is a miss.
    issues(&mut source, 5, "brief", 10);
    let cache = cache(source, Some(shared));
    for _ in 0..5 {
        let token = cache.token().await.unwrap();
        cache.invalidate(token.secret()).await;
    }
    assert_eq!(warnings.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A token endpoint that takes `delay` to answer.
struct SlowSource {
    delay: Duration,
}

#[async_trait::async_trait]
impl TokenSource for SlowSource {
    async fn request(&self) -> Result<TokenResponse, AttemptError> {
        tokio::time::sleep(self.delay).await;
        Ok(TokenResponse {
            access_token: "fresh".into(),
            expires_in: Some(Duration::from_secs(3600)),
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_goes_away_mid_fetch_still_stores_the_token_and_releases_the_lock() {
    let mut shared = MockSharedCache::new();
    shared.expect_get().returning(|_| Ok(None));
    shared.expect_lock().times(1).returning(|_, _, _| Ok(true));
    shared
        .expect_set()
        .withf(|key, token, _| key == KEY && token == "fresh")
        .times(1)
        .returning(|_, _, _| Ok(()));
    shared
        .expect_unlock()
        .withf(|key, _| key == LOCK)
        .times(1)
        .returning(|_, _| Ok(true));
    let cache = cache_from(
        Box::new(SlowSource {
            delay: Duration::from_secs(2),
        }),
        Some(shared),
    );

    // The caller gives up one second into a two-second fetch.
    let gave_up = tokio::time::timeout(Duration::from_secs(1), cache.token()).await;
    assert!(gave_up.is_err());
    // The fetch goes on: stored, released, and kept in the process.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cache.token().await.unwrap().secret(), "fresh");
}
