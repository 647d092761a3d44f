//! Verifying the account service's ID tokens in a domain service: offline, with
//! the public keys the account service publishes at `/.well-known/jwks.json`,
//! and without any secret.
//!
//! A [`Verifier`] applies the one set of ID-token rules, [`IdTokenValidator`]
//! (the account service applies the same rules to every bearer token it
//! accepts), and keeps the keys it fetched in memory: tokens signed with a known key never cause a
//! request to the account service, an unknown `kid` (a rotated key) causes at
//! most one fetch per `refetch_interval` however many such tokens arrive, keys
//! older than `max_key_age` are refreshed in the background (the request that
//! notices is answered from the cache), and while the account service is down
//! the cached keys go on verifying.
//!
//! In a domain service (depend on `account` with `default-features = false,
//! features = ["verifier"]`):
//!
//! ```no_run
//! use account::verifier::{AuthenticatedUser, Verifier};
//! use axum::{Router, routing::get};
//!
//! async fn whoami(AuthenticatedUser(user): AuthenticatedUser) -> String {
//!     format!("{} <{}>", user.sub, user.email)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // JWKS_URL, ID_TOKEN_ISSUER, ID_TOKEN_AUDIENCE, ID_TOKEN_EXP, JWKS_REFETCH_INTERVAL
//! let verifier = Verifier::from_env()?;
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .with_state(verifier); // or any state `S` with `Verifier: FromRef<S>`
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! A route for machine clients (the client-credentials grant) takes
//! [`AuthenticatedClient`] with the scope it needs instead:
//!
//! ```no_run
//! use account::verifier::{AuthenticatedClient, Scope};
//!
//! struct ReportsRead;
//! impl Scope for ReportsRead {
//!     const SCOPE: &'static str = "reports:read";
//! }
//!
//! async fn report(client: AuthenticatedClient<ReportsRead>) -> String {
//!     format!("hello {}", client.claims.client_id)
//! }
//! ```
//!
//! A user's ID token is refused there (401), as a client's token is where a
//! user is expected; a client token without the scope is 403 with
//! `WWW-Authenticate: Bearer error="insufficient_scope", scope="reports:read"`.
//!
//! A request without `Authorization: Bearer <token>` is answered 401 with
//! `WWW-Authenticate: Bearer`, one whose token does not verify 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"`, both in the product's JSON
//! error shape; see [`AuthRejection`].

mod claims;
mod client;
mod config;
mod extract;
mod key_source;
mod step_up;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
mod validator;

use std::sync::Arc;

pub use client::{ClientClaims, ClientTokenValidator};
pub use config::{ConfigError, SETTINGS, VerifierConfig};
pub use extract::{AuthRejection, AuthenticatedClient, AuthenticatedUser, ClientRejection, Scope};
pub use key_source::{COLD_RETRY_INTERVAL, FETCH_TIMEOUT, FetchError, MAX_JWKS_BYTES};
pub use step_up::StepUp;
pub use validator::{
    AAL1, AAL2, Audience, CheckedHeader, IdClaims, IdTokenRules, IdTokenValidator, MAX_LEEWAY,
    MAX_TOKEN_BYTES, VerifyError, defaults,
};

use crate::jwks::{Jwk, JwkSet};
use key_source::{KeySource, parse_jwks_url};

/// Verifies ID tokens. Cheap to clone (the state is shared behind an `Arc`),
/// so it can be the router's state itself or a field of it with `FromRef`.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: VerifierConfig,
    validator: IdTokenValidator,
    client_validator: ClientTokenValidator,
    keys: Arc<KeySource>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.config.rules.issuer)
            .field("audience", &self.inner.config.rules.audience)
            .field("jwks_url", &self.inner.keys.redacted_url())
            .field("key_ids", &self.inner.keys.key_ids())
            .finish()
    }
}

impl Verifier {
    /// Keys from the JWKS at `url`, fetched on first use and refreshed as
    /// [`VerifierConfig`] says.
    pub fn from_jwks_url(url: &str, config: VerifierConfig) -> Result<Self, ConfigError> {
        let url = parse_jwks_url(url).map_err(|e| ConfigError::new(format!("JWKS URL: {e}")))?;
        let keys = KeySource::remote(url, config.refetch_interval, config.max_key_age)
            .map_err(ConfigError::new)?;
        Self::build(config, keys)
    }

    /// Reads `JWKS_URL` (required), `ID_TOKEN_ISSUER` (default `account`),
    /// `ID_TOKEN_AUDIENCE` (default `domain-services`), `ID_TOKEN_EXP` (the
    /// longest lifetime accepted, seconds, default 900), `CLIENT_TOKEN_EXP`
    /// (the same for client access tokens, default 3600) and
    /// `JWKS_REFETCH_INTERVAL` (seconds, default 30): the account service's
    /// names and defaults. Errors name the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Verifier::from_env`] with the variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = config::Vars(var);
        let url = vars.jwks_url()?;
        let url = parse_jwks_url(&url).map_err(|e| ConfigError::new(format!("JWKS_URL: {e}")))?;
        let config = vars.config()?;
        let keys = KeySource::remote(url, config.refetch_interval, config.max_key_age)
            .map_err(ConfigError::new)?;
        Self::build(config, keys)
    }

    /// A fixed key set, never refreshed; keys without a `kid` are known by
    /// their RFC 7638 thumbprint. Only RS256 signing keys are kept.
    pub fn from_jwks(keys: JwkSet, config: VerifierConfig) -> Result<Self, ConfigError> {
        let keys = KeySource::fixed(&keys)
            .ok_or_else(|| ConfigError::new("the key set has no usable RS256 signing key"))?;
        Self::build(config, keys)
    }

    /// One RSA public key in PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`), never
    /// refreshed; its `kid` is the RFC 7638 thumbprint, as the account
    /// service's tokens carry.
    pub fn from_public_pem(pem: &[u8], config: VerifierConfig) -> Result<Self, ConfigError> {
        let jwk =
            Jwk::rsa_from_pem(pem).map_err(|e| ConfigError::new(format!("public key: {e}")))?;
        Self::from_jwks(JwkSet { keys: vec![jwk] }, config)
    }

    fn build(config: VerifierConfig, keys: KeySource) -> Result<Self, ConfigError> {
        let validator = IdTokenValidator::new(config.rules.clone())?;
        let client_validator = ClientTokenValidator::new(config.client_rules())?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                validator,
                client_validator,
                keys: Arc::new(keys),
            }),
        })
    }

    /// The settings this verifier checks tokens against.
    pub fn config(&self) -> &VerifierConfig {
        &self.inner.config
    }

    /// The verifier's clock (in unit tests, one that only moves when told).
    #[cfg(test)]
    pub(crate) fn clock(&self) -> &test_support::Clock {
        &self.inner.keys.clock
    }

    /// Checks an ID token against the rules of [`IdTokenValidator`], with the
    /// key its `kid` names, and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<IdClaims, VerifyError> {
        let validator = &self.inner.validator;
        let header = validator.header(token)?;
        let key = self.inner.keys.key_for(header.kid()).await?;
        validator.claims(&header, &key)
    }

    /// Checks a client's access token against the rules of
    /// [`ClientTokenValidator`] (a user's ID token is refused), with the key
    /// its `kid` names, and returns its claims. The scope is the caller's to
    /// check ([`AuthenticatedClient`] does).
    pub async fn verify_client(&self, token: &str) -> Result<ClientClaims, VerifyError> {
        let validator = &self.inner.client_validator;
        let header = validator.header(token)?;
        let key = self.inner.keys.key_for(header.kid()).await?;
        validator.claims(&header, &key)
    }

    /// Fetches the key set now (waiting for a fetch already under way), e.g.
    /// to warm the cache at start-up. Returns how many keys are cached. A
    /// static source returns its key count.
    pub async fn refresh_keys(&self) -> Result<usize, FetchError> {
        self.inner.keys.refresh().await
    }
}
