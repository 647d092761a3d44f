//! Machine clients of the client-credentials grant (issue 11, RFC 6749 §4.4).
//!
//! A client is registered with `account clients add`: its id is `cl_` and 16
//! random bytes in base64url (never a UUID, so a client can never pass for a
//! user), its secret `cs_` and 32 random bytes in base64url, shown once; the
//! user store keeps the secret's SHA-256 only.

use crate::secret::Secret;

/// A registered client as the store keeps it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub name: String,
    /// SHA-256 of the secret's text.
    pub secret_hash: Vec<u8>,
    /// The scopes the client may ask for, space-separated (RFC 6749 §3.3).
    pub scope: String,
    /// Unix seconds.
    pub created_at: u64,
}

impl OAuthClient {
    /// The client's scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }
}

/// A newly registered client: its id and its secret, shown only this once.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: String,
}

/// An access token issued to a client.
#[derive(Debug, Clone)]
pub struct ClientToken {
    pub access_token: Secret,
    /// Seconds.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
}

/// Why a token request was refused (RFC 6749 §5.2), or that the stores failed.
#[derive(Debug)]
pub enum ClientTokenError {
    /// Unknown client, wrong secret: 401 `invalid_client`.
    InvalidClient,
    /// A requested scope the client does not have: 400 `invalid_scope`.
    InvalidScope(String),
    /// The store or the signer failed (503 or 500 in the service's shape).
    Failed(crate::error::AppError),
}

impl From<crate::error::AppError> for ClientTokenError {
    fn from(err: crate::error::AppError) -> Self {
        Self::Failed(err)
    }
}
