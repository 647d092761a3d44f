//! The session list, ending one session, and the cap on sessions per user.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Backend, PASSWORD, Tokens, assert_error, spawn_app, unique_email, unix_now};

fn ids(sessions: &[Value]) -> Vec<String> {
    sessions
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

fn find<'a>(sessions: &'a [Value], sid: &str) -> &'a Value {
    sessions
        .iter()
        .find(|s| s["id"] == sid)
        .unwrap_or_else(|| panic!("session {sid} in {sessions:?}"))
}

async fn the_session_list_shows_each_session_and_marks_the_callers(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let start = unix_now();
    let (uid, phone) = app.signup(&email).await;
    let response = app
        .signin_response(&email, PASSWORD, "Mozilla/5.0 (itest laptop)")
        .await;
    assert_eq!(response.status(), 200);
    let laptop = Tokens::from_body(&response.json().await.unwrap());
    let signed_in = unix_now();

    // Used again a second later, from a newer app: the most recently used.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = app
        .refresh_as(&phone.refresh_token, "itest-phone/1.1")
        .await;
    assert_eq!(response.status(), 200);
    let phone2 = Tokens::from_body(&response.json().await.unwrap());
    let refreshed = unix_now();

    let sessions = app.sessions(&laptop.id_token).await;
    assert_eq!(
        ids(&sessions),
        [phone.sid(), laptop.sid()],
        "most recently used first"
    );
    for session in &sessions {
        let keys: Vec<&str> = session
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys.len(),
            7,
            "id, createdAt, lastUsedAt, userAgent, ip, name, current: {session}"
        );
        assert_eq!(session["ip"], "127.0.0.1");
        assert_eq!(session["name"], Value::Null, "never named");
    }
    let on_phone = find(&sessions, &phone.sid());
    assert_eq!(on_phone["current"], false);
    assert_eq!(
        on_phone["userAgent"], "itest-phone/1.1",
        "the latest client"
    );
    let created = on_phone["createdAt"].as_u64().unwrap();
    let used = on_phone["lastUsedAt"].as_u64().unwrap();
    assert!(
        (start..=signed_in).contains(&created),
        "createdAt {created}"
    );
    assert!(
        used > created && used <= refreshed,
        "lastUsedAt {used} after the refresh"
    );
    let on_laptop = find(&sessions, &laptop.sid());
    assert_eq!(on_laptop["current"], true);
    assert_eq!(on_laptop["userAgent"], "Mozilla/5.0 (itest laptop)");
    let created = on_laptop["createdAt"].as_u64().unwrap();
    assert!(
        (start..=signed_in).contains(&created),
        "createdAt {created}"
    );
    assert_eq!(on_laptop["lastUsedAt"], created, "never refreshed");

    // `current` follows the ID token presented.
    let sessions = app.sessions(&phone2.id_token).await;
    assert_eq!(find(&sessions, &phone.sid())["current"], true);
    assert_eq!(find(&sessions, &laptop.sid())["current"], false);

    // A long user agent is kept truncated to 256 bytes.
    let long = "x".repeat(300);
    let response = app.signin_response(&email, PASSWORD, &long).await;
    let third = Tokens::from_body(&response.json().await.unwrap());
    let sessions = app.sessions(&third.id_token).await;
    assert_eq!(find(&sessions, &third.sid())["userAgent"], "x".repeat(256));
    if backend == Backend::Real {
        let mut indexed: Vec<String> = app.redis_session_index(uid).await.into_keys().collect();
        indexed.sort();
        let mut listed = ids(&sessions);
        listed.sort();
        assert_eq!(indexed, listed, "the list is the index");
    }
    app.signout(&third.id_token).await;
}

async fn ending_one_session_revokes_its_refresh_token_and_only_the_owner_can(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (uid, phone) = app.signup(&email).await;
    let laptop = app.signin(&email).await;
    let (_, stranger) = app.signup(&unique_email()).await;

    // Another user's session, an unknown one and a malformed id: 404.
    for id in [
        laptop.sid(),
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".into(),
    ] {
        assert_error(
            app.end_session(&stranger.id_token, &id).await,
            404,
            "NOT_FOUND",
        )
        .await;
    }
    assert_eq!(app.sessions(&phone.id_token).await.len(), 2, "untouched");

    let response = app.end_session(&phone.id_token, &laptop.sid()).await;
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_error(
        app.refresh(&laptop.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert_eq!(ids(&app.sessions(&phone.id_token).await), [phone.sid()]);
    assert_eq!(
        app.refresh_keys(uid).await,
        vec![format!("{uid}:{}", phone.jti())]
    );
    // Gone: a second DELETE is a 404.
    assert_error(
        app.end_session(&phone.id_token, &laptop.sid()).await,
        404,
        "NOT_FOUND",
    )
    .await;

    // The caller may end its own session; its ID token lives on until it expires.
    let phone = app.refreshed(&phone.refresh_token).await;
    let response = app.end_session(&phone.id_token, &phone.sid()).await;
    assert_eq!(response.status(), 204);
    assert_error(
        app.refresh(&phone.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert!(app.sessions(&phone.id_token).await.is_empty());
    assert!(app.user_keys(uid).await.is_empty(), "nothing left");
    app.signout(&stranger.id_token).await;
}

async fn the_eleventh_sign_in_ends_the_least_recently_used_session(backend: Backend) {
    // MAX_SESSIONS_PER_USER is 10 by default.
    let app = spawn_app!(backend);
    let email = unique_email();
    let (uid, first) = app.signup(&email).await;
    let least_recent = app.signin(&email).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The first session is used again: the second is now the least recently used.
    let first = app.refreshed(&first.refresh_token).await;
    let mut sessions = vec![first.clone(), least_recent.clone()];
    for _ in 0..8 {
        sessions.push(app.signin(&email).await);
    }
    assert_eq!(app.sessions(&first.id_token).await.len(), 10);

    let eleventh = app.signin(&email).await;
    let listed = ids(&app.sessions(&eleventh.id_token).await);
    assert_eq!(listed.len(), 10, "{listed:?}");
    assert!(!listed.contains(&least_recent.sid()), "evicted");
    assert!(listed.contains(&first.sid()) && listed.contains(&eleventh.sid()));
    assert_error(
        app.refresh(&least_recent.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert_eq!(app.refresh_keys(uid).await.len(), 10);
    if backend == Backend::Real {
        assert_eq!(app.redis_session_index(uid).await.len(), 10);
    }
    // Every other session still refreshes.
    for tokens in sessions.iter().filter(|t| t.sid() != least_recent.sid()) {
        app.refreshed(&tokens.refresh_token).await;
    }
    app.refreshed(&eleventh.refresh_token).await;
    app.signout(&eleventh.id_token).await;
}

async fn with_a_cap_of_one_each_sign_in_ends_the_previous_session(backend: Backend) {
    let app = spawn_app!(backend, &[("MAX_SESSIONS_PER_USER", "1")]);
    let email = unique_email();
    let (uid, first) = app.signup(&email).await;
    let second = app.signin(&email).await;
    assert_error(
        app.refresh(&first.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert_eq!(ids(&app.sessions(&first.id_token).await), [second.sid()]);
    assert_eq!(
        app.refresh_keys(uid).await,
        vec![format!("{uid}:{}", second.jti())]
    );
    let second = app.refreshed(&second.refresh_token).await;
    app.signout(&second.id_token).await;
}

crate::on_every_backend!(
    the_session_list_shows_each_session_and_marks_the_callers,
    ending_one_session_revokes_its_refresh_token_and_only_the_owner_can,
    the_eleventh_sign_in_ends_the_least_recently_used_session,
    with_a_cap_of_one_each_sign_in_ends_the_previous_session,
);
