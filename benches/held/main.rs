//! Held connections at full size: `cargo bench --bench held` (release build;
//! no PostgreSQL or Redis: the service runs embedded, on SQLite in a temp
//! dir). `tests/api/connection_caps.rs` shows the same attack at a small cap;
//! this measures it against the release `account` binary with the default
//! connection settings (`MAX_CONNECTIONS=1024`, `MAX_CONNECTIONS_PER_IP=64`,
//! `HEADER_READ_TIMEOUT=10`).
//!
//! Two scenarios, each on a fresh service:
//!
//! 1. one source (127.0.0.2) keeps 3,000 connections half-open;
//! 2. 20 sources (127.0.0.10 … 127.0.0.29) keep 200 each.
//!
//! A held connection sends `GET /healthz HTTP/1.1\r\nHost: x\r\n` and never
//! finishes its head; once the server closes it, it is opened again 50 ms
//! later. When the holders have filled what they can (the server has closed
//! as many of their connections as they hold, or after 15 s), another source
//! (127.0.0.3) asks `GET /healthz` on a new connection every 100 ms, 100
//! times (about 10 s), from a thread and runtime of its own so that the
//! holders' tasks do not delay it in the bench. Per scenario: the probes
//! answered 200, their latency from the connection attempt to the response
//! head (p50, p99, max), and whether every one was answered within 1 s (the
//! target); how the server closed the held connections meanwhile: cut after
//! it read them (an end of stream before the head timeout: a newcomer took
//! the slot), refused unread (a reset, or an end of stream and then a reset:
//! it closed them with their bytes unread or before they arrived, past
//! `MAX_CONNECTIONS_PER_IP` or with no slot to take; see [`hold`]), or at
//! the head timeout; and the most sockets the service held (`/proc/<pid>/fd`).
//!
//! The table goes to stdout and to `<target dir>/bench/held.md` (`bench/` of
//! `CARGO_TARGET_DIR` when set; `BENCH_OUT` to change). Tuning:
//! `BENCH_PROBES` (100), `BENCH_PROBE_INTERVAL_MS` (100).

#[allow(dead_code)] // the ID-token claims of the other benches
#[path = "../common/bench.rs"]
mod bench;
// Allows its own dead code: each user takes a different part.
#[path = "../../tests/common/process.rs"]
mod process;
mod traffic;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use account::web::serve::defaults;
use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use bench::{cpu_model, env_number, progress};
use process::Process;
use traffic::{Counts, SocketCount, Tally, hold, probe_all};

/// Half a request head: never completed.
const HALF_A_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";

/// A probe: a whole request, on a connection of its own.
const PROBE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// The target: every probe answered within this.
const TARGET: Duration = Duration::from_secs(1);

/// How long a probe may take before it counts as unanswered (beyond the
/// target, to see by how much it was missed: a dropped SYN is sent again
/// after 1 s, then 3 s).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A held connection is opened again this long after the server closed it.
const REOPEN_AFTER: Duration = Duration::from_millis(50);

/// At most this long for the holders to fill what they can.
const FILL_WITHIN: Duration = Duration::from_secs(15);

/// The probes' source.
const PROBE_SOURCE: u8 = 3;

fn loopback(last_octet: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet))
}

struct Scenario {
    name: String,
    /// (last octet of the source address, connections it holds).
    holders: Vec<(u8, usize)>,
}

impl Scenario {
    fn sockets(&self) -> usize {
        self.holders.iter().map(|(_, n)| n).sum()
    }
}

fn main() -> anyhow::Result<()> {
    let probes: usize = env_number("BENCH_PROBES", 100_usize).max(1);
    let interval = Duration::from_millis(env_number("BENCH_PROBE_INTERVAL_MS", 100_u64));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Up to 4,000 held sockets and the probes' in this process.
    let _ = rlimit::increase_nofile_limit(10_000);
    let scenarios = [
        Scenario {
            name: "one source holds 3,000 half-open connections".into(),
            holders: vec![(2, 3000)],
        },
        Scenario {
            name: "20 sources hold 200 half-open connections each".into(),
            holders: (10..30).map(|octet| (octet, 200)).collect(),
        },
    ];
    let holders_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let probe_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for scenario in &scenarios {
        progress(&format!("scenario: {}", scenario.name));
        let row = run_scenario(scenario, &holders_runtime, &probe_runtime, probes, interval)?;
        rows.push((scenario, row));
    }
    drop(holders_runtime);

    let mut table = String::new();
    table.push_str("## Held connections\n\n");
    table.push_str(&format!(
        "`cargo bench --bench held` on {cores} core(s){}: the release `account` binary \
         (embedded stores), default `MAX_CONNECTIONS={}`, `MAX_CONNECTIONS_PER_IP={}`, \
         `HEADER_READ_TIMEOUT={}`; the holders, the probe and the service share the \
         machine. {probes} probes from 127.0.0.3, {} ms apart, each on a new connection; \
         the held connections' closes are counted while the probes run.\n\n",
        cpu_model().map(|m| format!(", {m}")).unwrap_or_default(),
        defaults::MAX_CONNECTIONS,
        defaults::MAX_CONNECTIONS_PER_IP,
        defaults::HEADER_READ_TIMEOUT,
        interval.as_millis(),
    ));
    table.push_str(
        "| scenario | probes answered 200 | p50 | p99 | max | every probe within 1 s | \
         held: cut after read | held: refused unread | held: head timeout | holders' \
         connects | service's sockets, most |\n\
         |---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n",
    );
    for (scenario, row) in &rows {
        table.push_str(&row.markdown(scenario));
    }
    table.push('\n');
    for (scenario, row) in &rows {
        let c = &row.closes;
        table.push_str(&format!(
            "- {}: the holders' connects failed {} times and their sends {} times \
             while the probes ran.\n",
            scenario.name,
            thousands(c.connect_failed),
            thousands(c.send_failed),
        ));
        for failure in &row.failures {
            table.push_str(&format!("- {failure}\n"));
        }
    }
    println!("{table}");
    let out = out_dir();
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    let file = out.join("held.md");
    std::fs::write(&file, format!("{table}\n"))
        .with_context(|| format!("write {}", file.display()))?;
    progress(&format!("written to {}", file.display()));
    Ok(())
}

/// `BENCH_OUT`, else `bench/` in `CARGO_TARGET_DIR`, else `target/bench`.
fn out_dir() -> PathBuf {
    std::env::var_os("BENCH_OUT").map_or_else(
        || {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(
                    || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
                    PathBuf::from,
                )
                .join("bench")
        },
        PathBuf::from,
    )
}

/// What one scenario measured.
struct Row {
    /// Latencies of the probes answered 200.
    answered: Vec<Duration>,
    probes: usize,
    /// The probes not answered 200, with why.
    failures: Vec<String>,
    /// The held connections' closes while the probes ran.
    closes: Counts,
    max_sockets: usize,
}

impl Row {
    fn markdown(&self, scenario: &Scenario) -> String {
        let mut sorted = self.answered.clone();
        sorted.sort();
        let max = sorted.last().copied();
        let over = sorted.iter().filter(|&&took| took > TARGET).count();
        let unanswered = self.probes - sorted.len();
        let within = if unanswered == 0 && over == 0 {
            "yes".to_owned()
        } else {
            format!("**no**: {over} over 1 s, {unanswered} unanswered")
        };
        format!(
            "| {} ({} sockets) | {} / {} | {} | {} | {} | {within} | {} | {} | {} | {} | {} |\n",
            scenario.name,
            thousands(scenario.sockets() as u64),
            sorted.len(),
            self.probes,
            ms(percentile(&sorted, 0.50)),
            ms(percentile(&sorted, 0.99)),
            ms(max),
            thousands(self.closes.cut),
            thousands(self.closes.refused),
            thousands(self.closes.timed_out),
            thousands(self.closes.connects),
            thousands(self.max_sockets as u64),
        )
    }
}

fn run_scenario(
    scenario: &Scenario,
    holders_runtime: &tokio::runtime::Runtime,
    probe_runtime: &tokio::runtime::Runtime,
    probes: usize,
    interval: Duration,
) -> anyhow::Result<Row> {
    let dir = tempfile::tempdir().context("temp dir for the service")?;
    let (service, base) = holders_runtime.block_on(start_account(dir.path()))?;
    let address: SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .context("the service's address")?;
    let sockets = SocketCount::watch(service.pid());

    let tally = Arc::new(Tally::default());
    let tasks: Vec<_> = scenario
        .holders
        .iter()
        .flat_map(|&(octet, count)| {
            (0..count)
                .map(|_| holders_runtime.spawn(hold(address, loopback(octet), Arc::clone(&tally))))
                .collect::<Vec<_>>()
        })
        .collect();
    // Until the server has closed as many held connections as there are.
    let started = Instant::now();
    while (tally.snapshot().closed() as usize) < scenario.sockets()
        && started.elapsed() < FILL_WITHIN
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    progress(&format!(
        "holders filled in {:.1} s ({} closes); probing",
        started.elapsed().as_secs_f64(),
        tally.snapshot().closed()
    ));

    let before = tally.snapshot();
    sockets.reset();
    // On a runtime (and thread) of its own: the holders' tasks do not delay it.
    let results = probe_runtime.block_on(probe_all(address, probes, interval));
    let closes = tally.snapshot().since(&before);
    let max_sockets = sockets.max();

    for task in &tasks {
        task.abort();
    }
    holders_runtime.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
    });
    drop(sockets);
    drop(service);

    let mut answered = Vec::new();
    let mut failures = Vec::new();
    for (i, (result, took)) in results.into_iter().enumerate() {
        match result {
            Ok(200) => answered.push(took),
            Ok(status) => failures.push(format!("probe {i}: {status} after {took:?}")),
            Err(e) => failures.push(format!("probe {i}: {e} after {took:?}")),
        }
    }
    let row = Row {
        answered,
        probes,
        failures,
        closes,
        max_sockets,
    };
    progress(&format!(
        "{} of {probes} answered 200, max {}; held connections cut {}, refused {}, timed out {}",
        row.answered.len(),
        ms(row.answered.iter().max().copied()),
        row.closes.cut,
        row.closes.refused,
        row.closes.timed_out
    ));
    Ok(row)
}

/// Starts the account service in `dir` (keys generated there first) with
/// its embedded stores and default connection settings.
async fn start_account(dir: &Path) -> anyhow::Result<(Process, String)> {
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
    let env = [
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        // The line it prints when it listens, warnings and errors.
        (
            "RUST_LOG",
            std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn,account::cli=info".into()),
        ),
    ];
    Ok(Process::start(
        "account",
        env!("CARGO_BIN_EXE_account"),
        dir,
        &env,
        "account service listening",
    )
    .await)
}

/// The `q` quantile of `sorted` (nearest rank).
fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn ms(took: Option<Duration>) -> String {
    took.map_or_else(
        || "—".to_owned(),
        |d| format!("{:.2} ms", d.as_secs_f64() * 1000.0),
    )
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
