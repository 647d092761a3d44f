//! Machine clients end to end (issue 11): registered with the `account`
//! binary's `clients` commands, a token from its `/oauth/token`, and the
//! todo service's `/api/todos/count`, which takes only a client token with
//! scope `todos:read`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{AccountService, TodoService, http};

async fn call(todo: &TodoService, method: Method, path: &str, token: &str) -> reqwest::Response {
    http()
        .request(method, format!("{}{path}", todo.base))
        .bearer_auth(token)
        .json(&json!({"title": "buy milk"}))
        .send()
        .await
        .expect("request to the todo service")
}

#[tokio::test]
async fn a_client_with_todos_read_counts_todos_and_nothing_else_passes() {
    let account = AccountService::start().await;
    let todo = TodoService::start(&account.jwks_url()).await;
    let (reader, reader_secret) = account.add_client("reporting", "todos:read");
    let (other, other_secret) = account.add_client("other", "reports:read");
    let (ok, listed) = account.command(&["clients", "list"]);
    assert!(
        ok && listed.contains(&reader) && listed.contains(&other),
        "{listed}"
    );

    let user = account.sign_up().await;
    for _ in 0..2 {
        let response = call(&todo, Method::POST, "/api/todos", &user).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let reader_token = account.client_token(&reader, &reader_secret).await;
    let response = call(&todo, Method::GET, "/api/todos/count", &reader_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"count": 2}));

    // A user's ID token is not a client's: 401.
    let response = call(&todo, Method::GET, "/api/todos/count", &user).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    // A client token without the scope: 403 insufficient_scope.
    let other_token = account.client_token(&other, &other_secret).await;
    let response = call(&todo, Method::GET, "/api/todos/count", &other_token).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="todos:read""#
    );
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["type"],
        "FORBIDDEN"
    );
    // A client token on the user endpoints: 401.
    for (method, path) in [(Method::GET, "/api/todos"), (Method::POST, "/api/todos")] {
        let response = call(&todo, method, path, &reader_token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // No token: 401.
    let response = http()
        .get(format!("{}/api/todos/count", todo.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A removed client gets no new token.
    let (ok, out) = account.command(&["clients", "remove", &reader]);
    assert!(ok, "{out}");
    let response = http()
        .post(format!("{}/oauth/token", account.base))
        .basic_auth(&reader, Some(&reader_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (ok, _) = account.command(&["clients", "remove", &reader]);
    assert!(!ok, "removing an unknown client fails");
}
