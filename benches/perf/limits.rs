//! The machine's own limits, measured in the same run as the legs: RSA-2048
//! signatures per second by the crate's signer on one thread per core
//! (openssl's rate is `benches/common/openssl.rs`, shared with the
//! throughput bench), Argon2id hashes per second with the service's
//! parameters on every core, and a bare Redis SCAN loop.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use account::testing::{IdTokenSigner, ThreadHasher};
use account::verifier::{Audience, IdClaims};
use uuid::Uuid;

/// Runs `op` on `threads` threads for `seconds`; operations per second, all
/// threads together.
fn all_core_rate<F>(threads: usize, seconds: f64, make_op: impl Fn() -> F) -> f64
where
    F: FnMut() + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let mut op = make_op();
            std::thread::spawn(move || {
                let mut n: u64 = 0;
                while Instant::now() < deadline {
                    op();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

/// ID tokens per second signed by the server's own signer (the key parsed
/// once), one thread per core.
pub fn signer_rate(private_pem: &[u8], threads: usize, seconds: f64) -> anyhow::Result<f64> {
    let signer = Arc::new(IdTokenSigner::from_pem(private_pem)?);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // The claims the server puts into an ID token (default issuer and audience).
    let claims = Arc::new(IdClaims {
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
    });
    Ok(all_core_rate(threads, seconds, || {
        let signer = Arc::clone(&signer);
        let claims = Arc::clone(&claims);
        move || {
            black_box(
                signer
                    .sign(black_box(&claims))
                    .expect("IdTokenSigner::sign"),
            );
        }
    }))
}

/// Argon2id hashes per second with the service's parameters, one thread per
/// core, each reusing its memory as the service's hashing threads do.
pub fn argon2_rate(threads: usize, seconds: f64) -> f64 {
    all_core_rate(threads, seconds, || {
        let mut hasher = ThreadHasher::default();
        move || {
            black_box(
                hasher
                    .hash(black_box(b"correct horse battery"))
                    .expect("argon2 hash"),
            );
        }
    })
}

/// One bare `SCAN 0 MATCH <uid>:* COUNT 1000 … until the cursor is 0` over
/// the whole keyspace, deleting nothing: what sign-out everywhere must walk.
pub async fn scan_loop(
    redis: &mut redis::aio::MultiplexedConnection,
    uid: Uuid,
) -> redis::RedisResult<(Duration, usize)> {
    let pattern = format!("{uid}:*");
    let start = Instant::now();
    let mut cursor: u64 = 0;
    let mut found = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await?;
        found += keys.len();
        if next == 0 {
            return Ok((start.elapsed(), found));
        }
        cursor = next;
    }
}
