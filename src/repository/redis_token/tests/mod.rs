//! The Redis repository against a real Redis, in both modes:
//!
//! - a single Redis at `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`),
//!   shared with other tests and runs: each test touches only the keys of a
//!   fresh random user (and anonymous ceremonies named by challenges that
//!   start with its uid) and removes them at the end;
//! - a local Redis Cluster (three masters, `tests/common/redis_cluster.rs`),
//!   one for this test binary, with the cluster key scheme (`{<uid>}:…`).
//!
//! [`on_both!`] runs a test body on each. An unreachable Redis, or a
//! `redis-server` without cluster support, skips with a visible line, or
//! fails under `REQUIRE_REAL_STORES=1`.

mod ceremony;
mod cluster;
mod limits;
mod sessions;
mod sign_in;

#[path = "../../../../tests/common/redis_cluster.rs"]
mod redis_cluster;

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use uuid::Uuid;

use super::*;
use crate::model::{
    ClientInfo, RateCounter, RateDecision, RateLimitRepository, RefreshOutcome, RefreshStep,
    SessionStart, TokenRepository,
};
use crate::repository::test_sessions::{Shape, challenge_prefix, rotated, sorted, unix_now};

const GRACE: u64 = 30;
/// Lifetime of the tokens the tests write, in seconds.
const LIFE: u64 = 600;
/// Absolute session lifetime.
const MAX_AGE: u64 = 3600;

/// A sign-in from `agent/1` at 10.0.0.1, refreshes from `agent/2` at 10.0.0.2.
const SHAPE: Shape = Shape {
    life: LIFE,
    max_age: MAX_AGE,
    grace: GRACE,
    signin: ("agent/1", "10.0.0.1"),
    refresh: ("agent/2", "10.0.0.2"),
};

/// Defines `mod <test> { fn standalone(); fn cluster(); }`, each running the
/// body `async fn <test>(f: Fixture)` on its kind of Redis.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn standalone() {
                on(Mode::Standalone, stringify!($name), super::$name).await;
            }

            #[tokio::test]
            async fn cluster() {
                on(Mode::Cluster, stringify!($name), super::$name).await;
            }
        }
    };
    ($name:ident, multi_thread) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn standalone() {
                on(Mode::Standalone, stringify!($name), super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                on(Mode::Cluster, stringify!($name), super::$name).await;
            }
        }
    };
}
use on_both;

/// Runs `body` on a fixture of `mode`, unless that Redis is unavailable
/// (skipped visibly).
async fn on<F: Future<Output = ()>>(mode: Mode, test: &str, body: impl FnOnce(Fixture) -> F) {
    if let Some(f) = fixture(mode, test).await {
        body(f).await;
    }
}

/// Which Redis a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Standalone,
    Cluster,
}

struct Fixture {
    repo: RedisTokenRepository,
    mode: Mode,
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

/// A repository on the Redis of `mode` and a fresh user, or `None`
/// (skipped) when that Redis is unavailable.
async fn fixture(mode: Mode, test: &str) -> Option<Fixture> {
    let test = format!("redis_token::tests::{test}::{mode:?}");
    let (url, redis_mode) = match mode {
        Mode::Standalone => (test_redis_url(), RedisMode::Standalone),
        Mode::Cluster => {
            let cluster = redis_cluster::shared(&test)?;
            (cluster.seed_url(), RedisMode::Cluster)
        }
    };
    let connect = async {
        let conn = redis_connection(redis_mode, &url)
            .map_err(|e| RedisError::from((ErrorKind::InvalidClientConfig, "REDIS_URL", e)))?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn.clone())
            .await?;
        Ok::<_, RedisError>(conn)
    };
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(conn)) => Some(Fixture {
            repo: RedisTokenRepository::new(conn),
            mode,
            uid: Uuid::new_v4(),
            now: unix_now(),
        }),
        failed => {
            let cause = match failed {
                Ok(Err(err)) => err.to_string(),
                _ => "timed out".to_owned(),
            };
            // The cluster was started by this process: it must answer.
            if require_real_stores() || mode == Mode::Cluster {
                panic!("{test}: Redis at {url} is unreachable ({cause})");
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: Redis at TEST_REDIS_URL={url} is unreachable ({cause})"
            );
            None
        }
    }
}

impl Fixture {
    /// Starts a session at `now` (cap 10); returns (sid, jti).
    async fn session_at(&self, now: u64) -> (Uuid, Uuid) {
        SHAPE.session(&self.repo, self.uid, now).await
    }

    fn step(&self, sid: Uuid, jti: Uuid, new_jti: Uuid, now: u64) -> RefreshStep {
        SHAPE.step(sid, jti, new_jti, now, sealed(new_jti))
    }

    /// Rotates `jti` at `now`; returns the successor's jti.
    async fn rotate(&self, sid: Uuid, jti: Uuid, now: u64) -> Uuid {
        rotated(
            &self.repo,
            self.uid,
            &self.step(sid, jti, Uuid::new_v4(), now),
        )
        .await
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

    /// Every key matching `pattern`, sorted (on a cluster: of the master
    /// that owns the user's slot).
    async fn scan(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .repo
                .conn
                .clone()
                .query_on_master_of(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000),
                    self.repo.keys.slot_key(self.uid).as_bytes(),
                )
                .await
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        sorted(keys)
    }

    /// A counter key of this test's own (`ratelimit:test:<uid>:<name>`).
    fn counter(&self, name: &str) -> String {
        format!("ratelimit:test:{}:{name}", self.uid)
    }

    /// The SCAN pattern of the anonymous ceremonies of this test's own
    /// challenges (`test_sessions::challenge`).
    fn anonymous_ceremonies(&self) -> String {
        format!("webauthn:auth:{}*", challenge_prefix(self.uid))
    }

    /// Removes every key of the user, its counters and its anonymous
    /// ceremonies (the end of every test). The cluster belongs to this test
    /// binary and goes with it, so there the counters and anonymous
    /// ceremonies, spread over the masters, are left.
    async fn finish(self) {
        if self.mode == Mode::Standalone {
            for pattern in [self.counter("*"), self.anonymous_ceremonies()] {
                let found: Vec<String> = self.scan(&pattern).await;
                if !found.is_empty() {
                    self.cmd::<i64>(redis::cmd("UNLINK").arg(&found)).await;
                }
            }
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
        // The shared test Redis only: the cluster goes with the test binary.
        if !std::thread::panicking() || self.mode == Mode::Cluster {
            return;
        }
        let uid = self.uid;
        let cleanup = std::thread::spawn(move || {
            let client = redis::Client::open(test_redis_url())?;
            let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
            let patterns = [
                format!("{uid}:*"),
                format!("ratelimit:test:{uid}:*"),
                format!("webauthn:auth:{}*", challenge_prefix(uid)),
            ];
            for pattern in patterns {
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

/// Within 10 s below `expected`: the seconds a loaded machine may take
/// between the write and the reading.
fn assert_ttl_near(ttl: i64, expected: u64) {
    let expected = i64::try_from(expected).unwrap();
    assert!(
        (expected - 10..=expected).contains(&ttl),
        "TTL {ttl}, expected about {expected}"
    );
}
