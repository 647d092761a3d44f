//! The pages for people (`PAGES=on`, the default): served at the root with
//! their headers, their assets compiled in, a GET of a mailed link using
//! nothing up; `PAGES=off` serves none of them. What a person does on them
//! runs in a real browser in `tests/browser/`.

use serde_json::Value;

use crate::helpers::{Backend, PUBLIC_URL, nth_mail_to, spawn_app, token_in, unique_email};
use crate::smtp_sink::SmtpSink;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

const PAGES: [&str; 6] = [
    "/signin",
    "/signup?redirect_to=https://evil.example",
    "/account",
    "/verify-email?token=abc",
    "/reset-password?token=abc",
    "/forgot-password",
];

#[tokio::test]
async fn every_page_is_html_with_its_policy_and_no_referrer() {
    let app = spawn_app!(Backend::Embedded, &[]);
    for page in PAGES {
        let response = app
            .client
            .get(format!("{}{page}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{page}");
        let headers = response.headers().clone();
        assert_eq!(
            headers["content-type"], "text/html; charset=utf-8",
            "{page}"
        );
        assert_eq!(headers["content-security-policy"], CSP, "{page}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{page}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{page}");
        assert_eq!(headers["cache-control"], "no-store", "{page}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains(r#"<meta name="api-base" content="/api/account">"#),
            "{page}: {body}"
        );
        assert!(!body.contains("<script>"), "{page}: no inline script");
    }
    for (asset, content_type) in [
        ("/assets/pages.css", "text/css; charset=utf-8"),
        ("/assets/pages.js", "text/javascript; charset=utf-8"),
        ("/assets/account.js", "text/javascript; charset=utf-8"),
        ("/assets/factors.js", "text/javascript; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let response = app
            .client
            .get(format!("{}{asset}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(response.headers()["content-type"], content_type);
        assert_eq!(response.headers()["content-security-policy"], CSP);
    }
    for unknown in ["/", "/assets/other.js", "/assets/../Cargo.toml"] {
        let response = app
            .client
            .get(format!("{}{unknown}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{unknown}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "NOT_FOUND", "{unknown}");
    }
}

#[tokio::test]
async fn with_pages_off_no_page_is_served_and_the_api_is_unchanged() {
    let app = spawn_app!(Backend::Embedded, &[("PAGES", "off")]);
    for page in PAGES.iter().copied().chain([
        "/assets/pages.css",
        "/assets/pages.js",
        "/assets/account.js",
        "/assets/factors.js",
        "/assets/icon.svg",
    ]) {
        let response = app
            .client
            .get(format!("{}{page}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{page}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "NOT_FOUND", "{page}");
    }
    let email = unique_email();
    app.signup(&email).await;
    // The browser routes are the API's: a team's own pages use them.
    let response = app
        .client
        .post(app.url("/browser/tokens"))
        .header("origin", app.address.replace("127.0.0.1", "localhost"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "no cookie, but answered");
}

/// The `content` of the meta element `name` in `page`.
fn meta(page: &str, name: &str) -> String {
    let start = format!(r#"<meta name="{name}" content=""#);
    let at = page
        .find(&start)
        .unwrap_or_else(|| panic!("{name} in {page}"))
        + start.len();
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn the_pages_show_pages_title_and_carry_only_an_allowed_redirect() {
    let app = spawn_app!(
        Backend::Embedded,
        &[
            ("PAGES_TITLE", "Example <Cloud>"),
            (
                "REDIRECT_URLS",
                "https://app.example.com/home,http://localhost:3000"
            ),
        ]
    );
    let page = |path: String| {
        let app = &app;
        async move {
            let response = app
                .client
                .get(format!("{}{path}", app.address))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.text().await.unwrap()
        }
    };
    let signin = page("/signin".into()).await;
    assert!(signin.contains(r#"<html lang="en">"#));
    assert!(
        signin.contains("<title>Sign in · Example &lt;Cloud&gt;</title>"),
        "{signin}"
    );
    assert_eq!(meta(&signin, "redirect-to"), "");
    for (path, allowed) in [
        (
            "/signin?redirect_to=https%3A%2F%2Fapp.example.com%2Fhome%2Forders%3Fid%3D7",
            "https://app.example.com/home/orders?id=7",
        ),
        (
            "/verify-email?token=abc&redirect_to=http://localhost:3000/welcome",
            "http://localhost:3000/welcome",
        ),
        (
            "/reset-password?redirect_to=https://app.example.com/home&token=abc",
            "https://app.example.com/home",
        ),
    ] {
        assert_eq!(
            meta(&page(path.into()).await, "redirect-to"),
            allowed,
            "{path}"
        );
    }
    for foreign in [
        "https://app.example.com.evil.net/home",
        "https://app.example.com@evil.net/home",
        "https://app.example.com/homepage",
        "//evil.net",
        "javascript:alert(1)",
        "http://localhost:3001/",
        "%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
    ] {
        let body = page(format!("/signin?redirect_to={foreign}")).await;
        assert_eq!(meta(&body, "redirect-to"), "", "{foreign}");
        assert!(!body.contains("evil.net") && !body.contains("<script>alert"));
    }
}

/// Mail scanners and link previews fetch links before people open them: a
/// GET of the page never uses the token; the press (the API call) does.
#[tokio::test]
async fn opening_a_mailed_link_uses_nothing_up() {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(
        Backend::Embedded,
        &[("SMTP_URL", &smtp), ("PUBLIC_URL", PUBLIC_URL)]
    );
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let token = token_in(&nth_mail_to(&sink, &email, 1).await, "/verify-email");
    for _ in 0..2 {
        let page = app
            .client
            .get(format!("{}/verify-email?token={token}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
    }
    assert_eq!(app.me_user(&tokens.id_token).await["emailVerified"], false);
    assert_eq!(app.verify_email(&token).await.status(), 204);
    assert_eq!(app.me_user(&tokens.id_token).await["emailVerified"], true);
}
