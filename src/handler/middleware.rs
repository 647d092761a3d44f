//! Cross-cutting responses of the account API: unknown routes and wrong
//! methods. The handler timeout and the panic answer are shared with the
//! todo service ([`crate::web::timeout`], [`crate::web::panic_response`]).

use crate::error::AppError;

pub async fn not_found() -> AppError {
    AppError::NotFound("no such route".into())
}

pub async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
