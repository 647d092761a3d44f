//! Configuration from environment variables; a bad value names its variable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use crate::keys::KeyPaths;
use crate::service::RateLimitConfig;

mod mfa;
mod pages;
pub mod settings;
mod stores;
mod vars;
mod webauthn;
use crate::web::serve::ConnectionLimits;
pub use mfa::MfaSettings;
pub use pages::{PageSettings, default_is_local_only, default_public_url};
pub(crate) use stores::sqlite_file;
use stores::{data_dir, parse_user_store, token_file};
use vars::Vars;
pub use webauthn::{RelyingParty, WebAuthnSettings};

// `Secret` lives in its own module (`keys` needs it, and `config` needs `keys`);
// re-exported so that `crate::config::Secret` keeps working.
pub use crate::secret::Secret;

pub use crate::redis_conn::RedisMode;
use crate::redis_conn::node_urls;
pub use crate::service::EmailConfirmation;

/// The user store chosen by `DATABASE_URL`.
#[derive(Debug, Clone)]
pub enum UserStoreConfig {
    /// `postgres://…`; the URL may hold a password, so it is kept secret.
    Postgres { url: Secret },
    /// `sqlite://…`, or the embedded default file when `DATABASE_URL` is unset.
    Sqlite { url: String },
}

/// The token store chosen by `REDIS_URL`.
#[derive(Debug, Clone)]
pub enum TokenStoreConfig {
    /// `redis://…`; in cluster mode (`REDIS_MODE=cluster`) one or more
    /// comma-separated seed nodes.
    Redis { url: Secret, mode: RedisMode },
    /// `REDIS_URL` unset: an in-process whitelist, written through to the
    /// table `token_keys` of the SQLite `file`: the users file, or with
    /// PostgreSQL users `tokens.db` in the data directory (`None`: the users
    /// are in memory, and so are the tokens). A `snapshot` left by an earlier
    /// version is moved into the table at start-up.
    InProcess {
        file: Option<PathBuf>,
        snapshot: PathBuf,
    },
}

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// Where users live.
    pub user_store: UserStoreConfig,
    /// Where the refresh-token whitelist lives.
    pub token_store: TokenStoreConfig,
    pub keys: KeyPaths,
    pub id_token_ttl: Duration,
    /// Lifetime of client access tokens (`CLIENT_TOKEN_EXP`, issue 11).
    pub client_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long a rotated refresh token may be presented again and get the
    /// same successor (0: never).
    pub refresh_reuse_grace: Duration,
    /// Sessions beyond this many end, least recently used first.
    pub max_sessions_per_user: u32,
    /// The absolute lifetime of a session, however often it rotates.
    pub session_max_age: Duration,
    pub id_token_issuer: String,
    pub id_token_audience: String,
    pub handler_timeout: Duration,
    pub max_body_bytes: usize,
    /// `HEADER_READ_TIMEOUT`, `KEEP_ALIVE_TIMEOUT`, `BODY_READ_TIMEOUT`,
    /// `MAX_CONNECTIONS`, `MAX_CONNECTIONS_PER_IP` and `TRUSTED_PROXIES` (also
    /// whose `X-Forwarded-For` names the client): defaults, bounds and
    /// parsing are shared with the todo service, in [`crate::web::serve`].
    pub connections: ConnectionLimits,
    /// Base path of the account API, e.g. `/api/account`.
    pub api_base_path: String,
    /// Maximum connections in the PostgreSQL pool.
    pub database_max_connections: u32,
    /// Most password hashes waiting for a hashing thread; past it, sign-in
    /// and sign-up answer 503 with `Retry-After` at once.
    pub hash_queue_limit: usize,
    /// `HASH_THREADS`: Argon2 threads, each holding 19 MiB; unset, one per
    /// core.
    pub hash_threads: Option<usize>,
    /// Outgoing mail: `SMTP_URL`, `MAIL_FROM` (issue 10).
    pub mail: MailConfig,
    /// Sign-in and sign-up limits, counted in the token store (issue 9).
    pub rate_limits: RateLimitConfig,
    /// Email verification and password reset: `PUBLIC_URL`, the pages the
    /// mails link to, and how long their tokens work.
    pub pages: PageSettings,
    /// Second factors: `MFA_ISSUER`, `MFA_PENDING_EXP`, `MFA_TOKEN_EXP`,
    /// `REAUTH_MAX_AGE`.
    pub mfa: MfaSettings,
    /// Passkeys: `WEBAUTHN_RP_ID`, `WEBAUTHN_RP_NAME`, `WEBAUTHN_ORIGINS`,
    /// `WEBAUTHN_CEREMONY_EXP`.
    pub webauthn: WebAuthnSettings,
}

/// How mail leaves (issue 10).
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `SMTP_URL` (`smtp://…` or `smtps://…`, may hold a password); unset:
    /// mails are written to the log (development only).
    pub smtp_url: Option<Secret>,
    /// `MAIL_FROM`: `a@b` or `Name <a@b>`.
    pub from: lettre::message::Mailbox,
}

/// Defaults of the configuration table (`docs/configuration.md`).
pub mod defaults {
    pub const HOST: &str = "127.0.0.1";
    pub const PORT: u16 = 8080;
    pub const PRIV_KEY_FILE: &str = "keys/private.pem";
    pub const PUB_KEY_FILE: &str = "keys/public.pem";
    pub const REFRESH_SECRET_FILE: &str = "keys/refresh.secret";
    pub const PUBLISHED_KEYS_DIR: &str = "keys/published";
    pub const DATA_KEY_FILE: &str = "keys/data.key";
    /// The verifier's default too: both sides agree unless told otherwise.
    pub const ID_TOKEN_EXP: u64 = crate::verifier::defaults::MAX_LIFETIME.as_secs();
    /// The verifier's default too.
    pub const CLIENT_TOKEN_EXP: u64 = crate::verifier::defaults::CLIENT_MAX_LIFETIME.as_secs();
    pub const REFRESH_TOKEN_EXP: u64 = 259_200;
    pub const REFRESH_REUSE_GRACE: u64 = 10;
    pub const MAX_SESSIONS_PER_USER: u32 = 10;
    /// 30 days.
    pub const SESSION_MAX_AGE: u64 = 2_592_000;
    pub const ID_TOKEN_ISSUER: &str = crate::verifier::defaults::ISSUER;
    pub const ID_TOKEN_AUDIENCE: &str = crate::verifier::defaults::AUDIENCE;
    pub const HANDLER_TIMEOUT: u64 = 5;
    pub const MAX_BODY_BYTES: usize = 65_536;
    pub const ACCOUNT_API_URL: &str = "/api/account";
    /// The embedded user store when `DATABASE_URL` is unset.
    pub const SQLITE_URL: &str = "sqlite://data/account.db";
    /// Where the in-process token store is saved on shutdown when the user
    /// store is not SQLite (beside the SQLite file when it is).
    pub const DATA_DIR: &str = "data";
    pub const DATABASE_MAX_CONNECTIONS: u32 = 10;
    pub const HASH_QUEUE_LIMIT: usize = 32;
    pub const MAIL_FROM: &str = "account@localhost";
    // Limits (issue 9): attempts per RATE_LIMIT_WINDOW seconds.
    pub const RATE_LIMIT_WINDOW: u64 = 300;
    /// Per (email, client address): one source guessing one account.
    pub const SIGNIN_RATE_LIMIT: u64 = 10;
    /// Per client address: one source trying many accounts.
    pub const SIGNIN_IP_RATE_LIMIT: u64 = 30;
    /// Per email: many sources guessing one account.
    pub const SIGNIN_EMAIL_RATE_LIMIT: u64 = 100;
    /// Sign-ups per client address.
    pub const SIGNUP_RATE_LIMIT: u64 = 10;
    /// Reset mails per email, and verification mails resent per user.
    pub const MAIL_RATE_LIMIT: u64 = 3;
    /// Failed client authentications per (client id, client address).
    pub const CLIENT_AUTH_RATE_LIMIT: u64 = 30;
    /// Failed client authentications per client address.
    pub const CLIENT_AUTH_IP_RATE_LIMIT: u64 = 30;
    /// Failed verification and reset tokens per client address.
    pub const LINK_TOKEN_RATE_LIMIT: u64 = 30;
    // Email verification and password reset. `PUBLIC_URL` has no fixed
    // default: it follows the address bound (`pages::default_public_url`).
    /// Appended to `PUBLIC_URL` for `VERIFY_EMAIL_URL`.
    pub const VERIFY_EMAIL_PATH: &str = "/verify-email";
    /// The account page under `PUBLIC_URL` (the security mails' link).
    pub const ACCOUNT_PATH: &str = "/account";
    /// Appended to `PUBLIC_URL` for `RESET_PASSWORD_URL`.
    pub const RESET_PASSWORD_PATH: &str = "/reset-password";
    /// The product name of the pages (`PAGES_TITLE`).
    pub const PAGES_TITLE: &str = "Account";
    /// One day.
    pub const VERIFY_TOKEN_EXP: u64 = 86_400;
    /// One hour.
    pub const RESET_TOKEN_EXP: u64 = 3_600;
}

/// Upper bounds: beyond these a value is a mistake (and timestamps would overflow).
pub mod limits {
    /// One day.
    pub const ID_TOKEN_EXP: u64 = crate::verifier::defaults::MAX_LIFETIME_LIMIT.as_secs();
    /// One day, as the verifier's bound.
    pub const CLIENT_TOKEN_EXP: u64 = crate::verifier::defaults::MAX_LIFETIME_LIMIT.as_secs();
    /// One year.
    pub const REFRESH_TOKEN_EXP: u64 = 31_536_000;
    /// One minute: a replay window, not a second lifetime.
    pub const REFRESH_REUSE_GRACE: u64 = 60;
    pub const MAX_SESSIONS_PER_USER: u32 = 1_000;
    /// One year.
    pub const SESSION_MAX_AGE: u64 = 31_536_000;
    /// One hour.
    pub const HANDLER_TIMEOUT: u64 = 3_600;
    /// 16 MiB.
    pub const MAX_BODY_BYTES: usize = 16 << 20;
    /// Each waiting hash holds a request; beyond this the queue is the outage.
    pub const HASH_QUEUE_LIMIT: usize = 10_000;
    /// 19 MiB of Argon2 memory each: 4.75 GiB at most.
    pub const HASH_THREADS: usize = 256;
    /// One day.
    pub const RATE_LIMIT_WINDOW: u64 = 86_400;
    /// 30 days.
    pub const VERIFY_TOKEN_EXP: u64 = 2_592_000;
    /// One day: a reset link is a key to the account.
    pub const RESET_TOKEN_EXP: u64 = 86_400;
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(std::env::vars().collect())
    }

    /// Reads the given variables (the process environment in production,
    /// a map in tests).
    pub fn from_vars(vars: HashMap<String, String>) -> anyhow::Result<Self> {
        Self::parse(&Vars::new(vars))
    }

    /// [`Self::from_vars`], and the names of the variables it read (for the
    /// test that the settings table lists exactly those).
    #[cfg(test)]
    pub(crate) fn from_vars_reading(
        vars: HashMap<String, String>,
    ) -> (anyhow::Result<Self>, std::collections::BTreeSet<String>) {
        let env = Vars::new(vars);
        let config = Self::parse(&env);
        (config, env.read.into_inner())
    }

    fn parse(env: &Vars) -> anyhow::Result<Self> {
        let user_store = parse_user_store(env.store_url("DATABASE_URL")?)?;
        let redis_mode =
            RedisMode::parse(env.raw("REDIS_MODE").as_deref()).map_err(anyhow::Error::msg)?;
        let token_store = match env.store_url("REDIS_URL")? {
            Some(url) => {
                node_urls(redis_mode, &url).map_err(anyhow::Error::msg)?;
                TokenStoreConfig::Redis {
                    url: Secret::new(url),
                    mode: redis_mode,
                }
            }
            None => TokenStoreConfig::InProcess {
                file: token_file(&user_store),
                snapshot: data_dir(&user_store).join("refresh-tokens.json"),
            },
        };
        let config = Self {
            host: env.string("HOST", defaults::HOST),
            port: env.parse("PORT", defaults::PORT)?,
            user_store,
            token_store,
            keys: key_paths(env),
            id_token_ttl: env.seconds(
                "ID_TOKEN_EXP",
                defaults::ID_TOKEN_EXP,
                limits::ID_TOKEN_EXP,
            )?,
            client_token_ttl: env.seconds(
                "CLIENT_TOKEN_EXP",
                defaults::CLIENT_TOKEN_EXP,
                limits::CLIENT_TOKEN_EXP,
            )?,
            refresh_token_ttl: env.seconds(
                "REFRESH_TOKEN_EXP",
                defaults::REFRESH_TOKEN_EXP,
                limits::REFRESH_TOKEN_EXP,
            )?,
            refresh_reuse_grace: Duration::from_secs(
                env.parse("REFRESH_REUSE_GRACE", defaults::REFRESH_REUSE_GRACE)?,
            ),
            max_sessions_per_user: env
                .parse("MAX_SESSIONS_PER_USER", defaults::MAX_SESSIONS_PER_USER)?,
            session_max_age: env.seconds(
                "SESSION_MAX_AGE",
                defaults::SESSION_MAX_AGE,
                limits::SESSION_MAX_AGE,
            )?,
            id_token_issuer: env.string("ID_TOKEN_ISSUER", defaults::ID_TOKEN_ISSUER),
            id_token_audience: env.string("ID_TOKEN_AUDIENCE", defaults::ID_TOKEN_AUDIENCE),
            handler_timeout: env.seconds(
                "HANDLER_TIMEOUT",
                defaults::HANDLER_TIMEOUT,
                limits::HANDLER_TIMEOUT,
            )?,
            max_body_bytes: env.parse("MAX_BODY_BYTES", defaults::MAX_BODY_BYTES)?,
            connections: ConnectionLimits::from_vars(|name| env.optional(name))
                .map_err(anyhow::Error::msg)?,
            api_base_path: env.string("ACCOUNT_API_URL", defaults::ACCOUNT_API_URL),
            database_max_connections: env.parse(
                "DATABASE_MAX_CONNECTIONS",
                defaults::DATABASE_MAX_CONNECTIONS,
            )?,
            hash_queue_limit: env.parse("HASH_QUEUE_LIMIT", defaults::HASH_QUEUE_LIMIT)?,
            hash_threads: env
                .optional("HASH_THREADS")
                .map(|_| env.parse("HASH_THREADS", 0))
                .transpose()?,
            mail: mail(env)?,
            rate_limits: rate_limits(env)?,
            pages: pages::page_settings(env)?,
            mfa: mfa::mfa_settings(env)?,
            webauthn: webauthn::webauthn_settings(env)?,
        };
        config.check()?;
        Ok(config)
    }

    /// Whether both stores are embedded (SQLite and in-process): a single instance.
    pub fn is_embedded(&self) -> bool {
        matches!(self.user_store, UserStoreConfig::Sqlite { .. })
            && matches!(self.token_store, TokenStoreConfig::InProcess { .. })
    }

    fn check(&self) -> anyhow::Result<()> {
        let base = &self.api_base_path;
        let segments_ok = base.strip_prefix('/').is_some_and(|rest| {
            rest.split('/').all(|segment| {
                !segment.is_empty()
                    && segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
            })
        });
        if !segments_ok {
            bail!(
                "ACCOUNT_API_URL: must be a path like /api/account (leading slash, no trailing \
                 slash, segments of letters, digits and -._~)"
            );
        }
        if self.pages.serve_pages
            && let Some(page) = crate::handler::PAGE_PATHS
                .iter()
                .find(|page| **page == *base || page.starts_with(&format!("{base}/")))
        {
            bail!(
                "ACCOUNT_API_URL: {base} would take the page {page} (PAGES=on serves pages at {})",
                crate::handler::PAGE_PATHS.join(", ")
            );
        }
        if self.id_token_issuer.is_empty() {
            bail!("ID_TOKEN_ISSUER: must not be empty");
        }
        if self.id_token_audience.is_empty() {
            bail!("ID_TOKEN_AUDIENCE: must not be empty");
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > limits::MAX_BODY_BYTES {
            bail!(
                "MAX_BODY_BYTES: must be between 1 and {}",
                limits::MAX_BODY_BYTES
            );
        }
        if self.refresh_reuse_grace.as_secs() > limits::REFRESH_REUSE_GRACE {
            bail!(
                "REFRESH_REUSE_GRACE: must be between 0 and {} seconds",
                limits::REFRESH_REUSE_GRACE
            );
        }
        if self.max_sessions_per_user == 0
            || self.max_sessions_per_user > limits::MAX_SESSIONS_PER_USER
        {
            bail!(
                "MAX_SESSIONS_PER_USER: must be between 1 and {}",
                limits::MAX_SESSIONS_PER_USER
            );
        }
        if self.database_max_connections == 0 {
            bail!("DATABASE_MAX_CONNECTIONS: must be at least 1");
        }
        if self.hash_queue_limit == 0 || self.hash_queue_limit > limits::HASH_QUEUE_LIMIT {
            bail!(
                "HASH_QUEUE_LIMIT: must be between 1 and {}",
                limits::HASH_QUEUE_LIMIT
            );
        }
        if self
            .hash_threads
            .is_some_and(|n| n == 0 || n > limits::HASH_THREADS)
        {
            bail!(
                "HASH_THREADS: must be between 1 and {} (unset: one per core)",
                limits::HASH_THREADS
            );
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

/// The key files only (for `account keys …`, which needs nothing else).
pub(crate) fn key_paths_from_env() -> KeyPaths {
    key_paths(&Vars::new(std::env::vars().collect()))
}

fn key_paths(env: &Vars) -> KeyPaths {
    KeyPaths {
        private_key: PathBuf::from(env.string("PRIV_KEY_FILE", defaults::PRIV_KEY_FILE)),
        public_key: PathBuf::from(env.string("PUB_KEY_FILE", defaults::PUB_KEY_FILE)),
        refresh_secret_file: PathBuf::from(
            env.string("REFRESH_SECRET_FILE", defaults::REFRESH_SECRET_FILE),
        ),
        refresh_secret: env.optional("REFRESH_SECRET").map(Secret::new),
        published_dir: PathBuf::from(
            env.string("PUBLISHED_KEYS_DIR", defaults::PUBLISHED_KEYS_DIR),
        ),
        data_key_file: PathBuf::from(env.string("DATA_KEY_FILE", defaults::DATA_KEY_FILE)),
        data_key: env.optional("DATA_KEY").map(Secret::new),
    }
}

/// `SMTP_URL` (set but empty is a mistake: it must not silently write mails,
/// tokens included, to the log) and `MAIL_FROM`. Errors never repeat the URL.
fn mail(env: &Vars) -> anyhow::Result<MailConfig> {
    let smtp_url = match env.raw("SMTP_URL").as_deref().map(str::trim) {
        None => None,
        Some("") => bail!("SMTP_URL: is set but empty (unset it to write mails to the log)"),
        Some(url) => {
            crate::mail::describe_smtp_url(url).map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?;
            Some(Secret::new(url.to_owned()))
        }
    };
    let from = env.string("MAIL_FROM", defaults::MAIL_FROM);
    let from = from.parse().map_err(|e| {
        anyhow::anyhow!("MAIL_FROM: {from:?} is not an address like a@b or Name <a@b>: {e}")
    })?;
    Ok(MailConfig { smtp_url, from })
}

/// `RATE_LIMIT_WINDOW` and the limits counted in it, each at least 1 (a
/// very high one is never reached: that turns it off).
fn rate_limits(env: &Vars) -> anyhow::Result<RateLimitConfig> {
    let limit = |name: &str, default: u64| -> anyhow::Result<u64> {
        match env.parse(name, default)? {
            0 => bail!("{name}: must be at least 1 (a very high value turns the limit off)"),
            limit => Ok(limit),
        }
    };
    Ok(RateLimitConfig {
        window: env.seconds(
            "RATE_LIMIT_WINDOW",
            defaults::RATE_LIMIT_WINDOW,
            limits::RATE_LIMIT_WINDOW,
        )?,
        signin_per_email_and_ip: limit("SIGNIN_RATE_LIMIT", defaults::SIGNIN_RATE_LIMIT)?,
        signin_per_ip: limit("SIGNIN_IP_RATE_LIMIT", defaults::SIGNIN_IP_RATE_LIMIT)?,
        signin_per_email: limit("SIGNIN_EMAIL_RATE_LIMIT", defaults::SIGNIN_EMAIL_RATE_LIMIT)?,
        signup_per_ip: limit("SIGNUP_RATE_LIMIT", defaults::SIGNUP_RATE_LIMIT)?,
        // A reset request names an account, as a sign-in attempt does.
        reset_per_ip: limit("SIGNIN_IP_RATE_LIMIT", defaults::SIGNIN_IP_RATE_LIMIT)?,
        mails_per_account: limit("MAIL_RATE_LIMIT", defaults::MAIL_RATE_LIMIT)?,
        client_auth_per_id_and_ip: limit(
            "CLIENT_AUTH_RATE_LIMIT",
            defaults::CLIENT_AUTH_RATE_LIMIT,
        )?,
        client_auth_per_ip: limit(
            "CLIENT_AUTH_IP_RATE_LIMIT",
            defaults::CLIENT_AUTH_IP_RATE_LIMIT,
        )?,
        link_tokens_per_ip: limit("LINK_TOKEN_RATE_LIMIT", defaults::LINK_TOKEN_RATE_LIMIT)?,
        mfa_per_user: limit("MFA_RATE_LIMIT", mfa::defaults::MFA_RATE_LIMIT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error_of(pairs: &[(&str, &str)]) -> String {
        format!("{:#}", Config::from_vars(vars(pairs)).unwrap_err())
    }

    #[test]
    fn the_pages_title_and_the_redirect_urls_are_checked() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(c.pages.title, "Account");
        assert!(c.pages.redirect_urls.is_empty());
        let c = Config::from_vars(vars(&[
            ("PAGES_TITLE", "  Example Cloud "),
            (
                "REDIRECT_URLS",
                "https://app.example.com/home, http://localhost:3000,",
            ),
        ]))
        .unwrap();
        assert_eq!(c.pages.title, "Example Cloud");
        let urls: Vec<&str> = c.pages.redirect_urls.iter().map(url::Url::as_str).collect();
        assert_eq!(
            urls,
            ["https://app.example.com/home", "http://localhost:3000/"]
        );
        // Set but empty reads as unset, as for every setting.
        for title in ["a\u{7}b", &"x".repeat(61)] {
            let err = error_of(&[("PAGES_TITLE", title)]);
            assert!(err.starts_with("PAGES_TITLE:"), "{title:?}: {err}");
        }
        for entry in [
            "app.example.com",
            "javascript:alert(1)",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "https://app.example.com/?next=1",
            "https://app.example.com/#x",
            "https://",
        ] {
            let err = error_of(&[("REDIRECT_URLS", entry)]);
            assert!(err.starts_with("REDIRECT_URLS:"), "{entry}: {err}");
        }
    }

    #[test]
    fn pages_are_on_by_default_and_claim_their_paths_and_the_root() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert!(c.pages.serve_pages);
        assert!(
            !Config::from_vars(vars(&[("PAGES", "OFF")]))
                .unwrap()
                .pages
                .serve_pages
        );
        assert!(error_of(&[("PAGES", "maybe")]).starts_with("PAGES:"));
        // A path in PUBLIC_URL: refused while the pages are served at the root.
        assert!(
            error_of(&[("PUBLIC_URL", "https://x.example/account")]).starts_with("PUBLIC_URL:")
        );
        let off = Config::from_vars(vars(&[
            ("PAGES", "off"),
            ("PUBLIC_URL", "https://x.example/account/"),
        ]))
        .unwrap();
        assert_eq!(
            off.pages.public_url.as_deref(),
            Some("https://x.example/account")
        );
        assert!(Config::from_vars(vars(&[("PUBLIC_URL", "https://x.example/")])).is_ok());
        // The API's base may not be a page path, nor a prefix of one.
        for base in ["/verify-email", "/assets", "/reset-password"] {
            let err = error_of(&[("ACCOUNT_API_URL", base)]);
            assert!(err.starts_with("ACCOUNT_API_URL:"), "{base}: {err}");
        }
        assert!(Config::from_vars(vars(&[("ACCOUNT_API_URL", "/verify")])).is_ok());
        assert!(Config::from_vars(vars(&[("ACCOUNT_API_URL", "/assets-api")])).is_ok());
        assert!(
            Config::from_vars(vars(&[("ACCOUNT_API_URL", "/assets"), ("PAGES", "off")])).is_ok()
        );
    }

    #[test]
    fn session_settings_have_defaults_and_bounds() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(c.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(c.max_sessions_per_user, 10);
        assert_eq!(c.session_max_age, Duration::from_secs(2_592_000));
        let c = Config::from_vars(vars(&[("REFRESH_REUSE_GRACE", "0")])).unwrap();
        assert_eq!(
            c.refresh_reuse_grace,
            Duration::ZERO,
            "0 turns the window off"
        );
        for (name, value) in [
            ("REFRESH_REUSE_GRACE", "61"),
            ("REFRESH_REUSE_GRACE", "-1"),
            ("MAX_SESSIONS_PER_USER", "0"),
            ("MAX_SESSIONS_PER_USER", "1001"),
            ("SESSION_MAX_AGE", "0"),
            ("SESSION_MAX_AGE", "31536001"),
        ] {
            let err = error_of(&[(name, value)]);
            assert!(
                err.starts_with(&format!("{name}:")),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn connection_limits_are_read_with_their_defaults_and_bounds() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(c.connections, ConnectionLimits::default());
        assert_eq!(c.connections.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.connections.keep_alive_timeout, Duration::from_secs(65));
        assert_eq!(c.connections.body_read_timeout, Duration::from_secs(10));
        assert_eq!(c.connections.max_connections, 1024);
        let c = Config::from_vars(vars(&[
            ("HEADER_READ_TIMEOUT", "1"),
            ("KEEP_ALIVE_TIMEOUT", "75"),
            ("BODY_READ_TIMEOUT", "20"),
            ("MAX_CONNECTIONS", "4"),
        ]))
        .unwrap();
        assert_eq!(
            (
                c.connections.header_read_timeout,
                c.connections.keep_alive_timeout,
                c.connections.body_read_timeout,
                c.connections.max_connections
            ),
            (
                Duration::from_secs(1),
                Duration::from_secs(75),
                Duration::from_secs(20),
                4
            )
        );
        for (name, value) in [
            ("HEADER_READ_TIMEOUT", "0"),
            ("KEEP_ALIVE_TIMEOUT", "3601"),
            ("BODY_READ_TIMEOUT", "soon"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONNECTIONS", "1048577"),
        ] {
            let err = error_of(&[(name, value)]);
            assert!(
                err.starts_with(&format!("{name}:")),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn defaults_match_the_configuration_table() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(c.bind_address(), "127.0.0.1:8080");
        assert_eq!(c.id_token_ttl, Duration::from_secs(900));
        assert_eq!(c.client_token_ttl, Duration::from_secs(3600));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(259_200));
        assert_eq!(c.handler_timeout, Duration::from_secs(5));
        assert_eq!(c.max_body_bytes, 65_536);
        assert_eq!(c.api_base_path, "/api/account");
        assert_eq!(c.keys.private_key, PathBuf::from("keys/private.pem"));
        assert_eq!(c.keys.public_key, PathBuf::from("keys/public.pem"));
        assert!(c.keys.refresh_secret.is_none());
        assert_eq!(c.hash_queue_limit, 32);
        assert_eq!(c.hash_threads, None, "one per core");
        let c = Config::from_vars(vars(&[("HASH_THREADS", "3")])).unwrap();
        assert_eq!(c.hash_threads, Some(3));
    }

    #[test]
    fn unset_store_urls_pick_the_embedded_stores() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert!(c.is_embedded());
        let UserStoreConfig::Sqlite { url } = &c.user_store else {
            panic!("{c:?}")
        };
        assert_eq!(sqlite_file(url), Some(PathBuf::from("data/account.db")));
        let TokenStoreConfig::InProcess { file, snapshot } = &c.token_store else {
            panic!("{c:?}")
        };
        assert_eq!(file.as_deref(), Some(Path::new("data/account.db")));
        assert_eq!(snapshot, &PathBuf::from("data/refresh-tokens.json"));
    }

    #[test]
    fn each_store_is_chosen_on_its_own() {
        let c = Config::from_vars(vars(&[("DATABASE_URL", "postgres://u@h/db")])).unwrap();
        assert!(matches!(c.user_store, UserStoreConfig::Postgres { .. }));
        let TokenStoreConfig::InProcess { file, .. } = &c.token_store else {
            panic!("{c:?}")
        };
        assert_eq!(file.as_deref(), Some(Path::new("data/tokens.db")));
        assert!(!c.is_embedded());
        let c = Config::from_vars(vars(&[
            ("DATABASE_URL", "sqlite:///tmp/x/users.db"),
            ("REDIS_URL", "redis://localhost"),
        ]))
        .unwrap();
        assert!(matches!(c.user_store, UserStoreConfig::Sqlite { .. }));
        assert!(matches!(c.token_store, TokenStoreConfig::Redis { .. }));
        assert!(!c.is_embedded());
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://x.db?mode=memory"), None);
        let c = Config::from_vars(vars(&[("DATABASE_URL", "sqlite://state/users.db")])).unwrap();
        let TokenStoreConfig::InProcess { file, snapshot } = &c.token_store else {
            panic!("{c:?}")
        };
        assert_eq!(file.as_deref(), Some(Path::new("state/users.db")));
        assert_eq!(snapshot, &PathBuf::from("state/refresh-tokens.json"));
        let c = Config::from_vars(vars(&[("DATABASE_URL", "sqlite::memory:")])).unwrap();
        let TokenStoreConfig::InProcess { file, .. } = &c.token_store else {
            panic!("{c:?}")
        };
        assert_eq!(file, &None, "in-memory users, in-memory tokens");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        assert!(error_of(&[("PORT", "eighty")]).starts_with("PORT:"));
        assert!(error_of(&[("HASH_QUEUE_LIMIT", "0")]).starts_with("HASH_QUEUE_LIMIT:"));
        assert!(error_of(&[("HASH_QUEUE_LIMIT", "10001")]).starts_with("HASH_QUEUE_LIMIT:"));
        assert!(error_of(&[("HASH_THREADS", "0")]).starts_with("HASH_THREADS:"));
        assert!(error_of(&[("HASH_THREADS", "257")]).starts_with("HASH_THREADS:"));
        assert!(error_of(&[("HASH_THREADS", "two")]).starts_with("HASH_THREADS:"));
        assert!(error_of(&[("ID_TOKEN_EXP", "-1")]).starts_with("ID_TOKEN_EXP:"));
        assert!(error_of(&[("CLIENT_TOKEN_EXP", "0")]).starts_with("CLIENT_TOKEN_EXP:"));
        assert!(error_of(&[("CLIENT_TOKEN_EXP", "86401")]).starts_with("CLIENT_TOKEN_EXP:"));
        assert!(error_of(&[("REFRESH_TOKEN_EXP", "0")]).starts_with("REFRESH_TOKEN_EXP:"));
        assert!(error_of(&[("HANDLER_TIMEOUT", "soon")]).starts_with("HANDLER_TIMEOUT:"));
        assert!(error_of(&[("MAX_BODY_BYTES", "1e9")]).starts_with("MAX_BODY_BYTES:"));
        assert!(error_of(&[("ACCOUNT_API_URL", "api/")]).starts_with("ACCOUNT_API_URL:"));
        assert!(error_of(&[("DATABASE_URL", "mysql://x")]).starts_with("DATABASE_URL:"));
        assert!(error_of(&[("REDIS_URL", "http://x")]).starts_with("REDIS_URL:"));
        assert!(error_of(&[("REDIS_URL", "")]).starts_with("REDIS_URL:"));
        assert!(error_of(&[("DATABASE_URL", " ")]).starts_with("DATABASE_URL:"));
        assert!(error_of(&[("ID_TOKEN_EXP", "18446744073709551615")]).starts_with("ID_TOKEN_EXP:"));
        assert!(error_of(&[("REFRESH_TOKEN_EXP", "31536001")]).starts_with("REFRESH_TOKEN_EXP:"));
        assert!(error_of(&[("ACCOUNT_API_URL", "/:api")]).starts_with("ACCOUNT_API_URL:"));
        assert!(error_of(&[("ACCOUNT_API_URL", "/api//account")]).starts_with("ACCOUNT_API_URL:"));
        assert!(Config::from_vars(vars(&[("ACCOUNT_API_URL", "/v2/acct-x")])).is_ok());
    }

    #[test]
    fn limit_settings_have_defaults_and_bounds() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(
            c.rate_limits,
            RateLimitConfig {
                window: Duration::from_secs(300),
                signin_per_email_and_ip: 10,
                signin_per_ip: 30,
                signin_per_email: 100,
                signup_per_ip: 10,
                reset_per_ip: 30,
                mails_per_account: 3,
                client_auth_per_id_and_ip: 30,
                client_auth_per_ip: 30,
                link_tokens_per_ip: 30,
                mfa_per_user: 5,
            }
        );
        assert!(c.connections.trusted_proxies.is_empty());
        let c = Config::from_vars(vars(&[
            ("RATE_LIMIT_WINDOW", "60"),
            ("SIGNIN_RATE_LIMIT", "1"),
            ("SIGNIN_IP_RATE_LIMIT", "1000000000000"),
            ("SIGNIN_EMAIL_RATE_LIMIT", "7"),
            ("SIGNUP_RATE_LIMIT", "2"),
            ("MAIL_RATE_LIMIT", "5"),
            ("CLIENT_AUTH_RATE_LIMIT", "4"),
            ("CLIENT_AUTH_IP_RATE_LIMIT", "6"),
            ("LINK_TOKEN_RATE_LIMIT", "8"),
            (
                "TRUSTED_PROXIES",
                "127.0.0.1/32, 10.1.2.3/8,::1 ,2001:db8::/32",
            ),
        ]))
        .unwrap();
        assert_eq!(c.rate_limits.window, Duration::from_secs(60));
        assert_eq!(c.rate_limits.signin_per_email_and_ip, 1);
        assert_eq!(c.rate_limits.signin_per_ip, 1_000_000_000_000);
        assert_eq!(c.rate_limits.signin_per_email, 7);
        assert_eq!(c.rate_limits.signup_per_ip, 2);
        assert_eq!(
            c.rate_limits.reset_per_ip, 1_000_000_000_000,
            "reset requests per source: SIGNIN_IP_RATE_LIMIT"
        );
        assert_eq!(c.rate_limits.mails_per_account, 5);
        assert_eq!(c.rate_limits.client_auth_per_id_and_ip, 4);
        assert_eq!(c.rate_limits.client_auth_per_ip, 6);
        assert_eq!(c.rate_limits.link_tokens_per_ip, 8);
        let proxies: Vec<String> = c
            .connections
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            proxies,
            ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "2001:db8::/32"]
        );
        for (name, value) in [
            ("RATE_LIMIT_WINDOW", "0"),
            ("RATE_LIMIT_WINDOW", "86401"),
            ("SIGNIN_RATE_LIMIT", "0"),
            ("SIGNIN_IP_RATE_LIMIT", "-1"),
            ("SIGNIN_EMAIL_RATE_LIMIT", "many"),
            ("SIGNUP_RATE_LIMIT", "0"),
            ("MAIL_RATE_LIMIT", "0"),
            ("CLIENT_AUTH_RATE_LIMIT", "0"),
            ("CLIENT_AUTH_IP_RATE_LIMIT", "none"),
            ("LINK_TOKEN_RATE_LIMIT", "0"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TRUSTED_PROXIES", "10.0.0.0/8,"),
            ("TRUSTED_PROXIES", "localhost"),
        ] {
            let err = error_of(&[(name, value)]);
            assert!(
                err.starts_with(&format!("{name}:")),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn the_links_default_to_pages_under_public_url() {
        let bound: std::net::SocketAddr = "127.0.0.1:18555".parse().unwrap();
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(
            c.pages.flows(&c.host, bound),
            crate::service::FlowConfig {
                verify_email_url: "http://localhost:18555/verify-email".into(),
                reset_password_url: "http://localhost:18555/reset-password".into(),
                verify_token_ttl: Duration::from_secs(86_400),
                reset_token_ttl: Duration::from_secs(3_600),
                email_confirmation: crate::service::EmailConfirmation::Optional,
                account_url: "http://localhost:18555/account".into(),
                security_mail: true,
            },
            "unset, PUBLIC_URL follows the listener"
        );
        // With PAGES=off, a path is kept (the team serves its own pages there).
        let c = Config::from_vars(vars(&[
            ("PUBLIC_URL", "https://app.example/base/"),
            ("PAGES", "off"),
        ]))
        .unwrap();
        let flows = c.pages.flows(&c.host, bound);
        assert_eq!(
            flows.verify_email_url,
            "https://app.example/base/verify-email"
        );
        assert_eq!(
            flows.reset_password_url,
            "https://app.example/base/reset-password"
        );
        let c = Config::from_vars(vars(&[
            ("PUBLIC_URL", "https://ignored.example"),
            ("VERIFY_EMAIL_URL", "https://app.example/#/x"),
        ]));
        assert!(c.is_err(), "a fragment would swallow the token");
        let c = Config::from_vars(vars(&[
            (
                "VERIFY_EMAIL_URL",
                "https://app.example/account?step=verify",
            ),
            ("RESET_PASSWORD_URL", "http://localhost:3000/reset"),
            ("VERIFY_TOKEN_EXP", "600"),
            ("RESET_TOKEN_EXP", "1"),
        ]))
        .unwrap();
        let flows = c.pages.flows(&c.host, bound);
        assert_eq!(
            (
                flows.verify_email_url.as_str(),
                flows.reset_password_url.as_str()
            ),
            (
                "https://app.example/account?step=verify",
                "http://localhost:3000/reset"
            )
        );
        assert_eq!(flows.verify_token_ttl, Duration::from_secs(600));
        assert_eq!(flows.reset_token_ttl, Duration::from_secs(1));
        for (name, value) in [
            ("PUBLIC_URL", "app.example"),
            ("PUBLIC_URL", "ftp://app.example"),
            ("PUBLIC_URL", "https://"),
            ("PUBLIC_URL", "https://app.example?x=1"),
            ("PUBLIC_URL", "https://user@app.example"),
            ("VERIFY_EMAIL_URL", "https://app .example/verify"),
            ("VERIFY_EMAIL_URL", "/verify-email"),
            ("RESET_PASSWORD_URL", "https:///reset"),
            ("RESET_PASSWORD_URL", "https://app.example/reset#x"),
            ("VERIFY_TOKEN_EXP", "0"),
            ("VERIFY_TOKEN_EXP", "2592001"),
            ("RESET_TOKEN_EXP", "0"),
            ("RESET_TOKEN_EXP", "86401"),
        ] {
            let err = error_of(&[(name, value)]);
            assert!(
                err.starts_with(&format!("{name}:")),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn email_confirmation_is_optional_unless_required_and_nothing_else() {
        use crate::service::EmailConfirmation;
        let mode = |vars_: &[(&str, &str)]| {
            Config::from_vars(vars(vars_))
                .unwrap()
                .pages
                .email_confirmation
        };
        assert_eq!(mode(&[]), EmailConfirmation::Optional);
        assert_eq!(
            mode(&[("EMAIL_CONFIRMATION", "optional")]),
            EmailConfirmation::Optional
        );
        assert_eq!(
            mode(&[("EMAIL_CONFIRMATION", "required")]),
            EmailConfirmation::Required
        );
        for bad in ["", "Required", "yes", "true", "on"] {
            let err = error_of(&[("EMAIL_CONFIRMATION", bad)]);
            assert!(err.starts_with("EMAIL_CONFIRMATION:"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn security_mail_is_on_unless_off_and_links_to_the_account_page() {
        let bound: std::net::SocketAddr = "127.0.0.1:18555".parse().unwrap();
        let flows = |vars_: &[(&str, &str)]| {
            let c = Config::from_vars(vars(vars_)).unwrap();
            c.pages.flows(&c.host, bound)
        };
        assert!(flows(&[]).security_mail);
        assert!(flows(&[("SECURITY_MAIL", " ON ")]).security_mail);
        assert!(!flows(&[("SECURITY_MAIL", "off")]).security_mail);
        for bad in ["yes", "false", "0"] {
            let err = error_of(&[("SECURITY_MAIL", bad)]);
            assert!(err.starts_with("SECURITY_MAIL:"), "{bad:?}: {err}");
        }
        assert_eq!(
            flows(&[("PUBLIC_URL", "https://id.example")]).account_url,
            "https://id.example/account"
        );
        assert_eq!(
            flows(&[("ACCOUNT_URL", "https://app.example/settings/security")]).account_url,
            "https://app.example/settings/security"
        );
        let err = error_of(&[("ACCOUNT_URL", "ftp://app.example/")]);
        assert!(err.starts_with("ACCOUNT_URL:"), "{err}");
    }

    #[test]
    fn mail_settings_have_defaults_and_name_their_variable() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert!(c.mail.smtp_url.is_none(), "unset: the log");
        assert_eq!(c.mail.from.to_string(), "account@localhost");
        let c = Config::from_vars(vars(&[
            ("SMTP_URL", " smtps://user:hunter2@mail.example "),
            ("MAIL_FROM", "Account <no-reply@example.com>"),
        ]))
        .unwrap();
        let url = c.mail.smtp_url.as_ref().map(Secret::expose);
        assert_eq!(url, Some("smtps://user:hunter2@mail.example"));
        assert_eq!(c.mail.from.email.to_string(), "no-reply@example.com");
        assert_eq!(c.mail.from.name.as_deref(), Some("Account"));
        assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
        for (name, value) in [
            ("SMTP_URL", ""),
            ("SMTP_URL", "http://u:hunter2@mail.example"),
            ("SMTP_URL", "smtp://u:hunter2@"),
            ("SMTP_URL", "smtp://u:hunter2@mail.example?tls=maybe"),
            ("SMTP_URL", "mail.example:25"),
            ("MAIL_FROM", "not an address"),
            ("MAIL_FROM", "Account <no-reply>"),
        ] {
            let err = error_of(&[(name, value)]);
            assert!(
                err.starts_with(&format!("{name}:")),
                "{name}={value}: {err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn redis_mode_selects_a_single_redis_or_cluster_seeds() {
        let c = Config::from_vars(vars(&[("REDIS_URL", "redis://h:6379")])).unwrap();
        assert!(matches!(
            c.token_store,
            TokenStoreConfig::Redis {
                mode: RedisMode::Standalone,
                ..
            }
        ));
        let c = Config::from_vars(vars(&[
            ("REDIS_MODE", "cluster"),
            ("REDIS_URL", "redis://127.0.0.1:7000,redis://127.0.0.1:7001"),
        ]))
        .unwrap();
        let TokenStoreConfig::Redis { url, mode } = &c.token_store else {
            panic!("{c:?}")
        };
        assert_eq!(*mode, RedisMode::Cluster);
        assert_eq!(
            url.expose(),
            "redis://127.0.0.1:7000,redis://127.0.0.1:7001"
        );
        // Without REDIS_URL the mode changes nothing: the in-process store.
        let c = Config::from_vars(vars(&[("REDIS_MODE", "cluster")])).unwrap();
        assert!(matches!(c.token_store, TokenStoreConfig::InProcess { .. }));

        assert!(error_of(&[("REDIS_MODE", "sentinel")]).starts_with("REDIS_MODE:"));
        let several = error_of(&[("REDIS_URL", "redis://a:1,redis://b:2")]);
        assert!(several.starts_with("REDIS_URL:"), "{several}");
        assert!(several.contains("REDIS_MODE=cluster"), "{several}");
        for bad in ["redis://a:1,", "redis://a:1,http://b:2"] {
            let err = error_of(&[("REDIS_MODE", "cluster"), ("REDIS_URL", bad)]);
            assert!(err.contains("REDIS_URL"), "{bad}: {err}");
        }
        let err = error_of(&[
            ("REDIS_MODE", "cluster"),
            ("REDIS_URL", "redis://:hunter4@a:1,ftp://:hunter4@b:2"),
        ]);
        assert!(!err.contains("hunter4"), "{err}");
    }

    #[test]
    fn store_urls_are_not_printed() {
        let c = Config::from_vars(vars(&[
            ("DATABASE_URL", "postgres://u:hunter2@h/db"),
            ("REDIS_URL", "redis://:hunter3@h"),
        ]))
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter"));
    }

    /// `env.dev` is what docker-compose passes to the container: it must be
    /// a configuration the service starts with.
    #[test]
    fn the_compose_settings_file_is_a_valid_configuration() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/env.dev"))
            .expect("env.dev");
        let vars: HashMap<String, String> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (k, v) = line.split_once('=').expect("KEY=VALUE");
                (k.to_owned(), v.to_owned())
            })
            .collect();
        let c = Config::from_vars(vars).expect("env.dev is a valid configuration");
        assert_eq!(c.host, "0.0.0.0", "reachable from outside the container");
        assert!(!c.is_embedded());
        assert!(c.mail.smtp_url.is_some());
    }
}
