//! Sessions as clients see them: the session id both tokens carry, the grace
//! window for concurrent refreshes, reuse detection, the absolute lifetime,
//! and refresh tokens from before sessions.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Backend, TestApp, Tokens, assert_error, claims, sign_refresh_token, spawn_app, unique_email,
    unix_now,
};

/// Asserts a 401 `REFRESH_TOKEN_REUSED` with the invalid-token challenge.
async fn assert_reused(response: reqwest::Response) {
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_error(response, 401, "REFRESH_TOKEN_REUSED").await;
}

/// The `id`s of a session list, in its order.
fn ids(sessions: &[Value]) -> Vec<String> {
    sessions
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

fn sorted(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys
}

async fn both_tokens_carry_the_session_id_and_a_rotation_keeps_it(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let before = unix_now();
    let (uid, tokens) = app.signup(&email).await;
    let after = unix_now();

    let sid = tokens.sid();
    assert!(sid.parse::<Uuid>().is_ok(), "sid {sid}");
    let refresh = claims(&tokens.refresh_token);
    assert_eq!(refresh["sid"], sid, "ID and refresh token share the sid");
    let auth_time = refresh["auth_time"].as_u64().expect("auth_time");
    assert!(
        (before..=after).contains(&auth_time),
        "auth_time {auth_time}"
    );
    assert_eq!(
        refresh["exp"].as_u64().unwrap(),
        refresh["iat"].as_u64().unwrap() + 259_200,
        "REFRESH_TOKEN_EXP, well before SESSION_MAX_AGE"
    );

    // The whitelist entry and the per-user index, both under `<uid>:`; the
    // index lives at least as long as the entry.
    let entry = format!("{uid}:{}", tokens.jti());
    let index = format!("{uid}:sessions");
    assert_eq!(
        app.user_keys(uid).await,
        sorted(vec![entry.clone(), index.clone()])
    );
    // The index first: read later, the entry's TTL (the same expiry at
    // least) cannot be higher unless the entry outlives the index.
    let index_ttl = app.ttl(&index).await;
    let entry_ttl = app.ttl(&entry).await;
    assert!((259_170..=259_200).contains(&entry_ttl), "TTL {entry_ttl}");
    assert!(index_ttl >= entry_ttl, "index outlives entry");
    if backend == Backend::Real {
        let value: Value =
            serde_json::from_slice(&app.redis_get(&entry).await.expect("entry")).unwrap();
        assert_eq!(value["sid"], sid, "the entry records its session");
        let index = app.redis_session_index(uid).await;
        assert_eq!(index.keys().collect::<Vec<_>>(), [&sid]);
    }

    // A rotation keeps the session and its start.
    let rotated = app.refreshed(&tokens.refresh_token).await;
    assert_eq!(rotated.sid(), sid);
    let rotated_claims = claims(&rotated.refresh_token);
    assert_eq!(rotated_claims["sid"], sid);
    assert_eq!(rotated_claims["auth_time"], auth_time);
    assert_ne!(rotated.jti(), tokens.jti());

    // A sign-in starts another session.
    let other = app.signin(&email).await;
    assert_ne!(other.sid(), sid);
    assert_eq!(claims(&other.refresh_token)["sid"], other.sid());
    app.signout(&other.id_token).await;
}

/// `n` refreshes with one token at once: every one gets the same new pair,
/// and the user has one session.
async fn concurrent_refreshes_get_the_same_pair(app: &TestApp, n: usize) {
    let (uid, tokens) = app.signup(&unique_email()).await;
    let mut pairs = Vec::new();
    for response in app.refresh_concurrently(&tokens.refresh_token, n).await {
        assert_eq!(response.status(), 200, "every concurrent refresh succeeds");
        pairs.push(Tokens::from_body(&response.json().await.unwrap()));
    }
    let successor = pairs[0].clone();
    for pair in &pairs {
        assert_eq!(
            (&pair.id_token, &pair.refresh_token),
            (&successor.id_token, &successor.refresh_token),
            "the same pair"
        );
    }
    assert_eq!(successor.sid(), tokens.sid());
    assert_ne!(successor.jti(), tokens.jti());

    let sessions = app.sessions(&successor.id_token).await;
    assert_eq!(ids(&sessions), [tokens.sid()], "one session");
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(
        app.refresh_keys(uid).await,
        vec![format!("{uid}:{}", successor.jti())],
        "one live refresh token"
    );
    let index_ttl = app.ttl(&format!("{uid}:sessions")).await;
    let entry_ttl = app.ttl(&format!("{uid}:{}", successor.jti())).await;
    assert!(index_ttl >= entry_ttl, "index outlives the new entry");
    // The successor is kept, sealed, for the grace window.
    let grace = format!("{uid}:grace:{}", tokens.jti());
    assert!(app.user_keys(uid).await.contains(&grace), "grace key");
    let ttl = app.ttl(&grace).await;
    assert!(
        (1..=10).contains(&ttl),
        "grace TTL {ttl} (REFRESH_REUSE_GRACE 10)"
    );
    if app.backend == Backend::Real {
        let sealed = app.redis_get(&grace).await.expect("grace value");
        let text = String::from_utf8_lossy(&sealed);
        for part in successor.refresh_token.split('.') {
            assert!(!text.contains(part), "successor stored in the clear");
        }
    }

    // The successor rotates as usual.
    let next = app.refreshed(&successor.refresh_token).await;
    assert_eq!(next.sid(), tokens.sid());
    app.signout(&next.id_token).await;
}

async fn two_concurrent_refreshes_with_one_token_get_the_same_pair(backend: Backend) {
    let app = spawn_app!(backend);
    concurrent_refreshes_get_the_same_pair(&app, 2).await;
}

async fn twenty_concurrent_refreshes_with_one_token_get_the_same_pair(backend: Backend) {
    let app = spawn_app!(backend);
    concurrent_refreshes_get_the_same_pair(&app, 20).await;
}

async fn only_the_immediately_previous_token_is_replayed_an_older_one_ends_the_session(
    backend: Backend,
) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (uid, a) = app.signup(&email).await;
    let other = app.signin(&email).await;
    let b = app.refreshed(&a.refresh_token).await;
    let c = app.refreshed(&b.refresh_token).await;

    // b is c's predecessor, within the window: c again.
    let again = app.refreshed(&b.refresh_token).await;
    assert_eq!(again.refresh_token, c.refresh_token);
    assert!(
        !app.user_keys(uid)
            .await
            .contains(&format!("{uid}:grace:{}", a.jti())),
        "a's sealed successor went when b rotated"
    );

    // a is older: theft. The whole session ends, c included.
    assert_reused(app.refresh(&a.refresh_token).await).await;
    for (token, name) in [(&c, "c"), (&b, "b"), (&a, "a")] {
        let body = assert_error(
            app.refresh(&token.refresh_token).await,
            401,
            "AUTHORIZATION",
        )
        .await;
        assert!(body.to_string().contains("refresh token"), "{name}: {body}");
    }

    // The user's other session is untouched.
    assert_eq!(ids(&app.sessions(&other.id_token).await), [other.sid()]);
    assert_eq!(
        app.user_keys(uid).await,
        sorted(vec![
            format!("{uid}:{}", other.jti()),
            format!("{uid}:sessions")
        ]),
        "nothing of the ended session is left"
    );
    let other = app.refreshed(&other.refresh_token).await;
    app.signout(&other.id_token).await;
}

async fn a_replay_is_served_only_while_the_successor_is_whitelisted(backend: Backend) {
    let app = spawn_app!(backend);
    let (uid, tokens) = app.signup(&unique_email()).await;
    let successor = app.refreshed(&tokens.refresh_token).await;
    app.delete_refresh_key(&format!("{uid}:{}", successor.jti()))
        .await;
    // Within the window, but the successor is gone: no pair, the session ends.
    assert_reused(app.refresh(&tokens.refresh_token).await).await;
    assert_error(
        app.refresh(&successor.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert!(app.sessions(&successor.id_token).await.is_empty());
    assert!(app.user_keys(uid).await.is_empty(), "nothing left");
}

async fn a_replay_after_the_grace_window_is_reuse_and_ends_only_that_session(backend: Backend) {
    let app = spawn_app!(backend, &[("REFRESH_REUSE_GRACE", "1")]);
    let email = unique_email();
    let (uid, stolen) = app.signup(&email).await;
    let laptop = app.signin(&email).await;
    let successor = app.refreshed(&stolen.refresh_token).await;

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_reused(app.refresh(&stolen.refresh_token).await).await;
    // The successor was revoked with its session; the session being over,
    // both now get the ordinary 401.
    assert_error(
        app.refresh(&successor.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert_error(
        app.refresh(&stolen.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;

    // The user's second session still refreshes.
    let laptop2 = app.refreshed(&laptop.refresh_token).await;
    assert_eq!(ids(&app.sessions(&laptop2.id_token).await), [laptop.sid()]);
    assert_eq!(
        app.refresh_keys(uid).await,
        vec![format!("{uid}:{}", laptop2.jti())]
    );
    app.signout(&laptop2.id_token).await;
}

async fn without_a_grace_window_a_second_refresh_is_reuse(backend: Backend) {
    let app = spawn_app!(backend, &[("REFRESH_REUSE_GRACE", "0")]);
    let (uid, tokens) = app.signup(&unique_email()).await;
    let rotated = app.refreshed(&tokens.refresh_token).await;
    assert!(
        !app.user_keys(uid)
            .await
            .iter()
            .any(|k| k.contains(":grace:")),
        "no successor kept without a window"
    );
    assert_reused(app.refresh(&tokens.refresh_token).await).await;
    assert_error(
        app.refresh(&rotated.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert!(app.user_keys(uid).await.is_empty(), "session ended: {uid}");
}

async fn a_session_ends_at_session_max_age_however_often_it_rotated(backend: Backend) {
    // Eight seconds: room for the sign-up, reads and rotation below to happen
    // before the end on a loaded machine.
    let app = spawn_app!(backend, &[("SESSION_MAX_AGE", "8")]);
    let (uid, tokens) = app.signup(&unique_email()).await;
    let first = claims(&tokens.refresh_token);
    let auth_time = first["auth_time"].as_u64().unwrap();
    assert_eq!(first["exp"].as_u64().unwrap(), auth_time + 8, "exp capped");
    let ttl = app.ttl(&format!("{uid}:{}", tokens.jti())).await;
    assert!((1..=8).contains(&ttl), "entry TTL {ttl}");

    // A rotation works but does not push the end back.
    let rotated = app.refreshed(&tokens.refresh_token).await;
    let rotated_claims = claims(&rotated.refresh_token);
    assert_eq!(rotated_claims["auth_time"], auth_time);
    assert_eq!(rotated_claims["exp"].as_u64().unwrap(), auth_time + 8);

    // Past the end, measured from the sign-in (not from now: a slow machine
    // must not make the test pass or fail by chance).
    let end = std::time::UNIX_EPOCH + Duration::from_secs(auth_time + 8);
    let wait = end
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(1100)).await;
    // The JWT is still within its 5 s leeway; the session is over.
    assert_error(
        app.refresh(&rotated.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert!(app.sessions(&rotated.id_token).await.is_empty());
    assert!(app.refresh_keys(uid).await.is_empty());
}

/// A refresh token from before sessions: no `sid`, no `auth_time`.
fn legacy_refresh_token(uid: Uuid, jti: Uuid) -> String {
    let now = unix_now();
    sign_refresh_token(&json!({"sub": uid, "jti": jti, "iat": now, "exp": now + 600}))
}

/// Writes a whitelist entry as the service did before sessions (`<uid>:<jti>`
/// → `1`, in Redis); returns its jti.
async fn write_legacy_entry(app: &TestApp, uid: Uuid) -> Uuid {
    let jti = Uuid::new_v4();
    let mut redis = app.redis().unwrap();
    redis::cmd("SET")
        .arg(format!("{uid}:{jti}"))
        .arg("1")
        .arg("EX")
        .arg(600)
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    jti
}

/// Rotates a legacy token: once, into a new session; then it is refused.
async fn assert_legacy_token_rotates_once(app: &TestApp, uid: Uuid, legacy: &str) {
    let before = unix_now();
    let rotated = app.refreshed(legacy).await;
    let rotated_claims = claims(&rotated.refresh_token);
    assert_eq!(rotated_claims["sid"], rotated.sid(), "a session now");
    assert!(rotated_claims["auth_time"].as_u64().unwrap() >= before);
    assert_error(app.refresh(legacy).await, 401, "AUTHORIZATION").await;
    let sessions = app.sessions(&rotated.id_token).await;
    assert!(ids(&sessions).contains(&rotated.sid()));
    assert!(
        app.refresh_keys(uid)
            .await
            .contains(&format!("{uid}:{}", rotated.jti()))
    );
    app.refreshed(&rotated.refresh_token).await;
}

crate::on_every_backend!(
    multi_thread:
    both_tokens_carry_the_session_id_and_a_rotation_keeps_it,
    two_concurrent_refreshes_with_one_token_get_the_same_pair,
    twenty_concurrent_refreshes_with_one_token_get_the_same_pair,
    only_the_immediately_previous_token_is_replayed_an_older_one_ends_the_session,
    a_replay_is_served_only_while_the_successor_is_whitelisted,
    a_replay_after_the_grace_window_is_reuse_and_ends_only_that_session,
    without_a_grace_window_a_second_refresh_is_reuse,
    a_session_ends_at_session_max_age_however_often_it_rotated,
);

/// PostgreSQL + Redis only: it writes a pre-sessions whitelist entry by hand.
#[tokio::test]
async fn a_refresh_token_from_before_sessions_rotates_once_into_a_new_session_in_redis() {
    let app = spawn_app!(Backend::Real);
    let (uid, tokens) = app.signup(&unique_email()).await;
    let jti = write_legacy_entry(&app, uid).await;
    assert_legacy_token_rotates_once(&app, uid, &legacy_refresh_token(uid, jti)).await;
    assert_eq!(app.sessions(&tokens.id_token).await.len(), 2);
    app.signout(&tokens.id_token).await;
}

/// Embedded only: a snapshot an earlier version saved before sessions
/// (`<uid>:<jti>` → expiry), moved into the token store at start-up.
#[tokio::test]
async fn a_refresh_token_from_before_sessions_rotates_once_into_a_new_session_embedded() {
    let app = spawn_app!(Backend::Embedded);
    let (uid, _) = app.signup(&unique_email()).await;
    let jti = Uuid::new_v4();
    let app = app
        .restart_with(|config| {
            let account::config::TokenStoreConfig::InProcess { snapshot, .. } = &config.token_store
            else {
                panic!("embedded app without an in-process store")
            };
            let old = json!({"entries": {format!("{uid}:{jti}"): unix_now() + 600}});
            std::fs::write(snapshot, old.to_string()).unwrap();
        })
        .await;
    let account::config::TokenStoreConfig::InProcess { snapshot, .. } = &app.config().token_store
    else {
        unreachable!()
    };
    assert!(!snapshot.exists(), "read once, then removed");
    assert_legacy_token_rotates_once(&app, uid, &legacy_refresh_token(uid, jti)).await;
}

/// PostgreSQL + Redis only: a pre-sessions entry written by hand is in no
/// session index, yet ending the other sessions must reach it too.
#[tokio::test]
async fn a_refresh_token_from_before_sessions_is_refused_once_the_other_sessions_end() {
    let app = spawn_app!(Backend::Real);
    let email = unique_email();
    let (uid, tokens) = app.signup(&email).await;
    let mut legacy = Vec::new();
    for _ in 0..2 {
        let jti = write_legacy_entry(&app, uid).await;
        legacy.push(legacy_refresh_token(uid, jti));
    }
    // Signing out the others, then changing the password: each must leave
    // no token from before sessions usable.
    let response = app
        .client
        .post(app.url("/signout?scope=others"))
        .bearer_auth(&tokens.id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_error(app.refresh(&legacy[0]).await, 401, "AUTHORIZATION").await;
    assert_eq!(
        app.sessions(&tokens.id_token).await.len(),
        1,
        "no session started"
    );
    app.refreshed(&tokens.refresh_token).await;
    app.signout(&tokens.id_token).await;
}
