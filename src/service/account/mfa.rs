//! Second factors (issue 27): enrolling an authenticator, recovery codes,
//! the second step of a sign-in, and the step-up rules of the sensitive
//! routes. Called from the `AccountService` implementation in `mod.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::{AccountServiceImpl, Notice};
use crate::error::{AppError, AppResult, InvalidArg};
use crate::keys::DataKey;
use crate::model::{
    Assurance, ClientInfo, Factor, FactorConfirmed, FactorKind, FactorList, FactorRepository,
    IdClaims, MfaChallenge, Password, SecondFactorMethod, SecondFactorProof, SessionName, SignIn,
    TokenPair, TotpEnrolment, User,
};
use crate::service::mfa::passkey::Passkeys;
use crate::service::mfa::recovery::{self, RecoveryCode};
use crate::service::mfa::totp::{self, TotpSecret};
use crate::service::token::credential_of;
use crate::verifier::AAL2;

/// The settings of second factors the use cases need.
#[derive(Debug, Clone)]
pub struct MfaConfig {
    /// What authenticator apps show (`MFA_ISSUER`, or `PUBLIC_URL`'s host).
    pub issuer: String,
    /// `MFA_PENDING_EXP`
    pub pending_ttl: Duration,
    /// `REAUTH_MAX_AGE`
    pub reauth_max_age: Duration,
    /// `WEBAUTHN_CEREMONY_EXP`
    pub ceremony_ttl: Duration,
}

/// The store of factors, the data key sealing their secrets (`None`:
/// enrolment is off, 503) and the settings.
#[derive(Clone)]
pub struct Mfa {
    pub factors: Arc<dyn FactorRepository>,
    pub data_key: Option<Arc<DataKey>>,
    /// The passkey ceremonies, or why passkeys are off.
    pub passkeys: Result<Arc<Passkeys>, String>,
    pub config: MfaConfig,
}

const WRONG_CODE: &str = "the code is wrong, expired or already used";
const SIGN_IN_AGAIN: &str = "the two-step sign-in is over (expired, used, or too many wrong \
     codes): sign in again";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a factor's secret is bound to: its user and its id, so that a
/// ciphertext moved to another row or user does not open.
fn sealing_context(uid: Uuid, id: Uuid) -> [u8; 32] {
    let mut context = [0u8; 32];
    context[..16].copy_from_slice(uid.as_bytes());
    context[16..].copy_from_slice(id.as_bytes());
    context
}

fn wrong_code() -> AppError {
    AppError::invalid_args(vec![InvalidArg::new("code", WRONG_CODE)])
}

impl AccountServiceImpl {
    fn data_key(&self) -> AppResult<&DataKey> {
        self.mfa.data_key.as_deref().ok_or_else(|| {
            AppError::unavailable(
                "authenticator enrolment is off: the service has no data key (DATA_KEY or \
                 DATA_KEY_FILE)",
            )
        })
    }

    /// After the password (and the email rule) of `user` checked out: the
    /// session's first pair, or the second step a user with a factor owes.
    pub(super) async fn after_password(
        &self,
        user: &User,
        client: &ClientInfo,
    ) -> AppResult<SignIn> {
        // Read with the user's row by the sign-in's lookup. A sign-in whose
        // lookup came just before an account's first factor was confirmed
        // and whose session starts after that confirmation's second sweep
        // keeps its session: the window is the hashing of one password.
        if !user.has_factor {
            let pair = self
                .start_signed_in(user, client, &Assurance::password())
                .await?;
            return Ok(SignIn::Tokens(pair));
        }
        let (token, expires_in) = self.tokens.start_second_step(user).await?;
        let factors = self.mfa.factors.factors(user.uid).await?;
        let has = |kind| {
            factors
                .iter()
                .any(|f| f.kind == kind && f.confirmed_at.is_some())
        };
        let mut methods = Vec::new();
        if has(FactorKind::Totp) {
            methods.push(SecondFactorMethod::Totp);
        }
        if has(FactorKind::WebAuthn) && self.passkeys_on() {
            methods.push(SecondFactorMethod::WebAuthn);
        }
        if self.mfa.factors.recovery_codes_left(user.uid).await? > 0 {
            methods.push(SecondFactorMethod::RecoveryCode);
        }
        Ok(SignIn::SecondFactor(MfaChallenge {
            token,
            expires_in,
            methods,
        }))
    }

    /// The second step: the mfa token and a code of `method`.
    pub(super) async fn second_step(
        &self,
        mfa_token: &str,
        method: SecondFactorMethod,
        proof: &SecondFactorProof,
        client: &ClientInfo,
    ) -> AppResult<TokenPair> {
        let Some(pending) = self.tokens.pending_second_step(mfa_token).await? else {
            return Err(AppError::invalid_token(SIGN_IN_AGAIN));
        };
        let (uid, id) = (pending.uid, pending.id);
        self.limits.mfa_attempt(uid).await?;
        let user = match self.users.get(uid).await {
            Err(AppError::NotFound(_)) => return Err(AppError::invalid_token(SIGN_IN_AGAIN)),
            other => other?,
        };
        // A password changed (or reset) since the first step ends it: the
        // password it proved is no longer the account's.
        if pending.credential != credential_of(&user.password_hash) {
            return Err(AppError::invalid_token(SIGN_IN_AGAIN));
        }
        // `Some(synced)`: accepted (`synced`: a passkey that may be synced).
        let accepted = match (method, proof) {
            (SecondFactorMethod::Totp, SecondFactorProof::Code(code)) => {
                self.use_totp_code(uid, code).await?.then_some(false)
            }
            (SecondFactorMethod::RecoveryCode, SecondFactorProof::Code(code)) => {
                match RecoveryCode::parse(code) {
                    Some(code) => self
                        .mfa
                        .factors
                        .redeem_recovery_code(uid, &code.digest())
                        .await?
                        .then_some(false),
                    None => None,
                }
            }
            (SecondFactorMethod::WebAuthn, SecondFactorProof::Credential(credential)) => {
                self.use_passkey(uid, credential).await?
            }
            _ => None,
        };
        let Some(synced) = accepted else {
            if !self.tokens.second_step_failed(uid, id).await? {
                return Err(AppError::invalid_token(SIGN_IN_AGAIN));
            }
            return Err(AppError::unauthorized(WRONG_CODE));
        };
        if !self.tokens.finish_second_step(uid, id).await? {
            return Err(AppError::invalid_token(SIGN_IN_AGAIN));
        }
        if let Err(err) = self.limits.mfa_succeeded(uid).await {
            tracing::warn!(error = ?err, "cannot give back a right second factor's count");
        }
        let assurance = Assurance {
            acr: AAL2.to_owned(),
            amr: method.amr(synced),
        };
        let pair = self.start_signed_in(&user, client, &assurance).await?;
        if method == SecondFactorMethod::RecoveryCode {
            // The sign-in happened: a count that cannot be read is left out.
            let left = match self.mfa.factors.recovery_codes_left(uid).await {
                Ok(left) => Some(left),
                Err(err) => {
                    tracing::warn!(%uid, error = ?err, "cannot count the recovery codes left");
                    None
                }
            };
            self.notify(&user.email, Notice::RecoveryCodeUsed { left }, client);
        }
        Ok(pair)
    }

    /// Whether `code` is a code of one of the user's authenticators, for a
    /// step not used before (the step is then used up).
    async fn use_totp_code(&self, uid: Uuid, code: &str) -> AppResult<bool> {
        let key = self.data_key()?;
        let now = now_secs();
        for factor in self.mfa.factors.factors(uid).await? {
            if factor.kind != FactorKind::Totp || factor.confirmed_at.is_none() {
                continue;
            }
            let Some(secret) = key.open(&sealing_context(uid, factor.id), &factor.secret) else {
                tracing::error!(factor = %factor.id, "a factor's secret does not open with the data key");
                continue;
            };
            let secret = TotpSecret::from_bytes(secret);
            if let Some(step) = secret.accepted_step(code, now, factor.last_step)
                && self.mfa.factors.use_step(uid, factor.id, step, now).await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// What a sensitive change needs of a user with a factor: a session
    /// signed in with it (RFC 9470 `acr_values=aal2`).
    pub(super) async fn require_second_factor(&self, caller: &IdClaims) -> AppResult<()> {
        if self.mfa.factors.has_factor(caller.sub).await? {
            caller.require_acr(AAL2).map_err(AppError::StepUp)?;
        }
        Ok(())
    }

    /// The enrolment rule of every factor: an `aal2` session for a user who
    /// has one, and a sign-in within `REAUTH_MAX_AGE` or the current
    /// password. The caller's user.
    pub(super) async fn enrolment_allowed(
        &self,
        caller: &IdClaims,
        current_password: Option<Password>,
        client: &ClientInfo,
    ) -> AppResult<User> {
        let user = self.users.get(caller.sub).await?;
        self.require_second_factor(caller).await?;
        match current_password {
            Some(password) => self.reauthenticate(&user, password, client).await?,
            None => caller
                .require_auth_within(self.mfa.config.reauth_max_age.as_secs(), now_secs())
                .map_err(AppError::StepUp)?,
        }
        Ok(user)
    }

    pub(super) async fn begin_totp_enrolment(
        &self,
        caller: &IdClaims,
        current_password: Option<Password>,
        client: &ClientInfo,
    ) -> AppResult<TotpEnrolment> {
        let user = self
            .enrolment_allowed(caller, current_password, client)
            .await?;
        let key = self.data_key()?;
        let now = now_secs();
        self.mfa
            .factors
            .sweep_pending(
                user.uid,
                now.saturating_sub(self.mfa.config.pending_ttl.as_secs()),
            )
            .await?;
        let secret = TotpSecret::generate()?;
        let id = Uuid::new_v4();
        let factor = Factor {
            id,
            uid: user.uid,
            kind: FactorKind::Totp,
            name: None,
            secret: key.seal(&sealing_context(user.uid, id), secret.as_bytes())?,
            created_at: now,
            confirmed_at: None,
            last_used_at: None,
            last_step: None,
            credential: None,
            credential_id: None,
        };
        self.mfa.factors.create_factor(&factor).await?;
        let otpauth_uri = totp::otpauth_uri(&self.mfa.config.issuer, &user.email, &secret);
        Ok(TotpEnrolment {
            id,
            secret: secret.base32(),
            qr_svg: totp::qr_svg(&otpauth_uri)?,
            otpauth_uri,
        })
    }

    pub(super) async fn confirm_totp_enrolment(
        &self,
        caller: &IdClaims,
        id: Uuid,
        code: &str,
        client: &ClientInfo,
    ) -> AppResult<FactorConfirmed> {
        let uid = caller.sub;
        let now = now_secs();
        let fresh_after = now.saturating_sub(self.mfa.config.pending_ttl.as_secs());
        let factors = self.mfa.factors.factors(uid).await?;
        let first = !factors.iter().any(|f| f.confirmed_at.is_some());
        // A further factor is added by the second factor's holder only: else
        // whoever learnt the password could start an enrolment before the
        // first one and confirm it after. Checked before the code counts.
        if !first {
            caller.require_acr(AAL2).map_err(AppError::StepUp)?;
        }
        self.limits.mfa_attempt(uid).await?;
        let Some(pending) = factors
            .iter()
            .find(|f| f.id == id && f.confirmed_at.is_none() && f.created_at >= fresh_after)
        else {
            return Err(AppError::NotFound(
                "no such pending factor (it may have expired: start again)".into(),
            ));
        };
        let secret = self
            .data_key()?
            .open(&sealing_context(uid, id), &pending.secret)
            .map(TotpSecret::from_bytes)
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a pending secret does not open")))?;
        let Some(step) = secret.accepted_step(code, now, None) else {
            return Err(wrong_code());
        };
        let confirmed = self
            .mfa
            .factors
            .confirm_factor(uid, id, fresh_after, step, now);
        let added = self
            .factor_counts(caller, FactorKind::Totp.amr(false), &factors, id, confirmed)
            .await?;
        let Some(added) = added else {
            return Err(wrong_code());
        };
        if let Err(err) = self.limits.mfa_succeeded(uid).await {
            tracing::warn!(error = ?err, "cannot give back a right code's count");
        }
        self.notify_owner(uid, added.notice(pending.kind), client)
            .await;
        Ok(added.confirmed)
    }

    /// A new set of recovery codes, stored by their digests; the codes as shown.
    pub(super) async fn replace_recovery_codes(
        &self,
        uid: Uuid,
        now: u64,
    ) -> AppResult<Vec<String>> {
        let codes = recovery::generate_set()?;
        let digests: Vec<String> = codes.iter().map(RecoveryCode::digest).collect();
        self.mfa
            .factors
            .replace_recovery_codes(uid, &digests, now)
            .await?;
        Ok(codes.iter().map(RecoveryCode::display).collect())
    }

    pub(super) async fn list_factors(&self, caller: &IdClaims) -> AppResult<FactorList> {
        let factors = self
            .mfa
            .factors
            .factors(caller.sub)
            .await?
            .into_iter()
            .filter(|f| f.confirmed_at.is_some())
            .collect();
        Ok(FactorList {
            factors,
            recovery_codes_left: self.mfa.factors.recovery_codes_left(caller.sub).await?,
        })
    }

    pub(super) async fn rename_one_factor(
        &self,
        caller: &IdClaims,
        id: Uuid,
        name: Option<SessionName>,
    ) -> AppResult<()> {
        let renamed = self
            .mfa
            .factors
            .rename_factor(caller.sub, id, name.map(SessionName::into_string))
            .await?;
        if renamed {
            Ok(())
        } else {
            Err(AppError::NotFound("no such factor".into()))
        }
    }

    pub(super) async fn delete_one_factor(
        &self,
        caller: &IdClaims,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<()> {
        self.require_second_factor(caller).await?;
        let uid = caller.sub;
        let removed = self
            .mfa
            .factors
            .factors(uid)
            .await?
            .into_iter()
            .find(|f| f.id == id);
        if !self.mfa.factors.delete_factor(uid, id).await? {
            return Err(AppError::NotFound("no such factor".into()));
        }
        let last = self.mfa.factors.has_factor(uid).await.map(|has| !has);
        // Told once it is gone, whatever fails next. A pending enrolment is
        // no factor yet: nothing to tell.
        if let Some(factor) = removed.filter(|f| f.confirmed_at.is_some()) {
            let notice = Notice::FactorRemoved {
                kind: factor.kind,
                name: factor.name.as_deref(),
                last: last.as_ref().is_ok_and(|last| *last),
            };
            self.notify_owner(uid, notice, client).await;
        }
        // Without a factor, recovery codes would recover nothing.
        if last? {
            self.mfa
                .factors
                .replace_recovery_codes(uid, &[], now_secs())
                .await?;
        }
        Ok(())
    }

    pub(super) async fn renew_recovery_codes(
        &self,
        caller: &IdClaims,
        client: &ClientInfo,
    ) -> AppResult<Vec<String>> {
        if !self.mfa.factors.has_factor(caller.sub).await? {
            return Err(AppError::Conflict(
                "recovery codes come with a second factor: enrol one first".into(),
            ));
        }
        caller.require_acr(AAL2).map_err(AppError::StepUp)?;
        let codes = self.replace_recovery_codes(caller.sub, now_secs()).await?;
        self.notify_owner(caller.sub, Notice::RecoveryCodesRenewed, client)
            .await;
        Ok(codes)
    }
}
