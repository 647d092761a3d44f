//! `POST /signin`: parsed credentials and the caller's client info reach the
//! use case, its pair answers 200, a refusal is the same 401 with a bearer
//! challenge, and a limit is a 429 with `Retry-After`.

use super::*;
use crate::error::AppError;
use crate::model::{Email, Password};

fn refused() -> AppError {
    AppError::unauthorized("invalid email and password combination")
}

#[tokio::test]
async fn a_valid_sign_in_passes_the_lowercased_email_and_the_user_agent_to_the_use_case_and_answers_200_with_its_pair()
 {
    let mut account = MockAccountService::new();
    account
        .expect_sign_in()
        .withf(|email: &Email, password: &Password, client: &ClientInfo| {
            email.as_str() == "alice@example.com"
                && password.expose() == "correct horse"
                && *client == super::client()
        })
        .times(1)
        .returning(|_, _, _| Ok(crate::model::SignIn::Tokens(pair())));

    let (status, headers, body) = send(
        app(account),
        with_user_agent(post_json(
            &url("/signin"),
            json!({"email": "ALICE@example.com", "password": "correct horse"}),
        )),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_json_content_type(&headers);
    assert_eq!(body, pair_json());
}

#[tokio::test]
async fn a_sign_in_the_use_case_refuses_answers_401_authorization_with_a_bearer_challenge() {
    let mut account = MockAccountService::new();
    account
        .expect_sign_in()
        .times(1)
        .returning(|_, _, _| Err(refused()));

    let (status, headers, body) = send(
        app(account),
        post_json(
            &url("/signin"),
            json!({"email": "alice@example.com", "password": "wrong password"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&headers), Some("Bearer"));
    assert_eq!(
        body,
        error_body("AUTHORIZATION", "invalid email and password combination")
    );
}

#[tokio::test]
async fn a_sign_in_over_a_limit_answers_429_with_retry_after_and_no_challenge() {
    let mut account = MockAccountService::new();
    account.expect_sign_in().times(1).returning(|_, _, _| {
        Err(AppError::TooManyRequests {
            retry_after_secs: 42,
        })
    });

    let (status, headers, body) = send(
        app(account),
        post_json(
            &url("/signin"),
            json!({"email": "alice@example.com", "password": "guess"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "42");
    assert!(www_authenticate(&headers).is_none());
    assert_json_content_type(&headers);
    assert_eq!(body, error_body("TOO_MANY_REQUESTS", "too many requests"));
}

#[tokio::test]
async fn a_sign_in_with_a_password_under_the_minimum_length_reaches_the_use_case_and_gets_401_not_400()
 {
    let mut account = MockAccountService::new();
    account
        .expect_sign_in()
        .withf(|_: &Email, password: &Password, _: &ClientInfo| password.expose() == "abc")
        .times(1)
        .returning(|_, _, _| Err(refused()));

    let (status, headers, body) = send(
        app(account),
        post_json(
            &url("/signin"),
            json!({"email": "alice@example.com", "password": "abc"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&headers), Some("Bearer"));
    assert_eq!(error_type(&body), "AUTHORIZATION");
}

#[tokio::test]
async fn a_sign_in_with_an_empty_password_answers_400_password_required_and_never_reaches_the_use_case()
 {
    let mut account = MockAccountService::new();
    account.expect_sign_in().never();

    let (status, _, body) = send(
        app(account),
        post_json(
            &url("/signin"),
            json!({"email": "alice@example.com", "password": ""}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        invalid_args_body(&[("password", "password is required")])
    );
}

#[tokio::test]
async fn a_sign_in_with_an_invalid_email_answers_400_and_never_reaches_the_use_case() {
    let mut account = MockAccountService::new();
    account.expect_sign_in().never();

    let (status, headers, body) = send(
        app(account),
        post_json(
            &url("/signin"),
            json!({"email": "alice", "password": "correct horse"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(www_authenticate(&headers).is_none());
    assert_eq!(
        body,
        invalid_args_body(&[("email", "email must be a valid email address")])
    );
}

#[tokio::test]
async fn a_sign_in_of_an_unverified_account_that_must_verify_answers_403_email_not_verified() {
    let mut account = MockAccountService::new();
    account
        .expect_sign_in()
        .times(1)
        .returning(|_, _, _| Err(AppError::EmailNotVerified));
    let (status, headers, body) = send(
        app(account),
        post_json(
            &url("/signin"),
            json!({"email": "alice@example.com", "password": "correct horse"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(www_authenticate(&headers).is_none());
    assert_eq!(
        body,
        error_body("EMAIL_NOT_VERIFIED", crate::error::EMAIL_NOT_VERIFIED)
    );
}
