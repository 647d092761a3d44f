//! The HTTP layer against mocked services: every request goes through the real
//! router (extractors, middleware, error mapping) with `oneshot`, no sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

use super::{AppState, HttpSettings, router};
use crate::error::{AppError, AppResult};
use crate::model::interfaces::{MockTokenService, MockUserService};
use crate::model::{
    Email, IdTokenClaims, Password, RefreshToken, TokenPair, User, UserDetails, UserService,
};

const BASE: &str = "/api/account";
const ID_TOKEN: &str = "valid-id-token";

// ---------------------------------------------------------------- helpers

fn settings(base_path: &str) -> HttpSettings {
    HttpSettings {
        base_path: base_path.into(),
        handler_timeout: Duration::from_millis(200),
        max_body_bytes: 1024,
    }
}

fn app_with(
    users: impl UserService + 'static,
    tokens: MockTokenService,
    settings: &HttpSettings,
) -> Router {
    let state = AppState {
        user_service: Arc::new(users),
        token_service: Arc::new(tokens),
    };
    router(state, settings)
}

fn app(users: MockUserService, tokens: MockTokenService) -> Router {
    app_with(users, tokens, &settings(BASE))
}

/// A user with only the required fields set.
fn user() -> User {
    User {
        uid: Uuid::from_u128(0x1234),
        email: "alice@example.com".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        name: String::new(),
        image_url: String::new(),
        website: String::new(),
    }
}

fn claims_for(user: &User) -> IdTokenClaims {
    IdTokenClaims {
        sub: user.uid,
        iss: "account-test".into(),
        aud: "account-test".into(),
        iat: 1_700_000_000,
        exp: 1_700_000_900,
        jti: Uuid::from_u128(0xabcd),
        email: user.email.clone(),
        name: user.name.clone(),
    }
}

fn pair() -> TokenPair {
    TokenPair {
        id_token: "new-id-token".into(),
        refresh_token: "new-refresh-token".into(),
    }
}

fn pair_json() -> Value {
    json!({"tokens": {"idToken": "new-id-token", "refreshToken": "new-refresh-token"}})
}

/// A token service that accepts [`ID_TOKEN`] as the ID token of `user`.
fn tokens_accepting(user: &User) -> MockTokenService {
    let claims = claims_for(user);
    let mut tokens = MockTokenService::new();
    tokens
        .expect_validate_id_token()
        .withf(|token: &str| token == ID_TOKEN)
        .times(1)
        .returning(move |_| Ok(claims.clone()));
    tokens
}

fn json_request(method: Method, path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("request")
}

fn post_json(path: &str, body: Value) -> Request<Body> {
    json_request(Method::POST, path, body.to_string())
}

fn authorized(mut request: Request<Body>) -> Request<Body> {
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {ID_TOKEN}").parse().expect("header value"),
    );
    request
}

fn get(path: &str) -> Request<Body> {
    Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(Body::empty())
        .expect("request")
}

/// Sends one request through the router and returns what a client observes.
/// An empty body reads as `Value::Null`.
async fn send(router: Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = router.oneshot(request).await.expect("infallible router");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            panic!(
                "body is not JSON ({err}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, headers, body)
}

fn www_authenticate(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
}

fn error_type(body: &Value) -> &str {
    body["error"]["type"].as_str().unwrap_or("<missing>")
}

fn assert_json_content_type(headers: &HeaderMap) {
    assert_eq!(
        headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
}

// ---------------------------------------------------------------- signup

#[tokio::test]
async fn signup_with_a_valid_body_creates_the_user_with_a_lowercased_email_and_returns_201_with_tokens()
 {
    let mut users = MockUserService::new();
    users
        .expect_signup()
        .withf(|email: &Email, password: &Password| {
            email.as_str() == "alice@example.com" && password.expose() == "correct horse"
        })
        .times(1)
        .returning(|_, _| Ok(user()));
    let mut tokens = MockTokenService::new();
    tokens
        .expect_new_pair_from_user()
        .withf(|u: &User, previous: &Option<RefreshToken>| {
            u.uid == user().uid && previous.is_none()
        })
        .times(1)
        .returning(|_, _| Ok(pair()));

    let (status, headers, body) = send(
        app(users, tokens),
        post_json(
            &format!("{BASE}/signup"),
            json!({"email": "  Alice@Example.COM ", "password": "correct horse"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::CREATED);
    assert_json_content_type(&headers);
    assert_eq!(body, pair_json());
}

#[tokio::test]
async fn signup_with_an_invalid_email_and_a_short_password_reports_both_fields_and_never_calls_the_service()
 {
    let mut users = MockUserService::new();
    users.expect_signup().never();
    let mut tokens = MockTokenService::new();
    tokens.expect_new_pair_from_user().never();

    let (status, _, body) = send(
        app(users, tokens),
        post_json(
            &format!("{BASE}/signup"),
            json!({"email": "not-an-email", "password": "short"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": {
            "type": "BAD_REQUEST",
            "message": "invalid request parameters",
            "invalidArgs": [
                {"field": "email", "message": "email must be a valid email address"},
                {"field": "password", "message": "password must be at least 8 characters"},
            ],
        }})
    );
}

#[tokio::test]
async fn signup_with_missing_fields_reports_them_as_required() {
    let mut users = MockUserService::new();
    users.expect_signup().never();

    let (status, _, body) = send(
        app(users, MockTokenService::new()),
        post_json(&format!("{BASE}/signup"), json!({})),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = body["error"]["invalidArgs"]
        .as_array()
        .expect("invalidArgs")
        .iter()
        .map(|arg| arg["field"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(fields, ["email", "password"]);
    assert_eq!(
        body["error"]["invalidArgs"][0]["message"],
        "email is required"
    );
}

#[tokio::test]
async fn signup_with_a_taken_email_answers_409_conflict_with_the_service_message() {
    let mut users = MockUserService::new();
    users
        .expect_signup()
        .times(1)
        .returning(|_, _| Err(AppError::Conflict("email already registered".into())));
    let mut tokens = MockTokenService::new();
    tokens.expect_new_pair_from_user().never();

    let (status, headers, body) = send(
        app(users, tokens),
        post_json(
            &format!("{BASE}/signup"),
            json!({"email": "alice@example.com", "password": "correct horse"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::CONFLICT);
    assert!(www_authenticate(&headers).is_none());
    assert_eq!(
        body,
        json!({"error": {"type": "CONFLICT", "message": "email already registered"}})
    );
}

#[tokio::test]
async fn signup_when_the_token_store_is_down_answers_503_and_undoes_the_account() {
    let mut users = MockUserService::new();
    users.expect_signup().times(1).returning(|_, _| Ok(user()));
    let uid = user().uid;
    users
        .expect_delete()
        .withf(move |u| *u == uid)
        .times(1)
        .returning(|_| Ok(()));
    let mut tokens = MockTokenService::new();
    tokens
        .expect_new_pair_from_user()
        .times(1)
        .returning(|_, _| {
            Err(AppError::ServiceUnavailable(
                "token store is unavailable, try again later".into(),
            ))
        });

    let (status, _, body) = send(
        app(users, tokens),
        post_json(
            &format!("{BASE}/signup"),
            json!({"email": "alice@example.com", "password": "correct horse"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"error": {
            "type": "SERVICE_UNAVAILABLE",
            "message": "token store is unavailable, try again later",
        }})
    );
}

#[tokio::test]
async fn an_internal_error_answers_500_without_leaking_the_cause() {
    let mut users = MockUserService::new();
    users.expect_signup().times(1).returning(|_, _| {
        Err(AppError::Internal(anyhow::anyhow!(
            "connection to 10.0.0.5 refused: secret detail"
        )))
    });

    let (status, _, body) = send(
        app(users, MockTokenService::new()),
        post_json(
            &format!("{BASE}/signup"),
            json!({"email": "alice@example.com", "password": "correct horse"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({"error": {"type": "INTERNAL", "message": "internal server error"}})
    );
}

// ---------------------------------------------------------------- signin

#[tokio::test]
async fn signin_with_valid_credentials_answers_200_with_tokens() {
    let mut users = MockUserService::new();
    users
        .expect_signin()
        .withf(|email: &Email, password: &Password| {
            email.as_str() == "alice@example.com" && password.expose() == "correct horse"
        })
        .times(1)
        .returning(|_, _| Ok(user()));
    let mut tokens = MockTokenService::new();
    tokens
        .expect_new_pair_from_user()
        .withf(|_: &User, previous: &Option<RefreshToken>| previous.is_none())
        .times(1)
        .returning(|_, _| Ok(pair()));

    let (status, _, body) = send(
        app(users, tokens),
        post_json(
            &format!("{BASE}/signin"),
            json!({"email": "ALICE@example.com", "password": "correct horse"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, pair_json());
}

#[tokio::test]
async fn signin_with_bad_credentials_answers_401_authorization_with_a_bearer_challenge() {
    let mut users = MockUserService::new();
    users.expect_signin().times(1).returning(|_, _| {
        Err(AppError::unauthorized(
            "invalid email and password combination",
        ))
    });
    let mut tokens = MockTokenService::new();
    tokens.expect_new_pair_from_user().never();

    let (status, headers, body) = send(
        app(users, tokens),
        post_json(
            &format!("{BASE}/signin"),
            json!({"email": "alice@example.com", "password": "wrong password"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&headers), Some("Bearer"));
    assert_eq!(
        body,
        json!({"error": {
            "type": "AUTHORIZATION",
            "message": "invalid email and password combination",
        }})
    );
}

#[tokio::test]
async fn signin_does_not_enforce_the_minimum_password_length_so_a_short_password_gets_401_not_400()
{
    let mut users = MockUserService::new();
    users
        .expect_signin()
        .withf(|_: &Email, password: &Password| password.expose() == "abc")
        .times(1)
        .returning(|_, _| {
            Err(AppError::unauthorized(
                "invalid email and password combination",
            ))
        });

    let (status, headers, body) = send(
        app(users, MockTokenService::new()),
        post_json(
            &format!("{BASE}/signin"),
            json!({"email": "alice@example.com", "password": "abc"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&headers), Some("Bearer"));
    assert_eq!(error_type(&body), "AUTHORIZATION");
}

#[tokio::test]
async fn signin_with_an_empty_password_answers_400_password_required() {
    let mut users = MockUserService::new();
    users.expect_signin().never();

    let (status, _, body) = send(
        app(users, MockTokenService::new()),
        post_json(
            &format!("{BASE}/signin"),
            json!({"email": "alice@example.com", "password": ""}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["invalidArgs"],
        json!([{"field": "password", "message": "password is required"}])
    );
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn tokens_with_an_empty_body_reports_refresh_token_as_required() {
    let mut tokens = MockTokenService::new();
    tokens.expect_validate_refresh_token().never();
    tokens.expect_new_pair_from_user().never();
    let mut users = MockUserService::new();
    users.expect_get().never();

    let (status, _, body) = send(
        app(users, tokens),
        post_json(&format!("{BASE}/tokens"), json!({})),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": {
            "type": "BAD_REQUEST",
            "message": "invalid request parameters",
            "invalidArgs": [{"field": "refreshToken", "message": "refreshToken is required"}],
        }})
    );
}

#[tokio::test]
async fn tokens_with_a_refresh_token_that_does_not_verify_answers_401_invalid_token() {
    let mut tokens = MockTokenService::new();
    tokens
        .expect_validate_refresh_token()
        .withf(|token: &str| token == "forged")
        .times(1)
        .returning(|_| {
            Err(AppError::invalid_token(
                "refresh token is invalid, used or revoked",
            ))
        });
    tokens.expect_new_pair_from_user().never();
    let mut users = MockUserService::new();
    users.expect_get().never();

    let (status, headers, body) = send(
        app(users, tokens),
        post_json(&format!("{BASE}/tokens"), json!({"refreshToken": "forged"})),
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www_authenticate(&headers),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(
        body,
        json!({"error": {
            "type": "AUTHORIZATION",
            "message": "refresh token is invalid, used or revoked",
        }})
    );
}

#[tokio::test]
async fn tokens_for_a_user_that_no_longer_exists_answers_401_not_404() {
    let refresh = RefreshToken {
        uid: user().uid,
        jti: Uuid::from_u128(0x77),
    };
    let mut tokens = MockTokenService::new();
    tokens
        .expect_validate_refresh_token()
        .times(1)
        .returning(move |_| Ok(refresh));
    tokens.expect_new_pair_from_user().never();
    let mut users = MockUserService::new();
    users
        .expect_get()
        .times(1)
        .returning(|_| Err(AppError::NotFound("user not found".into())));

    let (status, headers, body) = send(
        app(users, tokens),
        post_json(
            &format!("{BASE}/tokens"),
            json!({"refreshToken": "refresh-of-deleted-user"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www_authenticate(&headers),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(error_type(&body), "AUTHORIZATION");
}

#[tokio::test]
async fn tokens_with_a_valid_refresh_token_rotates_it_and_answers_200_with_a_new_pair() {
    let refresh = RefreshToken {
        uid: user().uid,
        jti: Uuid::from_u128(0x77),
    };
    let mut tokens = MockTokenService::new();
    tokens
        .expect_validate_refresh_token()
        .withf(|token: &str| token == "old-refresh-token")
        .times(1)
        .returning(move |_| Ok(refresh));
    tokens
        .expect_new_pair_from_user()
        .withf(move |u: &User, previous: &Option<RefreshToken>| {
            u.uid == refresh.uid && *previous == Some(refresh)
        })
        .times(1)
        .returning(|_, _| Ok(pair()));
    let mut users = MockUserService::new();
    users
        .expect_get()
        .withf(move |uid: &Uuid| *uid == refresh.uid)
        .times(1)
        .returning(|_| Ok(user()));

    let (status, _, body) = send(
        app(users, tokens),
        post_json(
            &format!("{BASE}/tokens"),
            json!({"refreshToken": " old-refresh-token "}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, pair_json());
}

#[tokio::test]
async fn tokens_whose_rotation_loses_the_race_answers_401_invalid_token() {
    let refresh = RefreshToken {
        uid: user().uid,
        jti: Uuid::from_u128(0x77),
    };
    let mut tokens = MockTokenService::new();
    tokens
        .expect_validate_refresh_token()
        .returning(move |_| Ok(refresh));
    tokens
        .expect_new_pair_from_user()
        .times(1)
        .returning(|_, _| {
            Err(AppError::invalid_token(
                "refresh token is invalid, used or revoked",
            ))
        });
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));

    let (status, headers, _) = send(
        app(users, tokens),
        post_json(&format!("{BASE}/tokens"), json!({"refreshToken": "used"})),
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www_authenticate(&headers),
        Some(r#"Bearer error="invalid_token""#)
    );
}

// ---------------------------------------------------------------- me / signout / details

#[tokio::test]
async fn protected_routes_without_an_authorization_header_answer_401_with_a_bearer_challenge() {
    for (method, path) in [
        (Method::GET, "/me"),
        (Method::POST, "/signout"),
        (Method::PUT, "/details"),
    ] {
        let mut tokens = MockTokenService::new();
        tokens.expect_validate_id_token().never();
        tokens.expect_signout().never();
        let mut users = MockUserService::new();
        users.expect_get().never();
        users.expect_update_details().never();

        let (status, headers, body) = send(
            app(users, tokens),
            json_request(
                method.clone(),
                &format!("{BASE}{path}"),
                json!({"email": "alice@example.com"}).to_string(),
            ),
        )
        .await;

        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(
            www_authenticate(&headers),
            Some("Bearer"),
            "{method} {path}"
        );
        assert_eq!(error_type(&body), "AUTHORIZATION", "{method} {path}");
    }
}

#[tokio::test]
async fn a_non_bearer_authorization_header_answers_401_without_validating_anything() {
    let mut tokens = MockTokenService::new();
    tokens.expect_validate_id_token().never();

    let mut request = get(&format!("{BASE}/me"));
    request.headers_mut().insert(
        header::AUTHORIZATION,
        "Basic YWxpY2U6c2VjcmV0".parse().expect("header value"),
    );
    let (status, headers, body) = send(app(MockUserService::new(), tokens), request).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&headers), Some("Bearer"));
    assert_eq!(error_type(&body), "AUTHORIZATION");
}

#[tokio::test]
async fn an_id_token_that_does_not_verify_answers_401_invalid_token() {
    let mut tokens = MockTokenService::new();
    tokens
        .expect_validate_id_token()
        .times(1)
        .returning(|_| Err(AppError::invalid_token("ID token is invalid or expired")));
    let mut users = MockUserService::new();
    users.expect_get().never();

    let (status, headers, body) =
        send(app(users, tokens), authorized(get(&format!("{BASE}/me")))).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www_authenticate(&headers),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(
        body,
        json!({"error": {"type": "AUTHORIZATION", "message": "ID token is invalid or expired"}})
    );
}

#[tokio::test]
async fn me_with_a_valid_id_token_answers_200_with_the_user_in_camel_case_and_empty_strings_for_unset_fields()
 {
    let alice = user();
    let tokens = tokens_accepting(&alice);
    let mut users = MockUserService::new();
    users
        .expect_get()
        .withf(move |uid: &Uuid| *uid == alice.uid)
        .times(1)
        .returning(|_| Ok(user()));

    let (status, headers, body) =
        send(app(users, tokens), authorized(get(&format!("{BASE}/me")))).await;

    assert_eq!(status, StatusCode::OK);
    assert_json_content_type(&headers);
    assert_eq!(
        body,
        json!({"user": {
            "uid": "00000000-0000-0000-0000-000000001234",
            "email": "alice@example.com",
            "name": "",
            "imageUrl": "",
            "website": "",
        }})
    );
    assert!(
        !body.to_string().contains("argon2"),
        "the password hash must never be returned"
    );
}

#[tokio::test]
async fn me_accepts_the_bearer_scheme_in_any_letter_case() {
    let alice = user();
    let tokens = tokens_accepting(&alice);
    let mut users = MockUserService::new();
    users.expect_get().times(1).returning(|_| Ok(user()));

    let mut request = get(&format!("{BASE}/me"));
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("bearer {ID_TOKEN}").parse().expect("header value"),
    );
    let (status, _, _) = send(app(users, tokens), request).await;

    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn signout_with_a_valid_id_token_signs_the_user_out_everywhere_and_answers_200_with_a_message()
 {
    let alice = user();
    let mut tokens = tokens_accepting(&alice);
    let uid = alice.uid;
    tokens
        .expect_signout()
        .withf(move |sub: &Uuid| *sub == uid)
        .times(1)
        .returning(|_| Ok(()));

    // Sign-out needs no body at all.
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{BASE}/signout"))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = send(app(MockUserService::new(), tokens), authorized(request)).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"message": "signed out on every device"}));
}

#[tokio::test]
async fn details_without_an_email_reports_email_as_required_and_never_updates() {
    let alice = user();
    let tokens = tokens_accepting(&alice);
    let mut users = MockUserService::new();
    users.expect_update_details().never();

    let (status, _, body) = send(
        app(users, tokens),
        authorized(json_request(
            Method::PUT,
            &format!("{BASE}/details"),
            json!({"name": "Alice", "website": "https://alice.dev"}).to_string(),
        )),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": {
            "type": "BAD_REQUEST",
            "message": "invalid request parameters",
            "invalidArgs": [{"field": "email", "message": "email is required"}],
        }})
    );
}

#[tokio::test]
async fn details_with_valid_fields_updates_the_user_of_the_token_and_answers_200_with_it() {
    let alice = user();
    let tokens = tokens_accepting(&alice);
    let uid = alice.uid;
    let mut users = MockUserService::new();
    users
        .expect_update_details()
        .withf(move |sub: &Uuid, details: &UserDetails| {
            *sub == uid
                && details.email.as_str() == "alice@new.example"
                && details.name == "Alice Liddell"
                && details.website.as_str() == "https://alice.dev"
        })
        .times(1)
        .returning(|uid, details| {
            Ok(User {
                email: details.email.into_inner(),
                name: details.name,
                website: details.website.as_str().to_owned(),
                uid,
                ..user()
            })
        });

    let (status, _, body) = send(
        app(users, tokens),
        authorized(json_request(
            Method::PUT,
            &format!("{BASE}/details"),
            json!({
                "email": "Alice@New.Example",
                "name": "  Alice Liddell ",
                "website": "https://alice.dev",
            })
            .to_string(),
        )),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["user"],
        json!({
            "uid": "00000000-0000-0000-0000-000000001234",
            "email": "alice@new.example",
            "name": "Alice Liddell",
            "imageUrl": "",
            "website": "https://alice.dev",
        })
    );
}

// ---------------------------------------------------------------- extractor / middleware

#[tokio::test]
async fn a_body_without_a_json_content_type_answers_415_unsupported_media_type() {
    let mut users = MockUserService::new();
    users.expect_signup().never();

    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{BASE}/signup"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(
            json!({"email": "alice@example.com", "password": "correct horse"}).to_string(),
        ))
        .expect("request");
    let (status, _, body) = send(app(users, MockTokenService::new()), request).await;

    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_type(&body), "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test]
async fn a_json_content_type_with_parameters_is_accepted() {
    let mut users = MockUserService::new();
    users.expect_signin().times(1).returning(|_, _| Ok(user()));
    let mut tokens = MockTokenService::new();
    tokens
        .expect_new_pair_from_user()
        .returning(|_, _| Ok(pair()));

    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{BASE}/signin"))
        .header(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")
        .body(Body::from(
            json!({"email": "alice@example.com", "password": "correct horse"}).to_string(),
        ))
        .expect("request");
    let (status, _, _) = send(app(users, tokens), request).await;

    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_json_answers_400_bad_request() {
    let mut users = MockUserService::new();
    users.expect_signup().never();

    let (status, _, body) = send(
        app(users, MockTokenService::new()),
        json_request(
            Method::POST,
            &format!("{BASE}/signup"),
            r#"{"email": "alice@example.com", "#,
        ),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": {"type": "BAD_REQUEST", "message": "malformed JSON body"}})
    );
}

#[tokio::test]
async fn trailing_data_after_the_json_object_answers_400_bad_request() {
    let mut users = MockUserService::new();
    users.expect_signup().never();

    let (status, _, body) = send(
        app(users, MockTokenService::new()),
        json_request(
            Method::POST,
            &format!("{BASE}/signup"),
            r#"{"email": "alice@example.com", "password": "correct horse"} {}"#,
        ),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_type(&body), "BAD_REQUEST");
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_reported_in_invalid_args() {
    let mut users = MockUserService::new();
    users.expect_signup().never();

    let (status, _, body) = send(
        app(users, MockTokenService::new()),
        post_json(
            &format!("{BASE}/signup"),
            json!({"email": 42, "password": "correct horse"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["invalidArgs"][0]["field"], "email");
    assert_eq!(
        body["error"]["invalidArgs"][0]["message"], "invalid type: integer `42`, expected a string",
        "no parser positions in the message"
    );
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_answers_400_bad_request() {
    let mut users = MockUserService::new();
    users.expect_signup().never();

    let (status, _, body) = send(
        app(users, MockTokenService::new()),
        post_json(&format!("{BASE}/signup"), json!("alice@example.com")),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": {"type": "BAD_REQUEST", "message": "request body must be a JSON object"}})
    );
}

/// Serde's derived `Deserialize` would also read a struct from a JSON array,
/// field by field in declaration order: `AppJson` must refuse `[email, password]`.
#[tokio::test]
async fn a_json_array_body_is_rejected_rather_than_read_as_positional_fields() {
    let mut users = MockUserService::new();
    users.expect_signup().never();
    let mut tokens = MockTokenService::new();
    tokens.expect_new_pair_from_user().never();

    let (status, _, body) = send(
        app(users, tokens),
        post_json(
            &format!("{BASE}/signup"),
            json!(["alice@example.com", "correct horse"]),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": {"type": "BAD_REQUEST", "message": "request body must be a JSON object"}})
    );
}

#[tokio::test]
async fn a_body_over_the_limit_answers_413_payload_too_large() {
    let mut users = MockUserService::new();
    users.expect_signup().never();

    let (status, _, body) = send(
        app(users, MockTokenService::new()),
        post_json(
            &format!("{BASE}/signup"),
            json!({"email": "alice@example.com", "password": "x".repeat(2048)}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body,
        json!({"error": {"type": "PAYLOAD_TOO_LARGE", "message": "request body is too large"}})
    );
}

#[tokio::test]
async fn an_unknown_path_answers_404_not_found_in_the_json_shape() {
    let (status, headers, body) = send(
        app(MockUserService::new(), MockTokenService::new()),
        get(&format!("{BASE}/nope")),
    )
    .await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_json_content_type(&headers);
    assert_eq!(
        body,
        json!({"error": {"type": "NOT_FOUND", "message": "no such route"}})
    );
}

#[tokio::test]
async fn a_wrong_method_answers_405_method_not_allowed_with_an_allow_header() {
    let mut users = MockUserService::new();
    users.expect_signup().never();

    let (status, headers, body) = send(
        app(users, MockTokenService::new()),
        get(&format!("{BASE}/signup")),
    )
    .await;

    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        body,
        json!({"error": {"type": "METHOD_NOT_ALLOWED", "message": "method not allowed"}})
    );
    assert_eq!(
        headers.get(header::ALLOW).and_then(|v| v.to_str().ok()),
        Some("POST")
    );
}

#[tokio::test]
async fn a_wrong_method_on_a_root_route_also_answers_405_in_the_json_shape() {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/healthz")
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = send(
        app(MockUserService::new(), MockTokenService::new()),
        request,
    )
    .await;

    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_type(&body), "METHOD_NOT_ALLOWED");
}

/// A user service whose sign-in never answers in time; mockall's `returning`
/// cannot produce a slow future for an `async_trait` method.
struct SlowUserService;

#[async_trait]
impl UserService for SlowUserService {
    async fn get(&self, _uid: Uuid) -> AppResult<User> {
        unreachable!("not used by the timeout test")
    }
    async fn signup(&self, _email: Email, _password: Password) -> AppResult<User> {
        unreachable!("not used by the timeout test")
    }
    async fn signin(&self, _email: Email, _password: Password) -> AppResult<User> {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok(user())
    }
    async fn update_details(&self, _uid: Uuid, _details: UserDetails) -> AppResult<User> {
        unreachable!("not used by the timeout test")
    }
    async fn delete(&self, _uid: Uuid) -> AppResult<()> {
        unreachable!("not used by the timeout test")
    }
    async fn ready(&self) -> AppResult<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_service_call_slower_than_the_handler_timeout_answers_503_service_unavailable() {
    let mut tokens = MockTokenService::new();
    tokens.expect_new_pair_from_user().never();
    let router = app_with(SlowUserService, tokens, &settings(BASE));

    let started = Instant::now();
    let (status, _, body) = send(
        router,
        post_json(
            &format!("{BASE}/signin"),
            json!({"email": "alice@example.com", "password": "correct horse"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"error": {
            "type": "SERVICE_UNAVAILABLE",
            "message": "the request timed out, try again later",
        }})
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}, not at the 200 ms timeout",
        started.elapsed()
    );
}

#[tokio::test]
async fn healthz_answers_200_ok_without_touching_the_stores() {
    let mut users = MockUserService::new();
    users.expect_ready().never();
    let mut tokens = MockTokenService::new();
    tokens.expect_ready().never();

    let (status, _, body) = send(app(users, tokens), get("/healthz")).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_answers_200_when_both_stores_answer() {
    let mut users = MockUserService::new();
    users.expect_ready().times(1).returning(|| Ok(()));
    let mut tokens = MockTokenService::new();
    tokens.expect_ready().times(1).returning(|| Ok(()));

    let (status, _, body) = send(app(users, tokens), get("/readyz")).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ready"}));
}

#[tokio::test]
async fn readyz_answers_503_when_the_token_store_does_not_answer() {
    let mut users = MockUserService::new();
    users.expect_ready().times(1).returning(|| Ok(()));
    let mut tokens = MockTokenService::new();
    tokens.expect_ready().times(1).returning(|| {
        Err(AppError::ServiceUnavailable(
            "token store is unavailable, try again later".into(),
        ))
    });

    let (status, _, body) = send(app(users, tokens), get("/readyz")).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"error": {
            "type": "SERVICE_UNAVAILABLE",
            "message": "token store is unavailable, try again later",
        }})
    );
}

// ---------------------------------------------------------------- base path

#[tokio::test]
async fn a_custom_base_path_serves_the_account_routes_there_and_not_under_the_default() {
    let alice = user();
    let tokens = tokens_accepting(&alice);
    let mut users = MockUserService::new();
    users.expect_get().times(1).returning(|_| Ok(user()));
    let router = app_with(users, tokens, &settings("/v2/acct"));

    let (status, _, body) = send(router.clone(), authorized(get("/v2/acct/me"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"]["email"], "alice@example.com");

    let (status, _, body) = send(router.clone(), authorized(get("/api/account/me"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_type(&body), "NOT_FOUND");

    let (status, _, _) = send(router, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "health stays at the root");
}
