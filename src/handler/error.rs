//! The edge: [`AppError`] becomes a status, headers and the product's error
//! body ([`ApiError`]); its cause rides along to be logged once by
//! [`crate::web::log_errors`].

use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::web::{ApiError, ErrorKind};

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::BadRequest {
                message,
                invalid_args,
            } if invalid_args.is_empty() => ApiError::bad_request(message),
            AppError::BadRequest { invalid_args, .. } => ApiError::invalid_args(invalid_args),
            AppError::Authorization {
                message,
                invalid_token: true,
            } => ApiError::invalid_token(message),
            AppError::Authorization { message, .. } => ApiError::unauthorized(message),
            err @ AppError::RefreshTokenReused => {
                ApiError::new(ErrorKind::RefreshTokenReused, err.to_string())
                    .with_challenge(crate::web::INVALID_TOKEN_CHALLENGE)
            }
            AppError::StepUp(step_up) => ApiError::from(step_up),
            AppError::Forbidden(message) => ApiError::new(ErrorKind::Forbidden, message),
            err @ AppError::EmailNotVerified => {
                ApiError::new(ErrorKind::EmailNotVerified, err.to_string())
            }
            AppError::NotFound(message) => ApiError::not_found(message),
            AppError::MethodNotAllowed => ApiError::method_not_allowed(),
            AppError::Conflict(message) => ApiError::new(ErrorKind::Conflict, message),
            AppError::PayloadTooLarge(message) => {
                ApiError::new(ErrorKind::PayloadTooLarge, message)
            }
            AppError::UnsupportedMediaType(message) => {
                ApiError::new(ErrorKind::UnsupportedMediaType, message)
            }
            err @ AppError::TooManyRequests { retry_after_secs } => {
                ApiError::new(ErrorKind::TooManyRequests, err.to_string())
                    .with_retry_after(retry_after_secs)
            }
            err @ AppError::Overloaded { retry_after_secs } => {
                ApiError::new(ErrorKind::ServiceUnavailable, err.to_string())
                    .with_retry_after(retry_after_secs)
            }
            AppError::ServiceUnavailable { message, cause } => {
                let err = ApiError::new(ErrorKind::ServiceUnavailable, message);
                match cause {
                    Some(cause) => err.with_cause(cause),
                    None => err,
                }
            }
            AppError::Internal(cause) => {
                ApiError::new(ErrorKind::Internal, "internal server error")
                    .with_cause(format!("{cause:#}"))
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
