//! The zero-setup default: SQLite and the in-process token store, keys
//! generated on first start, everything surviving a restart.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use account::config::Config;
use account::startup::Application;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, Tokens, assert_error, claims, spawn_app, unique_email};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_restart_keeps_users_generated_keys_and_live_refresh_tokens() {
    let keys = tempfile::tempdir().unwrap();
    let (private, public, secret, data_key) = (
        keys.path().join("keys/private.pem"),
        keys.path().join("keys/public.pem"),
        keys.path().join("keys/refresh.secret"),
        keys.path().join("keys/data.key"),
    );
    let vars = [
        ("PRIV_KEY_FILE", private.to_str().unwrap()),
        ("PUB_KEY_FILE", public.to_str().unwrap()),
        ("REFRESH_SECRET_FILE", secret.to_str().unwrap()),
        ("DATA_KEY_FILE", data_key.to_str().unwrap()),
    ];
    let app = spawn_app!(Backend::Embedded, &vars);

    // Keys were generated on first start, owner-only.
    for file in [&private, &public, &secret, &data_key] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&keys.path().join("keys")), 0o700);
    let key_bytes = std::fs::read(&private).unwrap();

    let email = unique_email();
    let (uid, tokens) = app.signup(&email).await;

    let app = app.restart().await;

    assert_eq!(
        std::fs::read(&private).unwrap(),
        key_bytes,
        "keys reused, not regenerated"
    );
    // The ID token issued before the restart still verifies.
    let me: Value = app.me(&tokens.id_token).await.json().await.unwrap();
    assert_eq!(me["user"]["email"], email);
    // The refresh token issued before the restart still rotates, in the same
    // session; presented again within the grace window it gets the same pair.
    let response = app.refresh(&tokens.refresh_token).await;
    assert_eq!(response.status(), 200);
    let rotated = Tokens::from_body(&response.json().await.unwrap());
    assert_eq!(
        rotated.sid(),
        tokens.sid(),
        "the session survived the restart"
    );
    let response = app.refresh(&tokens.refresh_token).await;
    assert_eq!(response.status(), 200);
    let replayed = Tokens::from_body(&response.json().await.unwrap());
    assert_eq!(replayed, rotated, "the same pair");
    let jti = claims(&rotated.refresh_token)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.refresh_keys(uid).await, vec![format!("{uid}:{jti}")]);
    let sessions = app.sessions(&rotated.id_token).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], tokens.sid());
    // The user is still in the SQLite file.
    let response = app
        .post_json("/signin", &json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_expired_whitelist_entry_is_refused_at_once_though_the_jwt_is_within_leeway() {
    // Three seconds: the entry is still there when read right after the
    // sign-up on a loaded machine, and gone 3.5 s later, while the JWT is
    // within its 5 s leeway until 8 s.
    let app = spawn_app!(Backend::Embedded, &[("REFRESH_TOKEN_EXP", "3")]);
    let (uid, tokens) = app.signup(&unique_email()).await;
    assert_eq!(app.refresh_keys(uid).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // The entry has expired (its JWT is still within the 5 s leeway): refused.
    assert!(app.refresh_keys(uid).await.is_empty());
    assert_error(
        app.refresh(&tokens.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
}

#[tokio::test]
async fn missing_keys_with_an_external_store_stop_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let config = Config::from_vars(
        [
            (
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            ("PRIV_KEY_FILE", missing.to_str().unwrap()),
            ("PUB_KEY_FILE", missing.to_str().unwrap()),
            ("PORT", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    )
    .unwrap();
    let err = Application::build(config)
        .await
        .err()
        .expect("start-up fails");
    assert!(format!("{err:#}").starts_with("PRIV_KEY_FILE:"), "{err:#}");
    assert!(!missing.exists(), "nothing generated for an external store");
}

/// The SQLite file stops taking writes (here: another connection holds its
/// write lock, as a full disk or I/O errors would refuse them): what needs
/// the token store answers 503, nothing uncommitted is answered, and the
/// service recovers on its own once the file takes writes again.
#[tokio::test]
async fn a_token_store_that_cannot_commit_answers_503_and_recovers_on_its_own() {
    // A handler timeout far off: the 503 must come from the store's own
    // bounded wait for its commit (3 s).
    let app = spawn_app!(
        Backend::Embedded,
        &[("REFRESH_REUSE_GRACE", "60"), ("HANDLER_TIMEOUT", "120")]
    );
    let (_, tokens) = app.signup(&unique_email()).await;
    let account::config::TokenStoreConfig::InProcess {
        file: Some(file), ..
    } = &app.config().token_store
    else {
        panic!("an embedded app keeps its tokens in a file")
    };
    let url = format!("sqlite://{}", file.display());
    let mut lock = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut lock)
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let body = assert_error(
        app.refresh(&tokens.refresh_token).await,
        503,
        "SERVICE_UNAVAILABLE",
    )
    .await;
    assert_ne!(
        body["error"]["message"], "the request timed out, try again later",
        "answered by the store's bounded wait, not the handler timeout"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a bounded wait"
    );
    let response = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_error(response, 503, "SERVICE_UNAVAILABLE").await;

    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let response = app
            .client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The rotation the 503 did not confirm was committed meanwhile: the
    // client's retry gets its pair (the grace window), which rotates on.
    let response = app.refresh(&tokens.refresh_token).await;
    assert_eq!(response.status(), 200);
    let retried = Tokens::from_body(&response.json().await.unwrap());
    assert_eq!(retried.sid(), tokens.sid());
    let response = app.refresh(&retried.refresh_token).await;
    assert_eq!(response.status(), 200);
    let next = Tokens::from_body(&response.json().await.unwrap());
    let app = app.restart().await;
    assert_eq!(app.refresh(&next.refresh_token).await.status(), 200);
}
