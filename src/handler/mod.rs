//! HTTP: the router, extractors, middleware and the thin handlers.
//!
//! Handlers parse and validate input, call a service, and turn the result into
//! a response; every failure leaves as [`crate::error::AppError`]'s JSON shape.

mod account;
mod extract;
mod health;
mod jwks;
mod middleware;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use extract::{AppJson, AuthUser};

use crate::model::{TokenService, UserService};

/// What every handler can reach: the services, behind their traits.
#[derive(Clone)]
pub struct AppState {
    pub user_service: Arc<dyn UserService>,
    pub token_service: Arc<dyn TokenService>,
}

/// HTTP settings from the configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Base path of the account API, e.g. `/api/account`.
    pub base_path: String,
    pub handler_timeout: Duration,
    pub max_body_bytes: usize,
}

/// The whole HTTP app: account routes under the base path, health at the root,
/// JSON errors for unknown routes and methods, timeout, body limit, request logs.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    let account = Router::new()
        .route("/signup", post(account::signup))
        .route("/signin", post(account::signin))
        .route("/tokens", post(account::tokens))
        .route("/signout", post(account::signout))
        .route("/me", get(account::me))
        .route("/details", put(account::details));

    let timeout = settings.handler_timeout;
    Router::new()
        .nest(&settings.base_path, account)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/.well-known/jwks.json", get(jwks::jwks))
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(axum::middleware::from_fn(move |req, next| {
            middleware::timeout(timeout, req, next)
        }))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(
            // Method, path, status and latency only: never headers or bodies,
            // which carry passwords and tokens.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}
