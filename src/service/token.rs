//! Issuing, rotating and verifying ID and refresh tokens.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use uuid::Uuid;

use crate::config::Secret;
use crate::error::{AppError, AppResult};
use crate::jwks::JwkSet;
use crate::keys::SharedKeyRing;
use crate::model::{
    IdTokenClaims, RefreshToken, RefreshTokenClaims, TokenPair, TokenRepository, TokenService, User,
};

/// Leeway for `exp` when verifying, in seconds: small clock skew between hosts.
pub const LEEWAY_SECS: u64 = 5;

/// Lifetimes and the issuer/audience written into and checked on ID tokens.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: String,
    pub id_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
}

/// [`TokenService`] over a [`TokenRepository`] whitelist.
pub struct TokenServiceImpl {
    repo: Arc<dyn TokenRepository>,
    keys: Arc<SharedKeyRing>,
    id_validation: Validation,
    refresh_encoding: EncodingKey,
    refresh_decoding: DecodingKey,
    refresh_validation: Validation,
    config: TokenConfig,
}

impl TokenServiceImpl {
    /// `keys` may be replaced while the service runs (key rotation).
    pub fn new(
        repo: Arc<dyn TokenRepository>,
        keys: Arc<SharedKeyRing>,
        refresh_secret: &Secret,
        config: TokenConfig,
    ) -> Self {
        let mut id_validation = Validation::new(Algorithm::RS256);
        id_validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        id_validation.set_issuer(&[&config.issuer]);
        id_validation.set_audience(&[&config.audience]);
        id_validation.leeway = LEEWAY_SECS;

        let secret = refresh_secret.expose().as_bytes();
        let refresh_encoding = EncodingKey::from_secret(secret);
        let refresh_decoding = DecodingKey::from_secret(secret);
        let mut refresh_validation = Validation::new(Algorithm::HS256);
        // `jti` is required by the claims type itself (a UUID field).
        refresh_validation.set_required_spec_claims(&["exp", "sub"]);
        refresh_validation.validate_aud = false;
        refresh_validation.leeway = LEEWAY_SECS;

        Self {
            repo,
            keys,
            id_validation,
            refresh_encoding,
            refresh_decoding,
            refresh_validation,
            config,
        }
    }

    fn sign_id_token(&self, user: &User, now: u64) -> AppResult<String> {
        let claims = IdTokenClaims {
            sub: user.uid,
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            iat: now,
            exp: now + self.config.id_token_ttl.as_secs(),
            jti: Uuid::new_v4(),
            email: user.email.clone(),
            name: user.name.clone(),
        };
        self.keys
            .current()
            .signer()
            .sign(&claims)
            .map_err(AppError::Internal)
    }

    fn sign_refresh_token(&self, uid: Uuid, jti: Uuid, now: u64) -> AppResult<String> {
        let claims = RefreshTokenClaims {
            sub: uid,
            jti,
            iat: now,
            exp: now + self.config.refresh_token_ttl.as_secs(),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.refresh_encoding,
        )
        .map_err(|e| AppError::Internal(e.into()))
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[async_trait]
impl TokenService for TokenServiceImpl {
    async fn new_pair_from_user(
        &self,
        user: &User,
        previous: Option<RefreshToken>,
    ) -> AppResult<TokenPair> {
        let now = now_secs();
        let jti = Uuid::new_v4();
        let id_token = self.sign_id_token(user, now)?;
        let refresh_token = self.sign_refresh_token(user.uid, jti, now)?;
        let ttl = self.config.refresh_token_ttl;
        match previous {
            None => self.repo.set_refresh_token(user.uid, jti, ttl).await?,
            Some(previous) => {
                if previous.uid != user.uid {
                    return Err(AppError::Internal(anyhow::anyhow!(
                        "refresh token of one user rotated for another"
                    )));
                }
                let taken = self
                    .repo
                    .rotate_refresh_token(user.uid, previous.jti, jti, ttl)
                    .await?;
                if !taken {
                    return Err(AppError::invalid_token(
                        "refresh token is invalid, used or revoked",
                    ));
                }
            }
        }
        Ok(TokenPair {
            id_token,
            refresh_token,
        })
    }

    async fn signout(&self, uid: Uuid) -> AppResult<()> {
        let removed = self.repo.delete_user_refresh_tokens(uid).await?;
        tracing::info!(%uid, removed, "signed out everywhere");
        Ok(())
    }

    fn validate_id_token(&self, token: &str) -> AppResult<IdTokenClaims> {
        let invalid = || AppError::invalid_token("ID token is invalid or expired");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        // Pick the published key the header names; the algorithm stays pinned
        // to RS256 by the validation, whatever the header says.
        let kid = header.kid.ok_or_else(invalid)?;
        let ring = self.keys.current();
        let key = ring.decoding_key(&kid).ok_or_else(|| {
            tracing::debug!(kid, "ID token signed with an unpublished key");
            invalid()
        })?;
        jsonwebtoken::decode::<IdTokenClaims>(token, key, &self.id_validation)
            .map(|data| data.claims)
            .map_err(|e| {
                tracing::debug!(error = %e, "ID token rejected");
                invalid()
            })
    }

    fn validate_refresh_token(&self, token: &str) -> AppResult<RefreshToken> {
        jsonwebtoken::decode::<RefreshTokenClaims>(
            token,
            &self.refresh_decoding,
            &self.refresh_validation,
        )
        .map(|data| RefreshToken {
            uid: data.claims.sub,
            jti: data.claims.jti,
        })
        .map_err(|e| {
            tracing::debug!(error = %e, "refresh token rejected");
            AppError::invalid_token("refresh token is invalid, used or revoked")
        })
    }

    fn jwks(&self) -> JwkSet {
        self.keys.current().jwks()
    }

    async fn ready(&self) -> AppResult<()> {
        self.repo.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::interfaces::MockTokenRepository;
    use crate::test_keys::test_key_set;
    use base64::Engine as _;
    use mockall::predicate::eq;

    fn config() -> TokenConfig {
        TokenConfig {
            issuer: "test-issuer".into(),
            audience: "test-audience".into(),
            id_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(259_200),
        }
    }

    fn service(repo: MockTokenRepository) -> TokenServiceImpl {
        service_with(repo, config())
    }

    fn service_with(repo: MockTokenRepository, config: TokenConfig) -> TokenServiceImpl {
        let keys = test_key_set();
        TokenServiceImpl::new(
            Arc::new(repo),
            Arc::new(SharedKeyRing::new(keys.ring)),
            &keys.refresh_secret,
            config,
        )
    }

    fn user() -> User {
        User {
            uid: Uuid::new_v4(),
            email: "ada@example.com".into(),
            password_hash: "$argon2id$…".into(),
            name: "Ada".into(),
            image_url: String::new(),
            website: String::new(),
        }
    }

    fn decode_part(token: &str, index: usize) -> serde_json::Value {
        let part = token.split('.').nth(index).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn new_pair_has_the_documented_claims_and_whitelists_the_refresh_jti() {
        let user = user();
        let mut repo = MockTokenRepository::new();
        repo.expect_set_refresh_token()
            .withf({
                let uid = user.uid;
                move |u, _, ttl| *u == uid && *ttl == Duration::from_secs(259_200)
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        let svc = service(repo);

        let pair = svc.new_pair_from_user(&user, None).await.unwrap();

        let header = decode_part(&pair.id_token, 0);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], svc.keys.current().signer().kid());
        assert_eq!(svc.jwks().keys[0].kid.as_deref(), header["kid"].as_str());
        let id = svc.validate_id_token(&pair.id_token).unwrap();
        assert_eq!(id.sub, user.uid);
        assert_eq!(id.email, "ada@example.com");
        assert_eq!(id.name, "Ada");
        assert_eq!(
            (id.iss.as_str(), id.aud.as_str()),
            ("test-issuer", "test-audience")
        );
        assert_eq!(id.exp - id.iat, 900);

        assert_eq!(decode_part(&pair.refresh_token, 0)["alg"], "HS256");
        let refresh: RefreshTokenClaims =
            serde_json::from_value(decode_part(&pair.refresh_token, 1)).unwrap();
        assert_eq!(refresh.sub, user.uid);
        assert_eq!(refresh.exp - refresh.iat, 259_200);
        assert_eq!(refresh.jti.get_version_num(), 4);
        assert_eq!(
            svc.validate_refresh_token(&pair.refresh_token).unwrap(),
            RefreshToken {
                uid: user.uid,
                jti: refresh.jti
            }
        );
    }

    #[tokio::test]
    async fn rotation_takes_the_previous_entry_and_whitelists_the_new_one() {
        let user = user();
        let previous = RefreshToken {
            uid: user.uid,
            jti: Uuid::new_v4(),
        };
        let mut repo = MockTokenRepository::new();
        repo.expect_rotate_refresh_token()
            .withf(move |u, old, new, ttl| {
                *u == previous.uid
                    && *old == previous.jti
                    && *new != previous.jti
                    && *ttl == Duration::from_secs(259_200)
            })
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        repo.expect_set_refresh_token().never();
        let svc = service(repo);

        let pair = svc.new_pair_from_user(&user, Some(previous)).await.unwrap();
        let new = svc.validate_refresh_token(&pair.refresh_token).unwrap();
        assert_ne!(new.jti, previous.jti);
    }

    #[tokio::test]
    async fn rotation_of_a_token_no_longer_whitelisted_is_unauthorized() {
        let user = user();
        let mut repo = MockTokenRepository::new();
        repo.expect_rotate_refresh_token()
            .times(1)
            .returning(|_, _, _, _| Ok(false));
        let svc = service(repo);
        let previous = RefreshToken {
            uid: user.uid,
            jti: Uuid::new_v4(),
        };
        let err = svc
            .new_pair_from_user(&user, Some(previous))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                AppError::Authorization {
                    invalid_token: true,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_store_outage_is_passed_on_as_unavailable() {
        let mut repo = MockTokenRepository::new();
        repo.expect_set_refresh_token().returning(|_, _, _| {
            Err(AppError::ServiceUnavailable(
                "token store is unavailable".into(),
            ))
        });
        let err = service(repo)
            .new_pair_from_user(&user(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::ServiceUnavailable(_)));
    }

    #[tokio::test]
    async fn signout_removes_every_entry_of_the_user() {
        let uid = Uuid::new_v4();
        let mut repo = MockTokenRepository::new();
        repo.expect_delete_user_refresh_tokens()
            .with(eq(uid))
            .times(1)
            .returning(|_| Ok(3));
        service(repo).signout(uid).await.unwrap();
    }

    #[test]
    fn tokens_of_the_wrong_kind_algorithm_or_audience_are_refused() {
        let svc = service(MockTokenRepository::new());
        let user = user();
        let now = now_secs();
        let refresh = svc
            .sign_refresh_token(user.uid, Uuid::new_v4(), now)
            .unwrap();
        assert!(
            svc.validate_id_token(&refresh).is_err(),
            "HS256 refresh token as ID token"
        );
        let id = svc.sign_id_token(&user, now).unwrap();
        assert!(
            svc.validate_refresh_token(&id).is_err(),
            "RS256 ID token as refresh token"
        );

        let other = service_with(
            MockTokenRepository::new(),
            TokenConfig {
                audience: "someone-else".into(),
                ..config()
            },
        );
        let foreign = other.sign_id_token(&user, now).unwrap();
        assert!(svc.validate_id_token(&foreign).is_err(), "other audience");

        let expired = service_with(
            MockTokenRepository::new(),
            TokenConfig {
                id_token_ttl: Duration::from_secs(1),
                ..config()
            },
        )
        .sign_id_token(&user, now - 60)
        .unwrap();
        assert!(svc.validate_id_token(&expired).is_err(), "expired");
    }
}
