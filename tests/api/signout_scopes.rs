//! `POST /signout?scope=global|local|others`, an ID token from before
//! sessions, and a sign-out everywhere racing rotations and grace replays.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Backend, TestApp, Tokens, assert_error, header, sign_id_token, spawn_app, unique_email,
    unix_now,
};

fn ids(sessions: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = sessions
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted<const N: usize>(sids: [String; N]) -> Vec<String> {
    let mut sids = sids.to_vec();
    sids.sort();
    sids
}

/// A new user with three sessions (sign-up, then two sign-ins).
async fn three_sessions(app: &TestApp) -> (Uuid, [Tokens; 3]) {
    let email = unique_email();
    let (uid, first) = app.signup(&email).await;
    let second = app.signin(&email).await;
    let third = app.signin(&email).await;
    (uid, [first, second, third])
}

async fn assert_signed_out(response: reqwest::Response, message: &str) {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"message": message}));
}

async fn assert_refused(app: &TestApp, tokens: &Tokens, what: &str) {
    let response = app.refresh(&tokens.refresh_token).await;
    assert_eq!(response.status(), 401, "{what}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "AUTHORIZATION", "{what}: {body}");
}

async fn sign_out_global_ends_every_session(backend: Backend) {
    let app = spawn_app!(backend);
    let (uid, [a, b, c]) = three_sessions(&app).await;
    // a's previous token is within its grace window: it must not replay either.
    let a2 = app.refreshed(&a.refresh_token).await;
    let response = app.signout_scope(&b.id_token, "global").await;
    assert_signed_out(response, "signed out on every device").await;
    for (tokens, what) in [(&a, "a"), (&a2, "a2"), (&b, "b"), (&c, "c")] {
        assert_refused(&app, tokens, what).await;
    }
    assert!(app.sessions(&b.id_token).await.is_empty());
    assert!(app.user_keys(uid).await.is_empty(), "no <uid>:* key left");
}

async fn sign_out_local_ends_only_the_callers_session(backend: Backend) {
    let app = spawn_app!(backend);
    let (uid, [a, b, c]) = three_sessions(&app).await;
    // b's previous token is within its grace window: it must not replay after.
    let b2 = app.refreshed(&b.refresh_token).await;
    let response = app.signout_scope(&b2.id_token, "local").await;
    assert_signed_out(response, "signed out of this session").await;
    assert_refused(&app, &b2, "the caller's").await;
    assert_refused(&app, &b, "the caller's previous").await;
    let a2 = app.refreshed(&a.refresh_token).await;
    let c2 = app.refreshed(&c.refresh_token).await;
    assert_eq!(
        ids(&app.sessions(&a2.id_token).await),
        sorted([a.sid(), c.sid()])
    );
    let mut expected = vec![format!("{uid}:{}", a2.jti()), format!("{uid}:{}", c2.jti())];
    expected.sort();
    assert_eq!(app.refresh_keys(uid).await, expected);
    app.signout(&a2.id_token).await;
}

async fn sign_out_others_ends_every_session_but_the_callers(backend: Backend) {
    let app = spawn_app!(backend);
    let (uid, [a, b, c]) = three_sessions(&app).await;
    // a's previous token is within its grace window: it must not replay after.
    let a2 = app.refreshed(&a.refresh_token).await;
    let response = app.signout_scope(&b.id_token, "others").await;
    assert_signed_out(response, "signed out on every other device").await;
    for (tokens, what) in [(&a, "a"), (&a2, "a2"), (&c, "c")] {
        assert_refused(&app, tokens, what).await;
    }
    let b2 = app.refreshed(&b.refresh_token).await;
    let sessions = app.sessions(&b2.id_token).await;
    assert_eq!(ids(&sessions), [b.sid()]);
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(
        app.refresh_keys(uid).await,
        vec![format!("{uid}:{}", b2.jti())]
    );
    app.signout(&b2.id_token).await;
}

async fn an_unknown_scope_is_a_400_and_ends_nothing(backend: Backend) {
    let app = spawn_app!(backend);
    let (_, [a, b, c]) = three_sessions(&app).await;
    let body = assert_error(
        app.signout_scope(&a.id_token, "everywhere").await,
        400,
        "BAD_REQUEST",
    )
    .await;
    assert_eq!(body["error"]["invalidArgs"][0]["field"], "scope");
    assert_eq!(app.sessions(&a.id_token).await.len(), 3);
    for tokens in [&a, &b, &c] {
        app.refreshed(&tokens.refresh_token).await;
    }
    app.signout(&a.id_token).await;
}

async fn an_id_token_from_before_sessions_cannot_name_its_session(backend: Backend) {
    let app = spawn_app!(backend);
    let (uid, [a, b, _]) = three_sessions(&app).await;
    let now = unix_now();
    let old = sign_id_token(
        &json!({
            "sub": uid, "iss": "account", "aud": "domain-services",
            "iat": now, "exp": now + 600, "jti": Uuid::new_v4(),
            "email": "x@example.com", "name": ""
        }),
        header(&a.id_token)["kid"].as_str().unwrap(),
    );
    for scope in ["local", "others"] {
        assert_error(app.signout_scope(&old, scope).await, 400, "BAD_REQUEST").await;
    }
    let sessions = app.sessions(&old).await;
    assert_eq!(sessions.len(), 3, "nothing ended");
    assert!(sessions.iter().all(|s| s["current"] == false), "no current");
    app.refreshed(&b.refresh_token).await;
    app.signout(&old).await;
    assert!(app.user_keys(uid).await.is_empty());
}

/// One request of the race: a refresh, or the sign-out everywhere.
enum Racer {
    Refresh(String),
    SignOut(String),
}

async fn a_sign_out_everywhere_racing_rotations_and_grace_replays_leaves_nothing_usable(
    backend: Backend,
) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (uid, first) = app.signup(&email).await;
    for round in 0..4 {
        let a = if round == 0 {
            first.clone()
        } else {
            app.signin(&email).await
        };
        let b = app.signin(&email).await;
        // One rotation each: a and b are now within their grace windows.
        let a2 = app.refreshed(&a.refresh_token).await;
        let b2 = app.refreshed(&b.refresh_token).await;
        let mut seen = vec![a.clone(), a2.clone(), b.clone(), b2.clone()];

        // Rotations of the current tokens, replays of the previous ones, and
        // the sign-out somewhere among them, all at once.
        let mut racers = Vec::new();
        for i in 0..24 {
            let token = [&a2, &a, &b2, &b][i % 4];
            racers.push(Racer::Refresh(token.refresh_token.clone()));
            if i == 8 + 2 * round {
                racers.push(Racer::SignOut(a.id_token.clone()));
            }
        }
        let tasks: Vec<_> = racers
            .into_iter()
            .map(|racer| {
                let request = match racer {
                    Racer::Refresh(token) => app
                        .client
                        .post(app.url("/tokens"))
                        .json(&json!({"refreshToken": token})),
                    Racer::SignOut(id_token) => {
                        app.client.post(app.url("/signout")).bearer_auth(id_token)
                    }
                };
                tokio::spawn(async move { request.send().await.expect("request") })
            })
            .collect();
        let mut signed_out = false;
        for task in tasks {
            let response = task.await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            match status {
                200 if body.get("message").is_some() => signed_out = true,
                200 => seen.push(Tokens::from_body(&body)),
                401 => assert!(
                    ["AUTHORIZATION", "REFRESH_TOKEN_REUSED"]
                        .contains(&body["error"]["type"].as_str().unwrap_or_default()),
                    "{body}"
                ),
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert!(signed_out, "the sign-out answered 200");

        for (i, tokens) in seen.iter().enumerate() {
            assert_refused(&app, tokens, &format!("round {round}, token {i}")).await;
        }
        assert!(app.sessions(&a.id_token).await.is_empty(), "round {round}");
        assert!(
            app.user_keys(uid).await.is_empty(),
            "round {round}: {:?}",
            app.user_keys(uid).await
        );
    }
    if backend == Backend::Real {
        let mut redis = app.redis().unwrap();
        let marker: bool = redis::cmd("EXISTS")
            .arg(format!("signout:{uid}"))
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(!marker, "sign-out marker removed");
    }
}

crate::on_every_backend!(
    multi_thread:
    sign_out_global_ends_every_session,
    sign_out_local_ends_only_the_callers_session,
    sign_out_others_ends_every_session_but_the_callers,
    an_unknown_scope_is_a_400_and_ends_nothing,
    an_id_token_from_before_sessions_cannot_name_its_session,
    a_sign_out_everywhere_racing_rotations_and_grace_replays_leaves_nothing_usable,
);
