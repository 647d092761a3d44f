//! Bad input and failures answer in the one JSON error shape, never 500.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::helpers::{Backend, PASSWORD, assert_error, spawn_app, unique_email};

async fn malformed_json_is_a_400(backend: Backend) {
    let app = spawn_app!(backend);
    for body in [
        r#"{"email": "a@example.com", "#,
        "not json",
        r#"{"email":"a@b.io"} trailing"#,
    ] {
        let response = app
            .client
            .post(app.url("/signup"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "BAD_REQUEST").await;
    }
}

async fn invalid_fields_are_a_400_listing_every_invalid_arg(backend: Backend) {
    let app = spawn_app!(backend);
    let body = assert_error(
        app.post_json(
            "/signup",
            &json!({"email": "not-an-email", "password": "short"}),
        )
        .await,
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
    assert_eq!(fields, ["email", "password"]);
    assert!(
        body["error"]["invalidArgs"][1]["message"]
            .as_str()
            .unwrap()
            .contains("at least 8")
    );

    // Missing fields, a wrong type, and an over-long password.
    let body = assert_error(
        app.post_json("/signup", &json!({})).await,
        400,
        "BAD_REQUEST",
    )
    .await;
    assert_eq!(body["error"]["invalidArgs"].as_array().unwrap().len(), 2);
    let body = assert_error(
        app.post_json("/signup", &json!({"email": 42, "password": PASSWORD}))
            .await,
        400,
        "BAD_REQUEST",
    )
    .await;
    assert_eq!(body["error"]["invalidArgs"][0]["field"], "email");
    let body = assert_error(
        app.post_json(
            "/signup",
            &json!({"email": unique_email(), "password": "x".repeat(257)}),
        )
        .await,
        400,
        "BAD_REQUEST",
    )
    .await;
    assert_eq!(body["error"]["invalidArgs"][0]["field"], "password");
    // A JSON value that is not an object.
    assert_error(
        app.post_json("/signup", &json!([1, 2])).await,
        400,
        "BAD_REQUEST",
    )
    .await;
}

async fn a_body_that_is_not_json_is_a_415(backend: Backend) {
    let app = spawn_app!(backend);
    let response = app
        .client
        .post(app.url("/signin"))
        .header("content-type", "text/plain")
        .body(r#"{"email":"a@example.com","password":"whatever1"}"#)
        .send()
        .await
        .unwrap();
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    let response = app.client.post(app.url("/signin")).send().await.unwrap();
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;
}

async fn a_body_over_the_limit_is_a_413(backend: Backend) {
    let app = spawn_app!(backend, &[("MAX_BODY_BYTES", "1024")]);
    let big = json!({"email": unique_email(), "password": "p".repeat(2000)});
    assert_error(
        app.post_json("/signup", &big).await,
        413,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
    // Also without a Content-Length (chunked), the limit holds.
    let chunks: Vec<Result<String, std::io::Error>> = vec![
        Ok(r#"{"email":"a@example.com","password":""#.into()),
        Ok("p".repeat(2000)),
        Ok(r#""}"#.into()),
    ];
    let response = app
        .client
        .post(app.url("/signup"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "PAYLOAD_TOO_LARGE").await;
}

async fn unknown_routes_and_wrong_methods_answer_in_the_error_shape(backend: Backend) {
    let app = spawn_app!(backend);
    let response = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_error(response, 404, "NOT_FOUND").await;
    let response = app
        .client
        .get(format!("{}/", app.address))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NOT_FOUND").await;
    let response = app.client.get(app.url("/signup")).send().await.unwrap();
    assert_error(response, 405, "METHOD_NOT_ALLOWED").await;
    let response = app.client.patch(app.url("/me")).send().await.unwrap();
    assert_error(response, 405, "METHOD_NOT_ALLOWED").await;
}

async fn health_and_readiness_answer_while_the_stores_are_up(backend: Backend) {
    let app = spawn_app!(backend);
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let response = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// PostgreSQL only: it holds a table lock to make the handler slow.
#[tokio::test]
async fn a_handler_slower_than_handler_timeout_answers_503() {
    let app = spawn_app!(Backend::Real, &[("HANDLER_TIMEOUT", "1")]);
    let (_, tokens) = app.signup(&unique_email()).await;
    // Hold a lock on the users table so `/me` cannot read it in time.
    let mut conn = sqlx::PgConnection::connect(app.postgres_url())
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let body = assert_error(app.me(&tokens.id_token).await, 503, "SERVICE_UNAVAILABLE").await;
    assert_eq!(
        body["error"]["message"],
        "the request timed out, try again later"
    );
    // The lock is held until the rollback below: only the timeout answers.
    assert!(started.elapsed() < Duration::from_secs(30));
    tx.rollback().await.unwrap();
    // Once the lock is gone the same request succeeds.
    assert_eq!(app.me(&tokens.id_token).await.status(), 200);
    app.signout(&tokens.id_token).await;
}

crate::on_every_backend!(
    malformed_json_is_a_400,
    invalid_fields_are_a_400_listing_every_invalid_arg,
    a_body_that_is_not_json_is_a_415,
    a_body_over_the_limit_is_a_413,
    unknown_routes_and_wrong_methods_answer_in_the_error_shape,
    health_and_readiness_answer_while_the_stores_are_up
);
