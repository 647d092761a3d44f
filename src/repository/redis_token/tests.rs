//! The Redis repository against the real Redis at `TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`), shared with other tests and runs: each test
//! touches only the keys of a fresh random user and removes them at the end.
//! An unreachable Redis skips with a visible line, or fails under
//! `REQUIRE_REAL_STORES=1`.

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use uuid::Uuid;

use super::*;
use crate::model::{
    ClientInfo, RateCounter, RateDecision, RateLimitRepository, RefreshOutcome, RefreshStep,
    SessionStart, TokenRepository,
};

const GRACE: u64 = 30;
/// Lifetime of the tokens the tests write, in seconds.
const LIFE: u64 = 600;
/// Absolute session lifetime.
const MAX_AGE: u64 = 3600;

struct Fixture {
    repo: RedisTokenRepository,
    uid: Uuid,
    /// The real clock at the start: TTLs are real, so token lifetimes are
    /// counted from it.
    now: u64,
}

fn test_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn require_real_stores() -> bool {
    std::env::var("REQUIRE_REAL_STORES").is_ok_and(|v| v == "1" || v == "true")
}

/// A repository on the test Redis and a fresh user, or `None` (skipped) when
/// Redis is unreachable.
async fn fixture(test: &str) -> Option<Fixture> {
    let url = test_redis_url();
    let connect = async {
        let conn = redis_connection(RedisMode::Standalone, &url)
            .map_err(|e| RedisError::from((ErrorKind::InvalidClientConfig, "TEST_REDIS_URL", e)))?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn.clone())
            .await?;
        Ok::<_, RedisError>(conn)
    };
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(conn)) => Some(Fixture {
            repo: RedisTokenRepository::new(conn),
            uid: Uuid::new_v4(),
            now: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        }),
        failed => {
            let cause = match failed {
                Ok(Err(err)) => err.to_string(),
                _ => "timed out".to_owned(),
            };
            if require_real_stores() {
                panic!(
                    "Redis at TEST_REDIS_URL={url} is unreachable ({cause}) and REQUIRE_REAL_STORES=1"
                );
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED redis_token::tests::{test}: Redis at TEST_REDIS_URL={url} is unreachable ({cause})"
            );
            None
        }
    }
}

impl Fixture {
    fn start(&self, sid: Uuid, jti: Uuid, now: u64, max_sessions: u32) -> SessionStart {
        SessionStart {
            sid,
            jti,
            exp: now + LIFE,
            now,
            ends_at: now + MAX_AGE,
            client: ClientInfo::new("agent/1", "10.0.0.1"),
            max_sessions,
            credential: "c1".into(),
        }
    }

    /// Starts a session at `now` (cap 10); returns (sid, jti).
    async fn session_at(&self, now: u64) -> (Uuid, Uuid) {
        let (sid, jti) = (Uuid::new_v4(), Uuid::new_v4());
        self.repo
            .start_session(self.uid, &self.start(sid, jti, now, 10))
            .await
            .unwrap();
        (sid, jti)
    }

    fn step(&self, sid: Uuid, jti: Uuid, new_jti: Uuid, now: u64) -> RefreshStep {
        RefreshStep {
            sid,
            jti,
            new_jti,
            new_exp: now + LIFE,
            now,
            grace_secs: GRACE,
            sealed_successor: sealed(new_jti),
            client: ClientInfo::new("agent/2", "10.0.0.2"),
        }
    }

    /// Rotates `jti` at `now`; returns the successor's jti.
    async fn rotate(&self, sid: Uuid, jti: Uuid, now: u64) -> Uuid {
        let new_jti = Uuid::new_v4();
        let outcome = self
            .repo
            .refresh(self.uid, &self.step(sid, jti, new_jti, now))
            .await
            .unwrap();
        assert_eq!(outcome, RefreshOutcome::Rotated);
        new_jti
    }

    fn key(&self, jti: Uuid) -> String {
        self.repo.keys.token(self.uid, jti)
    }

    fn grace(&self, jti: Uuid) -> String {
        self.repo.keys.grace(self.uid, jti)
    }

    fn index(&self) -> String {
        self.repo.keys.index(self.uid)
    }

    async fn cmd<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        cmd.query_async(&mut self.repo.conn.clone()).await.unwrap()
    }

    async fn ttl(&self, key: &str) -> i64 {
        self.cmd(redis::cmd("TTL").arg(key)).await
    }

    async fn exists(&self, key: &str) -> bool {
        self.cmd::<i64>(redis::cmd("EXISTS").arg(key)).await == 1
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.cmd(redis::cmd("GET").arg(key)).await
    }

    /// The index entry of `sid`, parsed.
    async fn entry(&self, sid: Uuid) -> Option<Value> {
        let raw: Option<String> = self
            .cmd(redis::cmd("HGET").arg(self.index()).arg(sid.to_string()))
            .await;
        raw.map(|raw| serde_json::from_str(&raw).unwrap())
    }

    async fn listed(&self, now: u64) -> Vec<Uuid> {
        let sessions = self.repo.list_sessions(self.uid, now).await.unwrap();
        sessions.into_iter().map(|s| s.id).collect()
    }

    async fn user_keys(&self) -> Vec<String> {
        self.scan(&self.repo.keys.user_pattern(self.uid)).await
    }

    /// Every key matching `pattern`, sorted.
    async fn scan(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .cmd(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys
    }

    /// A counter key of this test's own (`ratelimit:test:<uid>:<name>`).
    fn counter(&self, name: &str) -> String {
        format!("ratelimit:test:{}:{name}", self.uid)
    }

    /// Removes every key of the user and its counters (the end of every test).
    async fn finish(self) {
        let counters: Vec<String> = self.scan(&self.counter("*")).await;
        if !counters.is_empty() {
            self.cmd::<i64>(redis::cmd("UNLINK").arg(&counters)).await;
        }
        self.repo
            .delete_user_refresh_tokens(self.uid)
            .await
            .unwrap();
        assert_eq!(self.user_keys().await, Vec::<String>::new());
        assert!(!self.exists(&self.repo.keys.signout_marker(self.uid)).await);
    }
}

/// A test that fails before [`Fixture::finish`] still removes its user's keys
/// (on a blocking connection: the test's runtime may be gone).
impl Drop for Fixture {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let uid = self.uid;
        let cleanup = std::thread::spawn(move || {
            let client = redis::Client::open(test_redis_url())?;
            let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
            for pattern in [format!("{uid}:*"), format!("ratelimit:test:{uid}:*")] {
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query(&mut conn)?;
                    if !keys.is_empty() {
                        redis::cmd("UNLINK").arg(&keys).query::<()>(&mut conn)?;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            redis::cmd("DEL")
                .arg(KeyScheme::for_mode(RedisMode::Standalone).signout_marker(uid))
                .query::<()>(&mut conn)
        });
        if let Ok(Err(err)) = cleanup.join() {
            let _ = writeln!(std::io::stderr(), "cleanup of user {uid} failed: {err}");
        }
    }
}

/// Bytes no text encoding would keep: the store must return them exactly.
fn sealed(jti: Uuid) -> Vec<u8> {
    let mut bytes = vec![0, 0xff, b'\n', 0x80];
    bytes.extend_from_slice(jti.as_bytes());
    bytes
}

fn assert_ttl_near(ttl: i64, expected: u64) {
    let expected = i64::try_from(expected).unwrap();
    assert!(
        (expected - 2..=expected).contains(&ttl),
        "TTL {ttl}, expected about {expected}"
    );
}

#[tokio::test]
async fn start_session_writes_the_entry_and_the_index() {
    let Some(f) = fixture("start_session_writes_the_entry_and_the_index").await else {
        return;
    };
    let (sid, jti) = (Uuid::new_v4(), Uuid::new_v4());
    let start = SessionStart {
        client: ClientInfo::new("Mozilla/5.0 (X11) «é»", "192.0.2.7"),
        ..f.start(sid, jti, f.now, 5)
    };
    f.repo.start_session(f.uid, &start).await.unwrap();

    let value: Value = serde_json::from_slice(&f.get(&f.key(jti)).await.unwrap()).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "sid": sid.to_string(), "created": f.now, "last": f.now,
            "ua": "Mozilla/5.0 (X11) «é»", "ip": "192.0.2.7",
        }),
        "the entry records its session"
    );
    assert_ttl_near(f.ttl(&f.key(jti)).await, LIFE);

    let entry = f.entry(sid).await.unwrap();
    assert_eq!(entry["jti"], jti.to_string());
    assert_eq!(entry["exp"], f.now + LIFE);
    assert_eq!(entry["prev"], Value::Null);
    assert_eq!(entry["rotated"], Value::Null);
    assert_eq!(entry["created"], f.now);
    assert_eq!(entry["last"], f.now);
    assert_eq!(entry["ends"], f.now + MAX_AGE);
    assert_eq!(entry["ua"], "Mozilla/5.0 (X11) «é»");
    assert_eq!(entry["ip"], "192.0.2.7");
    assert_ttl_near(f.ttl(&f.index()).await, LIFE);

    let sessions = f.repo.list_sessions(f.uid, f.now).await.unwrap();
    assert_eq!(
        sessions,
        vec![SessionInfo {
            id: sid,
            created_at: f.now,
            last_used_at: f.now,
            user_agent: "Mozilla/5.0 (X11) «é»".into(),
            ip: "192.0.2.7".into(),
        }]
    );
    f.finish().await;
}

#[tokio::test]
async fn the_cap_ends_the_least_recently_used_session() {
    let Some(f) = fixture("the_cap_ends_the_least_recently_used_session").await else {
        return;
    };
    let (a, a_first) = f.session_at(f.now).await;
    let (b, b_jti) = f.session_at(f.now + 1).await;
    // `a` is the oldest but used since: `b` is the least recently used.
    let a_jti = f.rotate(a, a_first, f.now + 2).await;
    let (c, c_jti) = (Uuid::new_v4(), Uuid::new_v4());
    f.repo
        .start_session(f.uid, &f.start(c, c_jti, f.now + 3, 2))
        .await
        .unwrap();

    assert_eq!(f.listed(f.now + 3).await, vec![c, a]);
    assert!(f.entry(b).await.is_none());
    assert!(!f.exists(&f.key(b_jti)).await);
    assert!(f.exists(&f.key(a_jti)).await);
    assert!(f.exists(&f.key(c_jti)).await);

    // A cap below one never ends the session just started.
    let (d, d_jti) = (Uuid::new_v4(), Uuid::new_v4());
    f.repo
        .start_session(f.uid, &f.start(d, d_jti, f.now + 4, 0))
        .await
        .unwrap();
    assert_eq!(f.listed(f.now + 4).await, vec![d]);
    assert!(!f.exists(&f.key(a_jti)).await);
    assert!(!f.exists(&f.grace(a_first)).await);
    assert!(!f.exists(&f.key(c_jti)).await);
    f.finish().await;
}

#[tokio::test]
async fn refresh_with_the_current_token_rotates() {
    let Some(f) = fixture("refresh_with_the_current_token_rotates").await else {
        return;
    };
    let (sid, jti) = f.session_at(f.now).await;
    let new_jti = Uuid::new_v4();
    let mut step = f.step(sid, jti, new_jti, f.now + 5);
    step.new_exp = f.now + 5 + 2 * LIFE;
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Rotated);

    assert!(!f.exists(&f.key(jti)).await);
    let value: Value = serde_json::from_slice(&f.get(&f.key(new_jti)).await.unwrap()).unwrap();
    assert_eq!(value["sid"], sid.to_string());
    assert_eq!(value["created"], f.now, "the session's start");
    assert_eq!(value["last"], f.now + 5, "this rotation");
    assert_ttl_near(f.ttl(&f.key(new_jti)).await, 2 * LIFE);
    assert_eq!(f.get(&f.grace(jti)).await, Some(sealed(new_jti)));
    assert_ttl_near(f.ttl(&f.grace(jti)).await, GRACE);

    let entry = f.entry(sid).await.unwrap();
    assert_eq!(entry["jti"], new_jti.to_string());
    assert_eq!(entry["exp"], f.now + 5 + 2 * LIFE);
    assert_eq!(entry["prev"], jti.to_string());
    assert_eq!(entry["rotated"], f.now + 5);
    assert_eq!(entry["last"], f.now + 5);
    assert_eq!(entry["created"], f.now);
    assert_eq!(entry["ua"], "agent/2");
    assert_eq!(entry["ip"], "10.0.0.2");
    assert_ttl_near(f.ttl(&f.index()).await, 2 * LIFE);

    // The next rotation drops the older grace successor.
    let third = f.rotate(sid, new_jti, f.now + 6).await;
    assert!(!f.exists(&f.grace(jti)).await);
    assert!(f.exists(&f.grace(new_jti)).await);
    assert!(f.exists(&f.key(third)).await);

    // No grace window: no successor is kept, and a replay is reuse.
    let mut step = f.step(sid, third, Uuid::new_v4(), f.now + 7);
    step.grace_secs = 0;
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Rotated);
    assert!(!f.exists(&f.grace(third)).await);
    assert!(!f.exists(&f.grace(new_jti)).await);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Reused);
    f.finish().await;
}

#[tokio::test]
async fn the_predecessor_replays_the_sealed_successor_within_the_window() {
    let Some(f) = fixture("the_predecessor_replays_the_sealed_successor_within_the_window").await
    else {
        return;
    };
    let (sid, jti) = f.session_at(f.now).await;
    let new_jti = f.rotate(sid, jti, f.now + 1).await;
    let before = f.entry(sid).await.unwrap();

    // A retry carries its own successor id and client: neither is used.
    let mut retry = f.step(sid, jti, Uuid::new_v4(), f.now + 1 + GRACE);
    retry.sealed_successor = b"other".to_vec();
    let outcome = f.repo.refresh(f.uid, &retry).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::GraceReplay(sealed(new_jti)));

    assert_eq!(f.entry(sid).await.unwrap(), before);
    assert!(f.exists(&f.key(new_jti)).await);
    assert!(!f.exists(&f.key(retry.new_jti)).await);
    assert_eq!(f.get(&f.grace(jti)).await, Some(sealed(new_jti)));
    f.finish().await;
}

#[tokio::test]
async fn the_predecessor_after_the_window_ends_the_session() {
    let Some(f) = fixture("the_predecessor_after_the_window_ends_the_session").await else {
        return;
    };
    let (sid, jti) = f.session_at(f.now).await;
    let new_jti = f.rotate(sid, jti, f.now + 1).await;
    let late = f.step(sid, jti, Uuid::new_v4(), f.now + 2 + GRACE);
    let outcome = f.repo.refresh(f.uid, &late).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Reused);

    assert!(!f.exists(&f.key(new_jti)).await);
    assert!(!f.exists(&f.grace(jti)).await);
    assert!(f.entry(sid).await.is_none());
    assert_eq!(f.listed(f.now + 2).await, Vec::<Uuid>::new());
    // The successor no longer works either.
    let step = f.step(sid, new_jti, Uuid::new_v4(), f.now + 3);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Unknown);
    f.finish().await;
}

#[tokio::test]
async fn an_older_generation_or_a_gone_successor_is_reuse() {
    let Some(f) = fixture("an_older_generation_or_a_gone_successor_is_reuse").await else {
        return;
    };
    let (sid, first) = f.session_at(f.now).await;
    let second = f.rotate(sid, first, f.now).await;
    let third = f.rotate(sid, second, f.now).await;
    let outcome = f
        .repo
        .refresh(f.uid, &f.step(sid, first, Uuid::new_v4(), f.now))
        .await
        .unwrap();
    assert_eq!(outcome, RefreshOutcome::Reused);
    assert!(!f.exists(&f.key(third)).await);
    assert!(!f.exists(&f.grace(second)).await);
    assert!(f.entry(sid).await.is_none());

    // Within the window, but the successor's entry is gone.
    let (sid, jti) = f.session_at(f.now).await;
    let new_jti = f.rotate(sid, jti, f.now).await;
    let _: i64 = f.cmd(redis::cmd("DEL").arg(f.key(new_jti))).await;
    let outcome = f
        .repo
        .refresh(f.uid, &f.step(sid, jti, Uuid::new_v4(), f.now))
        .await
        .unwrap();
    assert_eq!(outcome, RefreshOutcome::Reused);
    assert!(!f.exists(&f.grace(jti)).await);
    assert!(f.entry(sid).await.is_none());
    f.finish().await;
}

#[tokio::test]
async fn unknown_sessions_and_a_sign_out_in_progress_refuse() {
    let Some(f) = fixture("unknown_sessions_and_a_sign_out_in_progress_refuse").await else {
        return;
    };
    // A session that never was.
    let step = f.step(Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), f.now);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Unknown);
    assert!(!f.exists(&f.key(step.new_jti)).await);

    // An ended session.
    let (sid, jti) = f.session_at(f.now).await;
    assert!(f.repo.end_session(f.uid, sid).await.unwrap());
    let step = f.step(sid, jti, Uuid::new_v4(), f.now);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Unknown);
    assert!(!f.exists(&f.key(step.new_jti)).await);

    // The current token's entry is gone: the session ends.
    let (sid, jti) = f.session_at(f.now).await;
    let _: i64 = f.cmd(redis::cmd("DEL").arg(f.key(jti))).await;
    let step = f.step(sid, jti, Uuid::new_v4(), f.now);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Unknown);
    assert!(f.entry(sid).await.is_none());

    // A sign-out sweep in progress: nothing is written.
    let (sid, jti) = f.session_at(f.now).await;
    let legacy = Uuid::new_v4();
    let _: () = f.cmd(redis::cmd("SET").arg(f.key(legacy)).arg("1")).await;
    let marker = f.repo.keys.signout_marker(f.uid);
    let _: () = f
        .cmd(redis::cmd("SET").arg(&marker).arg(1).arg("EX").arg(60))
        .await;
    let step = f.step(sid, jti, Uuid::new_v4(), f.now);
    let outcome = f.repo.refresh(f.uid, &step).await;
    let start = f.start(Uuid::new_v4(), Uuid::new_v4(), f.now, 10);
    let legacy_taken = f.repo.rotate_legacy(f.uid, legacy, &start).await;
    let _: i64 = f.cmd(redis::cmd("DEL").arg(&marker)).await;
    assert_eq!(outcome.unwrap(), RefreshOutcome::Unknown);
    assert!(!legacy_taken.unwrap());
    assert!(f.exists(&f.key(jti)).await);
    assert!(!f.exists(&f.key(step.new_jti)).await);
    assert!(f.exists(&f.key(legacy)).await);
    assert!(!f.exists(&f.key(start.jti)).await);
    assert!(f.entry(start.sid).await.is_none());
    assert_eq!(f.entry(sid).await.unwrap()["jti"], jti.to_string());
    f.finish().await;
}

#[tokio::test]
async fn a_session_past_its_end_or_its_token_expiry_is_expired() {
    let Some(f) = fixture("a_session_past_its_end_or_its_token_expiry_is_expired").await else {
        return;
    };
    let (sid, jti) = f.session_at(f.now).await;
    let step = f.step(sid, jti, Uuid::new_v4(), f.now + MAX_AGE);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Expired);
    assert!(!f.exists(&f.key(jti)).await);
    assert!(!f.exists(&f.key(step.new_jti)).await);
    assert!(f.entry(sid).await.is_none());

    let (sid, jti) = f.session_at(f.now).await;
    let step = f.step(sid, jti, Uuid::new_v4(), f.now + LIFE);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Expired);
    assert!(f.entry(sid).await.is_none());
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_with_one_token_rotate_once() {
    let Some(f) = fixture("concurrent_refreshes_with_one_token_rotate_once").await else {
        return;
    };
    let (sid, jti) = f.session_at(f.now).await;
    let new_jti = Uuid::new_v4();
    let step = f.step(sid, jti, new_jti, f.now + 1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (repo, uid, step) = (f.repo.clone(), f.uid, step.clone());
        tasks.spawn(async move { repo.refresh(uid, &step).await.unwrap() });
    }
    let outcomes = tasks.join_all().await;
    let rotated = outcomes
        .iter()
        .filter(|o| **o == RefreshOutcome::Rotated)
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
    for outcome in &outcomes {
        assert!(
            *outcome == RefreshOutcome::Rotated
                || *outcome == RefreshOutcome::GraceReplay(sealed(new_jti)),
            "{outcome:?}"
        );
    }
    assert_eq!(f.entry(sid).await.unwrap()["jti"], new_jti.to_string());
    f.finish().await;
}

#[tokio::test]
async fn a_legacy_token_starts_a_session_once() {
    let Some(f) = fixture("a_legacy_token_starts_a_session_once").await else {
        return;
    };
    let legacy = Uuid::new_v4();
    let _: () = f
        .cmd(
            redis::cmd("SET")
                .arg(f.key(legacy))
                .arg("1")
                .arg("EX")
                .arg(LIFE),
        )
        .await;
    let start = f.start(Uuid::new_v4(), Uuid::new_v4(), f.now, 10);
    assert!(f.repo.rotate_legacy(f.uid, legacy, &start).await.unwrap());
    assert!(!f.exists(&f.key(legacy)).await);
    let value: Value = serde_json::from_slice(&f.get(&f.key(start.jti)).await.unwrap()).unwrap();
    assert_eq!(value["sid"], start.sid.to_string());
    assert_eq!(f.listed(f.now).await, vec![start.sid]);

    let again = f.start(Uuid::new_v4(), Uuid::new_v4(), f.now, 10);
    assert!(!f.repo.rotate_legacy(f.uid, legacy, &again).await.unwrap());
    assert!(!f.exists(&f.key(again.jti)).await);
    assert_eq!(f.listed(f.now).await, vec![start.sid]);
    f.finish().await;
}

#[tokio::test]
async fn list_sessions_orders_by_last_use_and_prunes() {
    let Some(f) = fixture("list_sessions_orders_by_last_use_and_prunes").await else {
        return;
    };
    let (a, a_jti) = f.session_at(f.now).await;
    let (b, _) = f.session_at(f.now + 1).await;
    let (c, _) = f.session_at(f.now + 1).await;
    let a_jti = f.rotate(a, a_jti, f.now + 2).await;
    // A short-lived token and a session at its absolute end.
    let (short, short_jti) = (Uuid::new_v4(), Uuid::new_v4());
    let start = SessionStart {
        exp: f.now + 5,
        ..f.start(short, short_jti, f.now + 3, 10)
    };
    f.repo.start_session(f.uid, &start).await.unwrap();
    let (ending, ending_jti) = (Uuid::new_v4(), Uuid::new_v4());
    let start = SessionStart {
        ends_at: f.now + 6,
        ..f.start(ending, ending_jti, f.now + 3, 10)
    };
    f.repo.start_session(f.uid, &start).await.unwrap();
    // Ties on last use are ordered by id.
    let ordered = |x: Uuid, y: Uuid| if x < y { [x, y] } else { [y, x] };
    let [b_first, c_first] = ordered(b, c);
    let [newest, next] = ordered(short, ending);
    assert_eq!(
        f.listed(f.now + 3).await,
        vec![newest, next, a, b_first, c_first]
    );

    assert_eq!(f.listed(f.now + 6).await, vec![a, b_first, c_first]);
    assert!(f.entry(short).await.is_none());
    assert!(f.entry(ending).await.is_none());
    assert!(!f.exists(&f.key(short_jti)).await);
    assert!(!f.exists(&f.key(ending_jti)).await);
    assert!(f.exists(&f.key(a_jti)).await);

    let sessions = f.repo.list_sessions(f.uid, f.now + 6).await.unwrap();
    assert_eq!(sessions[0].created_at, f.now);
    assert_eq!(sessions[0].last_used_at, f.now + 2);
    assert_eq!(sessions[0].user_agent, "agent/2");
    f.finish().await;
}

#[tokio::test]
async fn end_session_and_end_other_sessions_count() {
    let Some(f) = fixture("end_session_and_end_other_sessions_count").await else {
        return;
    };
    let (a, a_jti) = f.session_at(f.now).await;
    let (b, b_jti) = f.session_at(f.now).await;
    let b_jti2 = f.rotate(b, b_jti, f.now).await;
    let (c, c_jti) = f.session_at(f.now).await;
    let (d, d_jti) = f.session_at(f.now).await;

    assert!(f.repo.end_session(f.uid, a).await.unwrap());
    assert!(!f.repo.end_session(f.uid, a).await.unwrap());
    assert!(!f.repo.end_session(f.uid, Uuid::new_v4()).await.unwrap());
    assert!(!f.exists(&f.key(a_jti)).await);

    assert_eq!(
        f.repo
            .end_other_sessions(f.uid, Some(c), None)
            .await
            .unwrap(),
        2
    );
    assert_eq!(f.listed(f.now).await, vec![c]);
    for gone in [f.key(b_jti2), f.grace(b_jti), f.key(d_jti)] {
        assert!(!f.exists(&gone).await, "{gone}");
    }
    assert!(f.exists(&f.key(c_jti)).await);
    assert!(f.entry(d).await.is_none());
    assert_eq!(
        f.repo
            .end_other_sessions(f.uid, Some(c), None)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        f.repo
            .end_other_sessions(f.uid, Some(Uuid::new_v4()), None)
            .await
            .unwrap(),
        1
    );
    assert!(!f.exists(&f.index()).await);
    f.finish().await;
}

#[tokio::test]
async fn sign_out_everywhere_removes_the_index_and_grace_keys() {
    let Some(f) = fixture("sign_out_everywhere_removes_the_index_and_grace_keys").await else {
        return;
    };
    let (sid, jti) = f.session_at(f.now).await;
    let new_jti = f.rotate(sid, jti, f.now).await;
    let legacy = Uuid::new_v4();
    let _: () = f
        .cmd(
            redis::cmd("SET")
                .arg(f.key(legacy))
                .arg("1")
                .arg("EX")
                .arg(LIFE),
        )
        .await;
    let mut expected = vec![f.key(new_jti), f.grace(jti), f.index(), f.key(legacy)];
    expected.sort();
    assert_eq!(f.user_keys().await, expected);

    assert_eq!(f.repo.delete_user_refresh_tokens(f.uid).await.unwrap(), 4);
    assert_eq!(f.user_keys().await, Vec::<String>::new());
    let step = f.step(sid, new_jti, Uuid::new_v4(), f.now);
    let outcome = f.repo.refresh(f.uid, &step).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Unknown);
    f.finish().await;
}

#[tokio::test]
async fn the_index_outlives_the_longest_lived_token() {
    let Some(f) = fixture("the_index_outlives_the_longest_lived_token").await else {
        return;
    };
    let (long, long_jti) = (Uuid::new_v4(), Uuid::new_v4());
    let start = SessionStart {
        exp: f.now + 3 * LIFE,
        ..f.start(long, long_jti, f.now, 10)
    };
    f.repo.start_session(f.uid, &start).await.unwrap();
    let (short, short_jti) = f.session_at(f.now).await;
    assert!(f.ttl(&f.index()).await >= f.ttl(&f.key(long_jti)).await);
    assert_ttl_near(f.ttl(&f.index()).await, 3 * LIFE);

    let mut step = f.step(short, short_jti, Uuid::new_v4(), f.now);
    step.new_exp = f.now + 5 * LIFE;
    assert_eq!(
        f.repo.refresh(f.uid, &step).await.unwrap(),
        RefreshOutcome::Rotated
    );
    assert!(f.ttl(&f.index()).await >= f.ttl(&f.key(step.new_jti)).await);
    assert_ttl_near(f.ttl(&f.index()).await, 5 * LIFE);

    // Never shortened by a shorter-lived write.
    f.session_at(f.now).await;
    assert_ttl_near(f.ttl(&f.index()).await, 5 * LIFE);
    f.finish().await;
}

#[tokio::test]
async fn a_password_change_refuses_sessions_authenticated_with_the_previous_password() {
    let Some(f) =
        fixture("a_password_change_refuses_sessions_authenticated_with_the_previous_password")
            .await
    else {
        return;
    };
    let (keep, _) = f.session_at(f.now).await;
    let (other, _) = f.session_at(f.now).await;
    let change = CredentialChange {
        credential: "c2".into(),
    };
    let ended = f
        .repo
        .end_other_sessions(f.uid, Some(keep), Some(change))
        .await
        .unwrap();
    assert_eq!(ended, 1);
    assert_eq!(f.listed(f.now).await, vec![keep]);
    assert!(f.entry(other).await.is_none());

    // A sign-in that read the previous hash (credential c1) starts nothing.
    let stale = f.start(Uuid::new_v4(), Uuid::new_v4(), f.now, 10);
    assert!(!f.repo.start_session(f.uid, &stale).await.unwrap());
    assert!(!f.exists(&f.key(stale.jti)).await);
    assert!(f.entry(stale.sid).await.is_none());
    // One with the new password does.
    let fresh = SessionStart {
        credential: "c2".into(),
        ..f.start(Uuid::new_v4(), Uuid::new_v4(), f.now, 10)
    };
    assert!(f.repo.start_session(f.uid, &fresh).await.unwrap());
    let guard = f.ttl(&f.repo.keys.credential_guard(f.uid)).await;
    assert!((1..=3_600).contains(&guard), "guard TTL {guard}");
    f.finish().await;
}

#[tokio::test]
async fn ending_the_other_sessions_refuses_tokens_from_before_sessions_and_only_those_are_legacy() {
    let Some(f) = fixture(
        "ending_the_other_sessions_refuses_tokens_from_before_sessions_and_only_those_are_legacy",
    )
    .await
    else {
        return;
    };
    // A session's own entry is not a legacy entry.
    let (_, jti) = f.session_at(f.now).await;
    let start = f.start(Uuid::new_v4(), Uuid::new_v4(), f.now, 10);
    assert!(!f.repo.rotate_legacy(f.uid, jti, &start).await.unwrap());
    assert!(f.exists(&f.key(jti)).await, "not taken");

    let legacy = Uuid::new_v4();
    let _: () = f
        .cmd(
            redis::cmd("SET")
                .arg(f.key(legacy))
                .arg("1")
                .arg("EX")
                .arg(LIFE),
        )
        .await;
    f.repo.end_other_sessions(f.uid, None, None).await.unwrap();
    assert!(f.listed(f.now).await.is_empty());
    assert!(!f.repo.rotate_legacy(f.uid, legacy, &start).await.unwrap());
    assert!(f.entry(start.sid).await.is_none(), "no session started");
    f.finish().await;
}

// ------------------------------------------------------------ attempt counters

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

#[tokio::test]
async fn an_attempt_counts_on_every_counter_or_on_none() {
    let Some(f) = fixture("an_attempt_counts_on_every_counter_or_on_none").await else {
        return;
    };
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

#[tokio::test]
async fn the_window_starts_with_the_first_count_and_the_longest_wait_is_answered() {
    let Some(f) =
        fixture("the_window_starts_with_the_first_count_and_the_longest_wait_is_answered").await
    else {
        return;
    };
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

#[tokio::test]
async fn a_counter_lets_attempts_in_again_once_its_window_ends() {
    let Some(f) = fixture("a_counter_lets_attempts_in_again_once_its_window_ends").await else {
        return;
    };
    let a = counters(&[(&f.counter("a"), 1)]);
    let window = Duration::from_millis(300);
    assert_eq!(
        f.repo.attempt(&a, window).await.unwrap(),
        RateDecision::Allowed
    );
    assert!(matches!(
        f.repo.attempt(&a, window).await.unwrap(),
        RateDecision::Limited { retry_after } if retry_after <= window
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        f.repo.attempt(&a, window).await.unwrap(),
        RateDecision::Allowed
    );
    f.finish().await;
}

#[tokio::test]
async fn a_refund_takes_one_back_never_below_zero_and_keeps_the_window() {
    let Some(f) = fixture("a_refund_takes_one_back_never_below_zero_and_keeps_the_window").await
    else {
        return;
    };
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

#[tokio::test]
async fn cleared_counters_are_gone_and_others_kept() {
    let Some(f) = fixture("cleared_counters_are_gone_and_others_kept").await else {
        return;
    };
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

#[tokio::test]
async fn a_full_counter_without_an_expiry_gets_one_window() {
    let Some(f) = fixture("a_full_counter_without_an_expiry_gets_one_window").await else {
        return;
    };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_attempts_cannot_slip_past_a_limit() {
    let Some(f) = fixture("concurrent_first_attempts_cannot_slip_past_a_limit").await else {
        return;
    };
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
