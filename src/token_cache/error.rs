//! What a token cache hands out and how it fails; the secrets' `Debug` never
//! shows them.

use std::fmt;
use std::time::Duration;

/// The client secret: its `Debug` is redacted, and it is only read to build
/// the token request's `Authorization: Basic` header.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for ClientSecret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for ClientSecret {
    fn from(secret: &str) -> Self {
        Self(secret.to_owned())
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// A bearer token from the cache. Its `Debug` is redacted; read it with
/// [`AccessToken::secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    pub(crate) fn new(token: String) -> Self {
        Self(token)
    }

    /// The token, for `Authorization: Bearer <token>`.
    pub fn secret(&self) -> &str {
        &self.0
    }

    pub fn into_secret(self) -> String {
        self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Why no token could be had. Redis trouble is never one of them: without
/// Redis each process fetches for itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint refused (a 4xx other than 408 and 429, or an
    /// unexpected status): not retried. `error` and `description` are the
    /// OAuth2 `error` and `error_description` when the body had them.
    #[error("the token endpoint answered {status}{}", oauth_detail(.error, .description))]
    Endpoint {
        status: u16,
        error: Option<String>,
        description: Option<String>,
    },
    /// The token endpoint did not answer usefully (5xx, 408, 429, connection
    /// errors, timeouts) in `attempts` attempts; `last` is the last reason.
    #[error("the token endpoint is unavailable after {attempts} attempt(s): {last}")]
    Unavailable { attempts: u32, last: String },
    /// Another replica holds the fetch lock and stored no token within the
    /// wait bound.
    #[error("no token within {waited:?}: another replica is fetching one and has not stored it")]
    Timeout { waited: Duration },
    /// A success answer that is not a usable bearer token response.
    #[error("the token endpoint's answer is not a bearer token response: {0}")]
    Protocol(String),
}

fn oauth_detail(error: &Option<String>, description: &Option<String>) -> String {
    match (error, description) {
        (Some(error), Some(description)) => format!(": {error} ({description})"),
        (Some(error), None) => format!(": {error}"),
        (None, Some(description)) => format!(": {description}"),
        (None, None) => String::new(),
    }
}

/// A token cache that cannot be built: the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub(crate) String);

/// A shared store (Redis) that did not answer; the cache falls back to
/// fetching in this process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SharedCacheError(pub String);

impl From<redis::RedisError> for SharedCacheError {
    fn from(err: redis::RedisError) -> Self {
        Self(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret_or_a_token() {
        let secret = ClientSecret::new("s3cr3t-value");
        let token = AccessToken::new("tok-value".into());
        let shown = format!("{secret:?} {token:?} {:?}", (&secret, &token));
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("tok-value"),
            "{shown}"
        );
        assert_eq!(secret.expose(), "s3cr3t-value");
        assert_eq!(token.secret(), "tok-value");
    }

    #[test]
    fn endpoint_errors_carry_the_oauth_code_and_description() {
        let err = TokenError::Endpoint {
            status: 401,
            error: Some("invalid_client".into()),
            description: Some("unknown client".into()),
        };
        assert_eq!(
            err.to_string(),
            "the token endpoint answered 401: invalid_client (unknown client)"
        );
        let bare = TokenError::Endpoint {
            status: 404,
            error: None,
            description: None,
        };
        assert_eq!(bare.to_string(), "the token endpoint answered 404");
    }
}
