//! A verifier's settings: the token rules, how keys are refreshed, and
//! reading both from the same environment variables the account service uses.

use std::time::Duration;

use super::validator::{IdTokenRules, defaults};
use crate::settings::Setting;

/// The variables [`Verifier::from_env`](super::Verifier::from_env) reads, with
/// the account service's names: a domain service can print them in its own
/// `--help` with [`crate::settings::help`].
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "JWKS_URL",
        default: || "required".into(),
        help: || {
            "the account service's key set, e.g. http://127.0.0.1:8080/.well-known/jwks.json".into()
        },
    },
    Setting {
        name: "ID_TOKEN_ISSUER",
        default: || defaults::ISSUER.into(),
        help: || "the iss a token must carry (as on the account service)".into(),
    },
    Setting {
        name: "ID_TOKEN_AUDIENCE",
        default: || defaults::AUDIENCE.into(),
        help: || "the aud a token must carry (as on the account service)".into(),
    },
    Setting {
        name: "ID_TOKEN_EXP",
        default: || defaults::MAX_LIFETIME.as_secs().to_string(),
        help: || {
            format!(
                "seconds: the longest ID-token lifetime accepted, set as on the account service (1 to {})",
                defaults::MAX_LIFETIME_LIMIT.as_secs()
            )
        },
    },
    Setting {
        name: "CLIENT_TOKEN_EXP",
        default: || defaults::CLIENT_MAX_LIFETIME.as_secs().to_string(),
        help: || {
            format!(
                "seconds: the longest client-token lifetime accepted, as on the account service (1 to {})",
                defaults::MAX_LIFETIME_LIMIT.as_secs()
            )
        },
    },
    Setting {
        name: "JWKS_REFETCH_INTERVAL",
        default: || defaults::REFETCH_INTERVAL.as_secs().to_string(),
        help: || {
            "seconds: an unknown kid refetches the key set at most this often (1 or more)".into()
        },
    },
];

/// A verifier that cannot be built: the message names the variable or setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// A configuration error; start `message` with the variable's name.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// What a token must say, and how keys are refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// The rules every token must pass (issuer, audience, leeway, lifetime).
    pub rules: IdTokenRules,
    /// An unknown `kid` triggers a JWKS fetch only when the last fetch is older
    /// than this, so a flood of tokens with made-up key ids costs at most one
    /// request per interval.
    pub refetch_interval: Duration,
    /// Keys older than this are refetched in the background when the next
    /// token arrives (no more often than `refetch_interval`, one fetch at a
    /// time), so a key the account service withdrew stops verifying even if no
    /// token with a new `kid` ever arrives. Tokens go on being checked against
    /// the old keys until the fetch succeeds; while the account service is
    /// unreachable the old keys stay in use.
    pub max_key_age: Duration,
    /// The longest `exp − iat` a client's access token may have
    /// (`CLIENT_TOKEN_EXP`, default 3600 s); the other client-token rules are
    /// those of `rules`.
    pub client_max_lifetime: Duration,
}

impl VerifierConfig {
    /// The rules client access tokens are checked against: `rules` with
    /// `client_max_lifetime`.
    pub fn client_rules(&self) -> IdTokenRules {
        IdTokenRules {
            max_lifetime: self.client_max_lifetime,
            ..self.rules.clone()
        }
    }
}

impl Default for VerifierConfig {
    /// The account service's defaults (see [`IdTokenRules::default`]), a 30 s
    /// refetch interval and a 5 min key age (the JWKS's `Cache-Control: max-age`).
    fn default() -> Self {
        Self {
            rules: IdTokenRules::default(),
            refetch_interval: defaults::REFETCH_INTERVAL,
            max_key_age: defaults::MAX_KEY_AGE,
            client_max_lifetime: defaults::CLIENT_MAX_LIFETIME,
        }
    }
}

/// The variables a verifier reads, with the account service's names.
pub(super) struct Vars<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// `JWKS_URL`, required.
    pub fn jwks_url(&self) -> Result<String, ConfigError> {
        (self.0)("JWKS_URL")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ConfigError::new(concat!(
                    "JWKS_URL: must be set to the account service's key set, ",
                    "e.g. http://127.0.0.1:8080/.well-known/jwks.json"
                ))
            })
    }

    /// `ID_TOKEN_ISSUER`, `ID_TOKEN_AUDIENCE`, `ID_TOKEN_EXP`,
    /// `CLIENT_TOKEN_EXP` and `JWKS_REFETCH_INTERVAL` over the defaults. As in the account service, a
    /// variable set to blanks counts as unset.
    pub fn config(&self) -> Result<VerifierConfig, ConfigError> {
        let mut config = VerifierConfig::default();
        if let Some(issuer) = self.get("ID_TOKEN_ISSUER") {
            config.rules.issuer = issuer;
        }
        if let Some(audience) = self.get("ID_TOKEN_AUDIENCE") {
            config.rules.audience = audience;
        }
        if let Some(secs) = self.seconds("ID_TOKEN_EXP", defaults::MAX_LIFETIME_LIMIT)? {
            config.rules.max_lifetime = secs;
        }
        if let Some(secs) = self.seconds("CLIENT_TOKEN_EXP", defaults::MAX_LIFETIME_LIMIT)? {
            config.client_max_lifetime = secs;
        }
        if let Some(secs) = self.seconds("JWKS_REFETCH_INTERVAL", Duration::MAX)? {
            config.refetch_interval = secs;
        }
        Ok(config)
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn seconds(&self, name: &str, max: Duration) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        value
            .trim()
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
            .filter(|secs| !secs.is_zero() && *secs <= max)
            .map(Some)
            .ok_or_else(|| {
                let bound = if max == Duration::MAX {
                    "≥ 1".to_owned()
                } else {
                    format!("between 1 and {}", max.as_secs())
                };
                ConfigError::new(format!(
                    "{name}: expected a whole number of seconds {bound}, got {value:?}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::check;
    use crate::verifier::Verifier;

    #[test]
    fn the_verifier_reads_exactly_the_settings_of_its_table() {
        check::declared_once(SETTINGS);
        let env = check::Recording::new(&[("JWKS_URL", "http://127.0.0.1:9/jwks.json")]);
        Verifier::from_vars(|name| env.var(name)).unwrap();
        assert_eq!(env.read(), check::names(SETTINGS));
    }

    #[test]
    fn the_configuration_page_names_exactly_the_verifiers_settings() {
        check::page_names_exactly("A domain service's verifier", SETTINGS);
        check::help_lists_every_setting(SETTINGS);
    }
}
