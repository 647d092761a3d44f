//! Re-authentication: `PUT /password {currentPassword, newPassword}` and the
//! `currentPassword` of `PUT /details`. The handlers validate the fields and
//! pass them on with the caller's claims; whether the password is right (403
//! `FORBIDDEN` when not, never 401) and which sessions end is the use case's
//! business, tested in `service::account`.

use super::protected::put_details;
use super::*;
use crate::error::{AppError, InvalidArg};
use crate::model::{ClientInfo, Password, UserDetails};

/// `PUT /password` with the bearer ID token and [`USER_AGENT`].
fn put_password(body: Value) -> Request<Body> {
    with_user_agent(authorized(json_request(
        Method::PUT,
        &url("/password"),
        body.to_string(),
    )))
}

fn wrong_password() -> AppError {
    AppError::Forbidden("the current password is wrong".into())
}

// ---------------------------------------------------------------- PUT /password

#[tokio::test]
async fn a_valid_password_change_passes_the_caller_and_both_passwords_to_the_use_case_and_answers_204()
 {
    let alice = user();
    let mut account = authenticating(&alice);
    account
        .expect_change_password()
        .withf(
            move |caller: &IdClaims, current: &Password, new: &Password, from: &ClientInfo| {
                are_claims_of(caller, &alice)
                    && current.expose() == "old"
                    && new.expose() == "correct horse battery"
                    && *from == client()
            },
        )
        .times(1)
        .returning(|_, _, _, _| Ok(()));

    let (status, _, body) = send(
        app(account),
        put_password(json!({"currentPassword": "old", "newPassword": "correct horse battery"})),
    )
    .await;

    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
}

#[tokio::test]
async fn a_password_change_with_both_fields_bad_lists_both_and_never_reaches_the_use_case() {
    for (request, current_message) in [
        (
            json!({"currentPassword": "", "newPassword": "short"}),
            "password is required",
        ),
        (json!({"newPassword": "short"}), "password is required"),
        (
            json!({"currentPassword": "x".repeat(257), "newPassword": "short"}),
            "password must be at most 256 bytes",
        ),
    ] {
        let mut account = authenticating(&user());
        account.expect_change_password().never();

        let (status, _, body) = send(app(account), put_password(request.clone())).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}");
        assert_eq!(
            body,
            invalid_args_body(&[
                ("currentPassword", current_message),
                ("newPassword", "password must be at least 8 characters"),
            ]),
            "{request}"
        );
    }
}

#[tokio::test]
async fn a_new_password_over_256_bytes_is_refused_before_the_use_case() {
    let mut account = authenticating(&user());
    account.expect_change_password().never();

    let (status, _, body) = send(
        app(account),
        put_password(json!({"currentPassword": "old", "newPassword": "x".repeat(257)})),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        invalid_args_body(&[("newPassword", "password must be at most 256 bytes")])
    );
}

#[tokio::test]
async fn a_password_change_with_a_wrong_current_password_answers_403_forbidden_without_a_challenge()
{
    let mut account = authenticating(&user());
    account
        .expect_change_password()
        .times(1)
        .returning(|_, _, _, _| Err(wrong_password()));

    let (status, headers, body) = send(
        app(account),
        put_password(json!({"currentPassword": "guess", "newPassword": "correct horse"})),
    )
    .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_json_content_type(&headers);
    assert!(www_authenticate(&headers).is_none());
    assert_eq!(
        body,
        error_body("FORBIDDEN", "the current password is wrong")
    );
}

#[tokio::test]
async fn a_password_change_for_a_user_that_no_longer_exists_answers_404() {
    let mut account = authenticating(&user());
    account
        .expect_change_password()
        .times(1)
        .returning(|_, _, _, _| Err(AppError::NotFound("user not found".into())));

    let (status, _, body) = send(
        app(account),
        put_password(json!({"currentPassword": "old", "newPassword": "correct horse"})),
    )
    .await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, error_body("NOT_FOUND", "user not found"));
}

// ---------------------------------------------------------------- PUT /details {currentPassword}

/// Use cases that authenticate alice and expect one update of her details
/// with `current_password`, answering with her user.
fn updating_details_with(current_password: Option<&'static str>) -> MockAccountService {
    let alice = user();
    let mut account = authenticating(&alice);
    account
        .expect_update_details()
        .withf(
            move |caller: &IdClaims,
                  details: &UserDetails,
                  current: &Option<Password>,
                  from: &ClientInfo| {
                are_claims_of(caller, &alice)
                    && details.email.as_str() == "alice@new.example"
                    && current.as_ref().map(Password::expose) == current_password
                    && *from == client()
            },
        )
        .times(1)
        .returning(|_, _, _, _| Ok(user()));
    account
}

#[tokio::test]
async fn details_with_a_current_password_pass_it_to_the_use_case() {
    let (status, _, _) = send(
        app(updating_details_with(Some("my password"))),
        put_details(json!({"email": "alice@new.example", "currentPassword": "my password"})),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn details_without_a_current_password_pass_none_to_the_use_case() {
    for request in [
        json!({"email": "alice@new.example"}),
        json!({"email": "alice@new.example", "currentPassword": null}),
    ] {
        let (status, _, _) = send(
            app(updating_details_with(None)),
            put_details(request.clone()),
        )
        .await;

        assert_eq!(status, StatusCode::OK, "{request}");
    }
}

#[tokio::test]
async fn details_with_an_empty_current_password_pass_none_so_a_form_that_always_sends_it_still_works()
 {
    let mut account = authenticating(&user());
    account
        .expect_update_details()
        .withf(|_, _, password, _| password.is_none())
        .times(1)
        .returning(|_, _, _, _| Ok(user()));

    let (status, _, _) = send(
        app(account),
        put_details(json!({"email": "alice@example.com", "currentPassword": ""})),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
}

/// The use case decides whether the email changes, so it is the one that
/// asks for the password; the handler passes its field error on.
#[tokio::test]
async fn an_email_change_the_use_case_refuses_without_a_current_password_answers_400_naming_it() {
    let mut account = authenticating(&user());
    account
        .expect_update_details()
        .times(1)
        .returning(|_, _, _, _| {
            Err(AppError::invalid_args(vec![InvalidArg::new(
                "currentPassword",
                "currentPassword is required to change the email",
            )]))
        });

    let (status, _, body) = send(
        app(account),
        put_details(json!({"email": "alice@new.example"})),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        invalid_args_body(&[(
            "currentPassword",
            "currentPassword is required to change the email"
        )])
    );
}

#[tokio::test]
async fn details_with_a_wrong_current_password_answer_403_forbidden_without_a_challenge() {
    let mut account = authenticating(&user());
    account
        .expect_update_details()
        .times(1)
        .returning(|_, _, _, _| Err(wrong_password()));

    let (status, headers, body) = send(
        app(account),
        put_details(json!({"email": "alice@new.example", "currentPassword": "guess"})),
    )
    .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(www_authenticate(&headers).is_none());
    assert_eq!(
        body,
        error_body("FORBIDDEN", "the current password is wrong")
    );
}

// ---------------------------------------------------------------- DELETE /me

fn delete_me(body: Value) -> Request<Body> {
    with_user_agent(authorized(json_request(
        Method::DELETE,
        &url("/me"),
        body.to_string(),
    )))
}

#[tokio::test]
async fn an_account_deletion_passes_the_caller_and_the_password_to_the_use_case_and_answers_204() {
    let alice = user();
    let mut account = authenticating(&alice);
    account
        .expect_delete_account()
        .withf(
            move |caller: &IdClaims, current: &Password, from: &ClientInfo| {
                are_claims_of(caller, &alice) && current.expose() == "old" && *from == client()
            },
        )
        .times(1)
        .returning(|_, _, _| Ok(()));

    let (status, _, body) = send(app(account), delete_me(json!({"currentPassword": "old"}))).await;

    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
}

#[tokio::test]
async fn an_account_deletion_without_the_password_is_400_and_never_reaches_the_use_case() {
    let mut account = authenticating(&user());
    account.expect_delete_account().never();

    let (status, _, body) = send(app(account), delete_me(json!({}))).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        invalid_args_body(&[("currentPassword", "password is required")])
    );
}

#[tokio::test]
async fn a_wrong_password_at_deletion_is_403_forbidden() {
    let mut account = authenticating(&user());
    account
        .expect_delete_account()
        .returning(|_, _, _| Err(wrong_password()));

    let (status, _, body) = send(app(account), delete_me(json!({"currentPassword": "nope"}))).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type(&body), "FORBIDDEN");
}
