//! How a leg's measurements become rows of the report: a load leg next to
//! its limit, and where the CPU went during the refresh leg and the sign-in
//! flood.

use crate::cpu;
use crate::load::Outcome;
use crate::report::{Row, Target, thousands};

pub fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

pub fn load_row(
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
pub fn flood_cpu_row(used: &cpu::Usage, cores: usize) -> Row {
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
pub fn cpu_row(refresh: &Outcome, used: &cpu::Usage, cores: usize, rsa_rate: f64) -> Row {
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
