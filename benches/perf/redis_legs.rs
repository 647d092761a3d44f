//! The legs that look into Redis: sign-out everywhere next to the bare SCAN
//! loop over the same keyspace, and the bytes a live session takes.

use std::time::{Duration, Instant};

use crate::limits;
use crate::load::Targets;
use crate::users::{self, Users};

/// Sessions of the user whose Redis bytes are measured.
pub const SESSIONS_MEASURED: usize = 10;
/// Sign-out runs (and bare SCAN loops) per keyspace size; the medians count.
const SIGNOUT_RUNS: usize = 3;

/// Median time of `SIGNOUT_RUNS` sign-outs everywhere, each of a fresh user
/// with three sessions, and of as many bare SCAN loops over the same
/// keyspace; and the keyspace's size.
pub async fn signout_leg(
    targets: &Targets,
    users: &Users,
    redis: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<(Duration, Duration, u64)> {
    let mut signouts = Vec::new();
    let mut scans = Vec::new();
    for _ in 0..SIGNOUT_RUNS {
        let first = users::sign_up(targets, users).await?;
        let uid = users::uid_of(&first)?;
        users::sign_in(targets, &first).await?;
        let last = users::sign_in(targets, &first).await?;
        let (scan, _) = limits::scan_loop(redis, uid).await?;
        scans.push(scan);
        let start = Instant::now();
        let response = targets
            .http
            .post(format!("{}/signout", targets.account))
            .bearer_auth(&last.id_token)
            .send()
            .await?;
        let elapsed = start.elapsed();
        anyhow::ensure!(
            response.status() == 200,
            "sign-out answered {}",
            response.status()
        );
        let (_, left) = limits::scan_loop(redis, uid).await?;
        anyhow::ensure!(
            left == 0,
            "sign-out everywhere left {left} keys of the user"
        );
        signouts.push(elapsed);
    }
    let dbsize: u64 = redis::cmd("DBSIZE").query_async(redis).await?;
    signouts.sort_unstable();
    scans.sort_unstable();
    Ok((signouts[SIGNOUT_RUNS / 2], scans[SIGNOUT_RUNS / 2], dbsize))
}

/// `MEMORY USAGE` of every key of a user with `SESSIONS_MEASURED` sessions,
/// divided by the sessions.
pub async fn bytes_per_session(
    targets: &Targets,
    users: &Users,
    redis: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<f64> {
    let first = users::sign_up(targets, users).await?;
    for _ in 1..SESSIONS_MEASURED {
        users::sign_in(targets, &first).await?;
    }
    let uid = users::uid_of(&first)?;
    let keys: Vec<String> = {
        let mut iter: redis::AsyncIter<String> =
            redis::AsyncCommands::scan_match(redis, format!("{uid}:*")).await?;
        let mut keys = Vec::new();
        while let Some(key) = futures::StreamExt::next(&mut iter).await {
            keys.push(key?);
        }
        keys
    };
    let mut total: u64 = 0;
    for key in &keys {
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query_async(redis)
            .await?;
        total += bytes.unwrap_or(0);
    }
    Ok(total as f64 / SESSIONS_MEASURED as f64)
}
