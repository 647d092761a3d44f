//! Passkeys (issue 29): the WebAuthn ceremonies, verified by `webauthn-rs`
//! (attestation, signatures, origins, counters: none of it by hand here).
//!
//! A ceremony's state is serialised between its start and its finish (the
//! token store keeps it, so any replica finishes it) and is named by its
//! challenge, which the authenticator signs into `clientDataJSON`: the finish
//! reads the challenge back from there to find the state it belongs to.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, DiscoverableAuthentication, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Webauthn, WebauthnBuilder, WebauthnError,
};

use crate::config::RelyingParty;
use crate::error::{AppError, AppResult};

/// The relying party's ceremonies.
pub struct Passkeys {
    webauthn: Webauthn,
}

/// A started ceremony: what the browser gets, and what the finish needs.
#[derive(Debug)]
pub struct Started {
    /// The options `navigator.credentials.create` / `.get` take, as JSON
    /// (`{"publicKey": {…}}`, bytes in base64url).
    pub options: Value,
    /// The ceremony's state, serialised (kept server-side only).
    pub state: String,
    /// The challenge, base64url: the name the state is kept under.
    pub challenge: String,
}

/// Why a finish failed, for the caller to answer and log.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The signature counter did not go up: a cloned authenticator, maybe.
    CounterWentBack,
    /// Anything else: wrong origin, challenge, signature, user verification.
    Invalid(String),
}

fn internal(what: &str, err: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("{what}: {err}"))
}

fn refused(err: WebauthnError) -> Refused {
    match err {
        WebauthnError::CredentialPossibleCompromise => Refused::CounterWentBack,
        other => Refused::Invalid(other.to_string()),
    }
}

/// The challenge of a ceremony's options, as base64url.
fn challenge_of_options(options: &Value) -> AppResult<String> {
    options["publicKey"]["challenge"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| internal("webauthn options", "no challenge"))
}

/// The challenge a credential answers, read from its `clientDataJSON`
/// (`None` when it has none that reads).
pub fn challenge_answered(client_data_json: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ClientData {
        challenge: String,
    }
    serde_json::from_slice::<ClientData>(client_data_json)
        .ok()
        .map(|data| data.challenge)
        .filter(|c| !c.is_empty() && c.len() <= 128)
}

/// A credential's id as stored and compared: base64url, no padding.
pub fn credential_id(passkey: &Passkey) -> String {
    data_encoding::BASE64URL_NOPAD.encode(passkey.cred_id().as_ref())
}

/// Whether the passkey may be synced between devices (backup eligible):
/// `swk` rather than `hwk` in `amr` (RFC 8176).
pub fn is_synced(passkey: &Passkey) -> bool {
    // Its JSON is the one stable view of the flag across webauthn-rs
    // versions without the `danger-credential-internals` feature.
    serde_json::to_value(passkey)
        .ok()
        .and_then(|v| v["cred"]["backup_eligible"].as_bool())
        .unwrap_or(false)
}

/// The signature counter a passkey has stored (0: none).
pub fn counter(passkey: &Passkey) -> u64 {
    serde_json::to_value(passkey)
        .ok()
        .and_then(|v| v["cred"]["counter"].as_u64())
        .unwrap_or(0)
}

/// Whether `result`'s counter may follow the one `stored` has now (the
/// ceremony's copy may be older: another sign-in since): it must go up
/// unless both are 0 (an authenticator without a counter).
pub fn counter_goes_up(stored: &Passkey, result: &AuthenticationResult) -> bool {
    let (stored, seen) = (counter(stored), u64::from(result.counter()));
    (stored == 0 && seen == 0) || seen > stored
}

impl Passkeys {
    /// The ceremonies of `rp`; `Err` says why they cannot run.
    pub fn new(rp: &RelyingParty) -> Result<Self, String> {
        let first = rp.origins.first().ok_or("no origin")?;
        let mut builder = WebauthnBuilder::new(&rp.id, first)
            .map_err(|e| format!("WebAuthn relying party {}: {e}", rp.id))?
            .rp_name(&rp.name)
            .timeout(rp.ceremony_ttl);
        for origin in &rp.origins[1..] {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder
            .build()
            .map_err(|e| format!("WebAuthn relying party {}: {e}", rp.id))?;
        Ok(Self { webauthn })
    }

    /// Registers a passkey of `uid` (its user handle) that can later sign in
    /// without a password: a resident (discoverable) key, user verification
    /// required; `existing` ones are excluded (registered once).
    pub fn start_registration(
        &self,
        uid: Uuid,
        email: &str,
        existing: &[Passkey],
    ) -> AppResult<Started> {
        let exclude =
            (!existing.is_empty()).then(|| existing.iter().map(|p| p.cred_id().clone()).collect());
        let (mut options, state): (CreationChallengeResponse, PasskeyRegistration) = self
            .webauthn
            .start_passkey_registration(uid, email, email, exclude)
            .map_err(|e| internal("webauthn registration", e))?;
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        let options = serde_json::to_value(&options).map_err(|e| internal("options", e))?;
        Ok(Started {
            challenge: challenge_of_options(&options)?,
            state: serde_json::to_string(&state).map_err(|e| internal("state", e))?,
            options,
        })
    }

    /// Checks a registration against its ceremony's `state`.
    pub fn finish_registration(
        &self,
        credential: &RegisterPublicKeyCredential,
        state: &str,
    ) -> AppResult<Result<Passkey, Refused>> {
        let Ok(state) = serde_json::from_str::<PasskeyRegistration>(state) else {
            return Ok(Err(Refused::Invalid("a ceremony of another kind".into())));
        };
        Ok(self
            .webauthn
            .finish_passkey_registration(credential, &state)
            .map_err(refused))
    }

    /// A second step with one of `passkeys`, user verification required.
    pub fn start_authentication(&self, passkeys: &[Passkey]) -> AppResult<Started> {
        let (options, state): (RequestChallengeResponse, PasskeyAuthentication) = self
            .webauthn
            .start_passkey_authentication(passkeys)
            .map_err(|e| internal("webauthn authentication", e))?;
        let options = serde_json::to_value(&options).map_err(|e| internal("options", e))?;
        Ok(Started {
            challenge: challenge_of_options(&options)?,
            state: serde_json::to_string(&state).map_err(|e| internal("state", e))?,
            options,
        })
    }

    /// A sign-in with a passkey alone: any discoverable credential of this
    /// relying party, user verification required. The options drop
    /// `mediation` (webauthn-rs sets `conditional`): a page asks for it where
    /// it wants the browser's autofill.
    pub fn start_discoverable(&self) -> AppResult<Started> {
        let (options, state): (RequestChallengeResponse, DiscoverableAuthentication) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| internal("webauthn discoverable authentication", e))?;
        let mut options = serde_json::to_value(&options).map_err(|e| internal("options", e))?;
        if let Some(options) = options.as_object_mut() {
            options.remove("mediation");
        }
        Ok(Started {
            challenge: challenge_of_options(&options)?,
            state: serde_json::to_string(&state).map_err(|e| internal("state", e))?,
            options,
        })
    }

    /// Whose passkey made `credential`: its user handle (the uid) and its
    /// credential id (base64url).
    pub fn identify(&self, credential: &PublicKeyCredential) -> Option<(Uuid, String)> {
        self.webauthn
            .identify_discoverable_authentication(credential)
            .ok()
            .map(|(uid, id)| (uid, data_encoding::BASE64URL_NOPAD.encode(id)))
    }

    /// Checks a password-free assertion against its ceremony's `state` and
    /// the passkey it names.
    pub fn finish_discoverable(
        &self,
        credential: &PublicKeyCredential,
        state: &str,
        passkey: &Passkey,
    ) -> AppResult<Result<AuthenticationResult, Refused>> {
        let Ok(state) = serde_json::from_str::<DiscoverableAuthentication>(state) else {
            return Ok(Err(Refused::Invalid("a ceremony of another kind".into())));
        };
        Ok(self
            .webauthn
            .finish_discoverable_authentication_v2(credential, state, passkey)
            .map_err(refused))
    }

    /// Checks an assertion against its ceremony's `state`.
    pub fn finish_authentication(
        &self,
        credential: &PublicKeyCredential,
        state: &str,
    ) -> AppResult<Result<AuthenticationResult, Refused>> {
        let Ok(state) = serde_json::from_str::<PasskeyAuthentication>(state) else {
            return Ok(Err(Refused::Invalid("a ceremony of another kind".into())));
        };
        Ok(self
            .webauthn
            .finish_passkey_authentication(credential, &state)
            .map_err(refused))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rp(origin: &str) -> RelyingParty {
        RelyingParty {
            id: "localhost".into(),
            name: "Account".into(),
            origins: vec![url::Url::parse(origin).unwrap()],
            ceremony_ttl: Duration::from_secs(300),
        }
    }

    #[test]
    fn registration_asks_for_a_resident_key_verified_by_the_user() {
        let passkeys = Passkeys::new(&rp("http://localhost:8080")).unwrap();
        let started = passkeys
            .start_registration(Uuid::new_v4(), "ada@example.com", &[])
            .unwrap();
        let selection = &started.options["publicKey"]["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required");
        assert_eq!(selection["requireResidentKey"], true);
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(started.options["publicKey"]["rp"]["id"], "localhost");
        assert_eq!(started.challenge.len(), 43, "32 bytes, base64url");
        assert!(!started.state.is_empty());
        // The challenge names the state: a client's clientDataJSON gives it back.
        let client_data = format!(
            r#"{{"type":"webauthn.create","challenge":"{}","origin":"http://localhost:8080"}}"#,
            started.challenge
        );
        assert_eq!(
            challenge_answered(client_data.as_bytes()).as_deref(),
            Some(started.challenge.as_str())
        );
        assert_eq!(challenge_answered(b"not json"), None);
        assert_eq!(challenge_answered(br#"{"challenge":""}"#), None);
    }

    #[test]
    fn an_ip_address_is_no_relying_party() {
        let mut party = rp("http://127.0.0.1:8080");
        party.id = "127.0.0.1".into();
        assert!(Passkeys::new(&party).is_err());
    }
}
