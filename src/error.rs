//! The one application error type, shared by every layer.
//!
//! It knows nothing of HTTP: `handler::error` maps it to a status and the
//! product's error body at the edge, and the response boundary logs it once.
//! Causes (SQL, Redis, I/O) travel inside it for that log and are never
//! returned to clients.

use crate::verifier::VerifyError;
pub use crate::web::InvalidArg;

/// Every failure the service can report, one variant per public error type.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed or invalid input; `invalid_args` lists field errors.
    #[error("{message}")]
    BadRequest {
        message: String,
        invalid_args: Vec<InvalidArg>,
    },
    /// Missing or invalid credentials. `invalid_token` tells a token that was
    /// presented and refused from a request that carried none.
    #[error("{message}")]
    Authorization {
        message: String,
        invalid_token: bool,
    },
    /// A rotated refresh token presented again after its grace window: the
    /// session has been ended.
    #[error("refresh token was already used; the session has been ended")]
    RefreshTokenReused,
    /// The token verifies but its sign-in is not strong or recent enough
    /// (RFC 9470): sign in again, with the second factor.
    #[error("{}", .0.message())]
    StepUp(crate::verifier::StepUp),
    /// A re-authentication failed (wrong current password).
    #[error("{0}")]
    Forbidden(String),
    /// The right password of an account that must confirm its email address
    /// (`EMAIL_CONFIRMATION=required`) and has not yet.
    #[error("{EMAIL_NOT_VERIFIED}")]
    EmailNotVerified,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many attempts; try again after `retry_after_secs`.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// Too much work queued (password hashing): try again after
    /// `retry_after_secs`. Answered at once, never after a wait.
    #[error("the service is busy, try again shortly")]
    Overloaded { retry_after_secs: u64 },
    /// A store is down or the request timed out. `message` is public,
    /// `cause` is only logged.
    #[error("{message}")]
    ServiceUnavailable {
        message: String,
        cause: Option<String>,
    },
    /// A bug. The cause is logged, the client gets a generic message.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Result alias used across the layers.
pub type AppResult<T> = Result<T, AppError>;

/// The one answer to a refresh token that cannot be used, whatever the reason
/// (bad signature, used, revoked, signed out, user gone).
pub const REFRESH_TOKEN_REFUSED: &str = "refresh token is invalid, used or revoked";

impl AppError {
    /// Field errors.
    pub fn invalid_args(invalid_args: Vec<InvalidArg>) -> Self {
        Self::BadRequest {
            message: "invalid request parameters".into(),
            invalid_args,
        }
    }

    /// Bad input without field errors.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            invalid_args: Vec::new(),
        }
    }

    /// A request that carries no usable credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Authorization {
            message: message.into(),
            invalid_token: false,
        }
    }

    /// A token that was presented but does not verify.
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::Authorization {
            message: message.into(),
            invalid_token: true,
        }
    }

    /// Unavailable for a reason the client may read in full.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::ServiceUnavailable {
            message: message.into(),
            cause: None,
        }
    }

    /// A store that does not answer; `cause` is logged, not returned.
    pub fn store_unavailable(store: &str, cause: &dyn std::fmt::Display) -> Self {
        Self::ServiceUnavailable {
            message: format!("{store} is unavailable, try again later"),
            cause: Some(format!("{store}: {cause}")),
        }
    }
}

/// The answer to [`AppError::EmailNotVerified`].
pub const EMAIL_NOT_VERIFIED: &str = "the email address is not verified yet: open the link \
     mailed to it (POST /verify-email/resend with {\"email\"} sends a new one)";

/// An ID token the validator refused.
impl From<VerifyError> for AppError {
    fn from(err: VerifyError) -> Self {
        match err {
            VerifyError::KeysUnavailable => Self::unavailable(err.to_string()),
            other => Self::invalid_token(other.to_string()),
        }
    }
}
