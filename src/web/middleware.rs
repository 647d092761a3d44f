//! Middleware both services install: the handler timeout (503) and the panic
//! answer (500), each in the one JSON error shape.

use std::any::Any;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ErrorKind};

/// Answers 503 in the JSON shape when a handler takes longer than `limit`.
/// Installed with `axum::middleware::from_fn(move |req, next| timeout(limit,
/// req, next))`. The body was received before the request got here (see
/// [`super::serve`]), so the time counts the handling only: a slow client is
/// a 408, not a 503.
pub async fn timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorKind::ServiceUnavailable,
            "the request timed out, try again later",
        )
        .with_cause(format!("handler timed out after {limit:?}"))
        .into_response(),
    }
}

/// A panic is a bug: answer 500 in the JSON shape (the cause, logged once by
/// [`super::log_errors`], says where). For `CatchPanicLayer::custom`.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::new(ErrorKind::Internal, "internal server error")
        .with_cause(format!("handler panicked: {detail}"))
        .into_response()
}
