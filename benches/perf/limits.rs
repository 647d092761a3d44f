//! The machine's own limits, measured in the same run as the legs: RSA-2048
//! signatures per second by `openssl speed -multi` (`benches/common/openssl.rs`,
//! shared with the throughput bench) and by the crate's signer on one thread
//! per core, Argon2id hashes per second with the service's parameters on
//! every core, and a bare Redis SCAN loop; and a limit measured just before
//! and just after its leg.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use account::testing::{IdTokenSigner, ThreadHasher};
use uuid::Uuid;

use crate::Settings;
use crate::bench::progress;
use crate::report::thousands;

/// The limits measured before the services start (the RSA and Argon2 rates
/// are measured again around their legs).
pub struct Limits {
    pub openssl: Result<f64, String>,
    pub signer: f64,
    /// The generated private key, for the signer's rate when openssl is
    /// missing.
    private_pem: Vec<u8>,
}

impl Limits {
    /// The all-core RSA-2048 signing rate measured now: openssl's when it
    /// ran at the start, else the service's signer's.
    pub fn rsa_now(&self, settings: &Settings) -> f64 {
        let seconds = settings.limit_seconds;
        match &self.openssl {
            Ok(_) => crate::openssl::openssl_rsa2048(settings.cores, seconds.ceil() as u32)
                .unwrap_or(self.signer),
            Err(_) => {
                signer_rate(&self.private_pem, settings.cores, seconds).unwrap_or(self.signer)
            }
        }
    }
}

/// A limit measured just before and just after a leg: on a shared or
/// throttled machine the cores' speed drifts, and the leg is compared with
/// what they gave around it, not minutes earlier.
pub struct Bracket {
    pub before: f64,
    pub after: f64,
}

impl Bracket {
    pub fn mean(&self) -> f64 {
        (self.before + self.after) / 2.0
    }

    pub fn describe(&self) -> String {
        format!(
            "{} (just before the leg {}, after it {})",
            thousands(self.mean()),
            thousands(self.before),
            thousands(self.after)
        )
    }
}

pub fn measure_limits(settings: &Settings, dir: &std::path::Path) -> anyhow::Result<Limits> {
    let cores = settings.cores;
    let seconds = settings.limit_seconds;
    progress(&format!("openssl speed -multi {cores} rsa2048"));
    let openssl = crate::openssl::openssl_rsa2048(cores, seconds.ceil() as u32);
    progress(&format!("the service's RS256 signer on {cores} threads"));
    let files = account::testing::GeneratedKeyFiles::in_dir(dir);
    account::testing::generate_keys(&files, false)?;
    let private_pem = std::fs::read(&files.private_key)?;
    let signer = signer_rate(&private_pem, cores, seconds)?;
    Ok(Limits {
        openssl,
        signer,
        private_pem,
    })
}

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
    let claims = Arc::new(crate::bench::id_claims());
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
