//! `POST {base}/browser/*`: what the HTTP layer adds to the use cases: the
//! origin check before any use case runs, the cookie in and out, and a store
//! outage that leaves the cookie alone (the person stays signed in once the
//! store is back). Rotation, reuse and scopes run against the real stores in
//! `tests/api/browser.rs`.

use super::*;
use crate::error::AppError;
use crate::model::SignOutScope;

/// The origin of [`settings`]' `PUBLIC_URL`.
const ORIGIN: &str = "http://localhost:8080";

/// `POST {base}/browser/{route}` from `origin` with the cookie `refresh_token=old`.
fn from(origin: &str, route: &str) -> Request<Body> {
    let mut request = empty(Method::POST, &url(&format!("/browser/{route}")));
    let headers = request.headers_mut();
    headers.insert(header::ORIGIN, origin.parse().unwrap());
    headers.insert(header::COOKIE, "refresh_token=old".parse().unwrap());
    request
}

#[tokio::test]
async fn a_foreign_origin_never_reaches_a_use_case() {
    for route in ["tokens", "signout", "signin", "signup"] {
        let mut account = MockAccountService::new();
        account.expect_refresh().never();
        account.expect_sign_out_by_refresh().never();
        account.expect_sign_in().never();
        account.expect_sign_up().never();
        let (status, headers, body) =
            send(app(account), from("http://localhost:8081", route)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{route}");
        assert_eq!(body["error"]["type"], "FORBIDDEN", "{route}");
        assert!(headers.get(header::SET_COOKIE).is_none(), "{route}");
    }
}

#[tokio::test]
async fn a_store_outage_answers_503_and_keeps_the_cookie() {
    let mut account = MockAccountService::new();
    account
        .expect_refresh()
        .withf(|token: &str, _: &ClientInfo| token == "old")
        .times(1)
        .returning(|_, _| Err(AppError::unavailable("the token store is unavailable")));
    let (status, headers, body) = send(app(account), from(ORIGIN, "tokens")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["type"], "SERVICE_UNAVAILABLE");
    assert!(headers.get(header::SET_COOKIE).is_none());

    let mut account = MockAccountService::new();
    account
        .expect_sign_out_by_refresh()
        .withf(|token: &str, scope: &SignOutScope| token == "old" && *scope == SignOutScope::Local)
        .times(1)
        .returning(|_, _| Err(AppError::unavailable("the token store is unavailable")));
    let (status, headers, _) = send(app(account), from(ORIGIN, "signout")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn a_rotation_answers_the_id_token_alone_and_replaces_the_cookie() {
    let mut account = MockAccountService::new();
    account
        .expect_refresh()
        .withf(|token: &str, _: &ClientInfo| token == "old")
        .times(1)
        .returning(|_, _| Ok(pair()));
    let (status, headers, body) = send(app(account), from(ORIGIN, "tokens")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"idToken": "new-id-token"}));
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.starts_with("refresh_token=new-refresh-token;")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/api/account/browser"),
        "{cookie}"
    );
}
