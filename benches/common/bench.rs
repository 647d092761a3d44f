//! What every bench takes: tuning numbers from the environment, progress
//! lines on stderr, the machine's CPU model for the heading, and the claims
//! of an ID token as the server issues them (for the RS256 rates).

use std::time::{SystemTime, UNIX_EPOCH};

use account::verifier::{Audience, IdClaims};
use uuid::Uuid;

/// `name` from the environment as a number; `default` when it is unset, or
/// (with a warning) when it is not a number.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(raw) => raw.trim().parse().unwrap_or_else(|_| {
            eprintln!("{name}={raw:?} is not a valid number; using the default");
            default
        }),
        Err(_) => default,
    }
}

/// Progress lines go to stderr; the tables go to stdout.
pub fn progress(message: &str) {
    eprintln!("  … {message}");
}

/// The `model name` of `/proc/cpuinfo` (Linux).
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
}

/// The claims the server puts into an ID token (default issuer and
/// audience), issued now.
pub fn id_claims() -> IdClaims {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = IdClaims::new(
        Uuid::new_v4(),
        "account".into(),
        Audience::One("domain-services".into()),
        now,
        now + 900,
    );
    claims.jti = Some(Uuid::new_v4().to_string());
    claims.email = "bench@example.com".into();
    claims.email_verified = true;
    claims.name = "Bench User".into();
    claims.sid = Some(Uuid::new_v4().to_string());
    claims.auth_time = Some(now);
    claims.acr = Some("aal1".into());
    claims.amr = vec!["pwd".into()];
    claims
}
