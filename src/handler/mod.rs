//! HTTP: the router, extractors, middleware and the thin handlers.
//!
//! Handlers are adapters: they parse and validate input, call one use case of
//! [`AccountService`], and turn the result into a response; every failure
//! leaves in the one JSON error shape (`error.rs` maps [`crate::error::AppError`]
//! to it) and is logged once, by [`crate::web::log_errors`].

mod account;
mod browser;
mod error;
mod extract;
mod flows;
mod health;
mod jwks;
mod mfa;
mod middleware;
mod oauth;
mod openapi;
#[cfg(test)]
mod openapi_tests;
mod pages;
mod passkeys;
mod redirect;
mod sessions;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use extract::{AuthUser, Client, TrustedProxies};
pub use pages::PAGE_PATHS;

use crate::model::{AccountService, ClientService};

/// What every handler can reach: the use cases, behind their trait.
#[derive(Clone)]
pub struct AppState {
    pub account: Arc<dyn AccountService>,
    /// The client-credentials grant (`POST /oauth/token`).
    pub clients: Arc<dyn ClientService>,
}

/// HTTP settings from the configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Base path of the account API, e.g. `/api/account`.
    pub base_path: String,
    pub handler_timeout: Duration,
    pub max_body_bytes: usize,
    /// Whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// `PAGES`: whether the pages for people are served at the root.
    pub pages: bool,
    /// What the pages and the `/browser` routes need to know.
    pub page_options: PageOptions,
}

/// What the pages show and where they may send people, and where the
/// `/browser` routes are served.
#[derive(Debug, Clone)]
pub struct PageOptions {
    /// `PUBLIC_URL`: its origin is the only one the `/browser` routes answer,
    /// and their cookie is `Secure` when it is https.
    pub public_url: String,
    /// `PAGES_TITLE`: the product name in the pages' titles and headings.
    pub title: String,
    /// `REDIRECT_URLS`: where the pages may offer to go back to.
    pub redirect_urls: Vec<url::Url>,
}

/// Every route, each registered with its OpenAPI operation (the handler's
/// `#[utoipa::path]`): the router and the document are built by the same calls.
/// Register routes only here and only with `routes!` (a plain `.route` would be
/// served undocumented; `openapi_tests` reads the router's path table and fails).
fn routes(base_path: &str, pages: bool) -> OpenApiRouter<AppState> {
    let account = OpenApiRouter::new()
        .routes(routes!(account::signup))
        .routes(routes!(account::signin))
        .routes(routes!(account::tokens))
        .routes(routes!(sessions::signout))
        .routes(routes!(account::me, account::delete_me))
        .routes(routes!(account::details))
        .routes(routes!(account::password))
        .routes(routes!(flows::verify_email))
        .routes(routes!(flows::resend_verification))
        .routes(routes!(flows::request_password_reset))
        .routes(routes!(flows::confirm_password_reset))
        .routes(routes!(sessions::list))
        .routes(routes!(sessions::end, sessions::rename))
        .routes(routes!(mfa::second_step))
        .routes(routes!(mfa::enrol_totp))
        .routes(routes!(mfa::confirm_totp))
        .routes(routes!(mfa::list))
        .routes(routes!(mfa::rename, mfa::delete))
        .routes(routes!(mfa::recovery_codes))
        .routes(routes!(passkeys::register_start))
        .routes(routes!(passkeys::register_finish))
        .routes(routes!(passkeys::step_start))
        .routes(routes!(passkeys::sign_in_start))
        .routes(routes!(passkeys::sign_in_finish))
        .routes(routes!(openapi::openapi_json))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(browser::signin))
                .routes(routes!(browser::signup))
                .routes(routes!(browser::tokens))
                .routes(routes!(browser::signout))
                .routes(routes!(mfa::browser_second_step))
                .routes(routes!(passkeys::browser_sign_in_finish))
                .layer(axum::middleware::from_fn(browser::same_origin)),
        );

    let root = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest(base_path, account)
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(jwks::jwks))
        .routes(routes!(oauth::token));
    if !pages {
        return root;
    }
    root.merge(
        OpenApiRouter::new()
            .routes(routes!(pages::signin))
            .routes(routes!(pages::signup))
            .routes(routes!(pages::account))
            .routes(routes!(pages::verify_email))
            .routes(routes!(pages::reset_password))
            .routes(routes!(pages::forgot_password))
            .routes(routes!(pages::style_sheet))
            .routes(routes!(pages::script))
            .routes(routes!(pages::account_script))
            .routes(routes!(pages::factors_script))
            .routes(routes!(pages::icon))
            .layer(axum::middleware::from_fn(pages::page_headers)),
    )
}

/// The OpenAPI document of the app built for `base_path` (pages on): what
/// [`router`] serves at `{base_path}/openapi.json`.
#[cfg(test)]
pub(crate) fn openapi(base_path: &str) -> utoipa::openapi::OpenApi {
    routes(base_path, true).into_openapi()
}

/// The whole HTTP app: account routes and the OpenAPI document under the base
/// path, health and keys at the root, JSON errors for unknown routes and
/// methods, timeout, body limit, request logs.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    let (routes, doc) = routes(&settings.base_path, settings.pages).split_for_parts();
    let doc = openapi::OpenApiJson::new(&doc);

    let timeout = settings.handler_timeout;
    routes
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .with_state(state)
        .layer(Extension(doc))
        .layer(Extension(pages::Pages::render(
            &settings.base_path,
            &settings.page_options,
        )))
        .layer(Extension(browser::BrowserSite::new(
            &settings.page_options.public_url,
            &settings.base_path,
        )))
        .layer(Extension(settings.trusted_proxies.clone()))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(axum::middleware::from_fn(move |req, next| {
            crate::web::timeout(timeout, req, next)
        }))
        .layer(CatchPanicLayer::custom(crate::web::panic_response))
        // Outside the layers that answer errors themselves, so it sees them all.
        .layer(axum::middleware::from_fn(crate::web::log_errors))
        .layer(axum::middleware::from_fn(crate::web::security_headers))
        .layer(
            // Method, path, status and latency only: never headers, bodies or
            // the query string, which carry passwords and tokens.
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                // Failures are logged once, with their cause, by `log_errors`.
                .on_failure(()),
        )
}

/// The access log's span: method and path, without the query string (a
/// client may put `?access_token=…` there).
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        version = ?req.version(),
    )
}
