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

mod cpu;
mod limits;
mod load;
#[path = "../common/openssl.rs"]
mod openssl;
// Allows its own dead code: each user takes a different part.
#[path = "../../tests/common/process.rs"]
mod process;
mod redis_legs;
mod report;
mod services;
#[allow(dead_code)]
#[path = "../../tests/common/stores.rs"]
mod stores;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use load::{ClientState, Op, Outcome, Targets};
use report::{Row, Target, thousands};
use services::{UnrelatedKeys, Users, UsersCleanup};
use stores::{TestDatabase, stores_reachable, test_redis_url};

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(raw) => raw.trim().parse().unwrap_or_else(|_| {
            eprintln!("{name}={raw:?} is not a valid number; using the default");
            default
        }),
        Err(_) => default,
    }
}

fn progress(message: &str) {
    eprintln!("  … {message}");
}

/// The memory the account service should stay under through the run.
const MEMORY_BUDGET_MIB: f64 = 64.0;

/// How often each of the four `/me` probes asks during the sign-in flood
/// (200 req/s in all): other users being served while sign-ins queue. A
/// probe that asks as fast as it can would itself take the cores the
/// flood's hashing needs and measure a different machine.
const ME_PROBE_EVERY: Duration = Duration::from_millis(20);

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

/// The limits measured before the services start (the RSA and Argon2 rates
/// are measured again around their legs).
struct Limits {
    openssl: Result<f64, String>,
    signer: f64,
    /// The generated private key, for the signer's rate when openssl is
    /// missing.
    private_pem: Vec<u8>,
}

impl Limits {
    /// The all-core RSA-2048 signing rate measured now: openssl's when it
    /// ran at the start, else the service's signer's.
    fn rsa_now(&self, settings: &Settings) -> f64 {
        let seconds = settings.limit_seconds;
        match &self.openssl {
            Ok(_) => openssl::openssl_rsa2048(settings.cores, seconds.ceil() as u32)
                .unwrap_or(self.signer),
            Err(_) => limits::signer_rate(&self.private_pem, settings.cores, seconds)
                .unwrap_or(self.signer),
        }
    }
}

/// A limit measured just before and just after a leg: on a shared or
/// throttled machine the cores' speed drifts, and the leg is compared with
/// what they gave around it, not minutes earlier.
struct Bracket {
    before: f64,
    after: f64,
}

impl Bracket {
    fn mean(&self) -> f64 {
        (self.before + self.after) / 2.0
    }

    fn describe(&self) -> String {
        format!(
            "{} (just before the leg {}, after it {})",
            thousands(self.mean()),
            thousands(self.before),
            thousands(self.after)
        )
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
    let limits = measure_limits(&settings, key_dir.path())?;
    let rows = runtime.block_on(run_legs(&settings, &limits))?;
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

fn measure_limits(settings: &Settings, dir: &std::path::Path) -> anyhow::Result<Limits> {
    let cores = settings.cores;
    let seconds = settings.limit_seconds;
    progress(&format!("openssl speed -multi {cores} rsa2048"));
    let openssl = openssl::openssl_rsa2048(cores, seconds.ceil() as u32);
    progress(&format!("the service's RS256 signer on {cores} threads"));
    let files = account::testing::GeneratedKeyFiles::in_dir(dir);
    account::testing::generate_keys(&files, false)?;
    let private_pem = std::fs::read(&files.private_key)?;
    let signer = limits::signer_rate(&private_pem, cores, seconds)?;
    Ok(Limits {
        openssl,
        signer,
        private_pem,
    })
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

fn load_row(
    leg: &str,
    outcome: &Outcome,
    rss: Option<f64>,
    limit: String,
    limit_rate: Option<f64>,
    target: Option<Target>,
) -> Row {
    if outcome.failures > 0 {
        eprintln!(
            "WARNING: {leg}: {} non-2xx answers or failed requests; first: {}",
            outcome.failures,
            outcome.first_failure.as_deref().unwrap_or("?")
        );
    }
    Row {
        leg: leg.to_owned(),
        result: format!("{} req/s", thousands(outcome.per_second())),
        p50: Some(outcome.p50),
        p99: Some(outcome.p99),
        failures: outcome.failures,
        peak_rss_mib: rss,
        limit,
        ratio: limit_rate.map(|l| outcome.per_second() / l),
        target,
    }
}

/// Where the machine's CPU went during the sign-in flood, as shares of all
/// its cores: the hashing threads, the rest of the account service, the
/// other processes, idle. The hashing threads' share bounds the flood's
/// ratio to the all-core Argon2 rate, which gives them every core.
fn flood_cpu_row(used: &cpu::Usage, cores: usize) -> Row {
    let machine = (cores as f64 * used.wall).max(1e-9);
    let share = |seconds: f64| seconds / machine * 100.0;
    let mut parts = vec![format!(
        "the account service's other threads {:.1} %",
        share(used.of(cpu::Owner::Account) - used.hashing)
    )];
    parts.extend(
        cpu::Owner::ALL
            .iter()
            .filter(|&&owner| owner != cpu::Owner::Account)
            .map(|&owner| format!("{} {:.1} %", owner.name(), share(used.of(owner)))),
    );
    parts.push(format!(
        "idle {:.1} %",
        share((machine - used.total()).max(0.0))
    ));
    Row {
        leg: "sign-in flood: the machine's CPU, by who used it".into(),
        result: format!("hashing threads {:.1} %", share(used.hashing)),
        p50: None,
        p99: None,
        failures: 0,
        peak_rss_mib: None,
        limit: parts.join(", "),
        ratio: Some(used.hashing / machine),
        target: None,
    }
}

/// Where the CPU of a refresh went: per answered request, each process's
/// CPU time, the signature's share of the account service's (one all-core
/// signature costs `cores / rsa_rate` core-seconds), and the idle rest of
/// the machine.
fn cpu_row(refresh: &Outcome, used: &cpu::Usage, cores: usize, rsa_rate: f64) -> Row {
    let answered = refresh.ok.max(1) as f64;
    let per = |seconds: f64| seconds / answered * 1e6;
    let signature = cores as f64 / rsa_rate.max(1e-9) * 1e6;
    let idle = (cores as f64 * used.wall - used.total()).max(0.0);
    let mut parts: Vec<String> = cpu::Owner::ALL
        .iter()
        .map(|&owner| {
            let micros = per(used.of(owner));
            if owner == cpu::Owner::Account {
                format!(
                    "{} {micros:.0} µs (one signature {signature:.0} µs of it)",
                    owner.name()
                )
            } else {
                format!("{} {micros:.0} µs", owner.name())
            }
        })
        .collect();
    parts.push(format!("idle {:.0} µs", per(idle)));
    let total = per(used.total());
    Row {
        leg: "refresh: CPU per answered request, by process".into(),
        result: format!("{total:.0} µs"),
        p50: None,
        p99: None,
        failures: 0,
        peak_rss_mib: None,
        limit: parts.join(", "),
        // The share of the machine's work that was the signature itself.
        ratio: Some(signature / total.max(1e-9)),
        target: None,
    }
}

async fn run_legs(settings: &Settings, limits: &Limits) -> anyhow::Result<Vec<Row>> {
    let database = TestDatabase::create("account_perf")
        .await
        .context("cannot create the bench database")?;
    let users = Users::default();
    // Declared after the database: dropped before it, while Redis still has the keys.
    let _cleanup = UsersCleanup(users.clone());
    let mut unrelated = UnrelatedKeys::new();

    let account_dir = tempfile::tempdir()?;
    let max_connections = 1024;
    let (account, account_base) =
        services::start_account(account_dir.path(), &database.url, max_connections).await?;
    let todo_dir = tempfile::tempdir()?;
    let (_todo, todo_base) = services::start_todo(
        todo_dir.path(),
        &format!("{account_base}/.well-known/jwks.json"),
    )
    .await;
    let peak_rss = services::PeakRss::watch(account.pid());
    let rss = || mib(peak_rss.kib());

    let targets = Targets {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(settings.concurrency * 2)
            .timeout(Duration::from_secs(30))
            .build()?,
        account: format!("{account_base}/api/account").into(),
        todos: format!("{todo_base}/api/todos").into(),
    };
    progress(&format!("signing up {} users", settings.concurrency));
    let mut clients = services::sign_up_many(&targets, &users, settings.concurrency).await?;
    let mut rows = Vec::new();
    let seconds = settings.seconds;

    // Refresh, against the all-core RSA signing rate measured around it.
    progress("refresh with rotating tokens (RSA-2048 rate measured before and after)");
    let rsa_before = limits.rsa_now(settings);
    let cpu_start = cpu::Snapshot::take(account.pid());
    let refresh = load::drive(&targets, Op::Refresh, &mut clients, seconds).await;
    let cpu_used = cpu_start.until(&cpu::Snapshot::take(account.pid()));
    let rsa = Bracket {
        before: rsa_before,
        after: limits.rsa_now(settings),
    };
    let rsa_label = match &limits.openssl {
        Ok(_) => format!(
            "`openssl speed -multi {}` RSA-2048: {} signs/s",
            settings.cores,
            rsa.describe()
        ),
        Err(why) => {
            eprintln!(
                "WARNING: openssl unavailable ({why}); refresh is compared with the service's own signer"
            );
            format!(
                "the service's signer on {} threads: {} signs/s",
                settings.cores,
                rsa.describe()
            )
        }
    };
    rows.push(load_row(
        "refresh `POST /tokens`, rotating",
        &refresh,
        rss(),
        rsa_label,
        Some(rsa.mean()),
        Some(Target::AtLeast(0.70)),
    ));
    rows.push(cpu_row(&refresh, &cpu_used, settings.cores, rsa.mean()));
    rows.push(Row {
        leg: "RSA-2048 signs, the service's signer, all cores".into(),
        result: format!("{} signs/s", thousands(limits.signer)),
        p50: None,
        p99: None,
        failures: 0,
        peak_rss_mib: None,
        limit: format!(
            "openssl: {}",
            limits
                .openssl
                .as_ref()
                .map_or_else(|e| e.clone(), |r| format!("{} signs/s", thousands(*r)))
        ),
        ratio: limits.openssl.as_ref().ok().map(|r| limits.signer / r),
        target: None,
    });

    // /me next to the todo service's GET of the same run.
    progress("GET /me");
    let me = load::drive(&targets, Op::Me, &mut clients, seconds).await;
    let me_rss = rss();
    progress("the todo service's GET /api/todos");
    let todo = load::drive(&targets, Op::TodoGet, &mut clients, seconds).await;
    let todo_rate = todo.per_second();
    rows.push(load_row(
        "`GET /me`",
        &me,
        me_rss,
        format!("todo `GET /api/todos`: {} req/s", thousands(todo_rate)),
        Some(todo_rate),
        Some(Target::AtLeast(0.67)),
    ));
    rows.push(load_row(
        "todo service `GET /api/todos`",
        &todo,
        None,
        "—".into(),
        None,
        None,
    ));

    // Sign-in flooded, with /me latency measured during the flood.
    progress(&format!(
        "sign-in flooded by {} clients, /me probed alongside",
        settings.signin_clients
    ));
    let mut flooders: Vec<ClientState> = clients
        .iter()
        .cycle()
        .take(settings.signin_clients)
        .cloned()
        .collect();
    let mut watchers: Vec<ClientState> = clients.iter().take(4).cloned().collect();
    let argon2_before = limits::argon2_rate(settings.cores, settings.limit_seconds);
    let flood_cpu_start = cpu::Snapshot::take(account.pid());
    let (signin, me_during) = tokio::join!(
        load::drive(&targets, Op::Signin, &mut flooders, seconds * 2.0),
        load::probe(
            &targets,
            Op::Me,
            &mut watchers,
            seconds * 2.0,
            ME_PROBE_EVERY
        )
    );
    let flood_cpu = flood_cpu_start.until(&cpu::Snapshot::take(account.pid()));
    let flood_rss = rss();
    let argon2 = Bracket {
        before: argon2_before,
        after: limits::argon2_rate(settings.cores, settings.limit_seconds),
    };
    rows.push(load_row(
        "sign-in `POST /signin`, flooded",
        &signin,
        flood_rss,
        format!(
            "Argon2id, our parameters, {} cores: {}/s",
            settings.cores,
            argon2.describe()
        ),
        Some(argon2.mean()),
        Some(Target::AtLeast(0.90)),
    ));
    let mut during = load_row(
        "`GET /me` during the sign-in flood (4 clients, 50 req/s each)",
        &me_during,
        flood_rss,
        "the 10 ms target for p99".into(),
        None,
        Some(Target::AtMost(1.0)),
    );
    during.ratio = Some(me_during.p99.as_secs_f64() / 0.010);
    during.result = format!(
        "{} req/s, p99 {:.1} ms",
        thousands(me_during.per_second()),
        me_during.p99.as_secs_f64() * 1e3
    );
    rows.push(during);
    rows.push(flood_cpu_row(&flood_cpu, settings.cores));

    // Sign-out everywhere next to the bare SCAN loop.
    let mut redis = redis::Client::open(test_redis_url())?
        .get_multiplexed_async_connection()
        .await?;
    for &keys in &settings.signout_keys {
        progress(&format!("writing unrelated Redis keys up to {keys}"));
        unrelated.grow_to(&mut redis, keys).await?;
        let (signout, scan, dbsize) = redis_legs::signout_leg(&targets, &users, &mut redis).await?;
        rows.push(Row {
            leg: format!(
                "sign-out everywhere, {} unrelated keys",
                thousands(unrelated.count() as f64)
            ),
            result: format!("{:.0} ms", signout.as_secs_f64() * 1e3),
            p50: None,
            p99: None,
            failures: 0,
            peak_rss_mib: rss(),
            limit: format!(
                "bare SCAN loop over {} keys: {:.0} ms",
                thousands(dbsize as f64),
                scan.as_secs_f64() * 1e3
            ),
            ratio: Some(signout.as_secs_f64() / scan.as_secs_f64().max(1e-9)),
            target: Some(Target::AtMost(1.5)),
        });
    }
    drop(unrelated);

    // Redis bytes per live session.
    progress("Redis bytes per live session");
    let per_session = redis_legs::bytes_per_session(&targets, &users, &mut redis).await?;
    rows.push(Row {
        leg: format!(
            "Redis bytes per live session ({} sessions of one user)",
            redis_legs::SESSIONS_MEASURED
        ),
        result: format!("{} B", thousands(per_session)),
        p50: None,
        p99: None,
        failures: 0,
        peak_rss_mib: None,
        limit: "`MEMORY USAGE` of the user's keys ÷ sessions".into(),
        ratio: None,
        target: None,
    });

    // Connections at once, held by the connection cap.
    if settings.connections > 0 {
        progress(&format!("{} connections at once", settings.connections));
        let address = account_base.trim_start_matches("http://").to_owned();
        let storm =
            load::connection_storm(&address, settings.connections, Duration::from_secs(60)).await;
        let mut row = load_row(
            &format!(
                "{} connections at once (`GET /healthz`, cap {max_connections})",
                thousands(settings.connections as f64)
            ),
            &storm,
            rss(),
            "—".into(),
            None,
            None,
        );
        row.result = format!(
            "{} answered in {:.1} s",
            thousands(storm.ok as f64),
            storm.elapsed.as_secs_f64()
        );
        rows.push(row);
    }

    let peak = rss();
    rows.push(Row {
        leg: "peak resident memory of the account service, whole run".into(),
        result: peak.map_or_else(|| "—".into(), |m| format!("{m:.0} MiB")),
        p50: None,
        p99: None,
        failures: 0,
        peak_rss_mib: peak,
        limit: format!("{MEMORY_BUDGET_MIB:.0} MiB"),
        ratio: peak.map(|m| m / MEMORY_BUDGET_MIB),
        target: Some(Target::AtMost(1.0)),
    });
    drop(account);
    Ok(rows)
}
