//! The settings [`serve`](super::serve) takes: the connection limits, read
//! from their variables with defaults and bounds, and the open-files check.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::settings::Setting;

/// Defaults of `HEADER_READ_TIMEOUT`, `KEEP_ALIVE_TIMEOUT` (seconds),
/// `BODY_READ_TIMEOUT` (seconds), `MAX_CONNECTIONS` and
/// `MAX_CONNECTIONS_PER_IP`.
pub mod defaults {
    pub const HEADER_READ_TIMEOUT: u64 = 10;
    /// Above the 60 s idle timeout of common load balancers: they close first.
    pub const KEEP_ALIVE_TIMEOUT: u64 = 65;
    pub const BODY_READ_TIMEOUT: u64 = 10;
    pub const MAX_CONNECTIONS: usize = 1024;
    /// A browser opens 6 per host; a NAT or an office shares one address.
    pub const MAX_CONNECTIONS_PER_IP: usize = 64;
}

/// Upper bounds of the same variables: beyond these a value is a mistake.
pub mod limits {
    /// Five minutes.
    pub const HEADER_READ_TIMEOUT: u64 = 300;
    /// One hour.
    pub const KEEP_ALIVE_TIMEOUT: u64 = 3_600;
    /// Five minutes.
    pub const BODY_READ_TIMEOUT: u64 = 300;
    /// Linux's default ceiling of open files per process (`fs.nr_open`).
    pub const MAX_CONNECTIONS: usize = 1 << 20;
    pub const MAX_CONNECTIONS_PER_IP: usize = 1 << 20;
}

/// The four variables of [`ConnectionLimits`], as both services' `--help`
/// and `docs/configuration.md` show them.
pub const CONNECTION_SETTINGS: &[Setting] = &[
    Setting {
        name: "HEADER_READ_TIMEOUT",
        default: || defaults::HEADER_READ_TIMEOUT.to_string(),
        help: || {
            format!(
                "seconds to send a request head (1 to {})",
                limits::HEADER_READ_TIMEOUT
            )
        },
    },
    Setting {
        name: "KEEP_ALIVE_TIMEOUT",
        default: || defaults::KEEP_ALIVE_TIMEOUT.to_string(),
        help: || {
            format!(
                "seconds a kept-alive connection may idle (1 to {})",
                limits::KEEP_ALIVE_TIMEOUT
            )
        },
    },
    Setting {
        name: "BODY_READ_TIMEOUT",
        default: || defaults::BODY_READ_TIMEOUT.to_string(),
        help: || {
            format!(
                "seconds to send a request body, then 408 (1 to {})",
                limits::BODY_READ_TIMEOUT
            )
        },
    },
    Setting {
        name: "MAX_CONNECTIONS",
        default: || defaults::MAX_CONNECTIONS.to_string(),
        help: || {
            format!(
                "connections served at once; past it a new one takes the slot of the longest \
                 waiting for a head, else the longest idle, never a busy one (1 to {})",
                limits::MAX_CONNECTIONS
            )
        },
    },
    Setting {
        name: "MAX_CONNECTIONS_PER_IP",
        default: || defaults::MAX_CONNECTIONS_PER_IP.to_string(),
        help: || {
            format!(
                "connections one address (IPv6: one /64) may hold, more are closed at once; \
                 TRUSTED_PROXIES exempt (1 to {})",
                limits::MAX_CONNECTIONS_PER_IP
            )
        },
    },
    Setting {
        name: "TRUSTED_PROXIES",
        default: || "unset: none".into(),
        help: || {
            "your reverse proxies, comma-separated networks or addresses: exempt from \
             MAX_CONNECTIONS_PER_IP, and the account service reads the client from their \
             X-Forwarded-For"
                .into()
        },
    },
];

/// Files a service keeps open besides its connections (standard streams, the
/// listener, the runtime's, SQLite's (the token store's writer too) and
/// Redis's, key files, outgoing JWKS fetches), with room to spare; a
/// PostgreSQL pool comes on top.
pub const RESERVED_FILES: u64 = 64;

/// How connections are bounded: `HEADER_READ_TIMEOUT`, `KEEP_ALIVE_TIMEOUT`,
/// `BODY_READ_TIMEOUT`, `MAX_CONNECTIONS`, `MAX_CONNECTIONS_PER_IP` and
/// `TRUSTED_PROXIES`, the same variables in both services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Until a request head is complete, from the connection's start or the
    /// first byte of the next request.
    pub header_read_timeout: Duration,
    /// Idle between two requests.
    pub keep_alive_timeout: Duration,
    /// Until the request body is complete, from its head.
    pub body_read_timeout: Duration,
    /// Connections served at once; at the cap a new one takes the slot of
    /// one waiting for a head or idle (see [`serve`](super::serve)).
    pub max_connections: usize,
    /// Connections one peer address (IPv6: one /64) may hold; more are
    /// closed at once. Trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// `TRUSTED_PROXIES`: the reverse proxies all traffic comes through
    /// (exempt from the per-address cap; the account service also reads
    /// the client's address from their `X-Forwarded-For`).
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(defaults::HEADER_READ_TIMEOUT),
            keep_alive_timeout: Duration::from_secs(defaults::KEEP_ALIVE_TIMEOUT),
            body_read_timeout: Duration::from_secs(defaults::BODY_READ_TIMEOUT),
            max_connections: defaults::MAX_CONNECTIONS,
            max_connections_per_ip: defaults::MAX_CONNECTIONS_PER_IP,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ConnectionLimits {
    /// Reads the six variables through `var` (unset or blank: the default).
    /// An error names the variable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |name: &str, default: u64, max: u64, unit: &str| {
            whole_number(&var, name, default, max, unit)
        };
        let seconds = |name: &str, default: u64, max: u64| {
            number(name, default, max, " of seconds").map(Duration::from_secs)
        };
        Ok(Self {
            header_read_timeout: seconds(
                "HEADER_READ_TIMEOUT",
                defaults::HEADER_READ_TIMEOUT,
                limits::HEADER_READ_TIMEOUT,
            )?,
            keep_alive_timeout: seconds(
                "KEEP_ALIVE_TIMEOUT",
                defaults::KEEP_ALIVE_TIMEOUT,
                limits::KEEP_ALIVE_TIMEOUT,
            )?,
            body_read_timeout: seconds(
                "BODY_READ_TIMEOUT",
                defaults::BODY_READ_TIMEOUT,
                limits::BODY_READ_TIMEOUT,
            )?,
            max_connections: usize::try_from(number(
                "MAX_CONNECTIONS",
                defaults::MAX_CONNECTIONS as u64,
                limits::MAX_CONNECTIONS as u64,
                "",
            )?)
            .unwrap_or(limits::MAX_CONNECTIONS),
            max_connections_per_ip: usize::try_from(number(
                "MAX_CONNECTIONS_PER_IP",
                defaults::MAX_CONNECTIONS_PER_IP as u64,
                limits::MAX_CONNECTIONS_PER_IP as u64,
                "",
            )?)
            .unwrap_or(limits::MAX_CONNECTIONS_PER_IP),
            trusted_proxies: trusted_proxies(var("TRUSTED_PROXIES"))?,
        })
    }
}

/// `TRUSTED_PROXIES`: comma-separated networks (`10.0.0.0/8`) or single
/// addresses; unset or blank, none.
fn trusted_proxies(list: Option<String>) -> Result<Vec<IpNet>, String> {
    let Some(list) = list.filter(|l| !l.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "TRUSTED_PROXIES: {entry:?} is not a network like 10.0.0.0/8 or an address"
                    )
                })
        })
        .collect()
}

/// The variable `name` read through `var`: a whole number from 1 to `max`
/// (`unit` says of what, e.g. `" of seconds"`), `default` when unset or blank.
/// The error names the variable.
pub(crate) fn whole_number(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
    max: u64,
    unit: &str,
) -> Result<u64, String> {
    let Some(raw) = var(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            format!("{name}: expected a whole number{unit} between 1 and {max}, got {raw:?}")
        })
}

/// Raises the soft open-files limit (`RLIMIT_NOFILE`) to the hard one, and
/// checks that `max_connections` connections fit in it with `reserved` files
/// to spare. Returns the limit; the error names `MAX_CONNECTIONS`.
pub fn reserve_open_files(max_connections: usize, reserved: u64) -> Result<u64, String> {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .map_err(|e| format!("MAX_CONNECTIONS: cannot read the open-files limit: {e}"))?
        }
    };
    check_open_files(max_connections, reserved, limit)?;
    Ok(limit)
}

/// Whether `max_connections` plus `reserved` files fit in `limit`.
fn check_open_files(max_connections: usize, reserved: u64, limit: u64) -> Result<(), String> {
    let needed = (max_connections as u64).saturating_add(reserved);
    if needed > limit {
        return Err(format!(
            "MAX_CONNECTIONS: {max_connections} connections and the {reserved} other files \
             the service keeps open need {needed} open files, but the limit \
             (RLIMIT_NOFILE, raised to its hard limit) is {limit}: lower MAX_CONNECTIONS \
             or raise the hard limit (ulimit -Hn, systemd LimitNOFILE, docker --ulimit nofile)"
        ));
    }
    Ok(())
}

/// What [`serve`](super::serve) needs besides the app.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub limits: ConnectionLimits,
    /// Bodies are read up to this size before the app is called; larger is 413.
    pub max_body_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits_of(pairs: &[(&str, &str)]) -> Result<ConnectionLimits, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ConnectionLimits::from_vars(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn connection_limits_have_defaults_and_bounds_and_errors_name_the_variable() {
        let limits = limits_of(&[]).unwrap();
        assert_eq!(limits, ConnectionLimits::default());
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.keep_alive_timeout, Duration::from_secs(65));
        assert_eq!(limits.body_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.max_connections, 1024);
        assert_eq!(limits.max_connections_per_ip, 64);
        assert!(limits.trusted_proxies.is_empty());
        let limits = limits_of(&[
            ("HEADER_READ_TIMEOUT", "2"),
            ("KEEP_ALIVE_TIMEOUT", " 120 "),
            ("BODY_READ_TIMEOUT", "30"),
            ("MAX_CONNECTIONS", "64"),
            ("MAX_CONNECTIONS_PER_IP", "8"),
            ("TRUSTED_PROXIES", "10.1.2.3/8, ::1"),
        ])
        .unwrap();
        assert_eq!(
            limits,
            ConnectionLimits {
                header_read_timeout: Duration::from_secs(2),
                keep_alive_timeout: Duration::from_secs(120),
                body_read_timeout: Duration::from_secs(30),
                max_connections: 64,
                max_connections_per_ip: 8,
                trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            }
        );
        assert_eq!(
            limits_of(&[("MAX_CONNECTIONS", "  ")]).unwrap(),
            ConnectionLimits::default(),
            "blank is unset"
        );
        for (name, value) in [
            ("HEADER_READ_TIMEOUT", "0"),
            ("HEADER_READ_TIMEOUT", "301"),
            ("HEADER_READ_TIMEOUT", "1.5"),
            ("KEEP_ALIVE_TIMEOUT", "-1"),
            ("KEEP_ALIVE_TIMEOUT", "3601"),
            ("BODY_READ_TIMEOUT", "ten"),
            ("BODY_READ_TIMEOUT", "0"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONNECTIONS", "1048577"),
            ("MAX_CONNECTIONS_PER_IP", "0"),
            ("MAX_CONNECTIONS_PER_IP", "lots"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
        ] {
            let err = limits_of(&[(name, value)]).unwrap_err();
            assert!(
                err.starts_with(&format!("{name}: ")),
                "{name}={value}: {err}"
            );
            assert!(err.contains(value.trim()), "{err}");
        }
    }

    #[test]
    fn the_connection_cap_must_fit_the_open_files_limit_with_room_to_spare() {
        assert!(check_open_files(1024, 64, 1088).is_ok());
        let err = check_open_files(1024, 64, 1087).unwrap_err();
        assert!(err.starts_with("MAX_CONNECTIONS: "), "{err}");
        assert!(err.contains("1088") && err.contains("1087"), "{err}");
        assert!(check_open_files(usize::MAX, u64::MAX, u64::MAX).is_ok());
        // What this process got: raised to its hard limit, and a cap of one
        // connection fits in any sane environment.
        let limit = reserve_open_files(1, RESERVED_FILES).unwrap();
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert_eq!(limit, soft);
        assert!(soft == hard || hard == rlimit::INFINITY, "{soft} {hard}");
        let err = reserve_open_files(limits::MAX_CONNECTIONS, u64::MAX / 2).unwrap_err();
        assert!(err.starts_with("MAX_CONNECTIONS: "), "{err}");
    }
}
