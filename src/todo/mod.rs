//! The example domain service: a todo list per user, protected by nothing but
//! the account service's ID tokens, checked offline with [`crate::verifier`].
//!
//! | method + path | success |
//! |---|---|
//! | `GET /api/todos` | `200 {"todos": [...]}`, the caller's own, oldest first |
//! | `POST /api/todos` `{title}` | `201` the new todo; `409 CONFLICT` when the caller already has `TODO_MAX_PER_USER` |
//! | `GET /api/todos/{id}` | `200` the todo |
//! | `PATCH /api/todos/{id}` `{title?, completed?}` | `200` the updated todo |
//! | `DELETE /api/todos/{id}` | `204` |
//! | `GET /api/todos/count` | `200 {"count": n}`, all users' todos: only for a client's access token with scope `todos:read` |
//! | `GET /healthz` | `200 {"status": "ok"}` (no token needed) |
//!
//! A todo is `{"id": UUID, "title", "completed", "createdAt": Unix seconds}`.
//! Every other `/api/todos` route needs `Authorization: Bearer <ID token>`
//! (401 otherwise, a client's access token included). `/api/todos/count`
//! takes a client's access token (the client-credentials grant of the account
//! service): a user's ID token is 401 there, a client token without
//! `todos:read` 403 `insufficient_scope`. Another user's todo, like an id that is not a UUID, is 404,
//! never 403. A title is 1 to 200 characters after trimming (400 with
//! `invalidArgs`); bodies must be JSON objects (415 for another content type,
//! 400 when malformed, 413 over 16 KiB, 408 when not received within
//! `BODY_READ_TIMEOUT`). A handler slower than `HANDLER_TIMEOUT` answers 503,
//! a panic 500. Errors use the product's JSON shape. Connections are bounded
//! as the account service's are ([`crate::web::serve`]). Todos live in memory
//! and are gone when the process stops.
//!
//! Its settings, with their defaults and bounds, are [`settings`]
//! (`todo-service --help` prints them; `docs/configuration.md` lists them).
//!
//! Behind the `todo-example` feature (on by default), so domain services
//! depending on `features = ["verifier"]` build none of it.

mod config;
mod handlers;
mod store;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

pub use config::{SETTINGS, TodoConfig, TodoSettings, defaults, limits, settings};
pub use handlers::{MAX_TITLE_CHARS, TodosRead};
pub use store::{Todo, TodoChanges, TodoStore, TooManyTodos};

use crate::verifier::Verifier;
use crate::web::serve::{RESERVED_FILES, ServeSettings, reserve_open_files};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the handlers reach: the verifier (for [`crate::verifier::AuthenticatedUser`])
/// and the todos.
#[derive(Clone, FromRef)]
pub struct TodoState {
    pub verifier: Verifier,
    pub store: Arc<TodoStore>,
}

/// The todo service's routes, with an empty store and the default settings.
pub fn router(verifier: Verifier) -> Router {
    router_with_store(verifier, Arc::default())
}

/// The todo service's routes over `store`, with the default handler timeout.
pub fn router_with_store(verifier: Verifier, store: Arc<TodoStore>) -> Router {
    router_with(
        verifier,
        store,
        Duration::from_secs(defaults::HANDLER_TIMEOUT),
    )
}

/// The todo service's routes over `store`: handlers slower than
/// `handler_timeout` answer 503, a panic 500, both in the JSON shape.
pub fn router_with(verifier: Verifier, store: Arc<TodoStore>, handler_timeout: Duration) -> Router {
    Router::new()
        .route(
            "/api/todos",
            get(handlers::list)
                .post(handlers::create)
                .delete(handlers::delete_all),
        )
        .route("/api/todos/count", get(handlers::count))
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
        .layer(axum::middleware::from_fn(move |req, next| {
            crate::web::timeout(handler_timeout, req, next)
        }))
        .layer(CatchPanicLayer::custom(crate::web::panic_response))
        // Outside the layers that answer errors themselves, so it sees them all.
        .layer(axum::middleware::from_fn(crate::web::log_errors))
        .layer(axum::middleware::from_fn(crate::web::security_headers))
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

/// Raises the open-files limit (refusing a `MAX_CONNECTIONS` that does not
/// fit it), binds `HOST:TODO_PORT` and serves until SIGINT or SIGTERM,
/// finishing in-flight requests.
pub async fn run(config: TodoConfig) -> std::io::Result<()> {
    reserve_open_files(config.settings.connections.max_connections, RESERVED_FILES)
        .map_err(std::io::Error::other)?;
    let listener = crate::web::listen((config.host.as_str(), config.port))
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
    serve_with(
        listener,
        config.verifier,
        config.settings,
        crate::web::shutdown_signal(),
    )
    .await
}

/// [`serve_with`] with the default settings.
pub async fn serve(
    listener: TcpListener,
    verifier: Verifier,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, verifier, TodoSettings::default(), shutdown).await
}

/// Serves the todo routes on `listener` until `shutdown` completes, then
/// finishes the requests in flight. The verification keys are fetched in the
/// background right away, so the first request does not wait for them (a
/// failure is logged and retried on use).
pub async fn serve_with(
    listener: TcpListener,
    verifier: Verifier,
    settings: TodoSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let warm = verifier.clone();
    tokio::spawn(async move {
        if let Ok(keys) = warm.refresh_keys().await {
            tracing::info!(keys, "verification keys ready");
        }
    });
    tracing::info!(address = %listener.local_addr()?, "todo service listening");
    let store = Arc::new(TodoStore::with_max_per_user(settings.max_todos_per_user));
    let app = router_with(verifier, store, settings.handler_timeout);
    let serve = ServeSettings {
        limits: settings.connections,
        max_body_bytes: MAX_BODY_BYTES,
    };
    crate::web::serve::serve(listener, app, serve, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}
