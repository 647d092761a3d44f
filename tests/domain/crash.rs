//! The embedded default (SQLite users, the in-process token store in the same
//! file) killed with SIGKILL right after answering: started again, it still
//! knows every change it answered (rotations, sign-outs, sessions).

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{AccountService, PASSWORD, claims_of, http, postgres_or_skip};

/// A signed-in pair.
struct Pair {
    id_token: String,
    refresh_token: String,
}

impl Pair {
    fn from_body(body: &Value) -> Self {
        let token = |name: &str| {
            body["tokens"][name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in {body}"))
                .to_owned()
        };
        Self {
            id_token: token("idToken"),
            refresh_token: token("refreshToken"),
        }
    }

    fn sid(&self) -> Value {
        claims_of(&self.refresh_token)["sid"].clone()
    }
}

async fn post(service: &AccountService, path: &str, body: &Value) -> reqwest::Response {
    http()
        .post(format!("{}/api/account{path}", service.base))
        .json(body)
        .send()
        .await
        .expect("request")
}

async fn sign_up(service: &AccountService, email: &str) -> Pair {
    let response = post(
        service,
        "/signup",
        &json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    Pair::from_body(&response.json().await.expect("body"))
}

async fn sign_in(service: &AccountService, email: &str) -> Pair {
    let response = post(
        service,
        "/signin",
        &json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    Pair::from_body(&response.json().await.expect("body"))
}

/// `POST /tokens`: the status, and the new pair on 200.
async fn refresh(service: &AccountService, refresh_token: &str) -> (StatusCode, Option<Pair>) {
    let response = post(service, "/tokens", &json!({"refreshToken": refresh_token})).await;
    let status = response.status();
    let body: Value = response.json().await.expect("JSON body");
    (
        status,
        (status == StatusCode::OK).then(|| Pair::from_body(&body)),
    )
}

async fn rotated(service: &AccountService, pair: &Pair) -> Pair {
    match refresh(service, &pair.refresh_token).await {
        (StatusCode::OK, Some(next)) => next,
        (status, _) => panic!("refresh answered {status}"),
    }
}

/// The ids of the caller's sessions, sorted.
async fn session_ids(service: &AccountService, id_token: &str) -> Vec<String> {
    let response = http()
        .get(format!("{}/api/account/sessions", service.base))
        .bearer_auth(id_token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("body");
    let mut ids: Vec<String> = body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_kill_9_right_after_answering_undoes_nothing() {
    let mut service = AccountService::start().await;
    let email = format!("crash-{}@example.com", Uuid::new_v4());
    let first = sign_up(&service, &email).await;
    let second = rotated(&service, &first).await;
    let latest = rotated(&service, &second).await;
    let other_device = sign_in(&service, &email).await;
    let leaver = sign_up(&service, &format!("leaver-{}@example.com", Uuid::new_v4())).await;
    let response = http()
        .post(format!("{}/api/account/signout", service.base))
        .bearer_auth(&leaver.id_token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let sessions = session_ids(&service, &latest.id_token).await;
    assert_eq!(sessions.len(), 2);

    service.crash_and_restart().await;

    assert_eq!(
        session_ids(&service, &latest.id_token).await,
        sessions,
        "the sessions listed before the crash"
    );
    let next = rotated(&service, &latest).await;
    assert_eq!(next.sid(), first.sid(), "the same session goes on");
    assert_eq!(
        refresh(&service, &first.refresh_token).await.0,
        StatusCode::UNAUTHORIZED,
        "a rotated-away token stays refused"
    );
    assert_eq!(
        refresh(&service, &leaver.refresh_token).await.0,
        StatusCode::UNAUTHORIZED,
        "a signed-out user stays signed out"
    );
    let other_next = rotated(&service, &other_device).await;

    // Killed right after the rotation was answered: the new token is the one.
    service.crash_and_restart().await;
    let after = rotated(&service, &other_next).await;
    assert_eq!(after.sid(), other_device.sid());
    assert_eq!(
        refresh(&service, &other_device.refresh_token).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// PostgreSQL users without `REDIS_URL`: the in-process tokens are kept in
/// `data/tokens.db` of the working directory, and survive a crash as well.
#[tokio::test]
async fn beside_postgres_users_the_tokens_survive_a_kill_9_in_data_tokens_db() {
    let Some(database) = postgres_or_skip("account_crash").await else {
        return;
    };
    let mut service = AccountService::start_on_postgres(&database.url).await;
    let email = format!("crash-{}@example.com", Uuid::new_v4());
    let first = sign_up(&service, &email).await;
    let latest = rotated(&service, &first).await;
    assert!(service.path("data/tokens.db").exists());

    service.crash_and_restart().await;

    let next = rotated(&service, &latest).await;
    assert_eq!(next.sid(), first.sid());
    assert_eq!(
        session_ids(&service, &next.id_token).await,
        vec![first.sid().as_str().expect("sid").to_owned()]
    );
    assert_eq!(
        refresh(&service, &first.refresh_token).await.0,
        StatusCode::UNAUTHORIZED
    );
    drop(service);
}
