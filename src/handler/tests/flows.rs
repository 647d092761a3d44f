//! Email verification and password reset: `POST /verify-email {token}`,
//! `POST /verify-email/resend`, `POST /password-reset {email}` and
//! `POST /password-reset/confirm {token, newPassword}`. The handlers validate
//! the fields and pass them on; what a token proves is the use case's
//! business, tested in `service::account`.

use super::*;
use crate::error::{AppError, InvalidArg};
use crate::handler::flows::{RESET_REQUESTED, VERIFICATION_REQUESTED, VERIFICATION_SENT};
use crate::model::{Email, Password};

const INVALID_TOKEN: &str = "the token is invalid, used or expired";

fn invalid_token() -> AppError {
    AppError::invalid_args(vec![InvalidArg::new("token", INVALID_TOKEN)])
}

// ---------------------------------------------------------------- verify

#[tokio::test]
async fn a_verification_passes_the_trimmed_token_and_answers_204() {
    let mut account = MockAccountService::new();
    account
        .expect_verify_email()
        .withf(|token: &str, _: &ClientInfo| token == "abc-DEF_123")
        .times(1)
        .returning(|_, _| Ok(()));
    let (status, _, body) = send(
        app(account),
        post_json(&url("/verify-email"), json!({"token": " abc-DEF_123 "})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
}

#[tokio::test]
async fn a_verification_without_a_token_is_a_400_naming_it() {
    for request in [json!({}), json!({"token": ""}), json!({"token": "  "})] {
        let mut account = MockAccountService::new();
        account.expect_verify_email().never();
        let (status, _, body) = send(
            app(account),
            post_json(&url("/verify-email"), request.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}");
        assert_eq!(body, invalid_args_body(&[("token", "token is required")]));
    }
}

#[tokio::test]
async fn a_refused_token_is_a_400_naming_it() {
    let mut account = MockAccountService::new();
    account
        .expect_verify_email()
        .returning(|_, _| Err(invalid_token()));
    let (status, headers, body) = send(
        app(account),
        post_json(&url("/verify-email"), json!({"token": "used"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(www_authenticate(&headers), None);
    assert_eq!(body, invalid_args_body(&[("token", INVALID_TOKEN)]));
}

// ---------------------------------------------------------------- resend

fn resend() -> Request<Body> {
    empty(Method::POST, &url("/verify-email/resend"))
}

#[tokio::test]
async fn a_resend_needs_the_bearer_token() {
    let mut account = MockAccountService::new();
    account.expect_resend_verification().never();
    let (status, headers, _) = send(app(account), resend()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&headers).is_some());
}

#[tokio::test]
async fn a_resend_passes_the_caller_and_answers_202() {
    let alice = user();
    let mut account = authenticating(&alice);
    account
        .expect_resend_verification()
        .withf(move |caller: &IdClaims| are_claims_of(caller, &alice))
        .times(1)
        .returning(|_| Ok(()));
    let (status, _, body) = send(app(account), authorized(resend())).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, json!({"message": VERIFICATION_SENT}));
}

#[tokio::test]
async fn a_resend_answers_the_use_cases_conflict_and_limit() {
    let mut account = authenticating(&user());
    account
        .expect_resend_verification()
        .returning(|_| Err(AppError::Conflict("the email is already verified".into())));
    let (status, _, body) = send(app(account), authorized(resend())).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body,
        error_body("CONFLICT", "the email is already verified")
    );

    let mut account = authenticating(&user());
    account.expect_resend_verification().returning(|_| {
        Err(AppError::TooManyRequests {
            retry_after_secs: 42,
        })
    });
    let (status, headers, body) = send(app(account), authorized(resend())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "42");
    assert_eq!(error_type(&body), "TOO_MANY_REQUESTS");
}

#[tokio::test]
async fn a_resend_by_address_needs_no_bearer_and_passes_the_normal_form_and_the_client() {
    let mut account = MockAccountService::new();
    account.expect_resend_verification().never();
    account
        .expect_resend_verification_to()
        .withf(|email: &Email, from: &ClientInfo| {
            email.as_str() == "ada@example.com" && *from == client()
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let (status, _, body) = send(
        app(account),
        with_user_agent(post_json(
            &url("/verify-email/resend"),
            json!({"email": " Ada@Example.COM "}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, json!({"message": VERIFICATION_REQUESTED}));
}

#[tokio::test]
async fn a_resend_by_something_not_an_address_is_a_400_naming_email() {
    let mut account = MockAccountService::new();
    account.expect_resend_verification_to().never();
    let (status, _, body) = send(
        app(account),
        post_json(&url("/verify-email/resend"), json!({"email": "nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["invalidArgs"][0]["field"], "email");
}

// ---------------------------------------------------------------- reset request

#[tokio::test]
async fn a_reset_request_passes_the_normal_form_and_the_client_and_answers_202() {
    let mut account = MockAccountService::new();
    account
        .expect_request_password_reset()
        .withf(|email: &Email, from: &ClientInfo| {
            email.as_str() == "ada@example.com" && *from == client()
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let (status, headers, body) = send(
        app(account),
        with_user_agent(post_json(
            &url("/password-reset"),
            json!({"email": " Ada@Example.COM "}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_json_content_type(&headers);
    assert_eq!(body, json!({"message": RESET_REQUESTED}));
}

#[tokio::test]
async fn a_reset_request_for_something_not_an_address_is_a_400_naming_email() {
    let mut account = MockAccountService::new();
    account.expect_request_password_reset().never();
    let (status, _, body) = send(
        app(account),
        post_json(&url("/password-reset"), json!({"email": "not an address"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["invalidArgs"][0]["field"], "email");
}

#[tokio::test]
async fn a_reset_request_over_the_source_limit_is_a_429() {
    let mut account = MockAccountService::new();
    account.expect_request_password_reset().returning(|_, _| {
        Err(AppError::TooManyRequests {
            retry_after_secs: 7,
        })
    });
    let (status, headers, _) = send(
        app(account),
        post_json(&url("/password-reset"), json!({"email": "ada@example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "7");
}

// ---------------------------------------------------------------- reset confirm

#[tokio::test]
async fn a_reset_passes_the_token_the_new_password_and_the_client_and_answers_204() {
    let mut account = MockAccountService::new();
    account
        .expect_confirm_password_reset()
        .withf(|token: &str, new: &Password, from: &ClientInfo| {
            token == "tok" && new.expose() == "correct horse battery" && *from == client()
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let (status, _, body) = send(
        app(account),
        with_user_agent(post_json(
            &url("/password-reset/confirm"),
            json!({"token": "tok", "newPassword": "correct horse battery"}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
}

#[tokio::test]
async fn a_reset_with_both_fields_bad_lists_both_and_never_reaches_the_use_case() {
    let mut account = MockAccountService::new();
    account.expect_confirm_password_reset().never();
    let (status, _, body) = send(
        app(account),
        post_json(
            &url("/password-reset/confirm"),
            json!({"newPassword": "short"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        invalid_args_body(&[
            ("token", "token is required"),
            ("newPassword", "password must be at least 8 characters"),
        ])
    );
}

#[tokio::test]
async fn a_reset_with_a_refused_token_is_a_400_naming_it() {
    let mut account = MockAccountService::new();
    account
        .expect_confirm_password_reset()
        .returning(|_, _, _| Err(invalid_token()));
    let (status, _, body) = send(
        app(account),
        post_json(
            &url("/password-reset/confirm"),
            json!({"token": "used", "newPassword": "correct horse battery"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, invalid_args_body(&[("token", INVALID_TOKEN)]));
}

// ---------------------------------------------------------------- /me

#[tokio::test]
async fn me_shows_whether_the_email_is_verified() {
    let mut account = authenticating(&user());
    account.expect_me().returning(|_| {
        Ok(User {
            email_verified: true,
            ..user()
        })
    });
    let (status, _, body) = send(app(account), authorized(get(&url("/me")))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"]["emailVerified"], true);
}
