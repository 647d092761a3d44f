//! `POST /tokens`: the trimmed refresh token and the caller's client info
//! reach the use case, its pair answers 200, a refusal is a 401
//! `invalid_token`, and a reused token a 401 `REFRESH_TOKEN_REUSED`. Why a
//! token is refused (signature, whitelist, grace window, session over, user
//! gone) is the use case's business, tested in `service::account`.

use super::*;
use crate::error::{AppError, REFRESH_TOKEN_REFUSED};

fn required() -> Value {
    invalid_args_body(&[("refreshToken", "refreshToken is required")])
}

#[tokio::test]
async fn a_refresh_without_a_refresh_token_reports_it_as_required_and_never_reaches_the_use_case() {
    let mut account = MockAccountService::new();
    account.expect_refresh().never();

    let (status, _, body) = send(app(account), post_json(&url("/tokens"), json!({}))).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, required());
}

#[tokio::test]
async fn a_refresh_token_of_only_whitespace_is_reported_as_required_too() {
    let mut account = MockAccountService::new();
    account.expect_refresh().never();

    let (status, _, body) = send(
        app(account),
        post_json(&url("/tokens"), json!({"refreshToken": " \t "})),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, required());
}

#[tokio::test]
async fn a_valid_refresh_passes_the_trimmed_token_and_the_user_agent_to_the_use_case_and_answers_200_with_the_new_pair()
 {
    let mut account = MockAccountService::new();
    account
        .expect_refresh()
        .withf(|token: &str, client: &ClientInfo| {
            token == "old-refresh-token" && *client == super::client()
        })
        .times(1)
        .returning(|_, _| Ok(pair()));

    let (status, headers, body) = send(
        app(account),
        with_user_agent(post_json(
            &url("/tokens"),
            json!({"refreshToken": " old-refresh-token "}),
        )),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_json_content_type(&headers);
    assert_eq!(body, pair_json());
}

#[tokio::test]
async fn a_refresh_token_the_use_case_refuses_answers_401_with_an_invalid_token_challenge() {
    let mut account = MockAccountService::new();
    account
        .expect_refresh()
        .withf(|token: &str, _: &ClientInfo| token == "forged")
        .times(1)
        .returning(|_, _| Err(AppError::invalid_token(REFRESH_TOKEN_REFUSED)));

    let (status, headers, body) = send(
        app(account),
        post_json(&url("/tokens"), json!({"refreshToken": "forged"})),
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www_authenticate(&headers),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(
        body,
        error_body("AUTHORIZATION", "refresh token is invalid, used or revoked")
    );
}

#[tokio::test]
async fn a_refresh_token_the_use_case_finds_reused_answers_401_refresh_token_reused_with_an_invalid_token_challenge()
 {
    let mut account = MockAccountService::new();
    account
        .expect_refresh()
        .withf(|token: &str, _: &ClientInfo| token == "rotated-long-ago")
        .times(1)
        .returning(|_, _| Err(AppError::RefreshTokenReused));

    let (status, headers, body) = send(
        app(account),
        post_json(&url("/tokens"), json!({"refreshToken": "rotated-long-ago"})),
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_json_content_type(&headers);
    assert_eq!(
        www_authenticate(&headers),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(
        body,
        error_body(
            "REFRESH_TOKEN_REUSED",
            "refresh token was already used; the session has been ended"
        )
    );
}

#[tokio::test]
async fn a_refresh_while_a_store_is_down_answers_503_without_a_challenge() {
    let mut account = MockAccountService::new();
    account
        .expect_refresh()
        .times(1)
        .returning(|_, _| Err(AppError::store_unavailable("user store", &"timeout")));

    let (status, headers, body) = send(
        app(account),
        post_json(&url("/tokens"), json!({"refreshToken": "some-token"})),
    )
    .await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(www_authenticate(&headers).is_none());
    assert_eq!(
        body,
        error_body(
            "SERVICE_UNAVAILABLE",
            "user store is unavailable, try again later"
        )
    );
}
