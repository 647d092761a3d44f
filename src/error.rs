//! The one application error type, shared by every layer and mapped once to HTTP.
//!
//! Clients see a stable, machine-readable `type` and a human `message`; causes
//! (SQL, Redis, I/O) are logged here and never returned.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A field that failed validation, as returned in `invalidArgs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InvalidArg {
    /// The field of the request body, as spelled there.
    #[schema(example = "email")]
    pub field: String,
    /// What is wrong with it.
    #[schema(example = "email must be a valid email address")]
    pub message: String,
}

impl InvalidArg {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every failure the service can report, one variant per public error type.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: malformed or invalid input; `invalid_args` lists field errors.
    #[error("{message}")]
    BadRequest {
        message: String,
        invalid_args: Vec<InvalidArg>,
    },
    /// 401: missing or invalid credentials. `invalid_token` selects the
    /// `WWW-Authenticate: Bearer error="invalid_token"` form (RFC 6750).
    #[error("{message}")]
    Authorization {
        message: String,
        invalid_token: bool,
    },
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 405
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409
    #[error("{0}")]
    Conflict(String),
    /// 413
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429, with `Retry-After` in seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// 503: a store is down or the handler timed out. The string is public.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// 500: a bug. The cause is logged, the client gets a generic message.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Result alias used across the layers.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// A 400 with a list of field errors.
    pub fn invalid_args(invalid_args: Vec<InvalidArg>) -> Self {
        Self::BadRequest {
            message: "invalid request parameters".into(),
            invalid_args,
        }
    }

    /// A 400 without field errors.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            invalid_args: Vec::new(),
        }
    }

    /// A 401 for a request that carries no usable credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Authorization {
            message: message.into(),
            invalid_token: false,
        }
    }

    /// A 401 for a token that was presented but does not verify.
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::Authorization {
            message: message.into(),
            invalid_token: true,
        }
    }

    /// A 503 for a store that does not answer; `cause` is logged, not returned.
    pub fn store_unavailable(store: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(store, error = %cause, "store unavailable");
        Self::ServiceUnavailable(format!("{store} is unavailable, try again later"))
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Authorization { .. } => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable type of the error body.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "BAD_REQUEST",
            Self::Authorization { .. } => "AUTHORIZATION",
            Self::NotFound(_) => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Conflict(_) => "CONFLICT",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Self::TooManyRequests { .. } => "TOO_MANY_REQUESTS",
            Self::ServiceUnavailable(_) => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

/// The body of every error response, whatever its status.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"type": "CONFLICT", "message": "email already registered"}}))]
pub struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail<'a> {
    /// Stable and machine-readable: `BAD_REQUEST` (400), `AUTHORIZATION` (401),
    /// `NOT_FOUND` (404), `METHOD_NOT_ALLOWED` (405), `CONFLICT` (409),
    /// `PAYLOAD_TOO_LARGE` (413), `UNSUPPORTED_MEDIA_TYPE` (415),
    /// `TOO_MANY_REQUESTS` (429), `SERVICE_UNAVAILABLE` (503), `INTERNAL` (500).
    #[serde(rename = "type")]
    #[schema(example = "CONFLICT")]
    kind: &'a str,
    /// For humans; not meant to be parsed.
    #[schema(example = "email already registered")]
    message: String,
    /// The fields that failed validation, on a 400 for field errors only.
    #[serde(skip_serializing_if = "<[InvalidArg]>::is_empty")]
    invalid_args: &'a [InvalidArg],
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let message = match &self {
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let invalid_args: &[InvalidArg] = match &self {
            Self::BadRequest { invalid_args, .. } => invalid_args,
            _ => &[],
        };
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind(),
                message,
                invalid_args,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Authorization { invalid_token, .. } => {
                let value = if *invalid_token {
                    r#"Bearer error="invalid_token""#
                } else {
                    "Bearer"
                };
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
            }
            Self::TooManyRequests { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}
