//! Cross-cutting responses: timeout, unknown routes, wrong methods, panics.

use std::any::Any;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// Answers 503 in the JSON shape when a handler takes longer than `limit`.
pub async fn timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => AppError::ServiceUnavailable {
            message: "the request timed out, try again later".into(),
            cause: Some(format!("handler timed out after {limit:?}")),
        }
        .into_response(),
    }
}

pub async fn not_found() -> AppError {
    AppError::NotFound("no such route".into())
}

pub async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// A panic is a bug: answer 500 in the JSON shape (the log says where).
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    AppError::Internal(anyhow::anyhow!("handler panicked: {detail}")).into_response()
}
