//! The use cases: each endpoint's flow, composed of the user and token services.
//! Email verification and password reset are in `flows.rs`.

mod admin;
mod first_factor;
mod flows;
mod mfa;
mod notices;
mod passkey_sign_in;
mod passkeys;
mod steps;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

pub use admin::UserAdmin;
pub use flows::{EmailConfirmation, FlowConfig};
pub use mfa::{Mfa, MfaConfig};
use notices::Notice;

use crate::error::{AppError, AppResult, InvalidArg, REFRESH_TOKEN_REFUSED};
use crate::jwks::JwkSet;
use crate::mail::Mailer;
use crate::model::{
    AccountService, AccountTokenService, ClientInfo, Email, FactorConfirmed, FactorList, IdClaims,
    Password, RateLimitService, Rotation, SecondFactorMethod, SecondFactorProof, SessionInfo,
    SessionName, SignIn, SignOutScope, SignUp, TokenPair, TokenService, TotpEnrolment, User,
    UserDetails, UserService,
};

/// [`AccountService`] over a [`UserService`] and a [`TokenService`], with the
/// limits of a [`RateLimitService`], and the single-use tokens of an
/// [`AccountTokenService`] mailed through a [`Mailer`].
#[derive(Clone)]
pub struct AccountServiceImpl {
    users: Arc<dyn UserService>,
    tokens: Arc<dyn TokenService>,
    limits: Arc<dyn RateLimitService>,
    account_tokens: Arc<dyn AccountTokenService>,
    mailer: Arc<dyn Mailer>,
    flows: Arc<FlowConfig>,
    mfa: Mfa,
}

/// The session an ID token was issued in; tokens from before sessions have
/// none, and cannot name "this session".
fn session_of(caller: &IdClaims) -> AppResult<Uuid> {
    caller
        .sid
        .as_deref()
        .and_then(|sid| Uuid::parse_str(sid).ok())
        .ok_or_else(|| {
            AppError::bad_request(
                "this ID token belongs to no session (issued before sessions): sign in again",
            )
        })
}

impl AccountServiceImpl {
    pub fn new(
        users: Arc<dyn UserService>,
        tokens: Arc<dyn TokenService>,
        limits: Arc<dyn RateLimitService>,
        account_tokens: Arc<dyn AccountTokenService>,
        mailer: Arc<dyn Mailer>,
        flows: FlowConfig,
        mfa: Mfa,
    ) -> Self {
        Self {
            users,
            tokens,
            limits,
            account_tokens,
            mailer,
            flows: Arc::new(flows),
            mfa,
        }
    }
}

#[async_trait]
impl AccountService for AccountServiceImpl {
    async fn sign_up(
        &self,
        email: Email,
        password: Password,
        client: ClientInfo,
    ) -> AppResult<SignUp> {
        // Counted before anything is hashed.
        self.limits.sign_up_attempt(&client.ip).await?;
        // Hashing is the request's own work: a client gone before its turn in
        // the queue costs nothing. From the stored row on, the sign-up runs
        // on a task of its own, to its end even when the request is dropped
        // (handler timeout, client gone): never left half done. Under
        // `EMAIL_CONFIRMATION=required` every address is hashed alike, new
        // or taken, so the time taken tells nothing.
        let password_hash = self.users.hash_password(&password, &client.ip).await?;
        let this = self.clone();
        tokio::spawn(async move {
            match this.flows.email_confirmation {
                EmailConfirmation::Optional => this
                    .sign_up_to_the_end(email, password_hash, client)
                    .await
                    .map(SignUp::SignedIn),
                EmailConfirmation::Required => this
                    .sign_up_confirming(email, password_hash)
                    .await
                    .map(|()| SignUp::Accepted),
            }
        })
        .await
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("sign-up task failed")))?
    }

    async fn sign_in(
        &self,
        email: Email,
        password: Password,
        client: ClientInfo,
    ) -> AppResult<SignIn> {
        // Counted before the password is hashed, so that a wave of concurrent
        // first attempts cannot slip past the limits.
        let email_key = email.as_str().to_owned();
        self.limits.sign_in_attempt(&email_key, &client.ip).await?;
        let user = self.users.signin(email, password, &client.ip).await?;
        self.give_back(&email_key, &client).await;
        // Only after the right password: a wrong one stays the one 401, so
        // this says nothing to someone who does not know it.
        if user.must_verify && !user.email_verified {
            return Err(AppError::EmailNotVerified);
        }
        self.after_password(&user, &client).await
    }

    async fn sign_in_second_step(
        &self,
        mfa_token: &str,
        method: SecondFactorMethod,
        proof: SecondFactorProof,
        client: ClientInfo,
    ) -> AppResult<TokenPair> {
        self.second_step(mfa_token, method, &proof, &client).await
    }

    async fn begin_passkey_step(&self, mfa_token: &str) -> AppResult<serde_json::Value> {
        self.begin_passkey_step_flow(mfa_token).await
    }

    async fn begin_passkey_registration(
        &self,
        caller: &IdClaims,
        current_password: Option<Password>,
        client: ClientInfo,
    ) -> AppResult<serde_json::Value> {
        self.begin_passkey_registration_flow(caller, current_password, &client)
            .await
    }

    async fn finish_passkey_registration(
        &self,
        caller: &IdClaims,
        name: Option<SessionName>,
        credential: serde_json::Value,
        client: ClientInfo,
    ) -> AppResult<(Uuid, FactorConfirmed)> {
        self.finish_passkey_registration_flow(caller, name, credential, &client)
            .await
    }

    async fn begin_passkey_sign_in(&self, client: ClientInfo) -> AppResult<serde_json::Value> {
        self.begin_passkey_sign_in_flow(&client).await
    }

    async fn finish_passkey_sign_in(
        &self,
        credential: serde_json::Value,
        client: ClientInfo,
    ) -> AppResult<TokenPair> {
        self.finish_passkey_sign_in_flow(&credential, &client).await
    }

    async fn begin_totp(
        &self,
        caller: &IdClaims,
        current_password: Option<Password>,
        client: ClientInfo,
    ) -> AppResult<TotpEnrolment> {
        self.begin_totp_enrolment(caller, current_password, &client)
            .await
    }

    async fn confirm_totp(
        &self,
        caller: &IdClaims,
        id: Uuid,
        code: &str,
        client: ClientInfo,
    ) -> AppResult<FactorConfirmed> {
        self.confirm_totp_enrolment(caller, id, code, &client).await
    }

    async fn factors(&self, caller: &IdClaims) -> AppResult<FactorList> {
        self.list_factors(caller).await
    }

    async fn rename_factor(
        &self,
        caller: &IdClaims,
        id: Uuid,
        name: Option<SessionName>,
    ) -> AppResult<()> {
        self.rename_one_factor(caller, id, name).await
    }

    async fn delete_factor(
        &self,
        caller: &IdClaims,
        id: Uuid,
        client: ClientInfo,
    ) -> AppResult<()> {
        self.delete_one_factor(caller, id, &client).await
    }

    async fn new_recovery_codes(
        &self,
        caller: &IdClaims,
        client: ClientInfo,
    ) -> AppResult<Vec<String>> {
        self.renew_recovery_codes(caller, &client).await
    }

    async fn refresh(&self, refresh_token: &str, client: ClientInfo) -> AppResult<TokenPair> {
        let previous = self.tokens.validate_refresh_token(refresh_token)?;
        let user = match self.users.get(previous.sub).await {
            // A deleted user's tokens are refused like any other unusable token.
            Err(AppError::NotFound(_)) => {
                return Err(AppError::invalid_token(REFRESH_TOKEN_REFUSED));
            }
            other => other?,
        };
        match self
            .tokens
            .rotate(&user, &previous, refresh_token, &client)
            .await?
        {
            Rotation::Rotated(pair) | Rotation::Replayed(pair) => Ok(pair),
            Rotation::Reused => {
                tracing::warn!(uid = %user.uid, "refresh token reuse: session ended");
                Err(AppError::RefreshTokenReused)
            }
            Rotation::Ended => Err(AppError::invalid_token(REFRESH_TOKEN_REFUSED)),
        }
    }

    async fn sign_out(&self, caller: &IdClaims, scope: SignOutScope) -> AppResult<()> {
        match scope {
            SignOutScope::Global => {
                self.tokens.revoke_all(caller.sub).await?;
            }
            SignOutScope::Local => {
                self.tokens
                    .end_session(caller.sub, session_of(caller)?)
                    .await?;
            }
            SignOutScope::Others => {
                self.tokens
                    .end_other_sessions(caller.sub, session_of(caller)?)
                    .await?;
            }
        }
        Ok(())
    }

    async fn sign_out_by_refresh(&self, refresh_token: &str, scope: SignOutScope) -> AppResult<()> {
        let claims = self.tokens.validate_refresh_token(refresh_token)?;
        let refused = || AppError::invalid_token(REFRESH_TOKEN_REFUSED);
        let sid = claims.sid.ok_or_else(refused)?;
        if scope == SignOutScope::Local {
            self.tokens.end_session(claims.sub, sid).await?;
            return Ok(());
        }
        let live = self.tokens.sessions(claims.sub).await?;
        if !live.iter().any(|session| session.id == sid) {
            return Err(refused());
        }
        if scope == SignOutScope::Global {
            self.tokens.revoke_all(claims.sub).await?;
        } else {
            self.tokens.end_other_sessions(claims.sub, sid).await?;
        }
        Ok(())
    }

    async fn sessions(&self, caller: &IdClaims) -> AppResult<Vec<SessionInfo>> {
        self.tokens.sessions(caller.sub).await
    }

    async fn end_session(&self, caller: &IdClaims, sid: Uuid) -> AppResult<()> {
        if self.tokens.end_session(caller.sub, sid).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("no such session".into()))
        }
    }

    async fn rename_session(
        &self,
        caller: &IdClaims,
        sid: Uuid,
        name: Option<SessionName>,
    ) -> AppResult<()> {
        if self.tokens.rename_session(caller.sub, sid, name).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("no such session".into()))
        }
    }

    async fn me(&self, uid: Uuid) -> AppResult<User> {
        self.users.profile(uid).await
    }

    async fn update_details(
        &self,
        caller: &IdClaims,
        details: UserDetails,
        current_password: Option<Password>,
        client: ClientInfo,
    ) -> AppResult<User> {
        let user = self.users.get(caller.sub).await?;
        let email_changes = user.email != details.email.as_str();
        if email_changes {
            let Some(password) = current_password else {
                return Err(AppError::invalid_args(vec![InvalidArg::new(
                    "currentPassword",
                    "currentPassword is required to change the email",
                )]));
            };
            self.require_second_factor(caller).await?;
            self.reauthenticate(&user, password, &client).await?;
            // As for a password change: the other sessions end before the
            // new email is stored, so an outage of the token store refuses
            // the change rather than leave a stolen session alive after it.
            self.end_other_sessions(caller).await?;
        }
        if email_changes && user.must_verify {
            // An account that must verify keeps its verified address until
            // the new one is confirmed: the change waits, and the link goes
            // to the new address (it replaces any earlier link).
            let new_email = details.email.as_str().to_owned();
            let user = self
                .users
                .update_details_pending(caller.sub, details)
                .await?;
            self.send_verification_to_or_log(&user, &new_email).await;
            return Ok(user);
        }
        let previous = user.email;
        let user = self.users.update_details(caller.sub, details).await?;
        // The new address is not verified: its own link, which also
        // replaces the link sent to the previous one. The previous address
        // is told.
        if email_changes {
            self.send_verification_or_log(&user).await;
            self.notify(&previous, Notice::EmailChanged { to: &user.email }, &client);
        }
        Ok(user)
    }

    async fn change_password(
        &self,
        caller: &IdClaims,
        current: Password,
        new: Password,
        client: ClientInfo,
    ) -> AppResult<()> {
        let user = self.users.get(caller.sub).await?;
        self.require_second_factor(caller).await?;
        self.reauthenticate(&user, current, &client).await?;
        // The new hash is stored first, then the other sessions end in one
        // store step that also refuses any session a sign-in that read the
        // previous hash would start later: no order of a racing sign-in
        // leaves a session on the old password. Should the token store be
        // down then, the answer is 503 with the password already changed:
        // repeating the change (new password as the current one) finishes it.
        // The reset links mailed before the change go with the old hash, in
        // the same transaction of the user store (`update_password_hash`).
        let hash = self.users.set_password(caller.sub, new).await?;
        // Told as soon as it is stored, even if ending the sessions fails.
        self.notify(&user.email, Notice::PasswordChanged, &client);
        let keep = session_of(caller).ok();
        self.tokens
            .password_changed(caller.sub, keep, &hash)
            .await
            .map(drop)
    }

    async fn delete_account(
        &self,
        caller: &IdClaims,
        current_password: Password,
        client: ClientInfo,
    ) -> AppResult<()> {
        let user = self.users.get(caller.sub).await?;
        self.require_second_factor(caller).await?;
        self.reauthenticate(&user, current_password, &client)
            .await?;
        // Signed out everywhere first: with the token store down the answer is
        // 503 and the account is still whole, so repeating the request works.
        self.tokens.revoke_all(user.uid).await?;
        self.users.delete(user.uid).await?;
        // A sign-in that read the row before it went may have started a
        // session since; its refresh token is refused (no user), but sweep
        // it now rather than leave it to its TTL.
        if let Err(err) = self.tokens.revoke_all(user.uid).await {
            tracing::warn!(uid = %user.uid, error = ?err, "cannot sweep a deleted user's keys again");
        }
        tracing::info!(uid = %user.uid, "account deleted");
        Ok(())
    }

    async fn verify_email(&self, token: &str, client: ClientInfo) -> AppResult<()> {
        self.verify_email_flow(token, client).await
    }

    async fn resend_verification(&self, caller: &IdClaims) -> AppResult<()> {
        self.resend_verification_flow(caller).await
    }

    async fn resend_verification_to(&self, email: Email, client: ClientInfo) -> AppResult<()> {
        self.resend_verification_to_flow(email, client).await
    }

    async fn request_password_reset(&self, email: Email, client: ClientInfo) -> AppResult<()> {
        self.request_password_reset_flow(email, client).await
    }

    async fn confirm_password_reset(
        &self,
        token: &str,
        new: Password,
        client: ClientInfo,
    ) -> AppResult<()> {
        self.confirm_password_reset_flow(token, new, client).await
    }

    fn authenticate(&self, id_token: &str) -> AppResult<IdClaims> {
        self.tokens.validate_id_token(id_token)
    }

    fn jwks(&self) -> JwkSet {
        self.tokens.jwks()
    }

    async fn ready(&self) -> AppResult<()> {
        let (users, tokens) = tokio::join!(self.users.ready(), self.tokens.ready());
        users.and(tokens)
    }
}

#[cfg(test)]
mod mfa_tests;
#[cfg(test)]
mod tests;
