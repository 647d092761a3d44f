//! `POST /oauth/token`: parsing, client authentication methods, the OAuth
//! error shape and the no-store headers (the grant itself is
//! `crate::service::client`'s).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::model::interfaces::MockClientService;
use crate::model::{ClientToken, ClientTokenError};
use crate::secret::Secret;

const ID: &str = "cl_abc";
const SECRET: &str = "cs_secret";

/// A client service knowing [`ID`] with [`SECRET`] and scopes `a b`.
fn clients() -> MockClientService {
    let mut clients = MockClientService::new();
    clients
        .expect_issue_token()
        .returning(|id, secret, scope, _ip| {
            if id != ID || secret != SECRET {
                return Err(ClientTokenError::InvalidClient);
            }
            let scope = scope.unwrap_or_else(|| "a b".into());
            if scope.split(' ').any(|s| s != "a" && s != "b") {
                return Err(ClientTokenError::InvalidScope("no".into()));
            }
            Ok(ClientToken {
                access_token: Secret::new("the.access.token".into()),
                expires_in: 3600,
                scope,
            })
        });
    clients
}

fn form(body: &str, basic: Option<(&str, &str)>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        builder = builder.header(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        );
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

fn assert_no_store(headers: &HeaderMap) {
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::PRAGMA], "no-cache");
}

async fn oauth_error(request: Request<Body>, status: StatusCode, error: &str) -> HeaderMap {
    let (got, headers, body) = send(app_with_clients(clients()), request).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    assert_no_store(&headers);
    headers
}

#[tokio::test]
async fn basic_authentication_gets_a_bearer_token_that_is_not_cached() {
    let (status, headers, body) = send(
        app_with_clients(clients()),
        form("grant_type=client_credentials&scope=a", Some((ID, SECRET))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"access_token": "the.access.token", "token_type": "Bearer",
               "expires_in": 3600, "scope": "a"})
    );
    assert_no_store(&headers);
}

#[tokio::test]
async fn form_authentication_works_too_and_no_scope_asks_for_all() {
    let (status, _, body) = send(
        app_with_clients(clients()),
        form(
            &format!("grant_type=client_credentials&client_id={ID}&client_secret={SECRET}"),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "a b");
}

#[tokio::test]
async fn basic_credentials_are_form_decoded() {
    // RFC 6749 §2.3.1: `cs_secret` with its `_` percent-encoded.
    let (status, _, body) = send(
        app_with_clients(clients()),
        form("grant_type=client_credentials", Some((ID, "cs%5Fsecret"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_wrong_secret_or_no_authentication_is_invalid_client_with_a_basic_challenge() {
    for request in [
        form("grant_type=client_credentials", Some((ID, "cs_wrong"))),
        form(
            &format!("grant_type=client_credentials&client_id={ID}&client_secret=x"),
            None,
        ),
        form("grant_type=client_credentials", None),
    ] {
        let headers = oauth_error(request, StatusCode::UNAUTHORIZED, "invalid_client").await;
        assert!(
            www_authenticate(&headers).is_some_and(|c| c.starts_with("Basic")),
            "{headers:?}"
        );
    }
    let mut bearer = form("grant_type=client_credentials", None);
    bearer.headers_mut().insert(
        header::AUTHORIZATION,
        "Bearer some.id.token".parse().unwrap(),
    );
    oauth_error(bearer, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn malformed_requests_are_invalid_request() {
    let json = Request::builder()
        .method(Method::POST)
        .uri("/oauth/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"grant_type":"client_credentials"}"#))
        .unwrap();
    oauth_error(json, StatusCode::BAD_REQUEST, "invalid_request").await;
    // Missing grant type, a repeated parameter, a missing secret, two methods.
    for body in [
        "scope=a".to_owned(),
        "grant_type=client_credentials&grant_type=client_credentials".to_owned(),
        format!("grant_type=client_credentials&client_id={ID}"),
    ] {
        oauth_error(
            form(&body, None),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
    oauth_error(
        form(
            &format!("grant_type=client_credentials&client_id={ID}&client_secret={SECRET}"),
            Some((ID, SECRET)),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn other_grants_are_unsupported_and_foreign_scopes_invalid() {
    oauth_error(
        form(
            "grant_type=password&username=a&password=b",
            Some((ID, SECRET)),
        ),
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    )
    .await;
    oauth_error(
        form(
            "grant_type=client_credentials&scope=a%20c",
            Some((ID, SECRET)),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
}
