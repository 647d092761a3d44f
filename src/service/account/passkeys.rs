//! Passkeys as a second factor (issue 29): registering one (the enrolment
//! rule of an authenticator), and the second step of a sign-in with one.
//! The ceremonies' state waits in the token store, named by the challenge
//! (`CeremonyKey`), and is taken once: a replayed or foreign assertion finds
//! nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::{Passkey, PublicKeyCredential, RegisterPublicKeyCredential};

use super::AccountServiceImpl;
use crate::error::{AppError, AppResult, InvalidArg};
use crate::model::{
    CeremonyKey, ClientInfo, Factor, FactorConfirmed, FactorKind, IdClaims, Password, SessionName,
};
use crate::service::mfa::passkey::{self, Passkeys, Refused};
use crate::verifier::AAL2;

const NO_CEREMONY: &str = "no such passkey ceremony (expired, used, or for another \
     challenge): start again";
const SIGN_IN_AGAIN: &str = "the two-step sign-in is over (expired, used, or too many wrong \
     codes): sign in again";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn bad_credential(message: impl Into<String>) -> AppError {
    AppError::invalid_args(vec![InvalidArg::new("credential", message.into())])
}

/// The user's passkeys, with their factor ids.
fn passkeys_of(factors: &[Factor]) -> Vec<(Uuid, Passkey)> {
    factors
        .iter()
        .filter(|f| f.kind == FactorKind::WebAuthn && f.confirmed_at.is_some())
        .filter_map(|f| {
            let parsed = f.credential.as_deref().map(serde_json::from_str::<Passkey>);
            match parsed {
                Some(Ok(passkey)) => Some((f.id, passkey)),
                _ => {
                    tracing::error!(factor = %f.id, "a stored passkey does not parse");
                    None
                }
            }
        })
        .collect()
}

impl AccountServiceImpl {
    /// The relying party's ceremonies, or 503 saying why passkeys are off.
    pub(super) fn passkeys(&self) -> AppResult<&Passkeys> {
        self.mfa
            .passkeys
            .as_ref()
            .map(|p| p.as_ref())
            .map_err(|why| AppError::unavailable(format!("passkeys are off: {why}")))
    }

    /// Whether passkeys can be used at all (the sign-in offers `webauthn`).
    pub(super) fn passkeys_on(&self) -> bool {
        self.mfa.passkeys.is_ok()
    }

    pub(super) async fn begin_passkey_registration_flow(
        &self,
        caller: &IdClaims,
        current_password: Option<Password>,
        client: &ClientInfo,
    ) -> AppResult<Value> {
        let passkeys = self.passkeys()?;
        let user = self
            .enrolment_allowed(caller, current_password, client)
            .await?;
        let factors = self.mfa.factors.factors(user.uid).await?;
        let existing: Vec<Passkey> = passkeys_of(&factors).into_iter().map(|(_, p)| p).collect();
        let started = passkeys.start_registration(user.uid, &user.email, &existing)?;
        let key = CeremonyKey::User {
            uid: user.uid,
            challenge: started.challenge,
        };
        self.tokens
            .put_ceremony(&key, &started.state, self.mfa.config.ceremony_ttl)
            .await?;
        Ok(started.options)
    }

    pub(super) async fn finish_passkey_registration_flow(
        &self,
        caller: &IdClaims,
        name: Option<SessionName>,
        credential: Value,
        client: &ClientInfo,
    ) -> AppResult<(Uuid, FactorConfirmed)> {
        let passkeys = self.passkeys()?;
        let uid = caller.sub;
        let credential: RegisterPublicKeyCredential = serde_json::from_value(credential)
            .map_err(|e| bad_credential(format!("not a registration credential: {e}")))?;
        let Some(challenge) =
            passkey::challenge_answered(credential.response.client_data_json.as_ref())
        else {
            return Err(bad_credential("its clientDataJSON names no challenge"));
        };
        let factors = self.mfa.factors.factors(uid).await?;
        let first = !factors.iter().any(|f| f.confirmed_at.is_some());
        // As for an authenticator: a further factor needs the second factor.
        if !first {
            caller.require_acr(AAL2).map_err(AppError::StepUp)?;
        }
        let key = CeremonyKey::User { uid, challenge };
        let Some(state) = self.tokens.take_ceremony(&key).await? else {
            return Err(bad_credential(NO_CEREMONY));
        };
        let passkey = match passkeys.finish_registration(&credential, &state)? {
            Ok(passkey) => passkey,
            Err(Refused::CounterWentBack) => return Err(bad_credential("refused")),
            Err(Refused::Invalid(why)) => {
                tracing::info!(%uid, why, "a passkey registration was refused");
                return Err(bad_credential(format!("refused: {why}")));
            }
        };
        let credential_id = passkey::credential_id(&passkey);
        // Registered already (here or by anyone): refused before anything
        // changes (a first factor ends the other sessions).
        if self
            .mfa
            .factors
            .find_passkey(&credential_id)
            .await?
            .is_some()
        {
            return Err(bad_credential("this passkey is registered"));
        }
        let synced = passkey::is_synced(&passkey);
        let now = now_secs();
        let factor = Factor {
            id: Uuid::new_v4(),
            uid,
            kind: FactorKind::WebAuthn,
            name: name.map(SessionName::into_string),
            secret: Vec::new(),
            created_at: now,
            confirmed_at: Some(now),
            last_used_at: None,
            last_step: None,
            credential: Some(
                serde_json::to_string(&passkey)
                    .map_err(|e| AppError::Internal(anyhow::anyhow!("a passkey: {e}")))?,
            ),
            credential_id: Some(credential_id),
        };
        let create = async {
            match self.mfa.factors.create_factor(&factor).await {
                Ok(()) => Ok(true),
                Err(AppError::Conflict(_)) => Err(bad_credential("this passkey is registered")),
                Err(err) => Err(err),
            }
        };
        let amr = FactorKind::WebAuthn.amr(synced);
        let Some(added) = self
            .factor_counts(caller, amr, &factors, factor.id, create)
            .await?
        else {
            return Err(bad_credential("refused"));
        };
        self.notify_owner(uid, added.notice(FactorKind::WebAuthn), client)
            .await;
        Ok((factor.id, added.confirmed))
    }

    /// Stores what an accepted assertion `result` left of the passkey `id`
    /// (counter, backup state): checked against the passkey as stored now,
    /// `previous` its stored text
    /// (the ceremony's copy may be older), and only while it is still that
    /// (of two concurrent uses, one wins). `Some(synced)` when it counts.
    pub(super) async fn passkey_used(
        &self,
        uid: Uuid,
        id: Uuid,
        previous: &str,
        passkey: &mut Passkey,
        result: &webauthn_rs::prelude::AuthenticationResult,
    ) -> AppResult<Option<bool>> {
        if !passkey::counter_goes_up(passkey, result) {
            tracing::warn!(
                %uid,
                "a passkey's signature counter did not go up (a cloned authenticator?): refused"
            );
            return Ok(None);
        }
        passkey.update_credential(result);
        let stored = serde_json::to_string(&*passkey)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("a passkey: {e}")))?;
        if !self
            .mfa
            .factors
            .update_passkey(uid, id, previous, &stored, now_secs())
            .await?
        {
            return Ok(None);
        }
        Ok(Some(passkey::is_synced(passkey)))
    }

    pub(super) async fn begin_passkey_step_flow(&self, mfa_token: &str) -> AppResult<Value> {
        let passkeys = self.passkeys()?;
        let Some(pending) = self.tokens.pending_second_step(mfa_token).await? else {
            return Err(AppError::invalid_token(SIGN_IN_AGAIN));
        };
        let factors = self.mfa.factors.factors(pending.uid).await?;
        let owned: Vec<Passkey> = passkeys_of(&factors).into_iter().map(|(_, p)| p).collect();
        if owned.is_empty() {
            return Err(AppError::Conflict("this account has no passkey".into()));
        }
        let started = passkeys.start_authentication(&owned)?;
        let key = CeremonyKey::User {
            uid: pending.uid,
            challenge: started.challenge,
        };
        self.tokens
            .put_ceremony(&key, &started.state, self.mfa.config.ceremony_ttl)
            .await?;
        Ok(started.options)
    }

    /// Whether `credential` is a right assertion of one of the user's
    /// passkeys for a ceremony of theirs (taken, so it works once): then
    /// whether that passkey may be synced (`swk`). Its counter and backup
    /// state are stored as the assertion left them.
    pub(super) async fn use_passkey(
        &self,
        uid: Uuid,
        credential: &Value,
    ) -> AppResult<Option<bool>> {
        let passkeys = self.passkeys()?;
        let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(credential.clone())
        else {
            return Ok(None);
        };
        let Some(challenge) =
            passkey::challenge_answered(credential.response.client_data_json.as_ref())
        else {
            return Ok(None);
        };
        let key = CeremonyKey::User { uid, challenge };
        let Some(state) = self.tokens.take_ceremony(&key).await? else {
            return Ok(None);
        };
        let result = match passkeys.finish_authentication(&credential, &state)? {
            Ok(result) => result,
            Err(Refused::CounterWentBack) => {
                tracing::warn!(
                    %uid,
                    "a passkey's signature counter did not go up (a cloned authenticator?): refused"
                );
                return Ok(None);
            }
            Err(Refused::Invalid(why)) => {
                tracing::info!(%uid, why, "a passkey assertion was refused");
                return Ok(None);
            }
        };
        let factors = self.mfa.factors.factors(uid).await?;
        let Some((id, mut passkey)) = passkeys_of(&factors)
            .into_iter()
            .find(|(_, p)| p.cred_id() == result.cred_id())
        else {
            // Removed between the start and the finish.
            return Ok(None);
        };
        let Some(previous) = factors
            .iter()
            .find(|f| f.id == id)
            .and_then(|f| f.credential.clone())
        else {
            return Ok(None);
        };
        self.passkey_used(uid, id, &previous, &mut passkey, &result)
            .await
    }
}
