use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use uuid::Uuid;

use super::*;
use crate::verifier::test_support::{claims_for, key, static_verifier};

fn app() -> Router {
    router(static_verifier())
}

fn token_for(user: Uuid) -> String {
    key(0).sign(&claims_for(user))
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

/// Sends one request; `body` is sent as JSON unless `content_type` says otherwise.
async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&str>,
    content_type: Option<&str>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header(
            header::CONTENT_TYPE,
            content_type.unwrap_or("application/json"),
        );
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// A user of the app with a valid token.
struct Caller<'a> {
    app: &'a Router,
    token: String,
}

impl<'a> Caller<'a> {
    fn new(app: &'a Router) -> Self {
        Self {
            app,
            token: token_for(Uuid::new_v4()),
        }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string());
        send(
            self.app,
            method,
            uri,
            Some(&self.token),
            body.as_deref(),
            None,
        )
        .await
    }

    async fn create(&self, title: &str) -> Value {
        let answer = self
            .call(Method::POST, "/api/todos", Some(json!({"title": title})))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body
    }
}

fn assert_error(answer: &Answer, status: StatusCode, kind: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["error"]["type"], kind, "{}", answer.body);
    assert!(answer.body["error"]["message"].is_string());
}

fn invalid_fields(answer: &Answer) -> Vec<String> {
    assert_error(answer, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    answer.body["error"]["invalidArgs"]
        .as_array()
        .expect("invalidArgs")
        .iter()
        .map(|arg| arg["field"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_todo_goes_through_create_list_get_update_and_delete() {
    let app = app();
    let ada = Caller::new(&app);
    let created = ada.create("  write the verifier  ").await;
    assert_eq!(created["title"], "write the verifier", "stored trimmed");
    assert_eq!(created["completed"], false);
    assert!(created["createdAt"].as_u64().unwrap() > 1_700_000_000);
    let id = created["id"].as_str().unwrap();
    Uuid::parse_str(id).unwrap();
    let uri = format!("/api/todos/{id}");

    let listed = ada.call(Method::GET, "/api/todos", None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body, json!({"todos": [created.clone()]}));

    let got = ada.call(Method::GET, &uri, None).await;
    assert_eq!((got.status, &got.body), (StatusCode::OK, &created));

    let patched = ada
        .call(Method::PATCH, &uri, Some(json!({"completed": true})))
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["completed"], true);
    assert_eq!(patched.body["title"], "write the verifier");
    let renamed = ada
        .call(Method::PATCH, &uri, Some(json!({"title": "ship it"})))
        .await;
    assert_eq!(renamed.body["title"], "ship it");
    assert_eq!(renamed.body["completed"], true);
    assert_eq!(renamed.body["createdAt"], created["createdAt"]);

    let deleted = ada.call(Method::DELETE, &uri, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.body, Value::Null);
    assert_error(
        &ada.call(Method::GET, &uri, None).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    );
    assert_eq!(
        ada.call(Method::GET, "/api/todos", None).await.body,
        json!({"todos": []})
    );
}

#[tokio::test]
async fn deleting_every_todo_needs_a_sign_in_with_a_second_factor() {
    let app = app();
    let user = Uuid::new_v4();
    let caller = Caller {
        app: &app,
        token: token_for(user),
    };
    caller.create("one").await;
    caller.create("two").await;
    // A password-only token (no acr: aal1) is asked to step up.
    let answer = caller.call(Method::DELETE, "/api/todos", None).await;
    assert_error(
        &answer,
        StatusCode::UNAUTHORIZED,
        "INSUFFICIENT_USER_AUTHENTICATION",
    );
    assert!(
        answer.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .ends_with(r#"acr_values="aal2""#)
    );
    let mut claims = claims_for(user);
    claims["acr"] = json!("aal1");
    let aal1 = Caller {
        app: &app,
        token: key(0).sign(&claims),
    };
    let answer = aal1.call(Method::DELETE, "/api/todos", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        caller.call(Method::GET, "/api/todos", None).await.body["todos"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "nothing deleted"
    );
    claims["acr"] = json!("aal2");
    claims["amr"] = json!(["pwd", "otp", "mfa"]);
    let aal2 = Caller {
        app: &app,
        token: key(0).sign(&claims),
    };
    let answer = aal2.call(Method::DELETE, "/api/todos", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, json!({"deleted": 2}));
    assert_eq!(
        caller.call(Method::GET, "/api/todos", None).await.body,
        json!({"todos": []})
    );
}

#[tokio::test]
async fn todos_are_listed_oldest_first() {
    let app = app();
    let ada = Caller::new(&app);
    for title in ["one", "two", "three"] {
        ada.create(title).await;
    }
    let listed = ada.call(Method::GET, "/api/todos", None).await;
    let titles: Vec<&str> = listed.body["todos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["one", "two", "three"]);
}

#[tokio::test]
async fn another_users_todo_is_not_found_and_not_listed() {
    let app = app();
    let ada = Caller::new(&app);
    let bob = Caller::new(&app);
    let todo = ada.create("private").await;
    let uri = format!("/api/todos/{}", todo["id"].as_str().unwrap());
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"completed": true}))),
        (Method::DELETE, None),
    ] {
        let answer = bob.call(method.clone(), &uri, body).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "NOT_FOUND");
    }
    assert_eq!(
        bob.call(Method::GET, "/api/todos", None).await.body,
        json!({"todos": []})
    );
    // Untouched for its owner.
    assert_eq!(ada.call(Method::GET, &uri, None).await.body, todo);
}

#[tokio::test]
async fn an_id_that_is_not_a_uuid_is_not_found() {
    let app = app();
    let ada = Caller::new(&app);
    let answer = ada.call(Method::GET, "/api/todos/42", None).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "NOT_FOUND");
    let answer = ada
        .call(Method::GET, &format!("/api/todos/{}", Uuid::new_v4()), None)
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn a_title_must_be_a_string_of_1_to_200_characters() {
    let app = app();
    let ada = Caller::new(&app);
    let long = "é".repeat(MAX_TITLE_CHARS + 1);
    for body in [
        json!({}),
        json!({"title": null}),
        json!({"title": ""}),
        json!({"title": "   "}),
        json!({"title": 7}),
        json!({"title": long}),
    ] {
        let answer = ada
            .call(Method::POST, "/api/todos", Some(body.clone()))
            .await;
        assert_eq!(invalid_fields(&answer), ["title"], "{body}");
    }
    ada.create(&"é".repeat(MAX_TITLE_CHARS)).await;
}

#[tokio::test]
async fn an_update_reports_every_bad_field() {
    let app = app();
    let ada = Caller::new(&app);
    let todo = ada.create("x").await;
    let uri = format!("/api/todos/{}", todo["id"].as_str().unwrap());
    let answer = ada
        .call(
            Method::PATCH,
            &uri,
            Some(json!({"title": "", "completed": "yes"})),
        )
        .await;
    assert_eq!(invalid_fields(&answer), ["title", "completed"]);
    assert_eq!(
        ada.call(Method::GET, &uri, None).await.body,
        todo,
        "unchanged"
    );
}

#[tokio::test]
async fn bodies_must_be_json_objects() {
    let app = app();
    let token = token_for(Uuid::new_v4());
    let post = |body: &'static str, content_type: Option<&'static str>| {
        let app = app.clone();
        let token = token.clone();
        async move {
            send(
                &app,
                Method::POST,
                "/api/todos",
                Some(&token),
                Some(body),
                content_type,
            )
            .await
        }
    };
    assert_error(
        &post(r#"{"title":"x"}"#, Some("text/plain")).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    );
    assert_error(
        &send(&app, Method::POST, "/api/todos", Some(&token), None, None).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    );
    for malformed in [r#"{"title": "#, r#"["x"]"#, "null", ""] {
        let answer = post(malformed, None).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BAD_REQUEST");
        assert!(answer.body["error"].get("invalidArgs").is_none());
    }
    let huge: &'static str =
        Box::leak(format!(r#"{{"title":"{}"}}"#, "x".repeat(MAX_BODY_BYTES)).into_boxed_str());
    assert_error(
        &post(huge, None).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
    );
    let ok = post(r#"{"title":"x"}"#, Some("application/json; charset=utf-8")).await;
    assert_eq!(ok.status, StatusCode::CREATED);
}

#[tokio::test]
async fn every_todo_route_needs_a_valid_bearer_token() {
    let app = app();
    let id = Uuid::new_v4();
    let routes = [
        (Method::GET, "/api/todos".to_owned()),
        (Method::POST, "/api/todos".to_owned()),
        (Method::GET, format!("/api/todos/{id}")),
        (Method::PATCH, format!("/api/todos/{id}")),
        (Method::DELETE, format!("/api/todos/{id}")),
    ];
    let expired = {
        let mut claims = claims_for(Uuid::new_v4());
        claims["exp"] = json!(1_000);
        key(0).sign(&claims)
    };
    for (method, uri) in &routes {
        // Even with a body of the wrong type: authentication comes first.
        let missing = send(
            &app,
            method.clone(),
            uri,
            None,
            Some("x"),
            Some("text/plain"),
        )
        .await;
        assert_error(&missing, StatusCode::UNAUTHORIZED, "AUTHORIZATION");
        assert_eq!(missing.headers[header::WWW_AUTHENTICATE], "Bearer");
        let invalid = send(&app, method.clone(), uri, Some(&expired), None, None).await;
        assert_error(&invalid, StatusCode::UNAUTHORIZED, "AUTHORIZATION");
        assert_eq!(
            invalid.headers[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_in_the_json_shape() {
    let app = app();
    let token = token_for(Uuid::new_v4());
    let unknown = send(&app, Method::GET, "/api/nope", Some(&token), None, None).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "NOT_FOUND");
    let wrong = send(&app, Method::PUT, "/api/todos", Some(&token), None, None).await;
    assert_error(&wrong, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    let wrong = send(&app, Method::POST, "/healthz", None, None, None).await;
    assert_error(&wrong, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn healthz_answers_without_a_token() {
    let answer = send(&app(), Method::GET, "/healthz", None, None, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, json!({"status": "ok"}));
}

#[test]
fn configuration_names_the_bad_variable_and_has_defaults() {
    let with = |pairs: Vec<(&'static str, &'static str)>| {
        TodoConfig::from_vars(move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    };
    let url = ("JWKS_URL", "http://127.0.0.1:8080/.well-known/jwks.json");
    let config = with(vec![url]).unwrap();
    assert_eq!((config.host.as_str(), config.port), ("127.0.0.1", 8081));
    let config = with(vec![url, ("HOST", "0.0.0.0"), ("TODO_PORT", "9000")]).unwrap();
    assert_eq!((config.host.as_str(), config.port), ("0.0.0.0", 9000));
    for (vars, variable) in [
        (vec![url, ("TODO_PORT", "70000")], "TODO_PORT"),
        (vec![url, ("TODO_PORT", "http")], "TODO_PORT"),
        (vec![url, ("HOST", "")], "HOST"),
        (vec![], "JWKS_URL"),
        (vec![url, ("ID_TOKEN_EXP", "0")], "ID_TOKEN_EXP"),
    ] {
        let err = with(vars).unwrap_err();
        assert!(err.to_string().starts_with(variable), "{err}");
    }
    // As in the account service, a blank token setting means its default.
    let config = with(vec![url, ("ID_TOKEN_AUDIENCE", "")]).unwrap();
    assert_eq!(config.verifier.config().rules.audience, "domain-services");
}

#[test]
fn limits_are_read_with_the_account_services_names_and_defaults() {
    let with = |pairs: Vec<(&'static str, &'static str)>| {
        TodoConfig::from_vars(move |name| {
            std::iter::once(("JWKS_URL", "http://127.0.0.1:8080/.well-known/jwks.json"))
                .chain(pairs.iter().copied())
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        })
    };
    let settings = with(vec![]).unwrap().settings;
    assert_eq!(settings, TodoSettings::default());
    assert_eq!(settings.handler_timeout, std::time::Duration::from_secs(5));
    assert_eq!(settings.max_todos_per_user, 1000);
    assert_eq!(
        settings.connections,
        crate::web::serve::ConnectionLimits::default()
    );
    let settings = with(vec![
        ("HANDLER_TIMEOUT", "2"),
        ("TODO_MAX_PER_USER", "3"),
        ("HEADER_READ_TIMEOUT", "4"),
        ("KEEP_ALIVE_TIMEOUT", "70"),
        ("BODY_READ_TIMEOUT", "6"),
        ("MAX_CONNECTIONS", "16"),
    ])
    .unwrap()
    .settings;
    assert_eq!(settings.handler_timeout, std::time::Duration::from_secs(2));
    assert_eq!(settings.max_todos_per_user, 3);
    assert_eq!(
        settings.connections.header_read_timeout,
        std::time::Duration::from_secs(4)
    );
    assert_eq!(
        settings.connections.keep_alive_timeout,
        std::time::Duration::from_secs(70)
    );
    assert_eq!(
        settings.connections.body_read_timeout,
        std::time::Duration::from_secs(6)
    );
    assert_eq!(settings.connections.max_connections, 16);
    for (name, value) in [
        ("HANDLER_TIMEOUT", "0"),
        ("HANDLER_TIMEOUT", "3601"),
        ("TODO_MAX_PER_USER", "0"),
        ("TODO_MAX_PER_USER", "many"),
        ("HEADER_READ_TIMEOUT", "0"),
        ("KEEP_ALIVE_TIMEOUT", "x"),
        ("BODY_READ_TIMEOUT", "301"),
        ("MAX_CONNECTIONS", "-4"),
    ] {
        let err = with(vec![(name, value)]).unwrap_err();
        assert!(err.to_string().starts_with(name), "{name}={value}: {err}");
    }
}

#[tokio::test]
async fn a_user_with_max_todos_gets_409_and_a_deleted_todo_frees_its_place() {
    let store = Arc::new(TodoStore::with_max_per_user(2));
    let app = router_with_store(static_verifier(), store);
    let ada = Caller::new(&app);
    let first = ada.create("one").await;
    ada.create("two").await;
    let answer = ada
        .call(Method::POST, "/api/todos", Some(json!({"title": "three"})))
        .await;
    assert_error(&answer, StatusCode::CONFLICT, "CONFLICT");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 2 todos")),
        "{}",
        answer.body
    );
    // Another user is not affected; a deletion frees a place.
    Caller::new(&app).create("bob's").await;
    let uri = format!("/api/todos/{}", first["id"].as_str().unwrap());
    assert_eq!(
        ada.call(Method::DELETE, &uri, None).await.status,
        StatusCode::NO_CONTENT
    );
    ada.create("three").await;
}

#[tokio::test]
async fn todos_are_never_cached_and_no_response_is_sniffed() {
    let app = app();
    let caller = Caller::new(&app);
    caller.create("private").await;
    let listed = caller.call(Method::GET, "/api/todos", None).await;
    let refused = send(&app, Method::GET, "/api/todos", None, None, None).await;
    for (name, answer) in [("list", &listed), ("401", &refused)] {
        assert_eq!(
            answer.headers.get(header::CACHE_CONTROL).unwrap(),
            "no-store",
            "{name}"
        );
        assert_eq!(
            answer.headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(),
            "nosniff",
            "{name}"
        );
    }
}
