//! `PUT /details`: full update of name, email and website (a new email with
//! the current password; the session rules of that are in `sessions`).

use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, assert_error, spawn_app, unique_email};

async fn details_update_the_profile_and_the_new_email_signs_in(backend: Backend) {
    let app = spawn_app!(backend);
    let (uid, tokens) = app.signup(&unique_email()).await;
    let new_email = unique_email();
    let response = app
        .client
        .put(app.url("/details"))
        .bearer_auth(&tokens.id_token)
        .json(&json!({
            "name": " Ada Lovelace ", "email": new_email.to_uppercase(),
            "website": "https://ada.example", "currentPassword": PASSWORD,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let expected = json!({"user": {
        "uid": uid, "email": new_email, "name": "Ada Lovelace",
        "imageUrl": "", "website": "https://ada.example", "emailVerified": false,
    }});
    assert_eq!(response.json::<Value>().await.unwrap(), expected);
    assert_eq!(
        app.me(&tokens.id_token)
            .await
            .json::<Value>()
            .await
            .unwrap(),
        expected
    );
    let response = app
        .post_json(
            "/signin",
            &json!({"email": new_email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200);
    app.signout(&tokens.id_token).await;
}

async fn details_with_a_taken_email_are_a_conflict_and_invalid_ones_a_400(backend: Backend) {
    let app = spawn_app!(backend);
    let taken = unique_email();
    let (_, other) = app.signup(&taken).await;
    let (_, tokens) = app.signup(&unique_email()).await;
    let put = |body: Value| {
        app.client
            .put(app.url("/details"))
            .bearer_auth(&tokens.id_token)
            .json(&body)
            .send()
    };
    let body = assert_error(
        put(json!({"name": "", "email": taken.to_uppercase(), "website": "", "currentPassword": PASSWORD}))
            .await
            .unwrap(),
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(body["error"]["message"], "email already registered");
    let body = assert_error(
        put(json!({"name": "x", "website": "ftp://nope"}))
            .await
            .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    let fields: Vec<&str> = body["error"]["invalidArgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "website"]);
    app.signout(&tokens.id_token).await;
    app.signout(&other.id_token).await;
}

crate::on_every_backend!(
    details_update_the_profile_and_the_new_email_signs_in,
    details_with_a_taken_email_are_a_conflict_and_invalid_ones_a_400
);
