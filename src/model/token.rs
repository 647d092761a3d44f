//! Tokens handed to clients and the claims they carry.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a sign-up answers, as `EMAIL_CONFIRMATION` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignUp {
    /// `optional`: the new account's first session.
    SignedIn(TokenPair),
    /// `required`: the same for every address, new or taken; what happened
    /// went by mail to the address.
    Accepted,
}

/// The pair returned by sign-up, sign-in and refresh.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    /// RS256 JWT for `Authorization: Bearer`, short-lived; any service verifies
    /// it with the keys at `/.well-known/jwks.json`.
    pub id_token: String,
    /// HS256 JWT for `POST /tokens`; works once (a refresh rotates the pair).
    pub refresh_token: String,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenPair(<redacted>)")
    }
}

/// Claims of an RS256 ID token: the verifier's type, so the service signs and
/// checks exactly what domain services check.
pub use crate::verifier::{Audience, IdClaims};

/// Claims of an HS256 refresh token. One that verified names its whitelist
/// entry, `<sub>:<jti>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshClaims {
    /// The user's uid.
    pub sub: Uuid,
    pub jti: Uuid,
    pub iat: u64,
    pub exp: u64,
    /// The session; absent in tokens issued before sessions existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// When the session started (the sign-in), Unix seconds (OIDC's
    /// `auth_time`): `exp` never passes `auth_time + SESSION_MAX_AGE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// The session's assurance (`acr`); absent in older tokens (`aal1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The session's authentication methods (`amr`); absent in older tokens
    /// (a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
}

/// How a session's sign-in was made: the `acr` and `amr` every token of the
/// session carries (a refresh keeps them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assurance {
    pub acr: String,
    pub amr: Vec<String>,
}

impl Assurance {
    /// A sign-in with the password alone: `aal1`, `["pwd"]`.
    pub fn password() -> Self {
        Self {
            acr: crate::verifier::AAL1.to_owned(),
            amr: vec!["pwd".to_owned()],
        }
    }

    /// The assurance a refresh token carries; a password for older tokens.
    pub fn of(refresh: &RefreshClaims) -> Self {
        match (&refresh.acr, &refresh.amr) {
            (Some(acr), Some(amr)) => Self {
                acr: acr.clone(),
                amr: amr.clone(),
            },
            _ => Self::password(),
        }
    }
}
