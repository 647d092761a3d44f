//! Signing in with a passkey alone (issue 30): a discoverable credential
//! names its user (the user handle is the uid), so no email is asked. The
//! ceremony has no user yet (`CeremonyKey::Anonymous`); each start and each
//! failed finish count on the per-address sign-in limit.

use serde_json::Value;
use webauthn_rs::prelude::{Passkey, PublicKeyCredential};

use super::AccountServiceImpl;
use crate::error::{AppError, AppResult};
use crate::model::{Assurance, CeremonyKey, ClientInfo, TokenPair};
use crate::service::mfa::passkey::{self, Refused};
use crate::verifier::AAL2;

/// The one answer to a passkey that signs nobody in, whatever the reason.
const REFUSED: &str = "this passkey signs nobody in (unknown, removed, or its ceremony is over)";

fn refused() -> AppError {
    AppError::unauthorized(REFUSED)
}

impl AccountServiceImpl {
    pub(super) async fn begin_passkey_sign_in_flow(&self, client: &ClientInfo) -> AppResult<Value> {
        let passkeys = self.passkeys()?;
        self.limits.passkey_attempt(&client.ip).await?;
        let started = passkeys.start_discoverable()?;
        let key = CeremonyKey::Anonymous {
            challenge: started.challenge,
        };
        self.tokens
            .put_ceremony(&key, &started.state, self.mfa.config.ceremony_ttl)
            .await?;
        Ok(started.options)
    }

    pub(super) async fn finish_passkey_sign_in_flow(
        &self,
        credential: &Value,
        client: &ClientInfo,
    ) -> AppResult<TokenPair> {
        let passkeys = self.passkeys()?;
        self.limits.passkey_attempt(&client.ip).await?;
        let credential: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| refused())?;
        let challenge = passkey::challenge_answered(credential.response.client_data_json.as_ref())
            .ok_or_else(refused)?;
        let key = CeremonyKey::Anonymous { challenge };
        let state = self.tokens.take_ceremony(&key).await?.ok_or_else(refused)?;
        let (uid, credential_id) = passkeys.identify(&credential).ok_or_else(refused)?;
        // The passkey as stored, and only while it is that user's: a deleted
        // account's rows went with it.
        let factor = self
            .mfa
            .factors
            .find_passkey(&credential_id)
            .await?
            .filter(|f| f.uid == uid)
            .ok_or_else(refused)?;
        let previous = factor.credential.clone().unwrap_or_default();
        let mut stored: Passkey = serde_json::from_str(&previous)
            .map_err(|_| AppError::Internal(anyhow::anyhow!("a stored passkey does not parse")))?;
        let user = match self.users.get(uid).await {
            Err(AppError::NotFound(_)) => return Err(refused()),
            other => other?,
        };
        let result = match passkeys.finish_discoverable(&credential, &state, &stored)? {
            Ok(result) => result,
            Err(Refused::CounterWentBack) => {
                tracing::warn!(
                    %uid,
                    "a passkey's signature counter did not go up (a cloned authenticator?): refused"
                );
                return Err(refused());
            }
            Err(Refused::Invalid(why)) => {
                tracing::info!(%uid, why, "a password-free passkey assertion was refused");
                return Err(refused());
            }
        };
        // The sign-in gate: what holds for a password holds for a passkey.
        if user.must_verify && !user.email_verified {
            return Err(AppError::EmailNotVerified);
        }
        let Some(synced) = self
            .passkey_used(uid, factor.id, &previous, &mut stored, &result)
            .await?
        else {
            return Err(refused());
        };
        if let Err(err) = self.limits.passkey_succeeded(&client.ip).await {
            tracing::warn!(error = ?err, "cannot give back a passkey sign-in's count");
        }
        let device = if synced { "swk" } else { "hwk" };
        let assurance = Assurance {
            acr: AAL2.to_owned(),
            amr: vec![device.to_owned(), "user".to_owned()],
        };
        self.start_signed_in(&user, client, &assurance).await
    }
}
