//! The services under load, each its own process (the release binaries of
//! this crate), on a PostgreSQL database of the bench's own and the shared
//! Redis; their peak memory; the unrelated Redis keys the bench writes, and
//! how it removes exactly those (its users: `benches/common/users.rs`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use uuid::Uuid;

use crate::process::{Process, status_kib};
use crate::stores::test_redis_url;

/// A limit the bench never reaches.
const NO_LIMIT: &str = "1000000000";

/// The log filter of both services: the line each prints when it listens,
/// warnings and errors; not the per-request access log (`BENCH_RUST_LOG`
/// overrides it).
fn log_filter() -> String {
    std::env::var("BENCH_RUST_LOG")
        .unwrap_or_else(|_| "warn,account::cli=info,account::todo=info".into())
}

/// Starts the account service in `dir` (keys generated there first) on
/// `database_url` and the shared Redis, with the rate limits out of the way.
pub async fn start_account(
    dir: &Path,
    database_url: &str,
    max_connections: usize,
) -> anyhow::Result<(Process, String)> {
    let status = Command::new(env!("CARGO_BIN_EXE_account"))
        .args(["keys", "generate"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .status()
        .context("run `account keys generate`")?;
    if !status.success() {
        bail!("`account keys generate` exited with {status}");
    }
    let mut env = vec![
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("RUST_LOG", log_filter()),
        ("DATABASE_URL", database_url.to_owned()),
        ("REDIS_URL", test_redis_url()),
        // Every client signs up and in from 127.0.0.1: the limits would
        // answer 429 long before the work shows.
        ("SIGNIN_RATE_LIMIT", NO_LIMIT.to_owned()),
        ("SIGNIN_IP_RATE_LIMIT", NO_LIMIT.to_owned()),
        ("SIGNIN_EMAIL_RATE_LIMIT", NO_LIMIT.to_owned()),
        ("SIGNUP_RATE_LIMIT", NO_LIMIT.to_owned()),
        // One address may hold a quarter of the queue: room for every
        // flooding client.
        ("HASH_QUEUE_LIMIT", "10000".to_owned()),
        ("MAX_CONNECTIONS", max_connections.to_string()),
        // The connection storm comes from one address: the global cap, not
        // the per-address one, is what it measures.
        ("MAX_CONNECTIONS_PER_IP", max_connections.to_string()),
    ];
    // Unset: the service's default (one hashing thread per core); set, e.g.
    // to 1, to compare pool sizes in one sitting.
    if let Ok(threads) = std::env::var("BENCH_HASH_THREADS") {
        env.push(("HASH_THREADS", threads));
    }
    Ok(Process::start(
        "account",
        env!("CARGO_BIN_EXE_account"),
        dir,
        &env,
        "account service listening",
    )
    .await)
}

/// Starts the todo service in `dir`, verifying ID tokens against `jwks_url`.
pub async fn start_todo(dir: &Path, jwks_url: &str) -> (Process, String) {
    let env = [
        ("HOST", "127.0.0.1".to_owned()),
        ("TODO_PORT", "0".to_owned()),
        ("JWKS_URL", jwks_url.to_owned()),
        ("RUST_LOG", log_filter()),
    ];
    Process::start(
        "todo-service",
        env!("CARGO_BIN_EXE_todo-service"),
        dir,
        &env,
        "todo service listening",
    )
    .await
}

/// The peak resident memory of a process so far: the largest of its
/// `VmHWM` and of its `VmRSS` sampled every 10 ms by a thread of its own
/// (stopped on drop). `VmHWM` alone is not a peak to rely on: the kernel
/// records it lazily, so a reading can come out lower than an earlier one
/// once the process has given memory back.
pub struct PeakRss {
    pid: u32,
    max_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl PeakRss {
    pub fn watch(pid: u32) -> Self {
        let max_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (max, done) = (max_kib.clone(), stop.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                match status_kib(pid, "VmRSS") {
                    Some(kib) => max.fetch_max(kib, Ordering::Relaxed),
                    None => break,
                };
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self { pid, max_kib, stop }
    }

    /// The peak so far, in KiB: never lower than an earlier answer.
    pub fn kib(&self) -> Option<u64> {
        if let Some(hwm) = status_kib(self.pid, "VmHWM") {
            self.max_kib.fetch_max(hwm, Ordering::Relaxed);
        }
        Some(self.max_kib.load(Ordering::Relaxed)).filter(|&k| k > 0)
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Keys unrelated to any user (`perf-bench:<run>:<n>`), written in
/// pipelines to grow the keyspace the sign-out SCAN walks; exactly these are
/// unlinked when this drops.
pub struct UnrelatedKeys {
    prefix: String,
    count: usize,
}

const PIPELINE: usize = 10_000;

impl UnrelatedKeys {
    pub fn new() -> Self {
        Self {
            prefix: format!("perf-bench:{}:", Uuid::new_v4().simple()),
            count: 0,
        }
    }

    /// Writes keys until there are `total` of them.
    pub async fn grow_to(
        &mut self,
        redis: &mut redis::aio::MultiplexedConnection,
        total: usize,
    ) -> redis::RedisResult<()> {
        while self.count < total {
            let end = total.min(self.count + PIPELINE);
            let mut pipe = redis::pipe();
            for n in self.count..end {
                pipe.cmd("SET")
                    .arg(format!("{}{n}", self.prefix))
                    .arg("x")
                    .ignore();
            }
            pipe.query_async::<()>(redis).await?;
            self.count = end;
        }
        Ok(())
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

/// Unlinks `<prefix>0` … `<prefix><count - 1>`; how many existed.
fn remove_keys(prefix: &str, count: usize) -> redis::RedisResult<usize> {
    let mut conn = redis::Client::open(test_redis_url())?.get_connection()?;
    let mut removed = 0;
    for start in (0..count).step_by(PIPELINE) {
        let end = count.min(start + PIPELINE);
        let keys: Vec<String> = (start..end).map(|n| format!("{prefix}{n}")).collect();
        removed += redis::cmd("UNLINK").arg(keys).query::<usize>(&mut conn)?;
    }
    Ok(removed)
}

impl Drop for UnrelatedKeys {
    fn drop(&mut self) {
        if self.count == 0 {
            return;
        }
        let prefix = std::mem::take(&mut self.prefix);
        let count = std::mem::take(&mut self.count);
        match std::thread::spawn(move || remove_keys(&prefix, count)).join() {
            Ok(Ok(n)) => eprintln!("  … removed the {n} unrelated Redis keys the bench wrote"),
            Ok(Err(e)) => eprintln!("WARNING: removing the unrelated Redis keys failed: {e}"),
            Err(_) => eprintln!("WARNING: removing the unrelated Redis keys panicked"),
        }
    }
}
