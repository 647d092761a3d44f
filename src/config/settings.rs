//! Every environment variable the account service reads, declared once in a
//! table: its name, its default (from the typed defaults the parser uses) and
//! one line of help with its bounds. The connection limits are the serving
//! code's table, shared with the todo service. `account serve --help` prints
//! the table; tests check that the parser reads exactly these names and that
//! `docs/configuration.md` lists exactly them.

use super::{defaults, limits};
pub use crate::settings::{RUST_LOG, Setting, help};
use crate::web::serve::CONNECTION_SETTINGS;

/// Every setting of `account serve`, in the order of `docs/configuration.md`.
pub fn service() -> Vec<Setting> {
    [
        LISTEN_AND_STORES,
        KEY_FILES,
        TOKENS_TO_CONNECTIONS,
        CONNECTION_SETTINGS,
        AFTER_CONNECTIONS,
        &[RUST_LOG],
    ]
    .concat()
}

/// Where the service listens and keeps its data.
const LISTEN_AND_STORES: &[Setting] = &[
    Setting {
        name: "HOST",
        default: || defaults::HOST.into(),
        help: || "address to listen on (0.0.0.0 in a container)".into(),
    },
    Setting {
        name: "PORT",
        default: || defaults::PORT.to_string(),
        help: || "port to listen on (0: one the kernel picks)".into(),
    },
    Setting {
        name: "DATABASE_URL",
        default: || format!("unset: SQLite {}", defaults::SQLITE_URL),
        help: || "users: postgres://… (PostgreSQL) or sqlite://path".into(),
    },
    Setting {
        name: "REDIS_URL",
        default: || "unset: in-process whitelist".into(),
        help: || "refresh-token whitelist: redis://… (cluster: comma-separated seeds)".into(),
    },
    Setting {
        name: "REDIS_MODE",
        default: || "standalone".into(),
        help: || "standalone or cluster (Redis Cluster through REDIS_URL's seeds)".into(),
    },
];

/// The key files and the refresh secret: `account serve` reads them, and
/// `account keys` writes and rotates them.
pub const KEY_FILES: &[Setting] = &[
    Setting {
        name: "PRIV_KEY_FILE",
        default: || defaults::PRIV_KEY_FILE.into(),
        help: || "RSA private key (PEM, 2048 bits or more) signing ID tokens".into(),
    },
    Setting {
        name: "PUB_KEY_FILE",
        default: || defaults::PUB_KEY_FILE.into(),
        help: || "its public key (checked against the private key)".into(),
    },
    Setting {
        name: "REFRESH_SECRET",
        default: || "unset: read from REFRESH_SECRET_FILE".into(),
        help: || "HMAC secret of refresh tokens, 32 bytes or more".into(),
    },
    Setting {
        name: "REFRESH_SECRET_FILE",
        default: || defaults::REFRESH_SECRET_FILE.into(),
        help: || "where the refresh secret is read from".into(),
    },
    Setting {
        name: "PUBLISHED_KEYS_DIR",
        default: || defaults::PUBLISHED_KEYS_DIR.into(),
        help: || "public keys published besides the active one (<kid>.pem)".into(),
    },
    Setting {
        name: "DATA_KEY",
        default: || "unset: read from DATA_KEY_FILE".into(),
        help: || "AES-256 key encrypting authenticator secrets: 32 bytes, base64".into(),
    },
    Setting {
        name: "DATA_KEY_FILE",
        default: || defaults::DATA_KEY_FILE.into(),
        help: || "where the data key is read from (never overwritten by keys generate)".into(),
    },
];

/// The token lifetimes onwards, up to the connection limits.
const TOKENS_TO_CONNECTIONS: &[Setting] = &[
    Setting {
        name: "ID_TOKEN_EXP",
        default: || defaults::ID_TOKEN_EXP.to_string(),
        help: || format!("ID token lifetime, seconds (1 to {})", limits::ID_TOKEN_EXP),
    },
    Setting {
        name: "CLIENT_TOKEN_EXP",
        default: || defaults::CLIENT_TOKEN_EXP.to_string(),
        help: || {
            format!(
                "client access token lifetime, seconds (1 to {})",
                limits::CLIENT_TOKEN_EXP
            )
        },
    },
    Setting {
        name: "REFRESH_TOKEN_EXP",
        default: || defaults::REFRESH_TOKEN_EXP.to_string(),
        help: || {
            format!(
                "refresh token lifetime, seconds (1 to {})",
                limits::REFRESH_TOKEN_EXP
            )
        },
    },
    Setting {
        name: "REFRESH_REUSE_GRACE",
        default: || defaults::REFRESH_REUSE_GRACE.to_string(),
        help: || {
            format!(
                "seconds a rotated refresh token still gets the same new pair (0 to {})",
                limits::REFRESH_REUSE_GRACE
            )
        },
    },
    Setting {
        name: "MAX_SESSIONS_PER_USER",
        default: || defaults::MAX_SESSIONS_PER_USER.to_string(),
        help: || {
            format!(
                "sessions per user, least recently used ended past it (1 to {})",
                limits::MAX_SESSIONS_PER_USER
            )
        },
    },
    Setting {
        name: "SESSION_MAX_AGE",
        default: || defaults::SESSION_MAX_AGE.to_string(),
        help: || {
            format!(
                "absolute lifetime of a session, seconds (1 to {})",
                limits::SESSION_MAX_AGE
            )
        },
    },
    Setting {
        name: "ID_TOKEN_ISSUER",
        default: || defaults::ID_TOKEN_ISSUER.into(),
        help: || "iss of ID tokens".into(),
    },
    Setting {
        name: "ID_TOKEN_AUDIENCE",
        default: || defaults::ID_TOKEN_AUDIENCE.into(),
        help: || "aud of ID tokens".into(),
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
        name: "MAX_BODY_BYTES",
        default: || defaults::MAX_BODY_BYTES.to_string(),
        help: || {
            format!(
                "larger request bodies are answered 413 (1 to {})",
                limits::MAX_BODY_BYTES
            )
        },
    },
];

/// The account service's settings after the connection limits.
const AFTER_CONNECTIONS: &[Setting] = &[
    Setting {
        name: "ACCOUNT_API_URL",
        default: || defaults::ACCOUNT_API_URL.into(),
        help: || "base path of the account API".into(),
    },
    Setting {
        name: "DATABASE_MAX_CONNECTIONS",
        default: || defaults::DATABASE_MAX_CONNECTIONS.to_string(),
        help: || "PostgreSQL pool size (1 or more)".into(),
    },
    Setting {
        name: "HASH_THREADS",
        default: || "one per core".into(),
        help: || {
            format!(
                "Argon2id hashing threads, 19 MiB each while busy (1 to {})",
                limits::HASH_THREADS
            )
        },
    },
    Setting {
        name: "HASH_QUEUE_LIMIT",
        default: || defaults::HASH_QUEUE_LIMIT.to_string(),
        help: || {
            format!(
                "places in the password-hashing queue, 503 past it (1 to {})",
                limits::HASH_QUEUE_LIMIT
            )
        },
    },
    Setting {
        name: "RATE_LIMIT_WINDOW",
        default: || defaults::RATE_LIMIT_WINDOW.to_string(),
        help: || {
            format!(
                "seconds the limits count over (1 to {})",
                limits::RATE_LIMIT_WINDOW
            )
        },
    },
    Setting {
        name: "SIGNIN_RATE_LIMIT",
        default: || defaults::SIGNIN_RATE_LIMIT.to_string(),
        help: || "sign-in attempts per email and client address per window (1 or more)".into(),
    },
    Setting {
        name: "SIGNIN_IP_RATE_LIMIT",
        default: || defaults::SIGNIN_IP_RATE_LIMIT.to_string(),
        help: || "sign-in attempts per client address per window (1 or more)".into(),
    },
    Setting {
        name: "SIGNIN_EMAIL_RATE_LIMIT",
        default: || defaults::SIGNIN_EMAIL_RATE_LIMIT.to_string(),
        help: || "sign-in attempts per email per window (1 or more)".into(),
    },
    Setting {
        name: "SIGNUP_RATE_LIMIT",
        default: || defaults::SIGNUP_RATE_LIMIT.to_string(),
        help: || "sign-ups per client address per window (1 or more)".into(),
    },
    Setting {
        name: "MAIL_RATE_LIMIT",
        default: || defaults::MAIL_RATE_LIMIT.to_string(),
        help: || "mails a request can trigger per account per window (1 or more)".into(),
    },
    Setting {
        name: "CLIENT_AUTH_RATE_LIMIT",
        default: || defaults::CLIENT_AUTH_RATE_LIMIT.to_string(),
        help: || {
            "failed client authentications (POST /oauth/token) per client id and address per window (1 or more)".into()
        },
    },
    Setting {
        name: "CLIENT_AUTH_IP_RATE_LIMIT",
        default: || defaults::CLIENT_AUTH_IP_RATE_LIMIT.to_string(),
        help: || "failed client authentications per address per window (1 or more)".into(),
    },
    Setting {
        name: "LINK_TOKEN_RATE_LIMIT",
        default: || defaults::LINK_TOKEN_RATE_LIMIT.to_string(),
        help: || "failed verification and reset tokens per address per window (1 or more)".into(),
    },
    Setting {
        name: "MFA_RATE_LIMIT",
        default: || super::mfa::defaults::MFA_RATE_LIMIT.to_string(),
        help: || "wrong second-factor codes per user per window (1 or more)".into(),
    },
    Setting {
        name: "PUBLIC_URL",
        default: || "http://localhost:<port bound>".into(),
        help: || "the origin people and browsers reach this service at: base of mail links".into(),
    },
    Setting {
        name: "VERIFY_EMAIL_URL",
        default: || format!("<PUBLIC_URL>{}", defaults::VERIFY_EMAIL_PATH),
        help: || "the page a verification link opens (?token=… appended)".into(),
    },
    Setting {
        name: "RESET_PASSWORD_URL",
        default: || format!("<PUBLIC_URL>{}", defaults::RESET_PASSWORD_PATH),
        help: || "the page a reset link opens (?token=… appended)".into(),
    },
    Setting {
        name: "ACCOUNT_URL",
        default: || format!("<PUBLIC_URL>{}", defaults::ACCOUNT_PATH),
        help: || "the account page the security mails link to".into(),
    },
    Setting {
        name: "SECURITY_MAIL",
        default: || "on".into(),
        help: || {
            "on or off: mail the owner about changes to how the account signs in and \
             sign-ins from new devices"
                .into()
        },
    },
    Setting {
        name: "VERIFY_TOKEN_EXP",
        default: || defaults::VERIFY_TOKEN_EXP.to_string(),
        help: || {
            format!(
                "seconds a verification link works (1 to {})",
                limits::VERIFY_TOKEN_EXP
            )
        },
    },
    Setting {
        name: "RESET_TOKEN_EXP",
        default: || defaults::RESET_TOKEN_EXP.to_string(),
        help: || {
            format!(
                "seconds a reset link works (1 to {})",
                limits::RESET_TOKEN_EXP
            )
        },
    },
    Setting {
        name: "PAGES",
        default: || "on".into(),
        help: || {
            "on: serve the pages for people (/signin, /signup, /account and those the \
             mails link to); off: leave them to your own (set VERIFY_EMAIL_URL and \
             RESET_PASSWORD_URL)"
                .into()
        },
    },
    Setting {
        name: "PAGES_TITLE",
        default: || defaults::PAGES_TITLE.into(),
        help: || "the product name in the pages' titles and headings (1 to 60 characters)".into(),
    },
    Setting {
        name: "REDIRECT_URLS",
        default: || "unset: none".into(),
        help: || {
            "comma-separated http(s) URLs the pages may send people back to (?redirect_to=)".into()
        },
    },
    Setting {
        name: "EMAIL_CONFIRMATION",
        default: || crate::service::EmailConfirmation::default().as_str().into(),
        help: || {
            "optional (sign-up signs in at once; tells whether an address is taken) or \
             required (the same 202 for every address; sign-in once verified)"
                .into()
        },
    },
    Setting {
        name: "MFA_ISSUER",
        default: || "unset: PUBLIC_URL's host".into(),
        help: || "the name authenticator apps show for this service".into(),
    },
    Setting {
        name: "MFA_PENDING_EXP",
        default: || super::mfa::defaults::MFA_PENDING_EXP.to_string(),
        help: || {
            format!(
                "seconds an authenticator enrolment waits for its first code (1 to {})",
                super::mfa::defaults::MAX_EXP
            )
        },
    },
    Setting {
        name: "MFA_TOKEN_EXP",
        default: || super::mfa::defaults::MFA_TOKEN_EXP.to_string(),
        help: || {
            format!(
                "seconds a right password waits for its second step (1 to {})",
                super::mfa::defaults::MAX_EXP
            )
        },
    },
    Setting {
        name: "REAUTH_MAX_AGE",
        default: || super::mfa::defaults::REAUTH_MAX_AGE.to_string(),
        help: || {
            format!(
                "seconds a sign-in counts as recent for enrolling a factor (1 to {})",
                super::mfa::defaults::MAX_EXP
            )
        },
    },
    Setting {
        name: "WEBAUTHN_RP_ID",
        default: || "unset: PUBLIC_URL's host".into(),
        help: || "the passkeys' relying party: a domain name, never an IP address".into(),
    },
    Setting {
        name: "WEBAUTHN_RP_NAME",
        default: || "unset: PAGES_TITLE".into(),
        help: || "the name authenticators show for this service".into(),
    },
    Setting {
        name: "WEBAUTHN_ORIGINS",
        default: || "unset: PUBLIC_URL's origin".into(),
        help: || "comma-separated origins whose pages may use passkeys (on WEBAUTHN_RP_ID)".into(),
    },
    Setting {
        name: "WEBAUTHN_CEREMONY_EXP",
        default: || super::webauthn::defaults::WEBAUTHN_CEREMONY_EXP.to_string(),
        help: || {
            format!(
                "seconds a passkey ceremony waits between start and finish (1 to {})",
                super::webauthn::defaults::MAX_CEREMONY_EXP
            )
        },
    },
    Setting {
        name: "SMTP_URL",
        default: || "unset: mails written to the log (development only)".into(),
        help: || "mail server: smtp://host:port (?tls=required) or smtps://host".into(),
    },
    Setting {
        name: "MAIL_FROM",
        default: || defaults::MAIL_FROM.into(),
        help: || "sender of the mails: a@b or Name <a@b>".into(),
    },
];

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Config;
    use crate::settings::check;

    #[test]
    fn each_name_is_declared_once() {
        check::declared_once(&service());
    }

    #[test]
    fn the_parser_reads_exactly_the_settings_of_the_table() {
        let (config, read) = Config::from_vars_reading(HashMap::new());
        config.unwrap();
        let mut declared = check::names(&service());
        declared.remove(RUST_LOG.name);
        assert_eq!(read, declared);
    }

    #[test]
    fn the_configuration_page_names_exactly_the_settings_of_the_table() {
        check::page_names_exactly("The account service", &service());
    }

    #[test]
    fn the_help_lists_every_setting_with_its_default() {
        let help = check::help_lists_every_setting(&service());
        assert!(help.contains("  PORT  [default: 8080]"), "{help}");
        assert!(help.contains("(1 to 3600)"), "{help}");
        assert!(
            help.contains("  MAX_CONNECTIONS  [default: 1024]"),
            "{help}"
        );
    }

    #[test]
    fn account_keys_reads_exactly_the_key_settings() {
        let vars = crate::config::Vars::new(HashMap::new());
        crate::config::key_paths(&vars);
        assert_eq!(*vars.read.borrow(), check::names(KEY_FILES));
    }
}
