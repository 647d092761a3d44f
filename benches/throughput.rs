//! Throughput benchmark: `cargo bench --bench throughput`.
//!
//! 1. RS256 signing of an ID token with the crate's `IdTokenSigner` (key parsed
//!    once), compared with `jsonwebtoken::encode` (which parses the PEM-derived
//!    key again on every call) and with ID-token verification by the one
//!    validator (`IdTokenValidator::validate`: header, signature, every claim rule),
//!    each on one core for about two seconds; and `openssl speed rsa2048` when
//!    `openssl` is on PATH.
//! 2. HTTP throughput of the real server, started in this process on port 0
//!    against a fresh PostgreSQL database (dropped afterwards) and Redis, with
//!    `BENCH_CONCURRENCY` clients (default 32) for `BENCH_SECONDS` (default 5)
//!    per endpoint: `GET /me`, `POST /tokens` (each client rotates its own
//!    refresh-token chain) and `POST /signin`.
//! 3. `POST /tokens` again on the embedded default (SQLite in a temp dir, the
//!    in-process token store kept in the same file), and its ratio to the
//!    refresh rate on PostgreSQL + Redis of the same run.
//!
//! `BENCH_MODE=refresh` runs only the two refresh measurements.
//!
//! Stores come from `TEST_DATABASE_URL` and `TEST_REDIS_URL` (the same defaults
//! as the integration tests). When either is unreachable the HTTP part is
//! skipped with a message and the bench exits 0. Only the database it created
//! and the Redis keys `<uid>:*` of the users it created are removed.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use account::config::Config;
use account::startup::Application;
use account::testing::{GeneratedKeyFiles, IdTokenSigner, generate_keys};
use account::verifier::{Audience, IdClaims, IdTokenRules, IdTokenValidator};
use anyhow::{Context as _, bail};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;

#[allow(dead_code)]
#[path = "common/openssl.rs"]
mod openssl;
#[path = "../tests/common/stores.rs"]
mod stores;
use stores::{TestDatabase, delete_user_keys, stores_reachable, test_redis_url};

const PASSWORD: &str = "correct horse battery";
const SIGNING_SECONDS: f64 = 2.0;

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(raw) => raw.trim().parse().unwrap_or_else(|_| {
            eprintln!("{name}={raw:?} is not a valid number; using the default");
            default
        }),
        Err(_) => default,
    }
}

/// Progress lines go to stderr; the tables go to stdout.
fn progress(message: &str) {
    let _ = writeln!(std::io::stderr(), "  … {message}");
}

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

    // 2. HTTP, against the real stores, then the embedded default.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Err(store) = runtime.block_on(stores_reachable()) {
        println!(
            "HTTP throughput not measured: {store} is unreachable \
             (set TEST_DATABASE_URL / TEST_REDIS_URL)."
        );
        return Ok(());
    }
    let scenarios: &[Scenario] = if refresh_only {
        &[Scenario::Refresh]
    } else {
        &[Scenario::Me, Scenario::Refresh, Scenario::Signin]
    };
    let mut rows = runtime.block_on(http_rows(
        &files,
        concurrency,
        seconds,
        Stores::PostgresRedis,
        scenarios,
    ))?;
    rows.extend(runtime.block_on(http_rows(
        &files,
        concurrency,
        seconds,
        Stores::Embedded,
        &[Scenario::Refresh],
    ))?);
    drop(runtime);
    http_table(&rows, concurrency, seconds);
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
    for row in &signing {
        println!(
            "| {} | {:.0} | {:.0} µs |",
            row.label,
            row.per_second,
            1e6 / row.per_second
        );
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

/// Prints the HTTP table, and the embedded refresh rate against the one on
/// PostgreSQL + Redis.
fn http_table(rows: &[HttpRow], concurrency: usize, seconds: f64) {
    println!(
        "| HTTP endpoint, {concurrency} concurrent clients, {seconds} s | requests | \
         requests/s | p50 | p99 | non-2xx |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.0} | {} | {} | {} |",
            row.label,
            row.ok,
            row.ok as f64 / row.elapsed.as_secs_f64(),
            ms(row.p50),
            ms(row.p99),
            row.failures
        );
    }
    for row in rows {
        if row.failures > 0 {
            println!();
            println!(
                "WARNING: {} had {} non-2xx responses or request errors; first: {}",
                row.label,
                row.failures,
                row.first_failure.as_deref().unwrap_or("?")
            );
        }
    }
    let refresh_rate = |stores: Stores| {
        rows.iter()
            .find(|row| row.stores == stores && row.scenario == Scenario::Refresh)
            .map(|row| row.ok as f64 / row.elapsed.as_secs_f64())
    };
    if let (Some(external), Some(embedded)) = (
        refresh_rate(Stores::PostgresRedis),
        refresh_rate(Stores::Embedded),
    ) {
        println!();
        println!(
            "Refresh on the embedded default: {embedded:.0} req/s, {:.2}× its {external:.0} req/s \
             on PostgreSQL + Redis.",
            embedded / external
        );
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------------------
// 1. Signing

struct SigningRow {
    label: &'static str,
    per_second: f64,
}

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

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn signing_rows(files: &GeneratedKeyFiles) -> anyhow::Result<Vec<SigningRow>> {
    let private_pem = std::fs::read(&files.private_key)?;
    let public_pem = std::fs::read(&files.public_key)?;
    let signer = IdTokenSigner::from_pem(&private_pem)?;
    let now = now_secs();
    // The claims the server puts into an ID token (default issuer and audience).
    let claims = IdClaims {
        sub: Uuid::new_v4(),
        iss: "account".into(),
        aud: Audience::One("domain-services".into()),
        iat: now,
        exp: now + 900,
        nbf: None,
        jti: Some(Uuid::new_v4().to_string()),
        email: "bench@example.com".into(),
        email_verified: true,
        name: "Bench User".into(),
        sid: Some(Uuid::new_v4().to_string()),
    };

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
        SigningRow {
            label: "sign, `IdTokenSigner::sign` (parsed key held; as the server does)",
            per_second: signer_rate,
        },
        SigningRow {
            label: "sign, `jsonwebtoken::encode` + `EncodingKey::from_rsa_pem` (key re-parsed per call)",
            per_second: encode_rate,
        },
        SigningRow {
            label: "verify, `IdTokenValidator::validate` (header, signature and every claim rule; as the server and domain services do)",
            per_second: decode_rate,
        },
    ])
}

// ---------------------------------------------------------------------------
// 2. HTTP

/// Removes the `<uid>:*` Redis keys of the users the bench created, and
/// nothing else, also on an early return (the database drops itself).
struct Cleanup {
    users: Arc<Mutex<Vec<Uuid>>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let users = std::mem::take(&mut *self.users.lock().unwrap_or_else(|e| e.into_inner()));
        match std::thread::spawn(move || delete_user_keys(&users).map(|n| (users.len(), n))).join()
        {
            Ok(Ok((users, keys))) => progress(&format!(
                "cleaned up: removed {keys} Redis keys of {users} bench users"
            )),
            Ok(Err(e)) => eprintln!("WARNING: Redis cleanup failed: {e}"),
            Err(_) => eprintln!("WARNING: Redis cleanup panicked"),
        }
    }
}

/// What one client holds: its user's credentials and latest tokens.
#[derive(Clone)]
struct ClientState {
    email: String,
    id_token: String,
    refresh_token: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Me,
    Refresh,
    Signin,
}

impl Scenario {
    fn label(self, stores: Stores) -> &'static str {
        match (self, stores) {
            (Scenario::Me, _) => "`GET /api/account/me` (RS256 verify + 1 SELECT)",
            (Scenario::Refresh, Stores::PostgresRedis) => {
                "`POST /api/account/tokens`, rotation (HS256 verify + SELECT + RS256 sign + Redis script)"
            }
            (Scenario::Refresh, Stores::Embedded) => {
                "embedded default: `POST /api/account/tokens`, rotation (HS256 verify + SQLite SELECT + RS256 sign + in-process step + SQLite group commit)"
            }
            (Scenario::Signin, _) => {
                "`POST /api/account/signin` (SELECT + Argon2id verify + RS256 sign + Redis SET)"
            }
        }
    }
}

/// Where the server keeps users and tokens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stores {
    PostgresRedis,
    /// SQLite in a temp dir, the in-process token store in the same file.
    Embedded,
}

struct HttpRow {
    stores: Stores,
    scenario: Scenario,
    label: &'static str,
    ok: u64,
    failures: u64,
    first_failure: Option<String>,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

#[derive(Default)]
struct WorkerResult {
    latencies: Vec<Duration>,
    failures: u64,
    first_failure: Option<String>,
}

fn tokens_of(body: &Value) -> Option<(String, String)> {
    Some((
        body["tokens"]["idToken"].as_str()?.to_owned(),
        body["tokens"]["refreshToken"].as_str()?.to_owned(),
    ))
}

fn subject_of(id_token: &str) -> anyhow::Result<Uuid> {
    let payload = id_token.split('.').nth(1).context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    let claims: Value = serde_json::from_slice(&bytes)?;
    Ok(claims["sub"].as_str().context("no sub")?.parse()?)
}

/// One request of `scenario`; `Err` describes a non-2xx answer or a failed request.
async fn one_request(
    http: &reqwest::Client,
    base: &str,
    scenario: Scenario,
    state: &mut ClientState,
) -> Result<(), String> {
    let response = match scenario {
        Scenario::Me => {
            http.get(format!("{base}/me"))
                .bearer_auth(&state.id_token)
                .send()
                .await
        }
        Scenario::Refresh => {
            http.post(format!("{base}/tokens"))
                .json(&json!({"refreshToken": state.refresh_token}))
                .send()
                .await
        }
        Scenario::Signin => {
            http.post(format!("{base}/signin"))
                .json(&json!({"email": state.email, "password": PASSWORD}))
                .send()
                .await
        }
    }
    .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?;
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    if scenario == Scenario::Refresh {
        let value: Value =
            serde_json::from_slice(&body).map_err(|e| format!("refresh body is not JSON: {e}"))?;
        let (id_token, refresh_token) =
            tokens_of(&value).ok_or("refresh body has no token pair")?;
        state.id_token = id_token;
        state.refresh_token = refresh_token;
    }
    Ok(())
}

async fn worker(
    http: reqwest::Client,
    base: Arc<str>,
    scenario: Scenario,
    mut state: ClientState,
    deadline: Instant,
) -> (WorkerResult, ClientState) {
    let mut result = WorkerResult {
        latencies: Vec::with_capacity(4096),
        ..WorkerResult::default()
    };
    while Instant::now() < deadline {
        let start = Instant::now();
        match one_request(&http, &base, scenario, &mut state).await {
            Ok(()) => result.latencies.push(start.elapsed()),
            Err(e) => {
                result.failures += 1;
                result.first_failure.get_or_insert(e);
                if scenario == Scenario::Refresh {
                    // The chain may be broken (the token used or unknown): stop this client.
                    break;
                }
            }
        }
    }
    (result, state)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn run_scenario(
    http: &reqwest::Client,
    base: &Arc<str>,
    (stores, scenario): (Stores, Scenario),
    clients: &mut Vec<ClientState>,
    seconds: f64,
) -> anyhow::Result<HttpRow> {
    progress(&format!(
        "{} for {seconds} s with {} clients",
        scenario.label(stores),
        clients.len()
    ));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = clients
        .drain(..)
        .map(|state| {
            tokio::spawn(worker(
                http.clone(),
                base.clone(),
                scenario,
                state,
                deadline,
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    let mut first_failure = None;
    for joined in futures::future::join_all(tasks).await {
        let (result, state) = joined.context("a client task panicked")?;
        latencies.extend(result.latencies);
        failures += result.failures;
        if first_failure.is_none() {
            first_failure = result.first_failure;
        }
        clients.push(state);
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Ok(HttpRow {
        stores,
        scenario,
        label: scenario.label(stores),
        ok: latencies.len() as u64,
        failures,
        first_failure,
        elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    })
}

/// A limit the benchmark never reaches.
const NO_LIMIT: &str = "1000000000";

async fn http_rows(
    files: &GeneratedKeyFiles,
    concurrency: usize,
    seconds: f64,
    stores: Stores,
    scenarios: &[Scenario],
) -> anyhow::Result<Vec<HttpRow>> {
    let users = Arc::new(Mutex::new(Vec::new()));
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
    let _cleanup = (stores == Stores::PostgresRedis).then(|| Cleanup {
        users: users.clone(),
    });

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
        // Every client signs up and in from 127.0.0.1: the limits would
        // answer 429 long before the server's throughput shows.
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
    let base: Arc<str> = format!("http://{}/api/account", app.local_addr()?).into();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;

    // One user per client, signed up concurrently (this also opens the connections).
    progress(&format!("signing up {concurrency} users"));
    let signups = (0..concurrency).map(|_| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
            let response = http
                .post(format!("{base}/signup"))
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await?;
            if status != 201 {
                bail!("sign-up answered {status}: {body}");
            }
            let (id_token, refresh_token) = tokens_of(&body).context("no token pair")?;
            anyhow::Ok(ClientState {
                email,
                id_token,
                refresh_token,
            })
        }
    });
    let mut clients = Vec::with_capacity(concurrency);
    for signed_up in futures::future::join_all(signups).await {
        let state = signed_up?;
        users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(subject_of(&state.id_token)?);
        clients.push(state);
    }

    let mut rows = Vec::new();
    for scenario in scenarios {
        rows.push(run_scenario(&http, &base, (stores, *scenario), &mut clients, seconds).await?);
    }

    drop(http);
    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("WARNING: the server stopped with an error: {e}"),
        Ok(Err(e)) => eprintln!("WARNING: the server task failed: {e}"),
        Err(_) => eprintln!("WARNING: the server did not stop within 5 s"),
    }
    Ok(rows)
}
