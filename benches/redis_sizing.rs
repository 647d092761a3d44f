//! Redis sizing: `cargo bench --bench redis_sizing`.
//!
//! 1. **Memory per session.** The real server (in this process, on port 0,
//!    against a fresh PostgreSQL database, dropped afterwards, and the Redis
//!    at `TEST_REDIS_URL`) signs up `SIZING_USERS` users (default 200):
//!    `MEMORY USAGE` of each key of one user after its sign-up, after a
//!    refresh (the grace key exists for `REFRESH_REUSE_GRACE` seconds) and
//!    with ten sessions, and the growth of `used_memory` over all the
//!    sign-ups divided by their number.
//! 2. **Sign-out everywhere against unrelated keys.** Its SCAN walks the
//!    whole keyspace of the node that holds the user's keys (a standalone
//!    Redis: all of it). With the keyspace as found, then with
//!    `SIZING_UNRELATED_KEYS` (default 1,000,000) small unrelated keys added,
//!    `SIZING_SIGNOUTS` users (default 5) sign out one at a time: the
//!    latency of `POST /signout` and, from `INFO commandstats`, the SCAN
//!    calls and the microseconds Redis spent in SCAN per sign-out.
//!
//! Only the database it created, the keys of its users and its unrelated keys
//! (`redis-sizing:<run>:<n>`) are removed (the limits' counters of 127.0.0.1
//! and of its users' emails expire with their window). On a Redis shared with other work,
//! `used_memory` and `cmdstat_scan` also count theirs: measure on a Redis of
//! its own for clean figures (`redis-server --port 6390 --save '' &` and
//! `TEST_REDIS_URL=redis://127.0.0.1:6390`). When a store is unreachable the
//! bench says so and exits 0.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use account::config::Config;
use account::startup::Application;
use account::testing::{GeneratedKeyFiles, generate_keys};
use anyhow::{Context as _, bail};
use base64::Engine as _;
use redis::AsyncCommands as _;
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};
use uuid::Uuid;

#[allow(dead_code)] // the ID-token claims of the RS256 rates
#[path = "common/bench.rs"]
mod bench;
#[allow(dead_code)]
#[path = "../tests/common/stores.rs"]
mod stores;
use bench::{cpu_model, env_number, progress};
use stores::{TestDatabase, delete_user_keys, stores_reachable, test_redis_url};

const PASSWORD: &str = "correct horse battery";
const NO_LIMIT: &str = "1000000000";
/// Unrelated keys written per pipeline.
const BATCH: usize = 10_000;

fn main() -> anyhow::Result<()> {
    let users = env_number("SIZING_USERS", 200_usize).max(1);
    let unrelated = env_number("SIZING_UNRELATED_KEYS", 1_000_000_usize);
    let signouts = env_number("SIZING_SIGNOUTS", 5_usize).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Err(store) = runtime.block_on(stores_reachable()) {
        println!("Redis sizing not measured: {store} is unreachable.");
        return Ok(());
    }
    let signed_up = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let result = runtime.block_on(run(users, unrelated, signouts, signed_up.clone()));
    let users = std::mem::take(&mut *signed_up.lock().unwrap_or_else(|e| e.into_inner()));
    match std::thread::spawn(move || delete_user_keys(&users)).join() {
        Ok(Ok(n)) => progress(&format!("cleaned up: {n} keys of the bench users")),
        _ => eprintln!("WARNING: could not remove the bench users' keys"),
    }
    result
}

/// The server, its HTTP client and a Redis connection for inspection.
struct Bench {
    base: String,
    http: reqwest::Client,
    redis: MultiplexedConnection,
    users: std::sync::Arc<std::sync::Mutex<Vec<Uuid>>>,
}

async fn run(
    users: usize,
    unrelated: usize,
    signouts: usize,
    signed_up: std::sync::Arc<std::sync::Mutex<Vec<Uuid>>>,
) -> anyhow::Result<()> {
    let key_dir = tempfile::tempdir()?;
    let files = GeneratedKeyFiles::in_dir(key_dir.path());
    generate_keys(&files, false)?;
    let database = TestDatabase::create("account_sizing").await?;
    let mut env: HashMap<String, String> = HashMap::from([
        ("HOST".into(), "127.0.0.1".into()),
        ("PORT".into(), "0".into()),
        ("DATABASE_URL".into(), database.url.clone()),
        ("REDIS_URL".into(), test_redis_url()),
        (
            "PRIV_KEY_FILE".into(),
            files.private_key.display().to_string(),
        ),
        (
            "PUB_KEY_FILE".into(),
            files.public_key.display().to_string(),
        ),
        (
            "REFRESH_SECRET_FILE".into(),
            files.refresh_secret.display().to_string(),
        ),
        ("MAX_SESSIONS_PER_USER".into(), "10".into()),
    ]);
    for limit in [
        "SIGNIN_RATE_LIMIT",
        "SIGNIN_IP_RATE_LIMIT",
        "SIGNIN_EMAIL_RATE_LIMIT",
    ] {
        env.insert(limit.into(), NO_LIMIT.into());
    }
    env.insert("SIGNUP_RATE_LIMIT".into(), NO_LIMIT.into());
    let app = Application::build(Config::from_vars(env)?).await?;
    let base = format!("http://{}/api/account", app.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let redis = redis::Client::open(test_redis_url())?
        .get_multiplexed_async_connection()
        .await?;
    let mut bench = Bench {
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        redis,
        users: signed_up,
    };

    println!("## Redis sizing");
    println!();
    println!(
        "`cargo bench --bench redis_sizing` on {} core(s){}; Redis {} at TEST_REDIS_URL.",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model().map(|m| format!(", {m}")).unwrap_or_default(),
        info_field(&mut bench.redis, "server", "redis_version").await?
    );
    println!();
    memory(&mut bench, users).await?;
    signout_cost(&mut bench, unrelated, signouts).await?;

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    Ok(())
}

/// `field` of `INFO section`.
async fn info_field(
    redis: &mut MultiplexedConnection,
    section: &str,
    field: &str,
) -> anyhow::Result<String> {
    let info: String = redis::cmd("INFO").arg(section).query_async(redis).await?;
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
        .with_context(|| format!("no {field} in INFO {section}"))
}

/// `(calls, usec)` of SCAN from `INFO commandstats`.
async fn scan_stats(redis: &mut MultiplexedConnection) -> anyhow::Result<(u64, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await?;
    let Some(line) = info.lines().find_map(|l| l.strip_prefix("cmdstat_scan:")) else {
        return Ok((0, 0));
    };
    let field = |name: &str| {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("calls"), field("usec")))
}

impl Bench {
    async fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> anyhow::Result<Value> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("{path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Signs up a new user: (uid, email, ID token, refresh token).
    async fn sign_up(&self) -> anyhow::Result<(Uuid, String, String, String)> {
        let email = format!("sizing-{}@example.com", Uuid::new_v4().simple());
        let body = self
            .post(
                "/signup",
                json!({"email": email, "password": PASSWORD}),
                None,
            )
            .await?;
        let (id, refresh) = tokens(&body)?;
        let uid = subject(&id)?;
        self.users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(uid);
        Ok((uid, email, id, refresh))
    }

    /// `MEMORY USAGE … SAMPLES 0` of every key of `uid`, by kind.
    async fn user_memory(&mut self, uid: Uuid) -> anyhow::Result<Vec<(String, u64)>> {
        let mut keys: Vec<String> = Vec::new();
        let mut iter: redis::AsyncIter<String> = self
            .redis
            .scan_match(format!("{uid}:*"))
            .await
            .context("SCAN")?;
        while let Some(key) = iter.next_item().await {
            keys.push(key?);
        }
        drop(iter);
        let mut out = Vec::new();
        for key in keys {
            let bytes: u64 = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .arg("SAMPLES")
                .arg(0)
                .query_async(&mut self.redis)
                .await?;
            out.push((key_kind(&key), bytes));
        }
        out.sort();
        Ok(out)
    }
}

/// What a key of a user is, from its name.
fn key_kind(key: &str) -> String {
    let rest = key.split_once(':').map_or(key, |(_, rest)| rest);
    if rest.parse::<Uuid>().is_ok() {
        "whitelist entry `<uid>:<jti>`".into()
    } else if rest.starts_with("grace:") {
        "grace successor `<uid>:grace:<jti>`".into()
    } else {
        format!("`<uid>:{rest}`")
    }
}

fn tokens(body: &Value) -> anyhow::Result<(String, String)> {
    let field = |name: &str| body["tokens"][name].as_str().map(str::to_owned);
    Ok((
        field("idToken").context("idToken")?,
        field("refreshToken").context("refreshToken")?,
    ))
}

fn subject(id_token: &str) -> anyhow::Result<Uuid> {
    let payload = id_token.split('.').nth(1).context("JWT")?;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    Ok(claims["sub"].as_str().context("sub")?.parse()?)
}

fn print_keys(label: &str, keys: &[(String, u64)]) {
    let total: u64 = keys.iter().map(|(_, b)| b).sum();
    println!("| {label} | {} | {total} B |", keys.len());
    // Grouped by kind (`keys` is sorted by kind).
    let mut i = 0;
    while i < keys.len() {
        let kind = &keys[i].0;
        let group: Vec<u64> = keys[i..]
            .iter()
            .take_while(|(k, _)| k == kind)
            .map(|(_, b)| *b)
            .collect();
        let sum: u64 = group.iter().sum();
        if group.len() == 1 {
            println!("| &nbsp;&nbsp;{kind} | | {sum} B |");
        } else {
            println!("| &nbsp;&nbsp;{kind} × {} | | {sum} B |", group.len());
        }
        i += group.len();
    }
}

async fn memory(bench: &mut Bench, users: usize) -> anyhow::Result<()> {
    let (uid, email, _, refresh) = bench.sign_up().await?;
    let signed_up = bench.user_memory(uid).await?;
    bench
        .post("/tokens", json!({ "refreshToken": refresh }), None)
        .await?;
    let refreshed = bench.user_memory(uid).await?;
    for _ in 1..10 {
        bench
            .post(
                "/signin",
                json!({"email": email, "password": PASSWORD}),
                None,
            )
            .await?;
    }
    let ten = bench.user_memory(uid).await?;

    progress(&format!("signing up {users} users, 8 at a time"));
    let before: i64 = info_field(&mut bench.redis, "memory", "used_memory")
        .await?
        .parse()?;
    let mut done = 0;
    while done < users {
        let wave = (users - done).min(8);
        let signups = (0..wave).map(|_| bench.sign_up());
        for signed_up in futures::future::join_all(signups).await {
            signed_up?;
        }
        done += wave;
    }
    let after: i64 = info_field(&mut bench.redis, "memory", "used_memory")
        .await?
        .parse()?;

    println!("| a user's keys (`MEMORY USAGE … SAMPLES 0`) | keys | bytes |");
    println!("|---|---:|---:|");
    print_keys("after sign-up (one session)", &signed_up);
    print_keys("right after a refresh (grace key present)", &refreshed);
    print_keys("ten sessions (nine more sign-ins)", &ten);
    let total = |keys: &[(String, u64)]| keys.iter().map(|(_, b)| *b).sum::<u64>();
    println!();
    println!(
        "Each further session: {:.0} B (ten sessions less one, both with the grace key, \
         over nine). \
         `used_memory` grew by {} B over {users} sign-ups: {:.0} B per user with one \
         session, allocator and keyspace overhead included.",
        (total(&ten) as f64 - total(&refreshed) as f64) / 9.0,
        after - before,
        (after - before) as f64 / users as f64
    );
    println!();
    Ok(())
}

/// Signs `n` users up and out one at a time: the sign-out latencies (sorted)
/// and the SCAN calls and microseconds per sign-out.
async fn sign_outs(bench: &mut Bench, n: usize) -> anyhow::Result<(Vec<Duration>, f64, f64)> {
    let mut signed_up = Vec::new();
    for _ in 0..n {
        signed_up.push(bench.sign_up().await?);
    }
    let (calls, usec) = scan_stats(&mut bench.redis).await?;
    let mut latencies = Vec::new();
    for (_, _, id, _) in &signed_up {
        let start = Instant::now();
        bench.post("/signout", json!({}), Some(id)).await?;
        latencies.push(start.elapsed());
    }
    let (calls_after, usec_after) = scan_stats(&mut bench.redis).await?;
    latencies.sort();
    Ok((
        latencies,
        (calls_after - calls) as f64 / n as f64,
        (usec_after - usec) as f64 / n as f64,
    ))
}

async fn signout_cost(bench: &mut Bench, unrelated: usize, n: usize) -> anyhow::Result<()> {
    let run = Uuid::new_v4().simple().to_string();
    println!(
        "| sign-out everywhere, one at a time | keys in Redis | p50 | max | SCAN calls | µs in SCAN |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    signout_row(bench, "the keyspace as found", n).await?;
    progress(&format!("writing {unrelated} unrelated keys"));
    let written = write_unrelated(&mut bench.redis, &run, unrelated).await;
    let measured = match written {
        Ok(()) => signout_row(bench, &format!("with {unrelated} unrelated keys added"), n).await,
        Err(e) => Err(e),
    };
    progress("removing the unrelated keys");
    remove_unrelated(&mut bench.redis, &run, unrelated).await?;
    measured?;
    println!();
    println!(
        "SCAN uses COUNT 1000: a sign-out costs about one SCAN call per thousand keys of \
         the node it runs on, whoever they belong to."
    );
    Ok(())
}

/// One row of the sign-out table: `n` sign-outs with the keyspace as it is.
async fn signout_row(bench: &mut Bench, label: &str, n: usize) -> anyhow::Result<()> {
    let size: u64 = redis::cmd("DBSIZE").query_async(&mut bench.redis).await?;
    let (latencies, calls, usec) = sign_outs(bench, n).await?;
    println!(
        "| {label} | {size} | {:.1} ms | {:.1} ms | {calls:.0} | {usec:.0} |",
        latencies[latencies.len() / 2].as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
    );
    Ok(())
}

fn unrelated_key(run: &str, i: usize) -> String {
    format!("redis-sizing:{run}:{i}")
}

async fn write_unrelated(
    redis: &mut MultiplexedConnection,
    run: &str,
    n: usize,
) -> anyhow::Result<()> {
    for start in (0..n).step_by(BATCH) {
        let mut pipe = redis::pipe();
        for i in start..(start + BATCH).min(n) {
            pipe.cmd("SET").arg(unrelated_key(run, i)).arg("x").ignore();
        }
        pipe.query_async::<()>(redis).await?;
    }
    Ok(())
}

async fn remove_unrelated(
    redis: &mut MultiplexedConnection,
    run: &str,
    n: usize,
) -> anyhow::Result<()> {
    for start in (0..n).step_by(BATCH) {
        let keys: Vec<String> = (start..(start + BATCH).min(n))
            .map(|i| unrelated_key(run, i))
            .collect();
        redis::cmd("UNLINK")
            .arg(keys)
            .query_async::<()>(redis)
            .await?;
    }
    Ok(())
}
