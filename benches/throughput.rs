//! Throughput benchmark: `cargo bench --bench throughput`. What `cargo bench
//! --bench perf` does not measure:
//!
//! 1. RS256 signing of an ID token with the crate's `IdTokenSigner` (key parsed
//!    once), compared with `jsonwebtoken::encode` (which parses the PEM-derived
//!    key again on every call) and with ID-token verification by the one
//!    validator (`IdTokenValidator::validate`: header, signature, every claim rule),
//!    each on one core for about two seconds; and `openssl speed rsa2048` when
//!    `openssl` is on PATH.
//! 2. Refresh (`POST /tokens`, each client rotating its own refresh-token
//!    chain) of the real server, started in this process on port 0, with
//!    `BENCH_CONCURRENCY` clients (default 32) for `BENCH_SECONDS` (default 5):
//!    first against a fresh PostgreSQL database (dropped afterwards) and Redis,
//!    then on the embedded default (SQLite in a temp dir, the in-process token
//!    store kept in the same file), and the ratio of the two.
//!
//! `BENCH_MODE=refresh` runs only the two refresh measurements.
//!
//! Stores come from `TEST_DATABASE_URL` and `TEST_REDIS_URL` (the same defaults
//! as the integration tests). When either is unreachable the refresh part is
//! skipped with a message and the bench exits 0. Only the database it created
//! and the Redis keys `<uid>:*` of the users it created are removed.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use account::config::Config;
use account::startup::Application;
use account::testing::{GeneratedKeyFiles, IdTokenSigner, generate_keys};
use account::verifier::{IdTokenRules, IdTokenValidator};
use anyhow::Context as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

#[path = "common/bench.rs"]
mod bench;
#[allow(dead_code)] // the perf bench's probe and todo requests
#[path = "common/load.rs"]
mod load;
#[path = "common/openssl.rs"]
mod openssl;
#[path = "../tests/common/stores.rs"]
mod stores;
#[allow(dead_code)] // the perf bench's extra sign-ins
#[path = "common/users.rs"]
mod users;

use bench::{cpu_model, env_number, progress};
use load::{Op, Outcome, Targets};
use stores::{TestDatabase, stores_reachable, test_redis_url};
use users::{Users, UsersCleanup};

const SIGNING_SECONDS: f64 = 2.0;

fn main() -> anyhow::Result<()> {
    let concurrency: usize = env_number("BENCH_CONCURRENCY", 32).max(1);
    let seconds: f64 = env_number("BENCH_SECONDS", 5.0_f64).max(0.1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let refresh_only = std::env::var("BENCH_MODE").is_ok_and(|mode| mode == "refresh");

    let key_dir = tempfile::tempdir().context("temp dir for keys")?;
    let files = GeneratedKeyFiles::in_dir(key_dir.path());
    generate_keys(&files, false)?;

    println!("## Throughput");
    println!();
    println!(
        "`cargo bench --bench throughput` (release build) on {cores} core(s){}.",
        cpu_model().map(|m| format!(", {m}")).unwrap_or_default()
    );
    println!(
        "The HTTP server runs in the same process as the load generator ({concurrency} \
         reqwest clients, one Tokio runtime), and PostgreSQL and Redis run on the same \
         machine: all of them share the {cores} core(s). No log subscriber is installed."
    );
    println!();

    // 1. Signing and verification, one core.
    if !refresh_only {
        signing_table(&files)?;
    }

    // 2. Refresh, against the real stores, then on the embedded default.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Err(store) = runtime.block_on(stores_reachable()) {
        println!(
            "Refresh throughput not measured: {store} is unreachable \
             (set TEST_DATABASE_URL / TEST_REDIS_URL)."
        );
        return Ok(());
    }
    let mut rows = Vec::new();
    for stores in [Stores::PostgresRedis, Stores::Embedded] {
        let outcome = runtime.block_on(refresh(&files, concurrency, seconds, stores))?;
        rows.push((stores, outcome));
    }
    drop(runtime);
    refresh_table(&rows, concurrency, seconds);
    Ok(())
}

/// Prints the signing and verification table.
fn signing_table(files: &GeneratedKeyFiles) -> anyhow::Result<()> {
    progress("measuring RS256 signing and verification (about 2 s each)");
    let signing = signing_rows(files)?;
    progress("running `openssl speed -seconds 2 rsa2048`");
    let openssl = openssl::openssl_rsa2048(1, 2);

    println!("| RS256 operation, 1 core, RSA-2048 | per second | per operation |");
    println!("|---|---:|---:|");
    for (label, per_second) in &signing {
        println!("| {label} | {per_second:.0} | {:.0} µs |", 1e6 / per_second);
    }
    match &openssl {
        Ok(rate) => println!(
            "| `openssl speed -seconds 2 rsa2048`, sign (reference) | {rate:.0} | {:.0} µs |",
            1e6 / rate
        ),
        Err(why) => println!("| `openssl speed rsa2048` (reference) | unavailable: {why} | — |"),
    }
    println!();
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Prints the refresh table, and the embedded refresh rate against the one on
/// PostgreSQL + Redis.
fn refresh_table(rows: &[(Stores, Outcome)], concurrency: usize, seconds: f64) {
    println!(
        "| `POST /api/account/tokens`, rotation, {concurrency} concurrent clients, \
         {seconds} s | requests | requests/s | p50 | p99 | non-2xx |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (stores, outcome) in rows {
        println!(
            "| {} | {} | {:.0} | {} | {} | {} |",
            stores.label(),
            outcome.ok,
            outcome.per_second(),
            ms(outcome.p50),
            ms(outcome.p99),
            outcome.failures
        );
    }
    for (stores, outcome) in rows {
        if outcome.failures > 0 {
            println!();
            println!(
                "WARNING: {} had {} non-2xx responses or request errors; first: {}",
                stores.label(),
                outcome.failures,
                outcome.first_failure.as_deref().unwrap_or("?")
            );
        }
    }
    let rate = |wanted: Stores| {
        rows.iter()
            .find(|(stores, _)| *stores == wanted)
            .map(|(_, outcome)| outcome.per_second())
    };
    if let (Some(external), Some(embedded)) = (rate(Stores::PostgresRedis), rate(Stores::Embedded))
    {
        println!();
        println!(
            "Refresh on the embedded default: {embedded:.0} req/s, {:.2}× its {external:.0} req/s \
             on PostgreSQL + Redis.",
            embedded / external
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------------------
// 1. Signing

/// Runs `op` repeatedly for about `SIGNING_SECONDS`; returns operations per second.
fn rate(mut op: impl FnMut()) -> f64 {
    // A short warm-up, so the first-call costs are not timed.
    for _ in 0..10 {
        op();
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        for _ in 0..16 {
            op();
        }
        n += 16;
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= SIGNING_SECONDS {
            return n as f64 / elapsed;
        }
    }
}

/// Each RS256 operation's label and its rate per second.
fn signing_rows(files: &GeneratedKeyFiles) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let private_pem = std::fs::read(&files.private_key)?;
    let public_pem = std::fs::read(&files.public_key)?;
    let signer = IdTokenSigner::from_pem(&private_pem)?;
    let claims = bench::id_claims();

    let signer_rate = rate(|| {
        black_box(
            signer
                .sign(black_box(&claims))
                .expect("IdTokenSigner::sign"),
        );
    });

    let encoding = EncodingKey::from_rsa_pem(&private_pem)?;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(signer.kid().to_owned());
    let encode_rate = rate(|| {
        black_box(
            jsonwebtoken::encode(black_box(&header), black_box(&claims), &encoding)
                .expect("jsonwebtoken::encode"),
        );
    });

    let token = signer.sign(&claims)?;
    let decoding = DecodingKey::from_rsa_pem(&public_pem)?;
    let validator = IdTokenValidator::new(IdTokenRules::default())?;
    validator
        .validate(&token, |_| Some(&decoding))
        .context("the signed token does not verify")?;
    let decode_rate = rate(|| {
        black_box(
            validator
                .validate(black_box(&token), |_| Some(&decoding))
                .expect("IdTokenValidator::validate"),
        );
    });

    Ok(vec![
        (
            "sign, `IdTokenSigner::sign` (parsed key held; as the server does)",
            signer_rate,
        ),
        (
            "sign, `jsonwebtoken::encode` + `EncodingKey::from_rsa_pem` (key re-parsed per call)",
            encode_rate,
        ),
        (
            "verify, `IdTokenValidator::validate` (header, signature and every claim rule; as the server and domain services do)",
            decode_rate,
        ),
    ])
}

// ---------------------------------------------------------------------------
// 2. Refresh on both backends

/// Where the server keeps users and tokens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stores {
    PostgresRedis,
    /// SQLite in a temp dir, the in-process token store in the same file.
    Embedded,
}

impl Stores {
    fn label(self) -> &'static str {
        match self {
            Stores::PostgresRedis => {
                "PostgreSQL + Redis (HS256 verify + SELECT + RS256 sign + Redis script)"
            }
            Stores::Embedded => {
                "embedded default (HS256 verify + SQLite SELECT + RS256 sign + in-process step + SQLite group commit)"
            }
        }
    }
}

/// A limit the benchmark never reaches.
const NO_LIMIT: &str = "1000000000";

/// Starts the server on `stores`, signs up one user per client, and lets
/// every client rotate its own refresh-token chain for `seconds`.
async fn refresh(
    files: &GeneratedKeyFiles,
    concurrency: usize,
    seconds: f64,
    stores: Stores,
) -> anyhow::Result<Outcome> {
    let users = Users::default();
    let mut env: HashMap<String, String> = HashMap::new();
    // Each declared before the cleanup: dropped after it, while the server
    // still has them.
    let (_database, _data_dir) = match stores {
        Stores::PostgresRedis => {
            let database = TestDatabase::create("account_bench")
                .await
                .context("cannot create the bench database")?;
            env.insert("DATABASE_URL".into(), database.url.clone());
            env.insert("REDIS_URL".into(), test_redis_url());
            (Some(database), None)
        }
        Stores::Embedded => {
            let dir = tempfile::tempdir().context("temp dir for the embedded stores")?;
            let url = format!("sqlite://{}/account.db", dir.path().display());
            env.insert("DATABASE_URL".into(), url);
            (None, Some(dir))
        }
    };
    let _cleanup = (stores == Stores::PostgresRedis).then(|| UsersCleanup(users.clone()));

    let refresh_secret = std::fs::read_to_string(&files.refresh_secret)?;
    env.extend([
        ("HOST".into(), "127.0.0.1".into()),
        ("PORT".into(), "0".into()),
        (
            "PRIV_KEY_FILE".into(),
            files.private_key.display().to_string(),
        ),
        (
            "PUB_KEY_FILE".into(),
            files.public_key.display().to_string(),
        ),
        ("REFRESH_SECRET".into(), refresh_secret.trim().into()),
        // Every client signs up from 127.0.0.1: the limits would answer 429
        // long before the server's throughput shows.
        ("SIGNIN_RATE_LIMIT".into(), NO_LIMIT.into()),
        ("SIGNIN_IP_RATE_LIMIT".into(), NO_LIMIT.into()),
        ("SIGNIN_EMAIL_RATE_LIMIT".into(), NO_LIMIT.into()),
        ("SIGNUP_RATE_LIMIT".into(), NO_LIMIT.into()),
        // Nor may the hashing queue's share per client address (a quarter
        // of it) refuse the concurrent sign-ups of the one load generator.
        ("HASH_QUEUE_LIMIT".into(), "1024".into()),
    ]);
    let config = Config::from_vars(env)?;
    let app = Application::build(config).await?;
    let targets = Targets {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .timeout(Duration::from_secs(30))
            .build()?,
        account: Arc::from(format!("http://{}/api/account", app.local_addr()?)),
        todos: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    // One user per client, signed up concurrently (this also opens the connections).
    progress(&format!("signing up {concurrency} users"));
    let mut clients = users::sign_up_many(&targets, &users, concurrency).await?;
    progress(&format!(
        "{} for {seconds} s with {concurrency} clients",
        stores.label()
    ));
    let outcome = load::drive(&targets, Op::Refresh, &mut clients, seconds).await;

    drop(targets);
    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("WARNING: the server stopped with an error: {e}"),
        Ok(Err(e)) => eprintln!("WARNING: the server task failed: {e}"),
        Err(_) => eprintln!("WARNING: the server did not stop within 5 s"),
    }
    Ok(outcome)
}
