//! A domain service trusting the account service's ID tokens, and nothing else.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{AccountService, TodoService, claims_of, http, kid_of, now, sign, unsigned};

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
