//! The one error a client of any of our services sees, and the one place it
//! is logged.
//!
//! [`ApiError`] is the public side of a failure: a stable machine-readable
//! type, a human message, field errors, and the headers a status calls for
//! (`WWW-Authenticate`, `Retry-After`). What must not reach the client (the
//! cause of a 500 or a 503) travels with the response as an extension and is
//! logged once by [`log_errors`], never where the error is built.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The public error types, one per status. More may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 400: malformed or invalid input (field errors in `invalidArgs`).
    BadRequest,
    /// 401: missing or invalid credentials.
    Authorization,
    /// 401: a rotated refresh token presented again after its grace window;
    /// the session has been ended.
    RefreshTokenReused,
    /// 401: the token verifies, but its sign-in is not strong or recent
    /// enough for the request (RFC 9470 step-up).
    InsufficientUserAuthentication,
    /// 403: a re-authentication (current password) failed.
    Forbidden,
    /// 403: the right password of an account that must confirm its email
    /// address (`EMAIL_CONFIRMATION=required`) and has not yet.
    EmailNotVerified,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 408: the request (its body) did not arrive in time; the connection
    /// is closed.
    RequestTimeout,
    /// 409
    Conflict,
    /// 413
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 431: a request head over 16 KiB or 100 header fields; the
    /// connection is closed.
    RequestHeaderFieldsTooLarge,
    /// 429
    TooManyRequests,
    /// 503: a store is down or the request timed out.
    ServiceUnavailable,
    /// 500: a bug.
    Internal,
}

impl ErrorKind {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Authorization
            | Self::RefreshTokenReused
            | Self::InsufficientUserAuthentication => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::EmailNotVerified => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestHeaderFieldsTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `type` of the error body.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BAD_REQUEST",
            Self::Authorization => "AUTHORIZATION",
            Self::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            Self::InsufficientUserAuthentication => "INSUFFICIENT_USER_AUTHENTICATION",
            Self::Forbidden => "FORBIDDEN",
            Self::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::Conflict => "CONFLICT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::RequestHeaderFieldsTooLarge => "REQUEST_HEADER_FIELDS_TOO_LARGE",
            Self::TooManyRequests => "TOO_MANY_REQUESTS",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }
}

/// A field that failed validation, as listed in `invalidArgs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct InvalidArg {
    /// The field of the request body, as spelled there.
    #[cfg_attr(feature = "server", schema(example = "email"))]
    pub field: String,
    /// What is wrong with it.
    #[cfg_attr(
        feature = "server",
        schema(example = "email must be a valid email address")
    )]
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

/// The body of every error response, whatever its status or its origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "server",
    schema(example = json!({"error": {"type": "CONFLICT", "message": "email already registered"}}))
)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Stable and machine-readable: `BAD_REQUEST` (400), `AUTHORIZATION` (401),
    /// `REFRESH_TOKEN_REUSED` (401), `FORBIDDEN` (403), `EMAIL_NOT_VERIFIED` (403), `NOT_FOUND` (404), `METHOD_NOT_ALLOWED` (405),
    /// `REQUEST_TIMEOUT` (408), `CONFLICT` (409),
    /// `PAYLOAD_TOO_LARGE` (413), `UNSUPPORTED_MEDIA_TYPE` (415),
    /// `TOO_MANY_REQUESTS` (429), `REQUEST_HEADER_FIELDS_TOO_LARGE` (431), `SERVICE_UNAVAILABLE` (503), `INTERNAL` (500).
    #[serde(rename = "type")]
    #[cfg_attr(feature = "server", schema(example = "CONFLICT"))]
    pub kind: String,
    /// For humans; not meant to be parsed.
    #[cfg_attr(feature = "server", schema(example = "email already registered"))]
    pub message: String,
    /// The fields that failed validation, on a 400 for field errors only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid_args: Vec<InvalidArg>,
}

/// An error response: the public part, the headers its status calls for, and
/// a cause that is logged but never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
    invalid_args: Vec<InvalidArg>,
    challenge: Option<std::borrow::Cow<'static, str>>,
    retry_after_secs: Option<u64>,
    cause: Option<String>,
}

/// `WWW-Authenticate` for a request without usable credentials (RFC 6750).
pub const BEARER_CHALLENGE: &str = "Bearer";
/// `WWW-Authenticate` for a token that was presented but does not verify.
pub const INVALID_TOKEN_CHALLENGE: &str = r#"Bearer error="invalid_token""#;

impl ApiError {
    /// An error of `kind` with a message for the client.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            invalid_args: Vec::new(),
            challenge: None,
            retry_after_secs: None,
            cause: None,
        }
    }

    /// A 400 listing field errors.
    pub fn invalid_args(invalid_args: Vec<InvalidArg>) -> Self {
        Self {
            invalid_args,
            ..Self::new(ErrorKind::BadRequest, "invalid request parameters")
        }
    }

    /// A 400 without field errors.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// A 401 for a request that carries no usable credentials
    /// (`WWW-Authenticate: Bearer`).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Authorization, message).with_challenge(BEARER_CHALLENGE)
    }

    /// A 401 for a token that was presented but does not verify
    /// (`WWW-Authenticate: Bearer error="invalid_token"`).
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Authorization, message).with_challenge(INVALID_TOKEN_CHALLENGE)
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// A 405.
    pub fn method_not_allowed() -> Self {
        Self::new(ErrorKind::MethodNotAllowed, "method not allowed")
    }

    /// A 413.
    pub fn payload_too_large() -> Self {
        Self::new(ErrorKind::PayloadTooLarge, "request body is too large")
    }

    /// A 415.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            ErrorKind::UnsupportedMediaType,
            "expected a JSON body with Content-Type: application/json",
        )
    }

    /// The field errors of a 400 (`invalidArgs`).
    pub fn field_errors(&self) -> &[InvalidArg] {
        &self.invalid_args
    }

    /// Sets the `WWW-Authenticate` challenge.
    pub fn with_challenge(mut self, challenge: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.challenge = Some(challenge.into());
        self
    }

    /// Sets `Retry-After`, in seconds.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Attaches what caused it, for the log only.
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The body clients receive.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                kind: self.kind.as_str().to_owned(),
                message: self.message.clone(),
                invalid_args: self.invalid_args.clone(),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// What [`log_errors`] logs of an error response; carried as a response
/// extension from where the response is built.
#[derive(Debug, Clone)]
struct ErrorReport {
    kind: ErrorKind,
    message: String,
    cause: Option<String>,
    /// Whether the client was told when to come back (`Retry-After`).
    retry_after: bool,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.kind.status(), Json(self.body())).into_response();
        let headers = response.headers_mut();
        if let Some(challenge) = self
            .challenge
            .and_then(|challenge| HeaderValue::from_str(&challenge).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(ErrorReport {
            kind: self.kind,
            message: self.message,
            cause: self.cause,
            retry_after: self.retry_after_secs.is_some(),
        });
        response
    }
}

/// Middleware: logs every error response once, with its cause: a 500 as an
/// error, a 503 as a warning, a client error at debug level. A 503 with
/// `Retry-After` is load shed on purpose (a full queue): one line per request
/// would let a flood flood the log too, so it goes at debug level and the
/// queue warns itself, at most now and then. Install it outside every layer
/// that can answer an error (timeout, panic catcher).
pub async fn log_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    if let Some(report) = response.extensions().get::<ErrorReport>() {
        let kind = report.kind.as_str();
        let message = &report.message;
        let cause = report.cause.as_deref().unwrap_or("");
        match report.kind {
            ErrorKind::Internal => {
                tracing::error!(%method, %path, kind, message, cause, "request failed")
            }
            ErrorKind::ServiceUnavailable if report.retry_after => {
                tracing::debug!(%method, %path, kind, message, cause, "request shed")
            }
            ErrorKind::ServiceUnavailable => {
                tracing::warn!(%method, %path, kind, message, cause, "request failed")
            }
            _ => tracing::debug!(%method, %path, kind, message, cause, "request refused"),
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use serde_json::{Value, json};

    use super::*;

    async fn body_of(response: Response) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn the_error_body_lists_invalid_args_only_when_there_are_any() {
        let response = ApiError::not_found("no such todo").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body_of(response).await,
            json!({"error": {"type": "NOT_FOUND", "message": "no such todo"}})
        );
        let response =
            ApiError::invalid_args(vec![InvalidArg::new("title", "is required")]).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_of(response).await,
            json!({"error": {
                "type": "BAD_REQUEST",
                "message": "invalid request parameters",
                "invalidArgs": [{"field": "title", "message": "is required"}],
            }})
        );
    }

    #[tokio::test]
    async fn challenges_and_retry_after_become_headers_and_the_cause_stays_out_of_the_body() {
        let response = ApiError::invalid_token("the token has expired")
            .with_cause("secret detail")
            .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            INVALID_TOKEN_CHALLENGE
        );
        let body = body_of(response).await;
        assert!(!body.to_string().contains("secret detail"), "{body}");

        let response = ApiError::new(ErrorKind::TooManyRequests, "too many requests")
            .with_retry_after(7)
            .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[cfg(feature = "server")]
    #[tokio::test]
    async fn an_error_response_is_logged_once_with_its_cause_which_never_reaches_the_client() {
        use axum::Router;
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt as _;

        let app = Router::new()
            .route(
                "/down",
                get(|| async {
                    ApiError::new(ErrorKind::ServiceUnavailable, "token store is unavailable")
                        .with_cause("redis: connection refused")
                }),
            )
            .layer(axum::middleware::from_fn(log_errors));
        let request = Request::get("/down").body(Body::empty()).unwrap();
        let (response, logs) = crate::test_logs::logged_during(app.oneshot(request)).await;
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = body_of(response).await;
        assert_eq!(
            body,
            json!({"error": {"type": "SERVICE_UNAVAILABLE", "message": "token store is unavailable"}})
        );
        assert_eq!(
            logs.matches("redis: connection refused").count(),
            1,
            "{logs}"
        );
        assert!(logs.contains("WARN"), "{logs}");
        assert!(logs.contains("/down"), "{logs}");
    }

    #[cfg(feature = "server")]
    #[tokio::test]
    async fn a_503_that_sheds_load_with_retry_after_is_no_warning() {
        use axum::Router;
        use axum::body::Body;
        use axum::http::Request;
        use axum::routing::get;
        use tower::ServiceExt as _;

        let app = Router::new()
            .route(
                "/busy",
                get(|| async {
                    ApiError::new(ErrorKind::ServiceUnavailable, "the service is busy")
                        .with_retry_after(1)
                }),
            )
            .layer(axum::middleware::from_fn(log_errors));
        let request = Request::get("/busy").body(Body::empty()).unwrap();
        let (response, logs) = crate::test_logs::logged_during(app.oneshot(request)).await;
        assert_eq!(response.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!logs.contains("WARN"), "{logs}");
        assert!(logs.contains("DEBUG"), "{logs}");
    }

    #[test]
    fn every_kind_has_its_documented_status_and_type() {
        for (kind, status, name) in [
            (ErrorKind::BadRequest, 400, "BAD_REQUEST"),
            (ErrorKind::Authorization, 401, "AUTHORIZATION"),
            (ErrorKind::RefreshTokenReused, 401, "REFRESH_TOKEN_REUSED"),
            (ErrorKind::Forbidden, 403, "FORBIDDEN"),
            (ErrorKind::EmailNotVerified, 403, "EMAIL_NOT_VERIFIED"),
            (
                ErrorKind::InsufficientUserAuthentication,
                401,
                "INSUFFICIENT_USER_AUTHENTICATION",
            ),
            (ErrorKind::NotFound, 404, "NOT_FOUND"),
            (ErrorKind::MethodNotAllowed, 405, "METHOD_NOT_ALLOWED"),
            (ErrorKind::RequestTimeout, 408, "REQUEST_TIMEOUT"),
            (ErrorKind::Conflict, 409, "CONFLICT"),
            (ErrorKind::PayloadTooLarge, 413, "PAYLOAD_TOO_LARGE"),
            (
                ErrorKind::UnsupportedMediaType,
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
            (ErrorKind::TooManyRequests, 429, "TOO_MANY_REQUESTS"),
            (
                ErrorKind::RequestHeaderFieldsTooLarge,
                431,
                "REQUEST_HEADER_FIELDS_TOO_LARGE",
            ),
            (ErrorKind::ServiceUnavailable, 503, "SERVICE_UNAVAILABLE"),
            (ErrorKind::Internal, 500, "INTERNAL"),
        ] {
            assert_eq!(kind.status().as_u16(), status, "{name}");
            assert_eq!(kind.as_str(), name);
        }
    }
}
