//! The pages for people (`PAGES=on`, the default): served at the root with
//! their headers, their assets compiled in, a GET of a mailed link using
//! nothing up; `PAGES=off` serves none of them. What a person does on them
//! runs in a real browser in `tests/browser/`.

use serde_json::Value;

use crate::helpers::{Backend, PUBLIC_URL, nth_mail_to, spawn_app, token_in, unique_email};
use crate::smtp_sink::SmtpSink;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

const PAGES: [&str; 3] = [
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
    for page in
        PAGES
            .iter()
            .copied()
            .chain(["/assets/pages.css", "/assets/pages.js", "/assets/icon.svg"])
    {
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
