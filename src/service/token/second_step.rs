//! Mfa tokens: what a right password earns a user with a second factor,
//! presented with the code at `POST /signin/mfa`. An HS256 JWT (`sub` the
//! user, `jti` the pending sign-in `<uid>:mfa:<jti>` in the token store,
//! `exp`), signed with a key of its own derived from the refresh secret, so
//! that it never passes for a refresh token nor one for it. The token store
//! decides whether it is still pending: it works once, and dies after
//! [`MAX_FAILURES`] wrong codes.

use std::time::Duration;

use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::model::PendingSignIn;
use crate::secret::Secret;

/// Wrong codes a pending sign-in survives: the fifth ends it.
pub const MAX_FAILURES: u32 = 5;

const SALT: &[u8] = b"account/mfa-token/v1";

#[derive(Serialize, Deserialize)]
struct MfaClaims {
    sub: Uuid,
    jti: Uuid,
    iat: u64,
    exp: u64,
    /// Always `"mfa"`.
    typ: String,
    /// The fingerprint of the password hash the first step checked.
    cred: String,
}

/// The key of mfa tokens.
pub(super) struct MfaTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// 32 bytes of HKDF output.
struct KeyBytes;

impl KeyType for KeyBytes {
    fn len(&self) -> usize {
        32
    }
}

impl MfaTokens {
    pub(super) fn new(refresh_secret: &Secret) -> anyhow::Result<Self> {
        let prk = Salt::new(HKDF_SHA256, SALT).extract(refresh_secret.expose().as_bytes());
        let mut key = [0u8; 32];
        prk.expand(&[b"hs256"], KeyBytes)
            .and_then(|okm| okm.fill(&mut key))
            .map_err(|_| anyhow::anyhow!("cannot derive the mfa token key"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_aud = false;
        validation.leeway = 0;
        Ok(Self {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
        })
    }

    pub(super) fn sign(
        &self,
        pending: &PendingSignIn,
        now: u64,
        ttl: Duration,
    ) -> AppResult<String> {
        let claims = MfaClaims {
            sub: pending.uid,
            jti: pending.id,
            iat: now,
            exp: now + ttl.as_secs(),
            typ: "mfa".into(),
            cred: pending.credential.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AppError::Internal(e.into()))
    }

    /// What a token this key signed names, if it has not expired.
    pub(super) fn verify(&self, token: &str) -> Option<PendingSignIn> {
        let claims = jsonwebtoken::decode::<MfaClaims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        (claims.typ == "mfa").then_some(PendingSignIn {
            uid: claims.sub,
            id: claims.jti,
            credential: claims.cred,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("a-refresh-secret-of-at-least-32-bytes!!".into())
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn a_token_names_its_pending_sign_in_until_it_expires() {
        let tokens = MfaTokens::new(&secret()).unwrap();
        let pending = PendingSignIn {
            uid: Uuid::new_v4(),
            id: Uuid::new_v4(),
            credential: "c0ffee".into(),
        };
        let token = tokens
            .sign(&pending, now(), Duration::from_secs(60))
            .unwrap();
        assert_eq!(tokens.verify(&token), Some(pending.clone()));
        let expired = tokens
            .sign(&pending, now() - 120, Duration::from_secs(60))
            .unwrap();
        assert_eq!(tokens.verify(&expired), None);
        let other = MfaTokens::new(&Secret::new(
            "another-secret-of-at-least-32-bytes!!!!".into(),
        ))
        .unwrap();
        assert_eq!(other.verify(&token), None);
        assert_eq!(tokens.verify("not.a.token"), None);
    }

    #[test]
    fn a_refresh_token_signed_with_the_refresh_secret_is_no_mfa_token() {
        let tokens = MfaTokens::new(&secret()).unwrap();
        let claims = MfaClaims {
            sub: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            iat: now(),
            exp: now() + 60,
            typ: "mfa".into(),
            cred: "c0ffee".into(),
        };
        let with_refresh_secret = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret().expose().as_bytes()),
        )
        .unwrap();
        assert_eq!(tokens.verify(&with_refresh_secret), None);
    }
}
