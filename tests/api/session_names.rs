//! Session names: `PUT /sessions/{id}` with `{"name": …}` names one of the
//! caller's sessions (or clears its name with `null`); `GET /sessions` shows
//! it. The name is stored with the session in the token store: a rotation
//! keeps it, and it goes when the session ends.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, spawn_app, unique_email};

/// `PUT /sessions/{id}` with `body`.
async fn rename(app: &TestApp, id_token: &str, id: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/sessions/{id}")))
        .bearer_auth(id_token)
        .json(body)
        .send()
        .await
        .expect("PUT /sessions/{id}")
}

/// `PUT /sessions/{id}` with `{"name": name}`, which must answer 204 without a body.
async fn named(app: &TestApp, id_token: &str, id: &str, name: Value) {
    let response = rename(app, id_token, id, &json!({ "name": name })).await;
    assert_eq!(response.status(), 204, "PUT /sessions/{id} {name}");
    assert!(response.bytes().await.unwrap().is_empty());
}

/// The `name` of session `sid` in the caller's list.
async fn listed_name(app: &TestApp, id_token: &str, sid: &str) -> Value {
    let sessions = app.sessions(id_token).await;
    let session = sessions
        .iter()
        .find(|s| s["id"] == sid)
        .unwrap_or_else(|| panic!("session {sid} in {sessions:?}"));
    session
        .get("name")
        .unwrap_or_else(|| panic!("a `name` field in {session}"))
        .clone()
}

/// The 400 of an invalid name: `invalidArgs` names `name` only.
async fn assert_invalid_name(response: reqwest::Response, what: &str) {
    let body = assert_error(response, 400, "BAD_REQUEST").await;
    let fields: Vec<&str> = body["error"]["invalidArgs"]
        .as_array()
        .unwrap_or_else(|| panic!("invalidArgs for {what}: {body}"))
        .iter()
        .filter_map(|arg| arg["field"].as_str())
        .collect();
    assert_eq!(fields, ["name"], "{what}: {body}");
}

async fn a_named_session_is_listed_with_its_name_across_rotations_until_cleared(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (uid, phone) = app.signup(&email).await;
    let laptop = app.signin(&email).await;
    assert_eq!(
        listed_name(&app, &phone.id_token, &laptop.sid()).await,
        Value::Null
    );
    assert_eq!(
        listed_name(&app, &phone.id_token, &phone.sid()).await,
        Value::Null
    );

    // Named from another session of the user's, trimmed.
    named(
        &app,
        &phone.id_token,
        &laptop.sid(),
        json!("  work laptop \t"),
    )
    .await;
    assert_eq!(
        listed_name(&app, &phone.id_token, &laptop.sid()).await,
        "work laptop"
    );
    assert_eq!(
        listed_name(&app, &phone.id_token, &phone.sid()).await,
        Value::Null,
        "only that session"
    );
    if backend == Backend::Real {
        let index = app.redis_session_index(uid).await;
        assert_eq!(index[&laptop.sid()]["name"], "work laptop", "in the index");
    }

    // A refresh keeps the session's id and its name.
    let laptop2 = app.refreshed(&laptop.refresh_token).await;
    assert_eq!(laptop2.sid(), laptop.sid());
    assert_eq!(
        listed_name(&app, &laptop2.id_token, &laptop.sid()).await,
        "work laptop"
    );
    let laptop3 = app.refreshed(&laptop2.refresh_token).await;
    assert_eq!(
        listed_name(&app, &laptop3.id_token, &laptop.sid()).await,
        "work laptop"
    );

    // Renamed by itself: 64 characters (not bytes) are accepted.
    let long = "é".repeat(63) + "📱";
    named(&app, &laptop3.id_token, &laptop.sid(), json!(long)).await;
    assert_eq!(
        listed_name(&app, &phone.id_token, &laptop.sid()).await,
        long
    );

    // `null` clears it, and clearing again is fine.
    named(&app, &laptop3.id_token, &laptop.sid(), Value::Null).await;
    assert_eq!(
        listed_name(&app, &phone.id_token, &laptop.sid()).await,
        Value::Null
    );
    named(&app, &laptop3.id_token, &laptop.sid(), Value::Null).await;
    let laptop4 = app.refreshed(&laptop3.refresh_token).await;
    assert_eq!(
        listed_name(&app, &laptop4.id_token, &laptop.sid()).await,
        Value::Null,
        "cleared stays cleared across a rotation"
    );
    app.signout(&phone.id_token).await;
}

async fn an_invalid_name_answers_400_naming_name_and_changes_nothing(backend: Backend) {
    let app = spawn_app!(backend);
    let (_, tokens) = app.signup(&unique_email()).await;
    let sid = tokens.sid();
    named(&app, &tokens.id_token, &sid, json!("phone")).await;

    for (what, body) in [
        ("65 characters", json!({"name": "x".repeat(65)})),
        ("empty", json!({"name": ""})),
        ("empty after trimming", json!({"name": " \t\n "})),
        ("a control character", json!({"name": "work\u{7}laptop"})),
        ("an inner line break", json!({"name": "work\nlaptop"})),
        ("a NUL", json!({"name": "\u{0}"})),
        ("no name field", json!({})),
    ] {
        assert_invalid_name(rename(&app, &tokens.id_token, &sid, &body).await, what).await;
        assert_eq!(
            listed_name(&app, &tokens.id_token, &sid).await,
            "phone",
            "{what}: unchanged"
        );
    }
    app.signout(&tokens.id_token).await;
}

async fn only_the_owner_names_a_session_others_and_unknown_ids_are_404(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (_, phone) = app.signup(&email).await;
    let laptop = app.signin(&email).await;
    named(&app, &laptop.id_token, &laptop.sid(), json!("laptop")).await;
    let (_, stranger) = app.signup(&unique_email()).await;

    // Another user's session, an unknown one, a malformed id: 404.
    for id in [
        laptop.sid(),
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".into(),
    ] {
        for name in [json!("mine now"), Value::Null] {
            assert_error(
                rename(&app, &stranger.id_token, &id, &json!({ "name": name })).await,
                404,
                "NOT_FOUND",
            )
            .await;
        }
    }
    // Without an ID token: 401.
    let response = app
        .client
        .put(app.url(&format!("/sessions/{}", laptop.sid())))
        .json(&json!({"name": "mine now"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "AUTHORIZATION").await;

    assert_eq!(
        listed_name(&app, &phone.id_token, &laptop.sid()).await,
        "laptop"
    );
    assert_eq!(
        listed_name(&app, &stranger.id_token, &stranger.sid()).await,
        Value::Null
    );
    app.signout(&phone.id_token).await;
    app.signout(&stranger.id_token).await;
}

async fn the_name_goes_with_its_session(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (uid, phone) = app.signup(&email).await;
    let laptop = app.signin(&email).await;
    named(&app, &phone.id_token, &laptop.sid(), json!("laptop")).await;
    named(&app, &phone.id_token, &phone.sid(), json!("phone")).await;

    // Ended: not listed, and naming it again is a 404.
    let response = app.end_session(&phone.id_token, &laptop.sid()).await;
    assert_eq!(response.status(), 204);
    let sessions = app.sessions(&phone.id_token).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["name"], "phone");
    assert_error(
        rename(
            &app,
            &phone.id_token,
            &laptop.sid(),
            &json!({"name": "back"}),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;

    // Signed out everywhere: nothing is listed, and a new session has no name.
    let response = app.signout(&phone.id_token).await;
    assert_eq!(response.status(), 200);
    assert!(app.sessions(&phone.id_token).await.is_empty());
    assert!(app.user_keys(uid).await.is_empty(), "nothing left");
    assert_error(
        rename(
            &app,
            &phone.id_token,
            &phone.sid(),
            &json!({"name": "phone"}),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    let again = app.signin(&email).await;
    let sessions = app.sessions(&again.id_token).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["id"], again.sid());
    assert_eq!(sessions[0]["name"], Value::Null);
    app.signout(&again.id_token).await;
}

async fn a_restart_keeps_the_name(backend: Backend) {
    let app = spawn_app!(backend);
    let (_, tokens) = app.signup(&unique_email()).await;
    named(&app, &tokens.id_token, &tokens.sid(), json!("kept")).await;

    let app = app.restart().await;

    assert_eq!(
        listed_name(&app, &tokens.id_token, &tokens.sid()).await,
        "kept"
    );
    let rotated = app.refreshed(&tokens.refresh_token).await;
    assert_eq!(
        listed_name(&app, &rotated.id_token, &tokens.sid()).await,
        "kept"
    );
    app.signout(&rotated.id_token).await;
}

crate::on_every_backend!(
    a_named_session_is_listed_with_its_name_across_rotations_until_cleared,
    an_invalid_name_answers_400_naming_name_and_changes_nothing,
    only_the_owner_names_a_session_others_and_unknown_ids_are_404,
    the_name_goes_with_its_session,
    a_restart_keeps_the_name,
);
