//! Performance next to the machine's limits, in one run on one machine:
//! `cargo bench --bench perf` (release build; PostgreSQL and Redis as for the
//! tests: `TEST_DATABASE_URL`, `TEST_REDIS_URL`).
//!
//! 1. The machine's limits: RSA-2048 signatures/s on every core (`openssl
//!    speed -multi`, and the service's signer on one thread per core).
//! 2. The `account` and `todo-service` release binaries, each its own
//!    process, on a fresh PostgreSQL database (dropped at the end) and the
//!    shared Redis, rate limits out of the way; then, one after the other:
//!    refresh with rotating tokens between two measurements of the all-core
//!    RSA rate, with the CPU time of every process during it (Linux), `GET
//!    /me`, the todo service's `GET /api/todos`, sign-in flooded with `/me`
//!    probed at 200 req/s beside it, between two measurements of the
//!    all-core Argon2id rate with the service's parameters,
//!    sign-out everywhere next to a bare SCAN loop at 100k and 1M unrelated
//!    keys, Redis bytes per live session, 5,000 connections at once; the
//!    account service's peak resident memory after each.
//! 3. The table on stdout and in `<target dir>/bench/perf.md`, the chart in
//!    `<target dir>/bench/perf.png`.
//!
//! Tuning: `BENCH_SECONDS` (5) per load leg, `BENCH_CONCURRENCY` (32),
//! `BENCH_SIGNIN_CLIENTS` (16), `BENCH_LIMIT_SECONDS` (3),
//! `BENCH_SIGNOUT_KEYS` (`100000,1000000`), `BENCH_CONNECTIONS` (5000),
//! `BENCH_HASH_THREADS` (the service's `HASH_THREADS`; unset: its default),
//! `BENCH_OUT` (`bench/` in `CARGO_TARGET_DIR`, else `target/bench`). Only
//! the database it created, the Redis keys of the users it created and the
//! unrelated keys it wrote are removed.

#[path = "../common/bench.rs"]
mod bench;
mod cpu;
mod legs;
mod limits;
#[path = "../common/load.rs"]
mod load;
#[path = "../common/openssl.rs"]
mod openssl;
// Allows its own dead code: each user takes a different part.
#[path = "../../tests/common/process.rs"]
mod process;
mod redis_legs;
mod report;
mod rows;
mod services;
#[allow(dead_code)]
#[path = "../../tests/common/stores.rs"]
mod stores;
mod storm;
#[path = "../common/users.rs"]
mod users;

use std::path::PathBuf;

use bench::{cpu_model, env_number, progress};
use stores::stores_reachable;

/// The run's tuning, from the `BENCH_*` variables.
struct Settings {
    cores: usize,
    seconds: f64,
    concurrency: usize,
    signin_clients: usize,
    limit_seconds: f64,
    signout_keys: Vec<usize>,
    connections: usize,
    out: PathBuf,
}

impl Settings {
    fn from_env() -> Self {
        let signout_keys = std::env::var("BENCH_SIGNOUT_KEYS")
            .unwrap_or_else(|_| "100000,1000000".into())
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seconds: env_number("BENCH_SECONDS", 5.0_f64).max(0.5),
            concurrency: env_number("BENCH_CONCURRENCY", 32_usize).max(1),
            signin_clients: env_number("BENCH_SIGNIN_CLIENTS", 16_usize).max(1),
            limit_seconds: env_number("BENCH_LIMIT_SECONDS", 3.0_f64).max(0.5),
            signout_keys,
            connections: env_number("BENCH_CONNECTIONS", 5000_usize),
            out: std::env::var_os("BENCH_OUT").map_or_else(
                || {
                    std::env::var_os("CARGO_TARGET_DIR")
                        .map_or_else(
                            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
                            PathBuf::from,
                        )
                        .join("bench")
                },
                PathBuf::from,
            ),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env();
    // The connection storm holds thousands of sockets in this process.
    let _ = rlimit::increase_nofile_limit(settings.connections as u64 * 2 + 1024);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Err(store) = runtime.block_on(stores_reachable()) {
        anyhow::bail!("{store} is unreachable (set TEST_DATABASE_URL / TEST_REDIS_URL)");
    }
    let key_dir = tempfile::tempdir()?;
    let limits = limits::measure_limits(&settings, key_dir.path())?;
    let rows = runtime.block_on(legs::run_legs(&settings, &limits))?;
    drop(runtime);

    let machine = format!(
        "{} core(s){}",
        settings.cores,
        cpu_model().map(|m| format!(", {m}")).unwrap_or_default()
    );
    let heading = format!(
        "`cargo bench --bench perf` on {machine}; {} clients, {} s per load leg; the load \
         generator, both services, PostgreSQL and Redis share the machine.",
        settings.concurrency, settings.seconds
    );
    let table = report::markdown(&rows, &heading);
    println!("{table}");
    std::fs::create_dir_all(&settings.out)?;
    let md = settings.out.join("perf.md");
    std::fs::write(&md, &table)?;
    let png = settings.out.join("perf.png");
    report::chart(
        &rows,
        &format!("Each leg against its limit ({machine})"),
        &png,
    )?;
    progress(&format!("wrote {} and {}", md.display(), png.display()));
    Ok(())
}
