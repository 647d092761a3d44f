//! Pages for people, at the root: the pages the mails link to
//! (`/verify-email`, `/reset-password`) and `/forgot-password`, with their
//! style sheet and script under `/assets/`. All of it is compiled into the
//! binary (the files beside this one); nothing comes from a third party.
//!
//! A page is static HTML rendered once, at start-up, with the API's base
//! path; its script reads the token of the link, removes it from the
//! address bar, and calls the JSON API of the same origin. A GET never uses
//! a token up: mail scanners and link previews open links before people do,
//! so only a press of the page's button (a POST of the API) does.
//!
//! Every page carries [`CONTENT_SECURITY_POLICY`] (no inline script or
//! style, nothing from elsewhere, no framing) and `Referrer-Policy:
//! no-referrer` (the links carry tokens). `PAGES=off` leaves them out.

use std::sync::Arc;

use axum::Extension;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::openapi::tags;

/// The policy of every page: this origin only, no inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; \
     base-uri 'none'";

/// The paths the pages take at the root (the API's base path must not be
/// one of them, nor a prefix of one).
pub const PAGE_PATHS: [&str; 4] = [
    "/verify-email",
    "/reset-password",
    "/forgot-password",
    "/assets",
];

const LAYOUT: &str = include_str!("pages/page.html");
const CSS: &str = include_str!("pages/assets/pages.css");
const SCRIPT: &str = include_str!("pages/assets/pages.js");
const ICON: &str = include_str!("pages/assets/icon.svg");

/// The three pages, rendered once for the API's base path.
#[derive(Debug)]
pub struct Pages {
    verify_email: String,
    reset_password: String,
    forgot_password: String,
}

impl Pages {
    /// The pages of a service whose API is at `api_base` (e.g. `/api/account`).
    pub fn render(api_base: &str) -> Arc<Self> {
        let page = |name: &str, title: &str, body: &str| {
            LAYOUT
                .replace("{{api}}", &escape(api_base))
                .replace("{{page}}", name)
                .replace("{{title}}", title)
                .replace("{{body}}", body.trim_end())
        };
        Arc::new(Self {
            verify_email: page(
                "verify-email",
                "Verify your email address",
                include_str!("pages/verify-email.body.html"),
            ),
            reset_password: page(
                "reset-password",
                "Set a new password",
                include_str!("pages/reset-password.body.html"),
            ),
            forgot_password: page(
                "forgot-password",
                "Forgot your password?",
                include_str!("pages/forgot-password.body.html"),
            ),
        })
    }
}

/// `text` for an HTML attribute value.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn html(page: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.to_owned(),
    )
        .into_response()
}

/// Middleware of the page routes: the policy and the referrer rule (the
/// other headers every response has are set for all routes).
pub async fn page_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /verify-email?token=…`
#[utoipa::path(
    get,
    path = "/verify-email",
    tag = tags::PAGES,
    summary = "The page a verification link opens",
    description = "One button, \"Verify my email\": pressing it calls `POST \
                   {base}/verify-email` with the link's token and shows the outcome, with \
                   a way to ask for a new link when this one was used, expired or \
                   replaced. Opening the page uses nothing up. The script removes the \
                   token from the address bar once it has read it.",
    params(("token" = Option<String>, Query, description = "The token of the mailed link")),
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub async fn verify_email(Extension(pages): Extension<Arc<Pages>>) -> Response {
    html(&pages.verify_email)
}

/// `GET /reset-password?token=…`
#[utoipa::path(
    get,
    path = "/reset-password",
    tag = tags::PAGES,
    summary = "The page a password-reset link opens",
    description = "A new-password form (the password twice, the API's rules, errors next \
                   to the field) that calls `POST {base}/password-reset/confirm`: on success \
                   every session ends, as the API does.",
    params(("token" = Option<String>, Query, description = "The token of the mailed link")),
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub async fn reset_password(Extension(pages): Extension<Arc<Pages>>) -> Response {
    html(&pages.reset_password)
}

/// `GET /forgot-password`
#[utoipa::path(
    get,
    path = "/forgot-password",
    tag = tags::PAGES,
    summary = "Ask for a password-reset link",
    description = "An email form that calls `POST {base}/password-reset`: the same answer \
                   whether or not an account has the address.",
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub async fn forgot_password(Extension(pages): Extension<Arc<Pages>>) -> Response {
    html(&pages.forgot_password)
}

/// `GET /assets/pages.css`
#[utoipa::path(
    get,
    path = "/assets/pages.css",
    tag = tags::PAGES,
    summary = "The pages' style sheet",
    responses((status = 200, description = "The style sheet", content_type = "text/css", body = String))
)]
pub async fn style_sheet() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /assets/pages.js`
#[utoipa::path(
    get,
    path = "/assets/pages.js",
    tag = tags::PAGES,
    summary = "The pages' script",
    responses((status = 200, description = "The script", content_type = "text/javascript", body = String))
)]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /assets/icon.svg`
#[utoipa::path(
    get,
    path = "/assets/icon.svg",
    tag = tags::PAGES,
    summary = "The pages' icon",
    responses((status = 200, description = "The icon", content_type = "image/svg+xml", body = String))
)]
pub async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidated on every use: a new release's script is never mixed
            // with an older page.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_name_the_api_base_and_load_nothing_inline() {
        let pages = Pages::render("/api/v2\"<x>");
        for page in [
            &pages.verify_email,
            &pages.reset_password,
            &pages.forgot_password,
        ] {
            assert!(
                page.contains(r#"<meta name="api-base" content="/api/v2&quot;&lt;x&gt;">"#),
                "{page}"
            );
            assert!(!page.contains("{{"), "unrendered placeholder in {page}");
            assert!(
                !page.contains("<script>") && !page.contains("style="),
                "{page}"
            );
            assert!(page.contains(r#"<script src="/assets/pages.js" defer></script>"#));
        }
        assert!(pages.verify_email.contains(r#"id="verify""#));
        assert!(pages.reset_password.contains(r#"id="confirm""#));
        assert!(pages.forgot_password.contains(r#"id="email""#));
    }
}
