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
use super::{PageOptions, redirect};
use axum::http::Uri;

/// The policy of every page: this origin only, no inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; \
     base-uri 'none'";

/// The paths the pages take at the root (the API's base path must not be
/// one of them, nor a prefix of one).
pub const PAGE_PATHS: [&str; 7] = [
    "/signin",
    "/signup",
    "/account",
    "/verify-email",
    "/reset-password",
    "/forgot-password",
    "/assets",
];

const LAYOUT: &str = include_str!("pages/page.html");
const CSS: &str = include_str!("pages/assets/pages.css");
/// `/assets/pages.js`: the pages' script, then the passkeys of `/signin` and
/// `/account` (a file of its own, acting on those two pages only).
const SCRIPT: &str = concat!(
    include_str!("pages/assets/pages.js"),
    "\n",
    include_str!("pages/assets/passkeys.js")
);
const ACCOUNT_SCRIPT: &str = include_str!("pages/assets/account.js");
const FACTORS_SCRIPT: &str = include_str!("pages/assets/factors.js");
const ICON: &str = include_str!("pages/assets/icon.svg");

/// Where a rendered page takes the accepted `?redirect_to=`.
const REDIRECT: &str = "{{redirect}}";

/// The pages, rendered once for the API's base path and the product name;
/// only the accepted `?redirect_to=` is filled in per request.
#[derive(Debug)]
pub struct Pages {
    signin: String,
    signup: String,
    account: String,
    verify_email: String,
    reset_password: String,
    forgot_password: String,
    redirect_urls: Vec<url::Url>,
}

impl Pages {
    /// The pages of a service whose API is at `api_base` (e.g. `/api/account`).
    pub fn render(api_base: &str, options: &PageOptions) -> Arc<Self> {
        let product = escape(&options.title);
        let page = |name: &str, title: &str, body: &str| {
            let scripts = if name == "account" {
                "<script src=\"/assets/account.js\" defer></script>\n\
                 <script src=\"/assets/factors.js\" defer></script>"
            } else {
                ""
            };
            LAYOUT
                .replace("{{api}}", &escape(api_base))
                .replace("{{page}}", name)
                .replace("{{scripts}}", scripts)
                .replace("{{title}}", title)
                .replace("{{product}}", &product)
                .replace("{{body}}", body.trim_end())
        };
        Arc::new(Self {
            signin: page("signin", "Sign in", include_str!("pages/signin.body.html")),
            signup: page(
                "signup",
                "Create an account",
                include_str!("pages/signup.body.html"),
            ),
            account: page(
                "account",
                "Your account",
                include_str!("pages/account.body.html"),
            ),
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
            redirect_urls: options.redirect_urls.clone(),
        })
    }

    /// `page` with the `redirect_to` of its query, if `REDIRECT_URLS`
    /// allows it, in its `redirect-to` meta element (empty otherwise).
    fn with_redirect(&self, page: &str, query: Option<&str>) -> Response {
        let accepted = query
            .and_then(|query| {
                url::form_urlencoded::parse(query.as_bytes())
                    .find(|(name, _)| name == "redirect_to")
                    .map(|(_, value)| value.into_owned())
            })
            .and_then(|raw| redirect::accepted(&raw, &self.redirect_urls));
        let value = accepted.map(|url| escape(url.as_str())).unwrap_or_default();
        html(page.replace(REDIRECT, &value))
    }
}

/// `text` for an HTML attribute value or text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('{', "&#123;")
}

fn html(page: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The account page shows who is signed in: never from a cache.
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
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

/// The query parameter every page takes.
const REDIRECT_TO: &str = "Where to offer \"Continue\" once done: used only if it is one of \
     `REDIRECT_URLS` (same scheme, host and port, and the entry's path or one below it), \
     ignored otherwise";

/// `GET /signin`
#[utoipa::path(
    get,
    path = "/signin",
    tag = tags::PAGES,
    summary = "Sign in",
    description = "An email and password form that calls `POST {base}/browser/signin`: the \
                   refresh token goes into an `HttpOnly` cookie, the ID token stays in page \
                   memory. Then on to `/account`, or \"Continue\" to an accepted \
                   `redirect_to`. For an account with a second factor, a second step asks for \
                   a code of the authenticator app or a recovery code (`POST \
                   {base}/browser/signin/mfa`). Offers \"forgot password\" and, for an address \
                   not verified yet, a new verification link.",
    params(("redirect_to" = Option<String>, Query, description = REDIRECT_TO)),
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub async fn signin(Extension(pages): Extension<Arc<Pages>>, uri: Uri) -> Response {
    pages.with_redirect(&pages.signin, uri.query())
}

/// `GET /signup`
#[utoipa::path(
    get,
    path = "/signup",
    tag = tags::PAGES,
    summary = "Create an account",
    description = "An email and password form that calls `POST {base}/browser/signup`: \
                   signed in at once (`EMAIL_CONFIRMATION=optional`), or told to follow the \
                   mailed link (`required`).",
    params(("redirect_to" = Option<String>, Query, description = REDIRECT_TO)),
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub async fn signup(Extension(pages): Extension<Arc<Pages>>, uri: Uri) -> Response {
    pages.with_redirect(&pages.signup, uri.query())
}

/// `GET /account`
#[utoipa::path(
    get,
    path = "/account",
    tag = tags::PAGES,
    summary = "The account page",
    description = "For a person signed in through the `/browser` routes (a reload rotates \
                   from the cookie; without one, on to `/signin`): the profile and its \
                   edit (an email change asks for the current password), a new \
                   verification link, the password change, the sessions (device, address, \
                   created, last used, this device, names; name one, end one, end all \
                   others), two-step sign-in (add an authenticator app from its QR code or \
                   key, the recovery codes shown once with a download, rename or remove a \
                   factor, new recovery codes), sign-out, and deleting the account (current \
                   password, then a confirmation).",
    params(("redirect_to" = Option<String>, Query, description = REDIRECT_TO)),
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub async fn account(Extension(pages): Extension<Arc<Pages>>, uri: Uri) -> Response {
    pages.with_redirect(&pages.account, uri.query())
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
    params(
        ("token" = Option<String>, Query, description = "The token of the mailed link"),
        ("redirect_to" = Option<String>, Query, description = REDIRECT_TO),
    ),
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub async fn verify_email(Extension(pages): Extension<Arc<Pages>>, uri: Uri) -> Response {
    pages.with_redirect(&pages.verify_email, uri.query())
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
    params(
        ("token" = Option<String>, Query, description = "The token of the mailed link"),
        ("redirect_to" = Option<String>, Query, description = REDIRECT_TO),
    ),
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub async fn reset_password(Extension(pages): Extension<Arc<Pages>>, uri: Uri) -> Response {
    pages.with_redirect(&pages.reset_password, uri.query())
}

/// `GET /forgot-password`
#[utoipa::path(
    get,
    path = "/forgot-password",
    tag = tags::PAGES,
    summary = "Ask for a password-reset link",
    description = "An email form that calls `POST {base}/password-reset`: the same answer \
                   whether or not an account has the address.",
    params(("redirect_to" = Option<String>, Query, description = REDIRECT_TO)),
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub async fn forgot_password(Extension(pages): Extension<Arc<Pages>>, uri: Uri) -> Response {
    pages.with_redirect(&pages.forgot_password, uri.query())
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

/// `GET /assets/account.js`
#[utoipa::path(
    get,
    path = "/assets/account.js",
    tag = tags::PAGES,
    summary = "The account page's script",
    responses((status = 200, description = "The script", content_type = "text/javascript", body = String))
)]
pub async fn account_script() -> Response {
    asset("text/javascript; charset=utf-8", ACCOUNT_SCRIPT)
}

/// `GET /assets/factors.js`
#[utoipa::path(
    get,
    path = "/assets/factors.js",
    tag = tags::PAGES,
    summary = "The account page's two-step sign-in script",
    responses((status = 200, description = "The script", content_type = "text/javascript", body = String))
)]
pub async fn factors_script() -> Response {
    asset("text/javascript; charset=utf-8", FACTORS_SCRIPT)
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

    fn options(redirect_urls: &[&str]) -> PageOptions {
        PageOptions {
            public_url: "http://localhost:8080".into(),
            title: "Example <Cloud>".into(),
            redirect_urls: redirect_urls
                .iter()
                .map(|u| url::Url::parse(u).unwrap())
                .collect(),
        }
    }

    fn all(pages: &Pages) -> [&String; 6] {
        [
            &pages.signin,
            &pages.signup,
            &pages.account,
            &pages.verify_email,
            &pages.reset_password,
            &pages.forgot_password,
        ]
    }

    #[test]
    fn the_pages_name_the_api_base_and_the_product_and_load_nothing_inline() {
        let pages = Pages::render("/api/v2\"<x>", &options(&[]));
        for page in all(&pages) {
            assert!(
                page.contains(r#"<meta name="api-base" content="/api/v2&quot;&lt;x&gt;">"#),
                "{page}"
            );
            assert!(page.contains(r#"<html lang="en">"#), "{page}");
            assert!(page.contains("Example &lt;Cloud&gt;</title>"), "{page}");
            assert!(
                page.contains(r#"<meta name="redirect-to" content="{{redirect}}">"#),
                "{page}"
            );
            let rest = page.replace(REDIRECT, "");
            assert!(!rest.contains("{{"), "unrendered placeholder in {page}");
            assert!(
                !page.contains("<script>") && !page.contains("style="),
                "{page}"
            );
            assert!(page.contains(r#"<script src="/assets/pages.js" defer></script>"#));
        }
        assert!(
            pages
                .account
                .contains(r#"<script src="/assets/account.js" defer></script>"#)
        );
        assert!(
            pages
                .account
                .contains(r#"<script src="/assets/factors.js" defer></script>"#)
        );
        assert!(!pages.signin.contains("account.js") && !pages.signin.contains("factors.js"));
        assert!(pages.signin.contains(r#"autocomplete="one-time-code""#));
        // Passkeys: the autofill on the email field, the buttons.
        assert!(pages.signin.contains(r#"autocomplete="username webauthn""#));
        assert!(pages.signin.contains(r#"id="passkey-signin""#));
        assert!(pages.signin.contains(r#"id="use-passkey""#));
        assert!(pages.account.contains(r#"id="add-passkey""#));
        assert!(pages.verify_email.contains(r#"id="verify""#));
        assert!(pages.reset_password.contains(r#"id="confirm""#));
        assert!(pages.forgot_password.contains(r#"id="email""#));
    }

    #[test]
    fn the_pages_script_carries_the_passkeys_after_its_own() {
        let own = include_str!("pages/assets/pages.js");
        let passkeys = include_str!("pages/assets/passkeys.js");
        assert!(SCRIPT.starts_with(own));
        assert!(SCRIPT.ends_with(passkeys));
        assert!(passkeys.contains("parseRequestOptionsFromJSON"));
    }

    async fn redirect_of(pages: &Pages, query: &str) -> String {
        let response = pages.with_redirect(&pages.signin, Some(query));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let page = String::from_utf8(body.to_vec()).unwrap();
        let start = page.find(r#"<meta name="redirect-to" content=""#).unwrap() + 34;
        let end = start + page[start..].find('"').unwrap();
        page[start..end].to_owned()
    }

    #[tokio::test]
    async fn only_an_allowed_redirect_reaches_the_page() {
        let pages = Pages::render("/api/account", &options(&["https://app.example.com/home"]));
        assert_eq!(
            redirect_of(
                &pages,
                "redirect_to=https%3A%2F%2Fapp.example.com%2Fhome%2Fx%3Fa%3D1%26b%3D%22"
            )
            .await,
            "https://app.example.com/home/x?a=1&amp;b=%22"
        );
        for query in [
            "",
            "redirect_to=",
            "redirect_to=https://app.example.com.evil.net/home",
            "redirect_to=https://app.example.com@evil.net/home",
            "redirect_to=%22%3E%3Cscript%3E",
            "token=x",
        ] {
            assert_eq!(redirect_of(&pages, query).await, "", "{query}");
        }
    }
}
