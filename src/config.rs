//! Configuration from environment variables; a bad value names its variable.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::keys::KeyPaths;

/// A secret string: `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// `postgres://…`; a URL may hold a password, so it is kept secret.
    pub database_url: Secret,
    /// `redis://…`
    pub redis_url: Secret,
    pub keys: KeyPaths,
    pub id_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub id_token_issuer: String,
    pub id_token_audience: String,
    pub handler_timeout: Duration,
    pub max_body_bytes: usize,
    /// Base path of the account API, e.g. `/api/account`.
    pub api_base_path: String,
    /// Maximum connections in the PostgreSQL pool.
    pub database_max_connections: u32,
}

/// Defaults of the configuration table (README and DESIGN.md).
pub mod defaults {
    pub const HOST: &str = "127.0.0.1";
    pub const PORT: u16 = 8080;
    pub const PRIV_KEY_FILE: &str = "keys/private.pem";
    pub const PUB_KEY_FILE: &str = "keys/public.pem";
    pub const REFRESH_SECRET_FILE: &str = "keys/refresh.secret";
    pub const ID_TOKEN_EXP: u64 = 900;
    pub const REFRESH_TOKEN_EXP: u64 = 259_200;
    pub const ID_TOKEN_ISSUER: &str = "account";
    pub const ID_TOKEN_AUDIENCE: &str = "domain-services";
    pub const HANDLER_TIMEOUT: u64 = 5;
    pub const MAX_BODY_BYTES: usize = 65_536;
    pub const ACCOUNT_API_URL: &str = "/api/account";
    pub const DATABASE_MAX_CONNECTIONS: u32 = 10;
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(std::env::vars().collect())
    }

    /// Reads the given variables (the process environment in production,
    /// a map in tests).
    pub fn from_vars(vars: HashMap<String, String>) -> anyhow::Result<Self> {
        let env = Vars(vars);
        let config = Self {
            host: env.string("HOST", defaults::HOST),
            port: env.parse("PORT", defaults::PORT)?,
            database_url: Secret::new(env.required("DATABASE_URL")?),
            redis_url: Secret::new(env.required("REDIS_URL")?),
            keys: KeyPaths {
                private_key: PathBuf::from(env.string("PRIV_KEY_FILE", defaults::PRIV_KEY_FILE)),
                public_key: PathBuf::from(env.string("PUB_KEY_FILE", defaults::PUB_KEY_FILE)),
                refresh_secret_file: PathBuf::from(defaults::REFRESH_SECRET_FILE),
                refresh_secret: env.optional("REFRESH_SECRET").map(Secret::new),
            },
            id_token_ttl: env.seconds("ID_TOKEN_EXP", defaults::ID_TOKEN_EXP)?,
            refresh_token_ttl: env.seconds("REFRESH_TOKEN_EXP", defaults::REFRESH_TOKEN_EXP)?,
            id_token_issuer: env.string("ID_TOKEN_ISSUER", defaults::ID_TOKEN_ISSUER),
            id_token_audience: env.string("ID_TOKEN_AUDIENCE", defaults::ID_TOKEN_AUDIENCE),
            handler_timeout: env.seconds("HANDLER_TIMEOUT", defaults::HANDLER_TIMEOUT)?,
            max_body_bytes: env.parse("MAX_BODY_BYTES", defaults::MAX_BODY_BYTES)?,
            api_base_path: env.string("ACCOUNT_API_URL", defaults::ACCOUNT_API_URL),
            database_max_connections: env.parse(
                "DATABASE_MAX_CONNECTIONS",
                defaults::DATABASE_MAX_CONNECTIONS,
            )?,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        let url = self.database_url.expose();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!("DATABASE_URL: must be a postgres:// URL");
        }
        let url = self.redis_url.expose();
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            bail!("REDIS_URL: must be a redis:// or rediss:// URL");
        }
        let base = &self.api_base_path;
        if !base.starts_with('/') || base.len() < 2 || base.ends_with('/') {
            bail!(
                "ACCOUNT_API_URL: must be a path like /api/account (leading slash, no trailing slash)"
            );
        }
        if self.id_token_issuer.is_empty() {
            bail!("ID_TOKEN_ISSUER: must not be empty");
        }
        if self.id_token_audience.is_empty() {
            bail!("ID_TOKEN_AUDIENCE: must not be empty");
        }
        if self.max_body_bytes == 0 {
            bail!("MAX_BODY_BYTES: must be at least 1");
        }
        if self.database_max_connections == 0 {
            bail!("DATABASE_MAX_CONNECTIONS: must be at least 1");
        }
        Ok(())
    }

    /// `HOST:PORT` to bind.
    pub fn bind_address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

struct Vars(HashMap<String, String>);

impl Vars {
    fn optional(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.optional(name).unwrap_or_else(|| default.to_owned())
    }

    fn required(&self, name: &str) -> anyhow::Result<String> {
        self.optional(name)
            .with_context(|| format!("{name}: is required"))
    }

    fn parse<T>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("{name}: invalid value {raw:?}: {e}")),
        }
    }

    /// A positive number of seconds.
    fn seconds(&self, name: &str, default: u64) -> anyhow::Result<Duration> {
        let secs: u64 = self.parse(name, default)?;
        if secs == 0 {
            bail!("{name}: must be a positive number of seconds");
        }
        Ok(Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut map: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u@localhost/db"),
            ("REDIS_URL", "redis://localhost:6379"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        map
    }

    fn error_of(pairs: &[(&str, &str)]) -> String {
        format!("{:#}", Config::from_vars(vars(pairs)).unwrap_err())
    }

    #[test]
    fn defaults_match_the_configuration_table() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(c.bind_address(), "127.0.0.1:8080");
        assert_eq!(c.id_token_ttl, Duration::from_secs(900));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(259_200));
        assert_eq!(c.handler_timeout, Duration::from_secs(5));
        assert_eq!(c.max_body_bytes, 65_536);
        assert_eq!(c.api_base_path, "/api/account");
        assert_eq!(c.keys.private_key, PathBuf::from("keys/private.pem"));
        assert_eq!(c.keys.public_key, PathBuf::from("keys/public.pem"));
        assert!(c.keys.refresh_secret.is_none());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        assert!(error_of(&[("PORT", "eighty")]).starts_with("PORT:"));
        assert!(error_of(&[("ID_TOKEN_EXP", "-1")]).starts_with("ID_TOKEN_EXP:"));
        assert!(error_of(&[("REFRESH_TOKEN_EXP", "0")]).starts_with("REFRESH_TOKEN_EXP:"));
        assert!(error_of(&[("HANDLER_TIMEOUT", "soon")]).starts_with("HANDLER_TIMEOUT:"));
        assert!(error_of(&[("MAX_BODY_BYTES", "1e9")]).starts_with("MAX_BODY_BYTES:"));
        assert!(error_of(&[("ACCOUNT_API_URL", "api/")]).starts_with("ACCOUNT_API_URL:"));
        assert!(error_of(&[("DATABASE_URL", "mysql://x")]).starts_with("DATABASE_URL:"));
        assert!(error_of(&[("REDIS_URL", "http://x")]).starts_with("REDIS_URL:"));
    }

    #[test]
    fn store_urls_are_required_and_not_printed() {
        let mut map = vars(&[]);
        map.remove("REDIS_URL");
        assert!(format!("{:#}", Config::from_vars(map).unwrap_err()).starts_with("REDIS_URL:"));
        let c = Config::from_vars(vars(&[("DATABASE_URL", "postgres://u:hunter2@h/db")])).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
