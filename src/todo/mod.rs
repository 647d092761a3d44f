//! The example domain service: a todo list per user, protected by nothing but
//! the account service's ID tokens, checked offline with [`crate::verifier`].
//!
//! | method + path | success |
//! |---|---|
//! | `GET /api/todos` | `200 {"todos": [...]}`, the caller's own, oldest first |
//! | `POST /api/todos` `{title}` | `201` the new todo |
//! | `GET /api/todos/{id}` | `200` the todo |
//! | `PATCH /api/todos/{id}` `{title?, completed?}` | `200` the updated todo |
//! | `DELETE /api/todos/{id}` | `204` |
//! | `GET /healthz` | `200 {"status": "ok"}` (no token needed) |
//!
//! A todo is `{"id": UUID, "title", "completed", "createdAt": Unix seconds}`.
//! Every `/api/todos` route needs `Authorization: Bearer <ID token>` (401
//! otherwise). Another user's todo, like an id that is not a UUID, is 404,
//! never 403. A title is 1 to 200 characters after trimming (400 with
//! `invalidArgs`); bodies must be JSON objects (415 for another content type,
//! 400 when malformed, 413 over 16 KiB). Errors use the product's JSON shape.
//! Todos live in memory and are gone when the process stops.
//!
//! Behind the `todo-example` feature (on by default), so domain services
//! depending on `features = ["verifier"]` build none of it.

mod handlers;
mod store;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;

pub use handlers::MAX_TITLE_CHARS;
pub use store::{Todo, TodoChanges, TodoStore};

use crate::verifier::{ConfigError, Verifier};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Defaults of the todo service's variables.
pub mod defaults {
    pub const HOST: &str = "127.0.0.1";
    pub const TODO_PORT: u16 = 8081;
}

/// What the handlers reach: the verifier (for [`crate::verifier::AuthenticatedUser`])
/// and the todos.
#[derive(Clone, FromRef)]
pub struct TodoState {
    pub verifier: Verifier,
    pub store: Arc<TodoStore>,
}

/// The todo service's routes, with an empty store.
pub fn router(verifier: Verifier) -> Router {
    router_with_store(verifier, Arc::default())
}

/// The todo service's routes over `store`.
pub fn router_with_store(verifier: Verifier, store: Arc<TodoStore>) -> Router {
    Router::new()
        .route("/api/todos", get(handlers::list).post(handlers::create))
        .route(
            "/api/todos/{id}",
            get(handlers::get)
                .patch(handlers::update)
                .delete(handlers::delete),
        )
        .route("/healthz", get(handlers::healthz))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(TodoState { verifier, store })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(crate::web::log_errors))
        .layer(axum::middleware::from_fn(log_request))
}

/// Method, path, status and latency; never headers (they carry tokens).
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Where to listen and how to verify tokens.
#[derive(Debug, Clone)]
pub struct TodoConfig {
    pub host: String,
    pub port: u16,
    pub verifier: Verifier,
}

impl TodoConfig {
    /// `HOST` (default `127.0.0.1`), `TODO_PORT` (default 8081), and the
    /// verifier's variables (see [`Verifier::from_env`]). Errors name the
    /// variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`TodoConfig::from_env`] with the variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let host = var("HOST")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|| defaults::HOST.to_owned());
        if host.is_empty() {
            return Err(ConfigError::new("HOST: must not be empty"));
        }
        let port = match var("TODO_PORT") {
            None => defaults::TODO_PORT,
            Some(port) => port.trim().parse().map_err(|_| {
                ConfigError::new(format!("TODO_PORT: expected a port number, got {port:?}"))
            })?,
        };
        Ok(Self {
            host,
            port,
            verifier: Verifier::from_vars(var)?,
        })
    }
}

/// Binds `HOST:TODO_PORT` and serves until SIGINT or SIGTERM, finishing
/// in-flight requests.
pub async fn run(config: TodoConfig) -> std::io::Result<()> {
    let listener = TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "HOST, TODO_PORT: cannot listen on {}:{}: {e}",
                    config.host, config.port
                ),
            )
        })?;
    serve(listener, config.verifier, crate::web::shutdown_signal()).await
}

/// Serves the todo routes on `listener` until `shutdown` completes. The
/// verification keys are fetched in the background right away, so the first
/// request does not wait for them (a failure is logged and retried on use).
pub async fn serve(
    listener: TcpListener,
    verifier: Verifier,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let warm = verifier.clone();
    tokio::spawn(async move {
        if let Ok(keys) = warm.refresh_keys().await {
            tracing::info!(keys, "verification keys ready");
        }
    });
    tracing::info!(address = %listener.local_addr()?, "todo service listening");
    axum::serve(listener, router(verifier))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("stopped");
    Ok(())
}
