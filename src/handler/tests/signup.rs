//! `POST /signup`: parsed credentials and the caller's client info reach the
//! use case, its pair answers 201, its failures answer in the JSON shape.

use super::*;
use crate::error::AppError;
use crate::model::{Email, Password, SignUp};

fn signup_request() -> Request<Body> {
    post_json(
        &url("/signup"),
        json!({"email": "alice@example.com", "password": "correct horse"}),
    )
}

#[tokio::test]
async fn a_valid_sign_up_passes_the_trimmed_lowercased_email_and_the_user_agent_to_the_use_case_and_answers_201_with_its_pair()
 {
    let mut account = MockAccountService::new();
    account
        .expect_sign_up()
        .withf(|email: &Email, password: &Password, client: &ClientInfo| {
            email.as_str() == "alice@example.com"
                && password.expose() == "correct horse"
                && *client == super::client()
        })
        .times(1)
        .returning(|_, _, _| Ok(SignUp::SignedIn(pair())));

    let (status, headers, body) = send(
        app(account),
        with_user_agent(post_json(
            &url("/signup"),
            json!({"email": "  Alice@Example.COM ", "password": "correct horse"}),
        )),
    )
    .await;

    assert_eq!(status, StatusCode::CREATED);
    assert_json_content_type(&headers);
    assert_eq!(body, pair_json());
}

#[tokio::test]
async fn a_sign_up_with_an_invalid_email_and_a_short_password_reports_both_fields_and_never_reaches_the_use_case()
 {
    let mut account = MockAccountService::new();
    account.expect_sign_up().never();

    let (status, _, body) = send(
        app(account),
        post_json(
            &url("/signup"),
            json!({"email": "not-an-email", "password": "short"}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        invalid_args_body(&[
            ("email", "email must be a valid email address"),
            ("password", "password must be at least 8 characters"),
        ])
    );
}

#[tokio::test]
async fn a_sign_up_with_missing_fields_reports_them_as_required() {
    let mut account = MockAccountService::new();
    account.expect_sign_up().never();

    let (status, _, body) = send(app(account), post_json(&url("/signup"), json!({}))).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        invalid_args_body(&[
            ("email", "email is required"),
            ("password", "password must be at least 8 characters"),
        ])
    );
}

#[tokio::test]
async fn a_sign_up_with_a_password_over_256_bytes_is_refused_before_the_use_case() {
    let mut account = MockAccountService::new();
    account.expect_sign_up().never();

    let (status, _, body) = send(
        app(account),
        post_json(
            &url("/signup"),
            json!({"email": "alice@example.com", "password": "x".repeat(257)}),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        invalid_args_body(&[("password", "password must be at most 256 bytes")])
    );
}

#[tokio::test]
async fn a_sign_up_with_a_taken_email_answers_409_conflict_with_the_use_case_message() {
    let mut account = MockAccountService::new();
    account
        .expect_sign_up()
        .times(1)
        .returning(|_, _, _| Err(AppError::Conflict("email already registered".into())));

    let (status, headers, body) = send(app(account), signup_request()).await;

    assert_eq!(status, StatusCode::CONFLICT);
    assert!(www_authenticate(&headers).is_none());
    assert_eq!(body, error_body("CONFLICT", "email already registered"));
}

/// The use case undoes the account when its pair cannot be issued
/// (`service::account`); the handler only passes the 503 on.
#[tokio::test]
async fn a_sign_up_the_use_case_finds_unavailable_answers_503_in_the_json_shape_without_the_cause()
{
    let mut account = MockAccountService::new();
    account.expect_sign_up().times(1).returning(|_, _, _| {
        Err(AppError::store_unavailable(
            "token store",
            &"connection to 10.0.0.7:6379 refused",
        ))
    });

    let (status, headers, body) = send(app(account), signup_request()).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_json_content_type(&headers);
    assert_eq!(
        body,
        error_body(
            "SERVICE_UNAVAILABLE",
            "token store is unavailable, try again later"
        )
    );
    assert!(!body.to_string().contains("10.0.0.7"), "{body}");
}

#[tokio::test]
async fn an_internal_error_of_the_use_case_answers_500_without_leaking_the_cause() {
    let mut account = MockAccountService::new();
    account.expect_sign_up().times(1).returning(|_, _, _| {
        Err(AppError::Internal(anyhow::anyhow!(
            "connection to 10.0.0.5 refused: secret detail"
        )))
    });

    let (status, _, body) = send(app(account), signup_request()).await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, error_body("INTERNAL", "internal server error"));
}

#[tokio::test]
async fn a_sign_up_the_use_case_accepts_answers_202_with_the_one_message_and_no_tokens() {
    let mut account = MockAccountService::new();
    account
        .expect_sign_up()
        .times(1)
        .returning(|_, _, _| Ok(SignUp::Accepted));

    let (status, headers, body) = send(app(account), signup_request()).await;

    assert_eq!(status, StatusCode::ACCEPTED);
    assert_json_content_type(&headers);
    assert_eq!(
        body,
        json!({"message": crate::handler::account::SIGNUP_ACCEPTED})
    );
}
