//! The legs, one after the other, on the services started for them: refresh,
//! `GET /me` and the todo service's GET, the sign-in flood with `/me` probed
//! beside it, sign-out everywhere, Redis bytes per session, the connection
//! storm and the peak memory; each yields its rows of the report.

use std::time::Duration;

use anyhow::Context as _;

use crate::bench::progress;
use crate::limits::{Bracket, Limits};
use crate::load::{self, ClientState, Op, Targets};
use crate::report::{Row, Target, thousands};
use crate::rows::{cpu_row, flood_cpu_row, load_row, mib};
use crate::services::{self, UnrelatedKeys};
use crate::stores::{TestDatabase, test_redis_url};
use crate::users::{self, Users, UsersCleanup};
use crate::{Settings, cpu, limits, redis_legs, storm};

/// The memory the account service should stay under through the run.
const MEMORY_BUDGET_MIB: f64 = 64.0;

/// How often each of the four `/me` probes asks during the sign-in flood
/// (200 req/s in all): other users being served while sign-ins queue. A
/// probe that asks as fast as it can would itself take the cores the
/// flood's hashing needs and measure a different machine.
const ME_PROBE_EVERY: Duration = Duration::from_millis(20);

/// Starts both services and runs every leg on them; the rows of the report,
/// in order.
pub async fn run_legs(settings: &Settings, limits: &Limits) -> anyhow::Result<Vec<Row>> {
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
        todos: Some(format!("{todo_base}/api/todos").into()),
    };
    progress(&format!("signing up {} users", settings.concurrency));
    let mut clients = users::sign_up_many(&targets, &users, settings.concurrency).await?;
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
            storm::connection_storm(&address, settings.connections, Duration::from_secs(60)).await;
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
