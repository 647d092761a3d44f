//! A domain service trusting the account service's ID tokens, and nothing else.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{AccountService, TodoService, claims_of, http, kid_of, now, sign, unsigned};
use crate::raw_http::{closed_within, connect, read_response, send};

/// Calls the todo service with an optional bearer token.
async fn call(
    todo: &TodoService,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = http().request(method, format!("{}{path}", todo.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request to the todo service");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    (status, headers, body)
}

#[tokio::test]
async fn a_user_of_the_account_service_manages_their_todos_and_nobody_elses() {
    let mut account = AccountService::start().await;
    let ada = account.sign_up().await;
    let bob = account.sign_up().await;
    let todo = TodoService::start(&account.jwks_url()).await;

    // Ada creates, lists, reads and updates her todos.
    let (status, _, first) = call(
        &todo,
        Method::POST,
        "/api/todos",
        Some(&ada),
        Some(json!({"title": "buy milk"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["title"], "buy milk");
    assert_eq!(first["completed"], false);
    let first_uri = format!("/api/todos/{}", first["id"].as_str().unwrap());
    let (_, _, second) = call(
        &todo,
        Method::POST,
        "/api/todos",
        Some(&ada),
        Some(json!({"title": "walk the dog"})),
    )
    .await;
    let (status, _, listed) = call(&todo, Method::GET, "/api/todos", Some(&ada), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed, json!({"todos": [first.clone(), second.clone()]}));
    let (status, _, got) = call(&todo, Method::GET, &first_uri, Some(&ada), None).await;
    assert_eq!((status, &got), (StatusCode::OK, &first));
    let (status, _, patched) = call(
        &todo,
        Method::PATCH,
        &first_uri,
        Some(&ada),
        Some(json!({"completed": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["completed"], true);

    // Bob sees none of it and can touch none of it.
    let (status, _, listed) = call(&todo, Method::GET, "/api/todos", Some(&bob), None).await;
    assert_eq!((status, listed), (StatusCode::OK, json!({"todos": []})));
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then(|| json!({"title": "mine now"}));
        let (status, _, error) = call(&todo, method, &first_uri, Some(&bob), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error["error"]["type"], "NOT_FOUND");
    }

    // Ada deletes one.
    let (status, _, _) = call(&todo, Method::DELETE, &first_uri, Some(&ada), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(&todo, Method::GET, &first_uri, Some(&ada), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // With the account service gone, the cached keys still verify.
    account.stop();
    let (status, _, listed) = call(&todo, Method::GET, "/api/todos", Some(&ada), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed, json!({"todos": [second]}));
}

#[tokio::test]
async fn the_todo_service_refuses_every_token_the_account_service_did_not_issue_as_is() {
    let account = AccountService::start().await;
    let ada = account.sign_up().await;
    let bob = account.sign_up().await;
    let todo = TodoService::start(&account.jwks_url()).await;
    let private_pem = account.private_pem();
    let kid = kid_of(&ada);
    let claims = claims_of(&ada);
    let with = |name: &str, value: Value| {
        let mut claims = claims.clone();
        claims[name] = value;
        claims
    };

    // The real token works, and the keys are known from now on.
    let (status, _, _) = call(&todo, Method::GET, "/api/todos", Some(&ada), None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, headers, body) = call(&todo, Method::GET, "/api/todos", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(body["error"]["type"], "AUTHORIZATION");

    let tampered = {
        // Ada's signature over Bob's identity.
        let parts: Vec<&str> = ada.split('.').collect();
        let bob_payload = bob.split('.').nth(1).unwrap();
        format!("{}.{bob_payload}.{}", parts[0], parts[2])
    };
    let forged = [
        (
            "expired",
            sign(&private_pem, &kid, &with("exp", json!(now() - 60))),
        ),
        ("tampered", tampered),
        ("alg none", unsigned(&kid, &claims)),
        (
            "other issuer",
            sign(&private_pem, &kid, &with("iss", json!("someone-else"))),
        ),
        (
            "other audience",
            sign(&private_pem, &kid, &with("aud", json!("billing"))),
        ),
    ];
    for (what, token) in forged {
        let (status, headers, body) =
            call(&todo, Method::GET, "/api/todos", Some(&token), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(
            headers["www-authenticate"], r#"Bearer error="invalid_token""#,
            "{what}"
        );
        assert_eq!(body["error"]["type"], "AUTHORIZATION", "{what}");
        assert!(!body.to_string().contains(&token), "{what}: token echoed");
    }

    // The same forging, done right, is accepted: the refusals above are for
    // the reasons tested, not for the forging itself.
    let reissued = sign(
        &private_pem,
        &kid,
        &with("jti", json!(uuid::Uuid::new_v4())),
    );
    let (status, _, _) = call(&todo, Method::GET, "/api/todos", Some(&reissued), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_todo_service_never_logs_the_credentials_of_its_jwks_url() {
    let account = AccountService::start().await;
    let ada = account.sign_up().await;
    let with_credentials = |url: &str| url.replace("http://", "http://jwks-user:s3cret-pw@");
    let redacted = with_credentials(&account.jwks_url()).replace("jwks-user:s3cret-pw@", "***@");

    // A fetch that succeeds (the JWKS is public: the credentials are ignored).
    let todo = TodoService::start(&with_credentials(&account.jwks_url())).await;
    let (status, _, _) = call(&todo, Method::GET, "/api/todos", Some(&ada), None).await;
    assert_eq!(status, StatusCode::OK);
    let fetched = todo.wait_for_log("fetched the token signing keys").await;

    // A fetch that fails.
    let missing = format!("{}/no-such-jwks.json", account.base);
    let broken = TodoService::start(&with_credentials(&missing)).await;
    let failed = broken
        .wait_for_log("cannot fetch the token signing keys")
        .await;

    for (output, url) in [
        (&fetched, &redacted),
        (&failed, &missing.replace("http://", "http://***@")),
    ] {
        assert!(!output.contains("s3cret-pw"), "{output}");
        assert!(!output.contains("jwks-user"), "{output}");
        assert!(output.contains(&format!("url={url}")), "{output}");
    }
}

#[tokio::test]
async fn the_todo_service_cuts_off_silent_connections_and_slow_bodies() {
    let account = AccountService::start().await;
    let ada = account.sign_up().await;
    let todo = TodoService::start_with(
        &account.jwks_url(),
        &[("HEADER_READ_TIMEOUT", "1"), ("BODY_READ_TIMEOUT", "1")],
    )
    .await;

    // A connection that never sends a byte.
    let started = Instant::now();
    let mut silent = connect(&todo.base).await;
    let closed = closed_within(&mut silent, started, Duration::from_secs(15))
        .await
        .expect("a silent connection is closed");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(8),
        "closed after {closed:?}"
    );

    // A valid token and a body that never completes.
    let (mut reader, mut writer) = connect(&todo.base).await.into_split();
    let head = format!(
        "POST /api/todos HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {ada}\r\n\
         Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"title\":"
    );
    // Before the head is sent: the server's body clock starts later.
    let started = Instant::now();
    send(&mut writer, head.as_bytes()).await.unwrap();
    let response = read_response(&mut reader, Duration::from_secs(15)).await;
    let answered = started.elapsed();
    assert_eq!(response.status, 408, "{response:?}");
    assert_eq!(response.json()["error"]["type"], "REQUEST_TIMEOUT");
    assert_eq!(response.header("connection"), Some("close"));
    assert!(
        answered >= Duration::from_millis(900) && answered < Duration::from_secs(8),
        "answered after {answered:?}"
    );
    assert!(
        closed_within(&mut reader, Instant::now(), Duration::from_secs(15))
            .await
            .is_some(),
        "the connection stays open after the 408"
    );
}

#[tokio::test]
async fn a_todo_handler_slower_than_handler_timeout_answers_503() {
    let account = AccountService::start().await;
    let ada = account.sign_up().await;
    // A key set that never answers: the verifier waits for it (up to its
    // fetch timeout) before it can check Ada's token.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks_url = format!(
        "http://{}/.well-known/jwks.json",
        black_hole.local_addr().unwrap()
    );
    let todo = TodoService::start_with(&jwks_url, &[("HANDLER_TIMEOUT", "1")]).await;
    let started = Instant::now();
    let (status, _, body) = call(&todo, Method::GET, "/api/todos", Some(&ada), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["type"], "SERVICE_UNAVAILABLE");
    // The handler timeout's own words (the verifier's fetch, given up after
    // 5 s, would answer otherwise).
    assert_eq!(
        body["error"]["message"], "the request timed out, try again later",
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    drop(black_hole);
}

#[tokio::test]
async fn a_user_keeps_at_most_todo_max_per_user_todos() {
    let account = AccountService::start().await;
    let ada = account.sign_up().await;
    let bob = account.sign_up().await;
    let todo = TodoService::start_with(&account.jwks_url(), &[("TODO_MAX_PER_USER", "3")]).await;
    let create = |token: String, title: &'static str| {
        let todo = &todo;
        async move {
            call(
                todo,
                Method::POST,
                "/api/todos",
                Some(&token),
                Some(json!({"title": title})),
            )
            .await
        }
    };
    let mut ids = Vec::new();
    for title in ["one", "two", "three"] {
        let (status, _, created) = create(ada.clone(), title).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let (status, _, error) = create(ada.clone(), "four").await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["type"], "CONFLICT");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains('3')),
        "the message names the cap: {error}"
    );
    let (_, _, listed) = call(&todo, Method::GET, "/api/todos", Some(&ada), None).await;
    assert_eq!(listed["todos"].as_array().map(Vec::len), Some(3));

    // The cap is per user, and a deleted todo frees its place.
    let (status, _, _) = create(bob.clone(), "bob's").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = call(
        &todo,
        Method::DELETE,
        &format!("/api/todos/{}", ids[0]),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = create(ada.clone(), "four").await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn the_todo_service_answers_431_in_its_shape_for_too_large_a_head() {
    let todo = TodoService::start("http://127.0.0.1:9/.well-known/jwks.json").await;
    crate::raw_http::heads_over_16_kib_or_100_fields_get_431(&todo.base).await;
}
