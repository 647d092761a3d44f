//! The attempt counters, on a single Redis and on Redis Cluster (where an
//! attempt counts key by key).

use super::*;

const WINDOW: Duration = Duration::from_secs(60);

fn counters(pairs: &[(&str, u64)]) -> Vec<RateCounter> {
    pairs
        .iter()
        .map(|(key, limit)| RateCounter {
            key: (*key).to_owned(),
            limit: *limit,
        })
        .collect()
}

impl Fixture {
    async fn count(&self, key: &str) -> Option<u64> {
        self.cmd(redis::cmd("GET").arg(key)).await
    }

    async fn pttl(&self, key: &str) -> i64 {
        self.cmd(redis::cmd("PTTL").arg(key)).await
    }
}

fn assert_waits_about(decision: RateDecision, at_most: Duration) {
    match decision {
        RateDecision::Limited { retry_after } => assert!(
            retry_after <= at_most && retry_after > at_most - Duration::from_secs(3),
            "{retry_after:?}, expected about {at_most:?}"
        ),
        RateDecision::Allowed => panic!("allowed, expected a limit"),
    }
}

on_both!(an_attempt_counts_on_every_counter_or_on_none);
async fn an_attempt_counts_on_every_counter_or_on_none(f: Fixture) {
    let (a, b) = (f.counter("a"), f.counter("b"));
    let both = counters(&[(&a, 2), (&b, 3)]);
    for _ in 0..2 {
        assert_eq!(
            f.repo.attempt(&both, WINDOW).await.unwrap(),
            RateDecision::Allowed
        );
    }
    assert_eq!((f.count(&a).await, f.count(&b).await), (Some(2), Some(2)));
    // `a` is full: refused, and `b` is not counted either.
    assert_waits_about(f.repo.attempt(&both, WINDOW).await.unwrap(), WINDOW);
    assert_eq!((f.count(&a).await, f.count(&b).await), (Some(2), Some(2)));
    // Each counter is one key, its window as its TTL.
    for key in [&a, &b] {
        let pttl = f.pttl(key).await;
        assert!((1..=60_000).contains(&pttl), "{key}: PTTL {pttl}");
    }
    // `b` alone still has room, then is full too.
    let only_b = counters(&[(&b, 3)]);
    assert_eq!(
        f.repo.attempt(&only_b, WINDOW).await.unwrap(),
        RateDecision::Allowed
    );
    assert_waits_about(f.repo.attempt(&only_b, WINDOW).await.unwrap(), WINDOW);
    assert_eq!(f.count(&b).await, Some(3));
    // No counters: nothing to refuse.
    assert_eq!(
        f.repo.attempt(&[], WINDOW).await.unwrap(),
        RateDecision::Allowed
    );
    f.finish().await;
}

on_both!(the_window_starts_with_the_first_count_and_the_longest_wait_is_answered);
async fn the_window_starts_with_the_first_count_and_the_longest_wait_is_answered(f: Fixture) {
    let (a, b) = (f.counter("a"), f.counter("b"));
    let both = counters(&[(&a, 1), (&b, 1)]);
    assert_eq!(
        f.repo.attempt(&both, WINDOW).await.unwrap(),
        RateDecision::Allowed
    );
    // Later counts do not move a window: shorten `a`'s, count again on it
    // alone (with room for one more).
    f.cmd::<i64>(redis::cmd("PEXPIRE").arg(&a).arg(20_000))
        .await;
    assert_eq!(
        f.repo.attempt(&counters(&[(&a, 2)]), WINDOW).await.unwrap(),
        RateDecision::Allowed
    );
    assert!(f.pttl(&a).await <= 20_000, "the window did not restart");
    // Both full: the longer of their remaining windows (`b`'s).
    assert_waits_about(f.repo.attempt(&both, WINDOW).await.unwrap(), WINDOW);
    // `a` alone: its own.
    assert_waits_about(
        f.repo.attempt(&counters(&[(&a, 1)]), WINDOW).await.unwrap(),
        Duration::from_secs(20),
    );
    f.finish().await;
}

on_both!(a_counter_lets_attempts_in_again_once_its_window_ends);
async fn a_counter_lets_attempts_in_again_once_its_window_ends(f: Fixture) {
    let a = counters(&[(&f.counter("a"), 1)]);
    // Long enough for the second attempt to land within it on a loaded
    // machine (it is checked only if it did).
    let window = Duration::from_secs(2);
    let first = std::time::Instant::now();
    assert_eq!(
        f.repo.attempt(&a, window).await.unwrap(),
        RateDecision::Allowed
    );
    let second = f.repo.attempt(&a, window).await.unwrap();
    if first.elapsed() < window {
        assert!(
            matches!(second, RateDecision::Limited { retry_after } if retry_after <= window),
            "{second:?}"
        );
    }
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    assert_eq!(
        f.repo.attempt(&a, window).await.unwrap(),
        RateDecision::Allowed
    );
    f.finish().await;
}

on_both!(a_refund_takes_one_back_never_below_zero_and_keeps_the_window);
async fn a_refund_takes_one_back_never_below_zero_and_keeps_the_window(f: Fixture) {
    let (a, gone) = (f.counter("a"), f.counter("gone"));
    let full = counters(&[(&a, 2)]);
    for _ in 0..2 {
        f.repo.attempt(&full, WINDOW).await.unwrap();
    }
    f.cmd::<i64>(redis::cmd("PEXPIRE").arg(&a).arg(30_000))
        .await;
    f.repo.refund(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(f.count(&a).await, Some(1));
    assert!(f.pttl(&a).await <= 30_000, "the window is kept");
    assert_eq!(
        f.repo.attempt(&full, WINDOW).await.unwrap(),
        RateDecision::Allowed
    );
    for _ in 0..3 {
        f.repo.refund(&[a.clone(), gone.clone()]).await.unwrap();
    }
    assert_eq!(f.count(&a).await, Some(0), "never below zero");
    assert!(f.pttl(&a).await > 0);
    assert_eq!(f.count(&gone).await, None, "a gone counter stays gone");
    f.repo.refund(&[]).await.unwrap();
    f.finish().await;
}

on_both!(cleared_counters_are_gone_and_others_kept);
async fn cleared_counters_are_gone_and_others_kept(f: Fixture) {
    let (a, b, kept) = (f.counter("a"), f.counter("b"), f.counter("kept"));
    let all = counters(&[(&a, 1), (&b, 1), (&kept, 1)]);
    f.repo.attempt(&all, WINDOW).await.unwrap();
    f.repo
        .clear(&[a.clone(), b.clone(), f.counter("never")])
        .await
        .unwrap();
    assert_eq!((f.count(&a).await, f.count(&b).await), (None, None));
    assert_eq!(f.count(&kept).await, Some(1));
    assert_eq!(
        f.repo
            .attempt(&counters(&[(&a, 1), (&b, 1)]), WINDOW)
            .await
            .unwrap(),
        RateDecision::Allowed,
        "a cleared counter starts a new window"
    );
    f.repo.clear(&[]).await.unwrap();
    f.finish().await;
}

on_both!(a_full_counter_without_an_expiry_gets_one_window);
async fn a_full_counter_without_an_expiry_gets_one_window(f: Fixture) {
    let a = f.counter("a");
    f.cmd::<String>(redis::cmd("SET").arg(&a).arg(5)).await;
    assert_waits_about(
        f.repo.attempt(&counters(&[(&a, 3)]), WINDOW).await.unwrap(),
        WINDOW,
    );
    let pttl = f.pttl(&a).await;
    assert!((1..=60_000).contains(&pttl), "PTTL {pttl}");
    f.finish().await;
}

on_both!(
    concurrent_first_attempts_cannot_slip_past_a_limit,
    multi_thread
);
async fn concurrent_first_attempts_cannot_slip_past_a_limit(f: Fixture) {
    let both = counters(&[(&f.counter("a"), 5), (&f.counter("b"), 100)]);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (repo, both) = (f.repo.clone(), both.clone());
        tasks.spawn(async move { repo.attempt(&both, WINDOW).await.unwrap() });
    }
    let decisions = tasks.join_all().await;
    let allowed = decisions
        .iter()
        .filter(|d| **d == RateDecision::Allowed)
        .count();
    assert_eq!(allowed, 5, "{decisions:?}");
    assert_eq!(f.count(&f.counter("a")).await, Some(5));
    assert_eq!(
        f.count(&f.counter("b")).await,
        Some(5),
        "the refused burn nothing"
    );
    f.finish().await;
}
