//! What every page response carries, read with a plain HTTP client: HTML,
//! the Content Security Policy that allows only the service's own scripts,
//! styles and images, and no referrer (a page's address holds a token).

use std::collections::BTreeSet;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY};

use crate::app::{App, Backend};

/// The policy of every page, one directive per item (compared as a set).
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

fn directives(policy: &str) -> BTreeSet<String> {
    policy
        .split(';')
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|d| !d.is_empty())
        .collect()
}

/// Asserts that `response` (to `what`) is a page: 200, HTML, the pages'
/// CSP and `Referrer-Policy: no-referrer`.
pub fn assert_page_headers(what: &str, response: &reqwest::Response) {
    assert_eq!(response.status(), StatusCode::OK, "GET {what}");
    let header = |name| {
        response
            .headers()
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("GET {what}: no {name} in {:?}", response.headers()))
            .to_owned()
    };
    let content_type = header(CONTENT_TYPE);
    assert!(
        content_type.starts_with("text/html"),
        "GET {what}: Content-Type {content_type}"
    );
    assert_eq!(
        directives(&header(CONTENT_SECURITY_POLICY)),
        directives(PAGE_CSP),
        "GET {what}: Content-Security-Policy"
    );
    assert_eq!(
        header(REFERRER_POLICY),
        "no-referrer",
        "GET {what}: Referrer-Policy"
    );
}

#[tokio::test]
async fn every_page_has_the_security_headers() {
    let _turn = crate::turn().await;
    let app = App::start(Backend::Embedded, "every_page_has_the_security_headers")
        .await
        .expect("the embedded stores are always there");
    // Tokens that were never issued: a GET uses none anyway.
    let token = "A".repeat(43);
    for path in [
        format!("/verify-email?token={token}"),
        format!("/reset-password?token={token}"),
        "/forgot-password".to_owned(),
        "/signin".to_owned(),
        "/signup?redirect_to=https%3A%2F%2Fapp.example.com%2F".to_owned(),
        "/account".to_owned(),
    ] {
        let response = app.http.get(app.url(&path)).send().await.expect("request");
        assert_page_headers(&path, &response);
    }
}

#[test]
fn directives_ignore_order_and_spacing() {
    assert_eq!(
        directives("base-uri 'none';default-src  'self' ;"),
        directives("default-src 'self'; base-uri 'none'")
    );
    assert_ne!(directives(PAGE_CSP), directives("default-src 'self'"));
}
