//! Re-authentication for what a stolen ID token must not do alone: changing
//! the password (`PUT /password`) and the sign-in email (`PUT /details`).

use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, Tokens, assert_error, header, sign_id_token, spawn_app, unique_email,
    unix_now,
};

const NEW_PASSWORD: &str = "a brand new passphrase";

fn fields(body: &Value) -> Vec<&str> {
    body["error"]["invalidArgs"]
        .as_array()
        .expect("invalidArgs")
        .iter()
        .map(|a| a["field"].as_str().unwrap())
        .collect()
}

fn ids(sessions: &[Value]) -> Vec<String> {
    sessions
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn a_password_change_ends_the_other_sessions_and_keeps_the_callers(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (uid, a) = app.signup(&email).await;
    let b = app.signin(&email).await;
    let c = app.signin(&email).await;

    // A wrong current password: 403 (not 401, which means "refresh"), nothing changes.
    let body = assert_error(
        app.change_password(&b.id_token, "not the password", NEW_PASSWORD)
            .await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert!(!body.to_string().contains("not the password"));
    assert_eq!(app.sessions(&b.id_token).await.len(), 3);
    // An invalid new password: 400 naming it.
    let body = assert_error(
        app.change_password(&b.id_token, PASSWORD, "short").await,
        400,
        "BAD_REQUEST",
    )
    .await;
    assert_eq!(fields(&body), ["newPassword"]);
    let signin = app.signin_response(&email, PASSWORD, "").await;
    assert_eq!(signin.status(), 200, "the password is unchanged");
    let d = Tokens::from_body(&signin.json().await.unwrap());

    let response = app
        .change_password(&b.id_token, PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    for tokens in [&a, &c, &d] {
        assert_error(
            app.refresh(&tokens.refresh_token).await,
            401,
            "AUTHORIZATION",
        )
        .await;
    }
    // The caller's session goes on.
    let b2 = app.refreshed(&b.refresh_token).await;
    let b3 = app.refreshed(&b2.refresh_token).await;
    assert_eq!(ids(&app.sessions(&b3.id_token).await), [b.sid()]);
    assert_eq!(
        app.refresh_keys(uid).await,
        vec![format!("{uid}:{}", b3.jti())]
    );

    // The old password no longer signs in, the new one does.
    assert_error(
        app.signin_response(&email, PASSWORD, "").await,
        401,
        "AUTHORIZATION",
    )
    .await;
    let response = app.signin_response(&email, NEW_PASSWORD, "").await;
    assert_eq!(response.status(), 200);
    app.signout(&b3.id_token).await;
}

async fn changing_the_email_needs_the_current_password_and_ends_the_other_sessions(
    backend: Backend,
) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (uid, a) = app.signup(&email).await;
    let b = app.signin(&email).await;
    let new_email = unique_email();
    let details = |current: Option<&str>| {
        let mut body = json!({"name": "Ada", "email": new_email, "website": ""});
        if let Some(password) = current {
            body["currentPassword"] = json!(password);
        }
        body
    };

    // Without the current password: 400 naming it.
    let body = assert_error(
        app.put_details(&b.id_token, &details(None)).await,
        400,
        "BAD_REQUEST",
    )
    .await;
    assert_eq!(fields(&body), ["currentPassword"]);
    // A wrong one: 403.
    assert_error(
        app.put_details(&b.id_token, &details(Some("not the password")))
            .await,
        403,
        "FORBIDDEN",
    )
    .await;
    let me: Value = app.me(&b.id_token).await.json().await.unwrap();
    assert_eq!(me["user"]["email"], email, "unchanged");
    assert_eq!(me["user"]["name"], "", "unchanged");

    // Keeping the email (in any letter case) needs no password and ends nothing.
    let response = app
        .put_details(
            &b.id_token,
            &json!({"name": "Ada", "email": email.to_uppercase(), "website": ""}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["name"], "Ada");
    assert_eq!(body["user"]["email"], email);
    assert_eq!(app.sessions(&b.id_token).await.len(), 2);

    // With the right one: changed, and every other session ends.
    let response = app.put_details(&b.id_token, &details(Some(PASSWORD))).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], new_email);
    assert_error(app.refresh(&a.refresh_token).await, 401, "AUTHORIZATION").await;
    let b2 = app.refreshed(&b.refresh_token).await;
    assert_eq!(ids(&app.sessions(&b2.id_token).await), [b.sid()]);
    assert_eq!(
        app.refresh_keys(uid).await,
        vec![format!("{uid}:{}", b2.jti())]
    );
    // The old email no longer signs in; the new one does.
    assert_error(
        app.signin_response(&email, PASSWORD, "").await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert_eq!(
        app.signin_response(&new_email, PASSWORD, "").await.status(),
        200
    );
    app.signout(&b2.id_token).await;
}

async fn with_an_id_token_from_before_sessions_a_password_change_ends_every_session(
    backend: Backend,
) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (uid, a) = app.signup(&email).await;
    let b = app.signin(&email).await;
    let now = unix_now();
    // No `sid`: the caller names no session to keep.
    let old = sign_id_token(
        &json!({
            "sub": uid, "iss": "account", "aud": "domain-services",
            "iat": now, "exp": now + 600, "jti": uuid::Uuid::new_v4(),
            "email": email, "name": ""
        }),
        header(&a.id_token)["kid"].as_str().unwrap(),
    );
    let response = app.change_password(&old, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), 204);
    for tokens in [&a, &b] {
        assert_error(
            app.refresh(&tokens.refresh_token).await,
            401,
            "AUTHORIZATION",
        )
        .await;
    }
    assert!(app.refresh_keys(uid).await.is_empty());
    assert_eq!(
        app.user_keys(uid).await,
        [format!("{uid}:credential"), format!("{uid}:nolegacy")],
        "only the guards are left"
    );
}

crate::on_every_backend!(
    a_password_change_ends_the_other_sessions_and_keeps_the_callers,
    changing_the_email_needs_the_current_password_and_ends_the_other_sessions,
    with_an_id_token_from_before_sessions_a_password_change_ends_every_session,
    no_session_signed_in_with_the_old_password_survives_a_password_change,
);

/// Sign-ins with the old password racing a password change: whichever way
/// they interleave, none of their sessions survives the change.
async fn no_session_signed_in_with_the_old_password_survives_a_password_change(backend: Backend) {
    // Room for every racing session beside the caller's: with the default cap
    // of 10, ten sign-ins ahead of the change (a loaded machine) would end the
    // caller's session as the least recently used, which is not what this
    // test is about.
    let app = spawn_app!(backend, &[("MAX_SESSIONS_PER_USER", "100")]);
    let email = unique_email();
    let (_, caller) = app.signup(&email).await;
    let racing = async {
        let mut pairs = Vec::new();
        for _ in 0..12 {
            let response = app
                .post_json("/signin", &json!({"email": email, "password": PASSWORD}))
                .await;
            if response.status() == 200 {
                pairs.push(Tokens::from_body(&response.json().await.unwrap()));
            }
        }
        pairs
    };
    let change = async {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        app.change_password(&caller.id_token, PASSWORD, NEW_PASSWORD)
            .await
    };
    let (pairs, response) = tokio::join!(racing, change);
    assert_eq!(response.status(), 204);
    for pair in &pairs {
        assert_error(app.refresh(&pair.refresh_token).await, 401, "AUTHORIZATION").await;
    }
    app.refreshed(&caller.refresh_token).await;
    app.signout(&caller.id_token).await;
}
