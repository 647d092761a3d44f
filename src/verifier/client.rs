//! The rules a client's access token must pass (issue 11: the
//! client-credentials grant, tokens in the RFC 9068 profile), applied by the
//! account service's tests and by every domain service alike.
//!
//! In order, and the first failure decides:
//! 1. at most [`super::MAX_TOKEN_BYTES`], three base64url parts;
//! 2. header: `alg` is `RS256`, `typ` is `at+jwt` (a user's ID token, typed
//!    `JWT`, never passes as a client's), a `kid` is present, no `crit`;
//! 3. the signature, with the published key the `kid` names;
//! 4. claims: `exp`, `iat`, `iss`, `aud`, `sub` and `client_id` present;
//!    `sub` equal to `client_id` and not a UUID (a user's id); `iss` the
//!    issuer; `aud` the audience (`ID_TOKEN_AUDIENCE`); not expired; `nbf`,
//!    when present, reached; `iat` not in the future; `exp − iat` at most the
//!    maximum lifetime (`CLIENT_TOKEN_EXP`) — all with the leeway.
//!
//! The scope a route needs is checked after these, by the extractor
//! ([`super::AuthenticatedClient`]): a token lacking it is 403, not 401.

use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ConfigError;
use super::claims::{ClaimsCheck, RawClaims, RawRegistered, Registered};
use super::validator::{Audience, CheckedHeader, IdTokenRules, VerifyError, check_header};

/// The claims of a client's access token: what the account service signs,
/// and what a validated token yields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientClaims {
    /// The client's id (`cl_…`), as `client_id`.
    pub sub: String,
    pub client_id: String,
    pub iss: String,
    pub aud: Audience,
    /// The granted scopes, space-separated (may be empty).
    #[serde(default)]
    pub scope: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// The token's id (a UUID in the account service's tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl ClientClaims {
    /// Whether `scope` is among the granted ones.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split_ascii_whitespace().any(|s| s == scope)
    }
}

/// A client token's claims as they arrive (see [`RawClaims`]).
#[derive(Deserialize)]
struct RawClientClaims {
    sub: Option<String>,
    client_id: Option<String>,
    iss: Option<String>,
    aud: Option<Audience>,
    scope: Option<String>,
    iat: Option<u64>,
    exp: Option<u64>,
    jti: Option<String>,
}

impl RawClaims for RawClientClaims {
    type Claims = ClientClaims;

    fn registered(&mut self) -> RawRegistered {
        RawRegistered {
            exp: self.exp,
            iat: self.iat,
            iss: self.iss.take(),
            aud: self.aud.take(),
        }
    }

    /// `client_id` present; `sub` equal to it and not a UUID (a user's id).
    fn into_claims(self, registered: Registered) -> Result<ClientClaims, VerifyError> {
        let Registered { exp, iat, iss, aud } = registered;
        let client_id = self
            .client_id
            .ok_or_else(|| VerifyError::MissingClaim("client_id".to_owned()))?;
        let sub = self
            .sub
            .filter(|sub| *sub == client_id && !sub.is_empty() && Uuid::parse_str(sub).is_err())
            .ok_or(VerifyError::ClientSubject)?;
        Ok(ClientClaims {
            sub,
            client_id,
            iss,
            aud,
            scope: self.scope.unwrap_or_default(),
            iat,
            exp,
            jti: self.jti,
        })
    }
}

/// Applies the client-token rules. `rules.max_lifetime` is `CLIENT_TOKEN_EXP`.
#[derive(Debug, Clone)]
pub struct ClientTokenValidator {
    check: ClaimsCheck,
}

impl ClientTokenValidator {
    /// The same checks of the rules as [`super::IdTokenValidator::new`].
    pub fn new(rules: IdTokenRules) -> Result<Self, ConfigError> {
        let check = ClaimsCheck::new(rules, "CLIENT_TOKEN_EXP")?;
        Ok(Self { check })
    }

    /// The rules this validator applies.
    pub fn rules(&self) -> &IdTokenRules {
        self.check.rules()
    }

    /// Steps 1 and 2.
    pub fn header<'t>(&self, token: &'t str) -> Result<CheckedHeader<'t>, VerifyError> {
        check_header(token, "at+jwt", VerifyError::NotAccessToken)
    }

    /// Steps 3 and 4.
    pub fn claims(
        &self,
        header: &CheckedHeader<'_>,
        key: &DecodingKey,
    ) -> Result<ClientClaims, VerifyError> {
        self.check.claims::<RawClientClaims>(header, key)
    }

    /// All four steps, with the key looked up by `kid` in `keys`.
    pub fn validate<'k>(
        &self,
        token: &str,
        keys: impl FnOnce(&str) -> Option<&'k DecodingKey>,
    ) -> Result<ClientClaims, VerifyError> {
        let header = self.header(token)?;
        let key = keys(header.kid()).ok_or(VerifyError::UnknownKey)?;
        self.claims(&header, key)
    }
}
