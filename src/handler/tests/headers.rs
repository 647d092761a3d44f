//! What every response carries for the browser and every cache in between,
//! and what the access log keeps of a request.

use super::*;
use crate::error::AppError;
use crate::jwks::JwkSet;

fn header_of(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn responses_with_tokens_or_user_data_are_never_stored_by_caches() {
    let mut account = MockAccountService::new();
    account
        .expect_sign_in()
        .returning(|_, _, _| Ok(crate::model::SignIn::Tokens(pair())));
    account.expect_refresh().returning(|_, _| Ok(pair()));
    let mut me = authenticating(&user());
    let stored = user();
    me.expect_me().returning(move |_| Ok(stored.clone()));

    let signin = post_json(
        &url("/signin"),
        json!({"email": "ada@example.com", "password": "correct horse"}),
    );
    let refresh = post_json(&url("/tokens"), json!({"refreshToken": "r"}));
    let wrong = post_json(&url("/signin"), json!({"email": "not an email"}));
    for (name, router, request) in [
        ("sign-in", app(account), signin),
        ("refresh", app(MockAccountService::new()), refresh),
        ("me", app(me), authorized(get(&url("/me")))),
        ("an error", app(MockAccountService::new()), wrong),
    ] {
        let (_, headers, _) = send(router, request).await;
        assert_eq!(
            header_of(&headers, header::CACHE_CONTROL),
            Some("no-store"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn every_response_forbids_content_sniffing_and_the_key_set_stays_cacheable() {
    let mut account = MockAccountService::new();
    account.expect_jwks().returning(|| JwkSet { keys: vec![] });
    let router = app(account);
    for path in [
        "/.well-known/jwks.json".to_owned(),
        "/healthz".to_owned(),
        "/nope".to_owned(),
        url("/openapi.json"),
        url("/me"),
    ] {
        let (_, headers, _) = send(router.clone(), get(&path)).await;
        assert_eq!(
            header_of(&headers, header::X_CONTENT_TYPE_OPTIONS),
            Some("nosniff"),
            "{path}"
        );
    }
    let (_, headers, _) = send(router, get("/.well-known/jwks.json")).await;
    assert_eq!(
        header_of(&headers, header::CACHE_CONTROL),
        Some("public, max-age=300")
    );
}

#[tokio::test]
async fn the_access_log_keeps_the_path_but_never_the_query_string() {
    let mut account = MockAccountService::new();
    account
        .expect_authenticate()
        .returning(|_| Err(AppError::invalid_token("bad token")));
    let request = get(&url("/me?access_token=eyJsecret.token.value&x=1"));

    let ((status, _, _), logs) = crate::test_logs::logged_during(send(app(account), request)).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(logs.contains("/api/account/me"), "{logs}");
    assert!(!logs.contains("eyJsecret"), "{logs}");
    assert!(!logs.contains("access_token"), "{logs}");
}
