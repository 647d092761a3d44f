//! The todo service's settings: its own variables, declared once in
//! [`SETTINGS`], over the connection limits and the verifier's, and
//! [`TodoConfig`], which reads them.

use std::time::Duration;

use crate::settings::{RUST_LOG, Setting};
use crate::verifier::{ConfigError, Verifier};
use crate::web::serve::{CONNECTION_SETTINGS, ConnectionLimits, whole_number};

/// Defaults of the todo service's variables (the connection ones are
/// [`crate::web::serve::defaults`]).
pub mod defaults {
    pub const HOST: &str = "127.0.0.1";
    pub const TODO_PORT: u16 = 8081;
    /// Seconds, as in the account service.
    pub const HANDLER_TIMEOUT: u64 = 5;
    pub const TODO_MAX_PER_USER: usize = 1000;
}

/// Upper bounds of the same variables.
pub mod limits {
    /// One hour, as in the account service.
    pub const HANDLER_TIMEOUT: u64 = 3_600;
    pub const TODO_MAX_PER_USER: usize = 1_000_000;
}

/// How the service bounds its work: `HANDLER_TIMEOUT`, `TODO_MAX_PER_USER`,
/// and the connections (`HEADER_READ_TIMEOUT`, `KEEP_ALIVE_TIMEOUT`,
/// `BODY_READ_TIMEOUT`, `MAX_CONNECTIONS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodoSettings {
    pub handler_timeout: Duration,
    pub max_todos_per_user: usize,
    pub connections: ConnectionLimits,
}

impl Default for TodoSettings {
    fn default() -> Self {
        Self {
            handler_timeout: Duration::from_secs(defaults::HANDLER_TIMEOUT),
            max_todos_per_user: defaults::TODO_MAX_PER_USER,
            connections: ConnectionLimits::default(),
        }
    }
}

/// The todo service's own variables (see [`settings`] for all it reads).
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "HOST",
        default: || defaults::HOST.into(),
        help: || "address to listen on (0.0.0.0 in a container)".into(),
    },
    Setting {
        name: "TODO_PORT",
        default: || defaults::TODO_PORT.to_string(),
        help: || "port to listen on (0: one the kernel picks)".into(),
    },
    Setting {
        name: "HANDLER_TIMEOUT",
        default: || defaults::HANDLER_TIMEOUT.to_string(),
        help: || {
            format!(
                "seconds before a request is answered 503 (1 to {})",
                limits::HANDLER_TIMEOUT
            )
        },
    },
    Setting {
        name: "TODO_MAX_PER_USER",
        default: || defaults::TODO_MAX_PER_USER.to_string(),
        help: || {
            format!(
                "todos a user may keep; one more answers 409 (1 to {})",
                limits::TODO_MAX_PER_USER
            )
        },
    },
];

/// Every setting of `todo-service`, as its `--help` and
/// `docs/configuration.md` list them: its own, the connection limits, the
/// verifier's and `RUST_LOG`.
pub fn settings() -> Vec<Setting> {
    [
        SETTINGS,
        CONNECTION_SETTINGS,
        crate::verifier::SETTINGS,
        &[RUST_LOG],
    ]
    .concat()
}

/// Where to listen, how to verify tokens, and how work is bounded.
#[derive(Debug, Clone)]
pub struct TodoConfig {
    pub host: String,
    pub port: u16,
    pub verifier: Verifier,
    pub settings: TodoSettings,
}

impl TodoConfig {
    /// `HOST` (default `127.0.0.1`), `TODO_PORT` (default 8081),
    /// `HANDLER_TIMEOUT`, `TODO_MAX_PER_USER`, the connection variables (see
    /// [`ConnectionLimits::from_vars`]) and the verifier's (see
    /// [`Verifier::from_env`]). Errors name the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`TodoConfig::from_env`] with the variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let host = var("HOST")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|| defaults::HOST.to_owned());
        if host.is_empty() {
            return Err(ConfigError::new("HOST: must not be empty"));
        }
        let port = match var("TODO_PORT") {
            None => defaults::TODO_PORT,
            Some(port) => port.trim().parse().map_err(|_| {
                ConfigError::new(format!("TODO_PORT: expected a port number, got {port:?}"))
            })?,
        };
        let handler_timeout = whole_number(
            &var,
            "HANDLER_TIMEOUT",
            defaults::HANDLER_TIMEOUT,
            limits::HANDLER_TIMEOUT,
            " of seconds",
        )
        .map_err(ConfigError::new)?;
        let max_todos_per_user = whole_number(
            &var,
            "TODO_MAX_PER_USER",
            defaults::TODO_MAX_PER_USER as u64,
            limits::TODO_MAX_PER_USER as u64,
            "",
        )
        .map_err(ConfigError::new)?;
        let settings = TodoSettings {
            handler_timeout: Duration::from_secs(handler_timeout),
            max_todos_per_user: usize::try_from(max_todos_per_user)
                .unwrap_or(limits::TODO_MAX_PER_USER),
            connections: ConnectionLimits::from_vars(&var).map_err(ConfigError::new)?,
        };
        Ok(Self {
            host,
            port,
            verifier: Verifier::from_vars(var)?,
            settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::check;

    #[test]
    fn the_todo_service_reads_exactly_the_settings_of_its_table() {
        check::declared_once(&settings());
        let env = check::Recording::new(&[("JWKS_URL", "http://127.0.0.1:9/jwks.json")]);
        TodoConfig::from_vars(|name| env.var(name)).unwrap();
        let mut declared = check::names(&settings());
        declared.remove(RUST_LOG.name);
        assert_eq!(env.read(), declared);
    }

    #[test]
    fn the_configuration_page_names_exactly_the_todo_services_settings() {
        check::page_names_exactly("The example domain service", &settings());
        let help = check::help_lists_every_setting(&settings());
        assert!(help.contains("  TODO_PORT  [default: 8081]"), "{help}");
    }
}
