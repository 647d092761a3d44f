//! The one set of rules an ID token must pass — in the account service and in
//! every domain service alike, so the two can never disagree on a token.
//!
//! In order, and the first failure decides:
//! 1. at most [`MAX_TOKEN_BYTES`], three base64url parts (before any parsing);
//! 2. header: `alg` is `RS256`, `typ` is `JWT` (client access tokens, typed
//!    `at+jwt`, never pass as a user's ID token), a `kid` is present, no `crit`;
//! 3. the signature, with the published key the `kid` names;
//! 4. claims: `exp`, `iat`, `iss`, `aud` and `sub` present; `sub` a UUID;
//!    `iss` the issuer; `aud` the audience, or an array containing it; not
//!    expired; `nbf`, when present, reached; `iat` not in the future; and
//!    `exp − iat` at most the maximum lifetime — all with the leeway.
//!
//! Other claims (`email`, `email_verified`, `name`, `jti`, `sid`) are exposed in [`IdClaims`] but not
//! required. [`IdTokenValidator::header`] runs steps 1 and 2 and
//! [`IdTokenValidator::claims`] steps 3 and 4 on what it returns, so a caller
//! that fetches keys in between (the verifier's cache) cannot skip a step.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::DecodingKey;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::ConfigError;
use super::claims::{ClaimsCheck, RawClaims, RawRegistered, Registered};

/// Longer tokens are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The largest clock skew a validator may allow.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5);

/// Defaults shared with the account service's configuration table.
pub mod defaults {
    use std::time::Duration;

    /// `ID_TOKEN_ISSUER`
    pub const ISSUER: &str = "account";
    /// `ID_TOKEN_AUDIENCE`
    pub const AUDIENCE: &str = "domain-services";
    /// `ID_TOKEN_EXP`: the lifetime the service gives its ID tokens, and the
    /// longest a validator accepts.
    pub const MAX_LIFETIME: Duration = Duration::from_secs(900);
    /// The largest `ID_TOKEN_EXP` either side accepts (one day).
    pub const MAX_LIFETIME_LIMIT: Duration = Duration::from_secs(86_400);
    /// `CLIENT_TOKEN_EXP`: the lifetime the service gives client access
    /// tokens, and the longest a validator accepts.
    pub const CLIENT_MAX_LIFETIME: Duration = Duration::from_secs(3600);
    /// `JWKS_REFETCH_INTERVAL`
    pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
    /// The JWKS's `Cache-Control: max-age`.
    pub const MAX_KEY_AGE: Duration = Duration::from_secs(300);
}

/// What an ID token must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenRules {
    /// The required `iss` (`ID_TOKEN_ISSUER`).
    pub issuer: String,
    /// The required `aud` (`ID_TOKEN_AUDIENCE`).
    pub audience: String,
    /// Clock skew allowed on `exp`, `nbf` and `iat`; at most [`MAX_LEEWAY`],
    /// whole seconds.
    pub leeway: Duration,
    /// The longest `exp − iat` accepted (`ID_TOKEN_EXP`): a token claiming a
    /// longer life was not issued by a service with this setting.
    pub max_lifetime: Duration,
}

impl Default for IdTokenRules {
    /// The account service's defaults: issuer `account`, audience
    /// `domain-services`, 5 s leeway, 900 s lifetime.
    fn default() -> Self {
        Self {
            issuer: defaults::ISSUER.into(),
            audience: defaults::AUDIENCE.into(),
            leeway: MAX_LEEWAY,
            max_lifetime: defaults::MAX_LIFETIME,
        }
    }
}

/// Why a token was refused. Messages are fixed texts: they never repeat any
/// part of the token. More reasons may be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is too large")]
    TooLarge,
    #[error("the token must be signed with RS256")]
    Algorithm,
    #[error("the token is not an ID token (header typ must be JWT)")]
    TokenType,
    /// Where a client's access token is required.
    #[error("the token is not a client access token (header typ must be at+jwt)")]
    NotAccessToken,
    #[error("the token carries a critical header extension this verifier does not support")]
    CriticalHeader,
    #[error("the token header has no kid")]
    MissingKeyId,
    #[error("the token is signed with an unknown key")]
    UnknownKey,
    #[error("the token signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued in the future")]
    IssuedInFuture,
    #[error("the token's lifetime is longer than allowed")]
    LifetimeTooLong,
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    #[error("the token has the wrong issuer")]
    Issuer,
    #[error("the token has the wrong audience")]
    Audience,
    #[error("the token subject is not a user id")]
    Subject,
    /// A client token's `sub` is a UUID (a user's), or not its `client_id`.
    #[error("the token subject is not a client id")]
    ClientSubject,
    /// The token names a key we do not have and the account service's JWKS
    /// could not be fetched: the token may be fine, we cannot tell now.
    #[error("token keys are unavailable, try again later")]
    KeysUnavailable,
}

/// `aud`: one audience, or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is (among) the token's audience.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// The claims of an ID token: what the account service signs, and what a
/// validated token yields. `#[non_exhaustive]`: a domain service reads the
/// fields (or the accessors), so a claim added later does not break it;
/// [`IdClaims::new`] builds one outside this crate (tests, tools).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IdClaims {
    /// The user's uid.
    pub sub: Uuid,
    pub iss: String,
    pub aud: Audience,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The token's id (a UUID in the account service's tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The user's email; empty when the token carries none.
    #[serde(default)]
    pub email: String,
    /// Whether the user proved they read mail at `email` (OIDC's
    /// `email_verified`); `false` when the token carries none (tokens from
    /// before verification). The service signs in unverified users too: a
    /// domain service decides what to require.
    #[serde(default)]
    pub email_verified: bool,
    /// The user's name; empty when the token carries none.
    #[serde(default)]
    pub name: String,
    /// The session the token was issued in (a UUID in the account service's
    /// tokens); absent in tokens from before sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// When the session's sign-in happened, Unix seconds (OIDC's
    /// `auth_time`); a refresh keeps it. Absent in older tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// The assurance of that sign-in (OIDC's `acr`): `aal1` a password only,
    /// `aal2` with a second factor. Absent in older tokens: read it with
    /// [`IdClaims::acr`], which counts that as `aal1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// How the person signed in (RFC 8176 `amr`): `pwd`, `otp`, `mfa`, …;
    /// empty in older tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

/// The assurance of a password-only sign-in, and of a token without `acr`.
pub const AAL1: &str = "aal1";
/// The assurance of a sign-in with a second factor.
pub const AAL2: &str = "aal2";

impl IdClaims {
    /// Claims with the registered ones set and every other one empty.
    pub fn new(sub: Uuid, iss: String, aud: Audience, iat: u64, exp: u64) -> Self {
        Self {
            sub,
            iss,
            aud,
            iat,
            exp,
            nbf: None,
            jti: None,
            email: String::new(),
            email_verified: false,
            name: String::new(),
            sid: None,
            auth_time: None,
            acr: None,
            amr: Vec::new(),
        }
    }

    /// The session's assurance: `acr`, or `aal1` when the token has none.
    pub fn acr(&self) -> &str {
        self.acr.as_deref().unwrap_or(AAL1)
    }

    /// The authentication methods (`amr`); empty when the token has none.
    pub fn amr(&self) -> &[String] {
        &self.amr
    }

    /// When the session's sign-in happened (`auth_time`), if the token says.
    pub fn auth_time(&self) -> Option<u64> {
        self.auth_time
    }
}

/// An ID token's claims as they arrive: everything optional, so a missing
/// claim is reported as missing rather than as a malformed token.
#[derive(Deserialize)]
struct RawIdClaims {
    sub: Option<String>,
    iss: Option<String>,
    aud: Option<Audience>,
    iat: Option<u64>,
    exp: Option<u64>,
    nbf: Option<u64>,
    jti: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
    sid: Option<String>,
    auth_time: Option<u64>,
    acr: Option<String>,
    amr: Option<Vec<String>>,
}

impl RawClaims for RawIdClaims {
    type Claims = IdClaims;

    fn registered(&mut self) -> RawRegistered {
        RawRegistered {
            exp: self.exp,
            iat: self.iat,
            iss: self.iss.take(),
            aud: self.aud.take(),
        }
    }

    /// `sub` a UUID.
    fn into_claims(self, registered: Registered) -> Result<IdClaims, VerifyError> {
        let Registered { exp, iat, iss, aud } = registered;
        let sub = self
            .sub
            .as_deref()
            .and_then(|sub| Uuid::parse_str(sub).ok())
            .ok_or(VerifyError::Subject)?;
        Ok(IdClaims {
            sub,
            iss,
            aud,
            iat,
            exp,
            nbf: self.nbf,
            jti: self.jti,
            email: self.email.unwrap_or_default(),
            email_verified: self.email_verified.unwrap_or(false),
            name: self.name.unwrap_or_default(),
            sid: self.sid,
            auth_time: self.auth_time,
            acr: self.acr,
            amr: self.amr.unwrap_or_default(),
        })
    }
}

/// A token whose size, shape and header passed: step 1 and 2 of the rules.
/// Only [`IdTokenValidator::header`] makes one, so the claims can never be
/// checked without the header rules.
#[derive(Debug, Clone)]
pub struct CheckedHeader<'t> {
    token: &'t str,
    kid: String,
}

impl<'t> CheckedHeader<'t> {
    /// The `kid` naming the key to check the signature with.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub(super) fn token(&self) -> &'t str {
        self.token
    }
}

/// Whether a header member is there at all, whatever its value (`null` too).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Applies [`IdTokenRules`]. Built once; cheap to share.
#[derive(Debug, Clone)]
pub struct IdTokenValidator {
    check: ClaimsCheck,
}

impl IdTokenValidator {
    /// Checks the rules themselves: non-empty issuer and audience, a leeway of
    /// at most [`MAX_LEEWAY`], a lifetime of at least one second.
    pub fn new(rules: IdTokenRules) -> Result<Self, ConfigError> {
        let check = ClaimsCheck::new(rules, "ID_TOKEN_EXP")?;
        Ok(Self { check })
    }

    /// The rules this validator applies.
    pub fn rules(&self) -> &IdTokenRules {
        self.check.rules()
    }

    /// Steps 1 and 2: size, shape and header, before any key is looked up.
    /// The result names the key to check the signature with.
    pub fn header<'t>(&self, token: &'t str) -> Result<CheckedHeader<'t>, VerifyError> {
        check_header(token, "JWT", VerifyError::TokenType)
    }

    /// Steps 3 and 4: the signature with `key`, then the claims.
    pub fn claims(
        &self,
        header: &CheckedHeader<'_>,
        key: &DecodingKey,
    ) -> Result<IdClaims, VerifyError> {
        self.check.claims::<RawIdClaims>(header, key)
    }

    /// All four steps, with the key looked up by `kid` in `keys`.
    pub fn validate<'k>(
        &self,
        token: &str,
        keys: impl FnOnce(&str) -> Option<&'k DecodingKey>,
    ) -> Result<IdClaims, VerifyError> {
        let header = self.header(token)?;
        let key = keys(header.kid()).ok_or(VerifyError::UnknownKey)?;
        self.claims(&header, key)
    }
}

/// Size, shape and header of a token: RS256, `typ` equal to `typ` in any
/// case (else `wrong_type`), a `kid`, no `crit`.
pub(super) fn check_header<'t>(
    token: &'t str,
    typ: &str,
    wrong_type: VerifyError,
) -> Result<CheckedHeader<'t>, VerifyError> {
    #[derive(Deserialize)]
    struct RawHeader {
        alg: Option<String>,
        typ: Option<String>,
        kid: Option<String>,
        #[serde(default, deserialize_with = "present")]
        crit: bool,
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(VerifyError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let bytes = B64.decode(header_b64).map_err(|_| VerifyError::Malformed)?;
    let header: RawHeader = serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)?;
    if header.alg.as_deref() != Some("RS256") {
        return Err(VerifyError::Algorithm);
    }
    if !header
        .typ
        .as_deref()
        .is_some_and(|found| found.eq_ignore_ascii_case(typ))
    {
        return Err(wrong_type);
    }
    if header.crit {
        return Err(VerifyError::CriticalHeader);
    }
    let kid = header
        .kid
        .filter(|kid| !kid.is_empty())
        .ok_or(VerifyError::MissingKeyId)?;
    Ok(CheckedHeader { token, kid })
}
