//! Second factors: a user's authenticator factors and recovery codes.

use uuid::Uuid;

/// What kind of second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorKind {
    /// An authenticator app's six-digit codes (RFC 6238).
    Totp,
    /// A passkey (WebAuthn): a key pair on an authenticator.
    WebAuthn,
}

impl FactorKind {
    /// The name stored and shown (`"totp"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::WebAuthn => "webauthn",
        }
    }

    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "totp" => Some(Self::Totp),
            "webauthn" => Some(Self::WebAuthn),
            _ => None,
        }
    }

    /// The `amr` of a sign-in with the password and this factor (RFC 8176);
    /// a passkey that may be synced between devices is `swk`, else `hwk`.
    pub fn amr(self, synced: bool) -> Vec<String> {
        match self {
            Self::Totp => ["pwd", "otp", "mfa"],
            Self::WebAuthn if synced => ["pwd", "swk", "mfa"],
            Self::WebAuthn => ["pwd", "hwk", "mfa"],
        }
        .map(str::to_owned)
        .to_vec()
    }
}

/// One factor of a user. `secret` is sealed with the data key; `Debug`
/// leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub struct Factor {
    pub id: Uuid,
    pub uid: Uuid,
    pub kind: FactorKind,
    /// The name its user gave it, if any (the session-name rules).
    pub name: Option<String>,
    /// The shared secret, sealed with the data key (the id as context).
    pub secret: Vec<u8>,
    /// Unix seconds.
    pub created_at: u64,
    /// `None` while pending (enrolment started, no code confirmed yet).
    pub confirmed_at: Option<u64>,
    pub last_used_at: Option<u64>,
    /// The last TOTP step a code was accepted for.
    pub last_step: Option<u64>,
    /// A passkey's credential (webauthn-rs's JSON: public key, counter,
    /// backup flags); not secret. `None` for other kinds.
    pub credential: Option<String>,
    /// A passkey's credential id, base64url (unique among passkeys).
    pub credential_id: Option<String>,
}

impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factor")
            .field("id", &self.id)
            .field("uid", &self.uid)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("created_at", &self.created_at)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_used_at", &self.last_used_at)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// What a right password answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// No second factor: the session's first pair.
    Tokens(super::TokenPair),
    /// A second factor is needed: present the code with this mfa token.
    SecondFactor(MfaChallenge),
}

/// The second step a sign-in waits for.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    /// The mfa token (`POST /signin/mfa`).
    pub token: String,
    /// Seconds it lives (`MFA_TOKEN_EXP`).
    pub expires_in: u64,
    /// What the user can answer with: `totp`, `recovery_code`.
    pub methods: Vec<SecondFactorMethod>,
}

impl std::fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallenge")
            .field("expires_in", &self.expires_in)
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

/// How a second step is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactorMethod {
    /// A six-digit code of an authenticator factor.
    Totp,
    /// One of the recovery codes.
    RecoveryCode,
    /// A passkey's assertion.
    #[serde(rename = "webauthn")]
    WebAuthn,
}

impl SecondFactorMethod {
    /// The `amr` of a sign-in with the password and this (RFC 8176);
    /// `synced`: a passkey that may be synced (`swk`).
    pub fn amr(self, synced: bool) -> Vec<String> {
        match self {
            Self::Totp => FactorKind::Totp.amr(false),
            Self::WebAuthn => FactorKind::WebAuthn.amr(synced),
            Self::RecoveryCode => vec!["pwd".to_owned(), "mfa".to_owned()],
        }
    }
}

/// A started authenticator enrolment: what the app needs, shown once.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    pub id: Uuid,
    /// The secret in base32, for typing in.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code, SVG.
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A confirmed factor: the recovery codes (with the account's first
/// factor only, shown once) and how many other sessions ended.
#[derive(Clone, PartialEq, Eq)]
pub struct FactorConfirmed {
    pub recovery_codes: Option<Vec<String>>,
    pub sessions_ended: u64,
}

impl std::fmt::Debug for FactorConfirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactorConfirmed")
            .field("sessions_ended", &self.sessions_ended)
            .finish_non_exhaustive()
    }
}

/// A user's confirmed factors and how many recovery codes are left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorList {
    pub factors: Vec<Factor>,
    pub recovery_codes_left: u64,
}

/// A pending two-step sign-in, as its mfa token names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    pub uid: Uuid,
    pub id: Uuid,
    /// The fingerprint of the password hash the first step checked: a
    /// password changed since ends the pending sign-in.
    pub credential: String,
}

/// Where the state of one WebAuthn ceremony (passkeys, issue 29) waits
/// between its start and its finish, in the token store: named by the
/// ceremony's challenge (base64url, as the authenticator's `clientDataJSON`
/// carries it back), so any replica finishes it, and taken once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CeremonyKey {
    /// A user's ceremony (registering a passkey, or a second step):
    /// `<uid>:webauthn:<challenge>`, among the user's keys (sign-out
    /// everywhere removes it).
    User { uid: Uuid, challenge: String },
    /// A sign-in with a passkey alone, before anyone is known:
    /// `webauthn:auth:<challenge>`.
    Anonymous { challenge: String },
}

/// What answers a second step: a code (`totp`, `recovery_code`), or a
/// passkey's assertion (`webauthn`, the JSON of the browser's
/// `PublicKeyCredential`, checked by the service).
#[derive(Debug, Clone, PartialEq)]
pub enum SecondFactorProof {
    Code(String),
    Credential(serde_json::Value),
}
