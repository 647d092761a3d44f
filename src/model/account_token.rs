//! Single-use tokens of the account flows (issue 10): the link of a
//! verification mail and of a password-reset mail.
//!
//! A token is 32 random bytes, base64url without padding (43 characters),
//! sent in a link and never stored: the user store keeps its SHA-256 only,
//! with the user, its purpose, the address it was sent to and its expiry.
//! A user has at most one live token per purpose: storing a new one replaces
//! the older (a newer reset request, a resend, an email change).

use uuid::Uuid;

/// What a token is for; stored as `verify` or `reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Proves the address of a verification mail (`POST /verify-email`).
    Verify,
    /// Proves the address of a reset mail (`POST /password-reset/confirm`).
    Reset,
}

impl TokenPurpose {
    /// The stored name (the `purpose` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Reset => "reset",
        }
    }
}

/// A token as the user store keeps it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountToken {
    /// SHA-256 of the token's text.
    pub token_hash: Vec<u8>,
    pub uid: Uuid,
    pub purpose: TokenPurpose,
    /// The address the token was sent to: what redeeming it proves.
    pub email: String,
    /// Unix seconds; the token works while the clock is before it.
    pub expires_at: u64,
    /// Unix seconds.
    pub created_at: u64,
}

/// What a live token proves: the person reads mail at `email`, the address
/// of user `uid` when the token was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHolder {
    pub uid: Uuid,
    pub email: String,
}
