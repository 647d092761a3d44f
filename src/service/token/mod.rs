//! Issuing, rotating and verifying ID and refresh tokens.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use uuid::Uuid;

mod second_step;

use super::grace;
use super::user::BAD_CREDENTIALS;
use crate::error::{AppError, AppResult, REFRESH_TOKEN_REFUSED};
use crate::jwks::JwkSet;
use crate::keys::SharedKeyRing;
use crate::model::{
    Assurance, Audience, ClientInfo, CredentialChange, IdClaims, PendingSignIn, RefreshClaims,
    RefreshOutcome, RefreshStep, Rotation, SessionInfo, SessionName, SessionStart, TokenPair,
    TokenRepository, TokenService, User,
};
use crate::secret::Secret;
use crate::verifier::{IdTokenRules, IdTokenValidator, MAX_LEEWAY};

/// Lifetimes, the issuer/audience written into and checked on ID tokens, and
/// the session rules.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: String,
    pub id_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// `REFRESH_REUSE_GRACE`
    pub refresh_reuse_grace: Duration,
    /// `MAX_SESSIONS_PER_USER`
    pub max_sessions: u32,
    /// `SESSION_MAX_AGE`
    pub session_max_age: Duration,
    /// `MFA_TOKEN_EXP`: how long a pending two-step sign-in waits for its code.
    pub mfa_token_ttl: Duration,
}

impl TokenConfig {
    /// The rules this service's ID tokens are checked against: the same
    /// [`IdTokenValidator`] domain services run, with the service's own
    /// issuer, audience and lifetime.
    pub fn id_token_rules(&self) -> IdTokenRules {
        IdTokenRules {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway: MAX_LEEWAY,
            max_lifetime: self.id_token_ttl,
        }
    }
}

/// [`TokenService`] over a [`TokenRepository`] whitelist.
pub struct TokenServiceImpl {
    repo: Arc<dyn TokenRepository>,
    keys: Arc<SharedKeyRing>,
    id_validator: IdTokenValidator,
    refresh_encoding: EncodingKey,
    refresh_decoding: DecodingKey,
    refresh_validation: Validation,
    /// Signs and checks mfa tokens (a key of their own, derived from the
    /// refresh secret: neither kind of token ever passes for the other).
    second_step: second_step::MfaTokens,
    config: TokenConfig,
}

impl TokenServiceImpl {
    /// `keys` may be replaced while the service runs (key rotation).
    pub fn new(
        repo: Arc<dyn TokenRepository>,
        keys: Arc<SharedKeyRing>,
        refresh_secret: &Secret,
        config: TokenConfig,
    ) -> anyhow::Result<Self> {
        let id_validator = IdTokenValidator::new(config.id_token_rules())?;

        let secret = refresh_secret.expose().as_bytes();
        let refresh_encoding = EncodingKey::from_secret(secret);
        let refresh_decoding = DecodingKey::from_secret(secret);
        let mut refresh_validation = Validation::new(Algorithm::HS256);
        // `jti` is required by the claims type itself (a UUID field).
        refresh_validation.set_required_spec_claims(&["exp", "sub"]);
        refresh_validation.validate_aud = false;
        refresh_validation.leeway = MAX_LEEWAY.as_secs();

        Ok(Self {
            repo,
            keys,
            id_validator,
            refresh_encoding,
            refresh_decoding,
            refresh_validation,
            second_step: second_step::MfaTokens::new(refresh_secret)?,
            config,
        })
    }

    fn sign_id_token(
        &self,
        user: &User,
        session: &SessionClaims<'_>,
        now: u64,
    ) -> AppResult<String> {
        let claims = IdClaims {
            sub: user.uid,
            iss: self.config.issuer.clone(),
            aud: Audience::One(self.config.audience.clone()),
            iat: now,
            exp: now + self.config.id_token_ttl.as_secs(),
            nbf: None,
            jti: Some(Uuid::new_v4().to_string()),
            email: user.email.clone(),
            email_verified: user.email_verified,
            name: user.name.clone(),
            sid: Some(session.sid.to_string()),
            auth_time: Some(session.auth_time),
            acr: Some(session.assurance.acr.clone()),
            amr: session.assurance.amr.clone(),
        };
        self.keys
            .current()
            .signer()
            .sign(&claims)
            .map_err(AppError::Internal)
    }

    fn sign_refresh_token(&self, claims: &RefreshClaims) -> AppResult<String> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.refresh_encoding,
        )
        .map_err(|e| AppError::Internal(e.into()))
    }

    /// A new pair for `user` in `session` whose refresh token has the id
    /// `jti` and expires at `exp`.
    fn sign_pair(
        &self,
        user: &User,
        session: &SessionClaims<'_>,
        jti: Uuid,
        now: u64,
        exp: u64,
    ) -> AppResult<TokenPair> {
        let refresh = RefreshClaims {
            sub: user.uid,
            jti,
            iat: now,
            exp,
            sid: Some(session.sid),
            auth_time: Some(session.auth_time),
            acr: Some(session.assurance.acr.clone()),
            amr: Some(session.assurance.amr.clone()),
        };
        Ok(TokenPair {
            id_token: self.sign_id_token(user, session, now)?,
            refresh_token: self.sign_refresh_token(&refresh)?,
        })
    }

    /// When a session started at `auth_time` ends, and when a refresh token
    /// issued in it now expires: the earlier of now + `REFRESH_TOKEN_EXP` and
    /// that end.
    fn lifetimes(&self, auth_time: u64, now: u64) -> (u64, u64) {
        let ends = auth_time.saturating_add(self.config.session_max_age.as_secs());
        let exp = now
            .saturating_add(self.config.refresh_token_ttl.as_secs())
            .min(ends);
        (ends, exp)
    }

    /// A new session for `user` signed in with `assurance`: its first pair
    /// and what the store records.
    fn new_session(
        &self,
        user: &User,
        client: &ClientInfo,
        assurance: &Assurance,
    ) -> AppResult<(TokenPair, SessionStart)> {
        let now = now_secs();
        let (sid, jti) = (Uuid::new_v4(), Uuid::new_v4());
        let (ends, exp) = self.lifetimes(now, now);
        let session = SessionClaims {
            sid,
            auth_time: now,
            assurance,
        };
        let pair = self.sign_pair(user, &session, jti, now, exp)?;
        let start = SessionStart {
            sid,
            jti,
            exp,
            now,
            ends_at: ends,
            client: client.clone(),
            max_sessions: self.config.max_sessions,
            credential: credential_of(&user.password_hash),
        };
        Ok((pair, start))
    }
}

/// What every token of a session carries: its id, when its sign-in
/// happened and how.
struct SessionClaims<'a> {
    sid: Uuid,
    auth_time: u64,
    assurance: &'a Assurance,
}

/// A fingerprint of a password hash: which password a session was
/// authenticated with, without storing anything that helps guess it.
pub(crate) fn credential_of(password_hash: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, password_hash.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[async_trait]
impl TokenService for TokenServiceImpl {
    async fn issue(&self, user: &User, client: &ClientInfo) -> AppResult<TokenPair> {
        self.issue_with(user, client, &Assurance::password()).await
    }

    async fn issue_with(
        &self,
        user: &User,
        client: &ClientInfo,
        assurance: &Assurance,
    ) -> AppResult<TokenPair> {
        let (pair, start) = self.new_session(user, client, assurance)?;
        if !self.repo.start_session(user.uid, &start).await? {
            // The password changed since this sign-in read it.
            return Err(AppError::unauthorized(BAD_CREDENTIALS));
        }
        Ok(pair)
    }

    async fn rotate(
        &self,
        user: &User,
        previous: &RefreshClaims,
        presented: &str,
        client: &ClientInfo,
    ) -> AppResult<Rotation> {
        if previous.sub != user.uid {
            return Err(AppError::Internal(anyhow::anyhow!(
                "refresh token of one user rotated for another"
            )));
        }
        let Some(sid) = previous.sid else {
            // Issued before sessions: it rotates once, into a new session.
            let (pair, start) = self.new_session(user, client, &Assurance::password())?;
            let taken = self
                .repo
                .rotate_legacy(user.uid, previous.jti, &start)
                .await?;
            return Ok(if taken {
                Rotation::Rotated(pair)
            } else {
                Rotation::Ended
            });
        };
        let now = now_secs();
        let auth_time = previous.auth_time.unwrap_or(previous.iat);
        let (_, new_exp) = self.lifetimes(auth_time, now);
        let new_jti = Uuid::new_v4();
        // What the token carries, unless a second factor enrolled since
        // raised the session (one read; none once the token says aal2).
        let carried = Assurance::of(previous);
        let assurance = if carried.acr == crate::verifier::AAL2 {
            carried
        } else {
            self.repo
                .session_assurance(user.uid, sid)
                .await?
                .unwrap_or(carried)
        };
        let session = SessionClaims {
            sid,
            auth_time,
            assurance: &assurance,
        };
        let pair = self.sign_pair(user, &session, new_jti, now, new_exp)?;
        let step = RefreshStep {
            sid,
            jti: previous.jti,
            new_jti,
            new_exp,
            now,
            grace_secs: self.config.refresh_reuse_grace.as_secs(),
            sealed_successor: grace::seal(presented, &pair)?,
            client: client.clone(),
        };
        Ok(match self.repo.refresh(user.uid, &step).await? {
            RefreshOutcome::Rotated => Rotation::Rotated(pair),
            RefreshOutcome::GraceReplay(sealed) => match grace::open(presented, &sealed) {
                Some(successor) => Rotation::Replayed(successor),
                // Sealed with another token under the same jti: cannot happen
                // with our tokens; refuse rather than hand out anything.
                None => Rotation::Ended,
            },
            RefreshOutcome::Reused => Rotation::Reused,
            RefreshOutcome::Unknown | RefreshOutcome::Expired => Rotation::Ended,
        })
    }

    async fn raise_session(&self, uid: Uuid, sid: Uuid, assurance: &Assurance) -> AppResult<bool> {
        self.repo
            .raise_session(uid, sid, assurance, now_secs())
            .await
    }

    async fn start_second_step(&self, user: &User) -> AppResult<(String, u64)> {
        let pending = PendingSignIn {
            uid: user.uid,
            id: Uuid::new_v4(),
            credential: credential_of(&user.password_hash),
        };
        let ttl = self.config.mfa_token_ttl;
        self.repo
            .put_pending_sign_in(pending.uid, pending.id, ttl)
            .await?;
        let token = self.second_step.sign(&pending, now_secs(), ttl)?;
        Ok((token, ttl.as_secs()))
    }

    async fn pending_second_step(&self, mfa_token: &str) -> AppResult<Option<PendingSignIn>> {
        let Some(pending) = self.second_step.verify(mfa_token) else {
            return Ok(None);
        };
        let live = self.repo.pending_sign_in(pending.uid, pending.id).await?;
        Ok(live.then_some(pending))
    }

    async fn second_step_failed(&self, uid: Uuid, id: Uuid) -> AppResult<bool> {
        let failures = self
            .repo
            .fail_pending_sign_in(uid, id, second_step::MAX_FAILURES)
            .await?;
        Ok(failures.is_some_and(|n| n < second_step::MAX_FAILURES))
    }

    async fn finish_second_step(&self, uid: Uuid, id: Uuid) -> AppResult<bool> {
        self.repo.take_pending_sign_in(uid, id).await
    }

    async fn put_ceremony(
        &self,
        key: &crate::model::CeremonyKey,
        state: &str,
        ttl: Duration,
    ) -> AppResult<()> {
        self.repo.put_ceremony(key, state, ttl).await
    }

    async fn take_ceremony(&self, key: &crate::model::CeremonyKey) -> AppResult<Option<String>> {
        self.repo.take_ceremony(key).await
    }

    async fn sessions(&self, uid: Uuid) -> AppResult<Vec<SessionInfo>> {
        self.repo.list_sessions(uid, now_secs()).await
    }

    async fn end_session(&self, uid: Uuid, sid: Uuid) -> AppResult<bool> {
        self.repo.end_session(uid, sid).await
    }

    async fn rename_session(
        &self,
        uid: Uuid,
        sid: Uuid,
        name: Option<SessionName>,
    ) -> AppResult<bool> {
        self.repo.rename_session(uid, sid, name, now_secs()).await
    }

    async fn end_other_sessions(&self, uid: Uuid, keep: Uuid) -> AppResult<u64> {
        self.repo.end_other_sessions(uid, Some(keep), None).await
    }

    async fn password_changed(
        &self,
        uid: Uuid,
        keep: Option<Uuid>,
        password_hash: &str,
    ) -> AppResult<u64> {
        let change = CredentialChange {
            credential: credential_of(password_hash),
        };
        self.repo.end_other_sessions(uid, keep, Some(change)).await
    }

    async fn revoke_all(&self, uid: Uuid) -> AppResult<u64> {
        let removed = self.repo.delete_user_refresh_tokens(uid).await?;
        tracing::info!(%uid, removed, "signed out everywhere");
        Ok(removed)
    }

    fn validate_id_token(&self, token: &str) -> AppResult<IdClaims> {
        let ring = self.keys.current();
        self.id_validator
            .validate(token, |kid| ring.decoding_key(kid))
            .map_err(AppError::from)
    }

    fn validate_refresh_token(&self, token: &str) -> AppResult<RefreshClaims> {
        jsonwebtoken::decode::<RefreshClaims>(
            token,
            &self.refresh_decoding,
            &self.refresh_validation,
        )
        .map(|data| data.claims)
        .map_err(|_| AppError::invalid_token(REFRESH_TOKEN_REFUSED))
    }

    fn jwks(&self) -> JwkSet {
        self.keys.current().jwks()
    }

    async fn ready(&self) -> AppResult<()> {
        self.repo.ping().await
    }
}

#[cfg(test)]
mod tests;
