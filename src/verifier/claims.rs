//! Steps 3 and 4 of the token rules, the one path the claims of both kinds of
//! token take (ID tokens, [`super::IdTokenValidator`], and client access
//! tokens, [`super::ClientTokenValidator`]): the signature and jsonwebtoken's
//! checks, then `exp`, `iat`, `iss` and `aud` present, then the kind's own
//! subject rules, then the times jsonwebtoken has no rule for.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;

use super::ConfigError;
use super::validator::{Audience, CheckedHeader, IdTokenRules, MAX_LEEWAY, VerifyError, defaults};

/// `exp`, `iat`, `iss` and `aud` as they arrive (`None`: missing).
pub(super) struct RawRegistered {
    pub(super) exp: Option<u64>,
    pub(super) iat: Option<u64>,
    pub(super) iss: Option<String>,
    pub(super) aud: Option<Audience>,
}

/// `exp`, `iat`, `iss` and `aud`, all present: what every token carries.
pub(super) struct Registered {
    pub(super) exp: u64,
    pub(super) iat: u64,
    pub(super) iss: String,
    pub(super) aud: Audience,
}

impl RawRegistered {
    /// Each claim present, in this order, or the first missing one named.
    fn require(self) -> Result<Registered, VerifyError> {
        let missing = |claim: &str| VerifyError::MissingClaim(claim.to_owned());
        Ok(Registered {
            exp: self.exp.ok_or_else(|| missing("exp"))?,
            iat: self.iat.ok_or_else(|| missing("iat"))?,
            iss: self.iss.ok_or_else(|| missing("iss"))?,
            aud: self.aud.ok_or_else(|| missing("aud"))?,
        })
    }
}

/// The claims of one kind of token as they arrive: everything optional, so a
/// missing claim is reported as missing rather than as a malformed token.
pub(super) trait RawClaims: DeserializeOwned {
    /// What a token of this kind that passed yields.
    type Claims;

    /// Takes `exp`, `iat`, `iss` and `aud` out.
    fn registered(&mut self) -> RawRegistered;

    /// The kind's own rules (its subject) on the rest, then its claims.
    fn into_claims(self, registered: Registered) -> Result<Self::Claims, VerifyError>;
}

/// The rules and the validation jsonwebtoken runs for them: what both
/// validators hold. Built once; cheap to share.
#[derive(Debug, Clone)]
pub(super) struct ClaimsCheck {
    rules: IdTokenRules,
    /// Signature, `exp`, `nbf`, `iss`, `aud` and presence checks by
    /// jsonwebtoken, the algorithm pinned to RS256.
    validation: Validation,
}

impl ClaimsCheck {
    /// The rules checked ([`check_rules`]), and jsonwebtoken's validation
    /// for them.
    pub(super) fn new(rules: IdTokenRules, lifetime: &str) -> Result<Self, ConfigError> {
        check_rules(&rules, lifetime)?;
        let validation = jwt_validation(&rules);
        Ok(Self { rules, validation })
    }

    pub(super) fn rules(&self) -> &IdTokenRules {
        &self.rules
    }

    /// Steps 3 and 4: the signature with `key`, then the claims of `R`'s kind.
    pub(super) fn claims<R: RawClaims>(
        &self,
        header: &CheckedHeader<'_>,
        key: &DecodingKey,
    ) -> Result<R::Claims, VerifyError> {
        let mut raw = jsonwebtoken::decode::<R>(header.token(), key, &self.validation)
            .map_err(|e| map_jwt_error(e.into_kind()))?
            .claims;
        let registered = raw.registered().require()?;
        let (iat, exp) = (registered.iat, registered.exp);
        let claims = raw.into_claims(registered)?;
        check_times(&self.rules, iat, exp)?;
        Ok(claims)
    }
}

/// What jsonwebtoken has no rule for (it checked `exp`, `nbf`, `iss` and
/// `aud`): `iat` not in the future beyond the leeway, and a lifetime of at
/// most `rules.max_lifetime`.
fn check_times(rules: &IdTokenRules, iat: u64, exp: u64) -> Result<(), VerifyError> {
    if iat > now_secs().saturating_add(rules.leeway.as_secs()) {
        return Err(VerifyError::IssuedInFuture);
    }
    if exp.saturating_sub(iat) > rules.max_lifetime.as_secs() {
        return Err(VerifyError::LifetimeTooLong);
    }
    Ok(())
}

/// The validation jsonwebtoken runs for `rules` (signature, `exp`, `nbf`,
/// `iss`, `aud`, presence), the algorithm pinned to RS256.
fn jwt_validation(rules: &IdTokenRules) -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.set_issuer(&[&rules.issuer]);
    validation.set_audience(&[&rules.audience]);
    validation.leeway = rules.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation
}

/// Checks the rules themselves (see [`super::IdTokenValidator::new`]);
/// `lifetime` names the lifetime's variable in the message.
fn check_rules(rules: &IdTokenRules, lifetime: &str) -> Result<(), ConfigError> {
    if rules.issuer.trim().is_empty() {
        return Err(ConfigError::new("issuer: must not be empty"));
    }
    if rules.audience.trim().is_empty() {
        return Err(ConfigError::new("audience: must not be empty"));
    }
    if rules.leeway > MAX_LEEWAY {
        return Err(ConfigError::new(format!(
            "leeway: must be at most {} seconds",
            MAX_LEEWAY.as_secs()
        )));
    }
    if rules.max_lifetime.as_secs() == 0 || rules.max_lifetime > defaults::MAX_LIFETIME_LIMIT {
        return Err(ConfigError::new(format!(
            "max_lifetime ({lifetime}): must be between 1 and {} seconds",
            defaults::MAX_LIFETIME_LIMIT.as_secs()
        )));
    }
    Ok(())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn map_jwt_error(kind: ErrorKind) -> VerifyError {
    match kind {
        ErrorKind::InvalidSignature => VerifyError::Signature,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidIssuer => VerifyError::Issuer,
        ErrorKind::InvalidAudience => VerifyError::Audience,
        ErrorKind::InvalidSubject => VerifyError::Subject,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => VerifyError::Algorithm,
        ErrorKind::MissingRequiredClaim(claim) => VerifyError::MissingClaim(claim),
        _ => VerifyError::Malformed,
    }
}
