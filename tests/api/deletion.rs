//! `DELETE /me {currentPassword}`: the account and every session go, the email
//! is free again; a wrong password is 403 and counts as a failed sign-in.

use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, assert_error, spawn_app, unique_email};
use crate::on_every_backend;

async fn delete_me(
    app: &crate::helpers::TestApp,
    id_token: &str,
    password: &str,
) -> reqwest::Response {
    app.client
        .delete(app.url("/me"))
        .bearer_auth(id_token)
        .json(&json!({"currentPassword": password}))
        .send()
        .await
        .expect("request")
}

async fn deleting_an_account_removes_the_user_and_every_session_and_frees_the_email(
    backend: Backend,
) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (uid, first) = app.signup(&email).await;
    let second = app.signin(&email).await;
    assert!(!app.user_keys(uid).await.is_empty());

    // A wrong password deletes nothing.
    assert_error(
        delete_me(&app, &first.id_token, "not the password").await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_eq!(app.count_users_with_email(&email).await, 1);
    assert_eq!(app.refresh(&second.refresh_token).await.status(), 200);

    let response = delete_me(&app, &first.id_token, PASSWORD).await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        app.count_users_with_email(&email).await,
        0,
        "the row is gone"
    );
    assert_eq!(
        app.user_keys(uid).await,
        Vec::<String>::new(),
        "every key is gone"
    );
    // ID tokens live out their lifetime, but their user is gone.
    assert_error(app.me(&first.id_token).await, 404, "NOT_FOUND").await;
    assert_error(
        app.refresh(&first.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    let signin = app.signin_response(&email, PASSWORD, "").await;
    assert_eq!(signin.status(), 401);
    // Deleting again: the user is gone.
    assert_error(
        delete_me(&app, &first.id_token, PASSWORD).await,
        404,
        "NOT_FOUND",
    )
    .await;

    // The email can be signed up again, as a new user.
    let (again, _) = app.signup(&email).await;
    assert_ne!(again, uid);
}

async fn a_wrong_password_at_deletion_counts_as_a_failed_sign_in(backend: Backend) {
    let app = spawn_app!(backend, &[("SIGNIN_RATE_LIMIT", "2")]);
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;

    for _ in 0..2 {
        assert_error(
            delete_me(&app, &tokens.id_token, "wrong guess!").await,
            403,
            "FORBIDDEN",
        )
        .await;
    }
    let response = delete_me(&app, &tokens.id_token, "wrong guess!").await;
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "TOO_MANY_REQUESTS", "{body}");
    // Sign-in from the same address is locked out too; the account is intact.
    assert_eq!(
        app.signin_response(&email, PASSWORD, "").await.status(),
        429
    );
    assert_eq!(app.count_users_with_email(&email).await, 1);
}

on_every_backend!(
    deleting_an_account_removes_the_user_and_every_session_and_frees_the_email,
    a_wrong_password_at_deletion_counts_as_a_failed_sign_in,
);
