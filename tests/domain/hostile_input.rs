//! Input a store cannot hold never reaches it: a NUL byte anywhere, or
//! another control character in an identifier, a token, an email or a name,
//! is refused at the edge with the endpoint's usual client error, on both
//! user stores, and nothing is logged at ERROR. Every field of every JSON
//! route is tried, read from the service's own OpenAPI document, so a new
//! route is covered without touching this file.

use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::helpers::{AccountService, http, postgres_or_skip};

/// A control character that is not NUL (BEL).
const BELL: &str = "a\u{7}b";
const NUL: &str = "a\u{0}b";

/// The schema `reference` (`#/components/schemas/X`) points to.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    // An optional body is `oneOf: [{"type": "null"}, {"$ref": …}]`.
    let schema = schema["oneOf"]
        .as_array()
        .and_then(|alternatives| alternatives.iter().find(|a| a["$ref"].is_string()))
        .unwrap_or(schema);
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().expect("a schema name");
            &document["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// A plausible value for each string property, so that only the field under
/// test is wrong.
fn plausible(name: &str) -> Value {
    let lower = name.to_ascii_lowercase();
    if lower.contains("email") {
        json!(format!("u-{}@example.com", Uuid::new_v4()))
    } else if lower.contains("password") {
        json!("correct horse battery")
    } else if lower.contains("website") {
        json!("https://example.com")
    } else {
        json!("x")
    }
}

/// Every (method, path, string fields) of a JSON request body.
fn json_routes(document: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut routes = Vec::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let Some(schema) = operation["requestBody"]["content"]["application/json"]
                .get("schema")
                .map(|schema| resolve(document, schema))
            else {
                continue;
            };
            let fields: Vec<String> = schema["properties"]
                .as_object()
                .map(|properties| {
                    properties
                        .iter()
                        .filter(|(_, p)| {
                            let p = resolve(document, p);
                            p["type"] == "string"
                                || p["type"]
                                    .as_array()
                                    .is_some_and(|t| t.contains(&json!("string")))
                        })
                        .map(|(name, _)| name.clone())
                        .collect()
                })
                .unwrap_or_default();
            routes.push((method.to_uppercase(), path.clone(), fields));
        }
    }
    routes
}

async fn send(
    service: &AccountService,
    id_token: &str,
    method: &str,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    // The browser routes answer only their own origin (PUBLIC_URL, unset:
    // http://localhost:<port>); every route gets it, as a page would send it.
    let origin = service.base.replace("127.0.0.1", "localhost");
    let response = http()
        .request(method, format!("{}{path}", service.base))
        .bearer_auth(id_token)
        .header("origin", origin)
        .json(body)
        .send()
        .await
        .expect("a response");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn every_field_of_every_route_refuses_control_characters(service: &AccountService) {
    let id_token = service.sign_up().await;
    let document: Value = http()
        .get(format!("{}/api/account/openapi.json", service.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let routes = json_routes(&document);
    assert!(routes.len() >= 8, "JSON routes: {routes:?}");
    let mut wrong = Vec::new();
    for (method, path, fields) in &routes {
        for field in fields {
            let password = field.to_ascii_lowercase().contains("password");
            let values: &[&str] = if password { &[NUL] } else { &[NUL, BELL] };
            for value in values {
                let mut body: Map<String, Value> =
                    fields.iter().map(|f| (f.clone(), plausible(f))).collect();
                body.insert(field.clone(), json!(value));
                let (status, answer) =
                    send(service, &id_token, method, path, &Value::Object(body)).await;
                let expected = if field == "refreshToken" {
                    status == StatusCode::UNAUTHORIZED
                } else {
                    status == StatusCode::BAD_REQUEST
                        && answer["error"]["invalidArgs"][0]["field"] == json!(field)
                };
                if !expected {
                    wrong.push(format!(
                        "{method} {path} {field}={value:?}: {status} {answer}"
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

async fn the_oauth_form_basic_credentials_path_and_query_refuse_them(service: &AccountService) {
    let token_url = format!("{}/oauth/token", service.base);
    for id in ["cl_%00", "cl_%07"] {
        let response = http()
            .post(&token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&client_id={id}&client_secret=s"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "form {id}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    for id in ["cl_\u{0}", "cl_%00"] {
        let response = http()
            .post(&token_url)
            .basic_auth(id, Some("secret"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "Basic {id:?}");
    }
    let response = http()
        .post(&token_url)
        .basic_auth("cl_x", Some("secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "a\u{0}")])
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_client_error(),
        "scope: {}",
        response.status()
    );

    let id_token = service.sign_up().await;
    let response = http()
        .delete(format!("{}/api/account/sessions/%00", service.base))
        .bearer_auth(&id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "a NUL in the path"
    );
    let response = http()
        .post(format!("{}/api/account/signout?scope=%00", service.base))
        .bearer_auth(&id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "a NUL in the query"
    );
}

fn assert_nothing_logged_at_error(service: &AccountService) {
    let output = service.output();
    let errors: Vec<&str> = output
        .lines()
        .filter(|line| line.contains(" ERROR "))
        .collect();
    assert!(errors.is_empty(), "logged at ERROR: {errors:#?}");
}

#[tokio::test]
async fn control_characters_are_refused_at_the_edge_on_the_embedded_stores() {
    let service = AccountService::start().await;
    every_field_of_every_route_refuses_control_characters(&service).await;
    the_oauth_form_basic_credentials_path_and_query_refuse_them(&service).await;
    assert_nothing_logged_at_error(&service);
}

#[tokio::test]
async fn control_characters_are_refused_at_the_edge_on_postgresql() {
    let Some(database) = postgres_or_skip("account_hostile").await else {
        return;
    };
    let service = AccountService::start_on_postgres(&database.url).await;
    every_field_of_every_route_refuses_control_characters(&service).await;
    the_oauth_form_basic_credentials_path_and_query_refuse_them(&service).await;
    assert_nothing_logged_at_error(&service);
}
