//! The OpenAPI document against the router that serves it: the document is
//! valid OpenAPI 3 (read with `oas3`, an independent model of the spec), it
//! lists exactly the routes the router serves (read from the router itself),
//! and what the router answers is what the document says it answers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use oas3::spec::{ObjectOrReference, ObjectSchema, Operation, Schema, SecurityScheme};
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

use super::{AppState, HttpSettings, router};
use crate::error::AppError;
use crate::jwks::JwkSet;
use crate::model::interfaces::{MockTokenService, MockUserService};
use crate::model::{IdTokenClaims, TokenPair};

const BASE: &str = "/api/account";
const ID_TOKEN: &str = "valid-id-token";
const MAX_BODY_BYTES: usize = 1024;
const ERROR_SCHEMA: &str = "#/components/schemas/ErrorBody";

/// Every route of the service, as `(method, path)`, `{base}` standing for the
/// base path. A route added or removed must be added or removed here too.
const EXPECTED_ROUTES: [(&str, &str); 10] = [
    ("POST", "{base}/signup"),
    ("POST", "{base}/signin"),
    ("POST", "{base}/tokens"),
    ("POST", "{base}/signout"),
    ("GET", "{base}/me"),
    ("PUT", "{base}/details"),
    ("GET", "{base}/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/.well-known/jwks.json"),
];

/// Methods probed on every path (HEAD is implied by GET in axum).
const METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
];

// ---------------------------------------------------------------- helpers

/// A router whose services answer every call without panicking: [`ID_TOKEN`]
/// is a valid ID token, every user is unknown, the stores are ready.
fn app(base_path: &str) -> Router {
    let mut users = MockUserService::new();
    users
        .expect_get()
        .returning(|_| Err(AppError::NotFound("user not found".into())));
    users
        .expect_signup()
        .returning(|_, _| Err(AppError::Conflict("email already registered".into())));
    users.expect_signin().returning(|_, _| {
        Err(AppError::unauthorized(
            "invalid email and password combination",
        ))
    });
    users
        .expect_update_details()
        .returning(|_, _| Err(AppError::NotFound("user not found".into())));
    users.expect_ready().returning(|| Ok(()));

    let mut tokens = MockTokenService::new();
    tokens.expect_validate_id_token().returning(|token| {
        if token == ID_TOKEN {
            Ok(IdTokenClaims {
                sub: Uuid::from_u128(0x1234),
                iss: "account-test".into(),
                aud: "account-test".into(),
                iat: 1_700_000_000,
                exp: 1_700_000_900,
                jti: Uuid::from_u128(0xabcd),
                email: "alice@example.com".into(),
                name: String::new(),
            })
        } else {
            Err(AppError::invalid_token("ID token is invalid or expired"))
        }
    });
    tokens.expect_validate_refresh_token().returning(|_| {
        Err(AppError::invalid_token(
            "refresh token is invalid, used or revoked",
        ))
    });
    tokens.expect_new_pair_from_user().returning(|_, _| {
        Ok(TokenPair {
            id_token: "new-id-token".into(),
            refresh_token: "new-refresh-token".into(),
        })
    });
    tokens.expect_signout().returning(|_| Ok(()));
    tokens.expect_jwks().returning(JwkSet::default);
    tokens.expect_ready().returning(|| Ok(()));

    let state = AppState {
        user_service: Arc::new(users),
        token_service: Arc::new(tokens),
    };
    router(
        state,
        &HttpSettings {
            base_path: base_path.into(),
            handler_timeout: Duration::from_secs(5),
            max_body_bytes: MAX_BODY_BYTES,
        },
    )
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("infallible router");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, body.to_vec())
}

fn request(method: Method, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .expect("request")
}

/// The document as served at `{base_path}/openapi.json`, raw and as read by `oas3`.
async fn served_document(app: &Router, base_path: &str) -> (Value, oas3::Spec) {
    let (status, headers, body) = send(
        app,
        request(Method::GET, &format!("{base_path}/openapi.json")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let text = String::from_utf8(body).expect("UTF-8 document");
    let raw: Value = serde_json::from_str(&text).expect("JSON document");
    let spec = oas3::from_json(&text).unwrap_or_else(|err| panic!("not OpenAPI 3.1: {err}"));
    (raw, spec)
}

/// `(method, path)` of every operation in the document.
fn documented_routes(spec: &oas3::Spec) -> BTreeSet<(String, String)> {
    spec.operations()
        .map(|(path, method, _)| (method.to_string(), path))
        .collect()
}

fn expected_routes(base_path: &str) -> BTreeSet<(String, String)> {
    EXPECTED_ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.replace("{base}", base_path)))
        .collect()
}

/// The `$ref` of the JSON schema of `status`'s response of `op`, if any.
fn response_schema_ref(op: &Operation, status: &str) -> Option<String> {
    let response = op.responses.as_ref()?.get(status)?;
    let ObjectOrReference::Object(response) = response else {
        panic!("responses are inline in this document");
    };
    match response.content.get("application/json")?.schema.as_ref()? {
        Schema::Object(schema) => match schema.as_ref() {
            ObjectOrReference::Ref { ref_path, .. } => Some(ref_path.clone()),
            ObjectOrReference::Object(_) => None,
        },
        Schema::Boolean(_) => None,
    }
}

fn documented_statuses(op: &Operation) -> BTreeSet<u16> {
    op.responses
        .iter()
        .flatten()
        .map(|(status, _)| status.parse().expect("numeric status"))
        .collect()
}

fn requires_bearer(op: &Operation) -> bool {
    op.security.iter().any(|req| req.0.contains_key("bearer"))
}

/// The paths the router routes, read from its `Debug` output: axum has no
/// public way to list them, and its `Debug` prints the path table of the
/// router (first) and of the fallback router (second) as
/// `Node { paths: {RouteId(1): "/healthz", …} }`.
fn router_paths(app: &Router) -> BTreeSet<String> {
    let debug = format!("{app:?}");
    let marker = "Node { paths: {";
    let start = debug.find(marker).unwrap_or_else(|| {
        panic!("axum's Router Debug output changed, no `{marker}` in it: {debug}")
    }) + marker.len();
    let mut paths = BTreeSet::new();
    let mut chars = debug[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '}' => break,
            '"' => {
                let mut path = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => path.extend(chars.next()),
                        '"' => break,
                        c => path.push(c),
                    }
                }
                paths.insert(path);
            }
            _ => {}
        }
    }
    assert!(!paths.is_empty(), "no paths read from {debug}");
    paths
}

/// `(method, path)` of every route the router serves: each path it routes,
/// with each method it does not answer 404 or 405 to.
async fn served_routes(app: &Router) -> BTreeSet<(String, String)> {
    let mut served = BTreeSet::new();
    for path in router_paths(app) {
        for method in METHODS {
            let (status, _, _) = send(app, request(method.clone(), &path)).await;
            if status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED {
                served.insert((method.to_string(), path.clone()));
            }
        }
    }
    served
}

fn collect_refs(value: &Value, refs: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => {
                        refs.insert(target.clone());
                    }
                    _ => collect_refs(value, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, refs)),
        _ => {}
    }
}

/// The requests every operation is probed with: what a client may send,
/// right or wrong.
fn probes(method: &Method, path: &str) -> Vec<(&'static str, Request<Body>)> {
    let with = |content_type: &str, authorized: bool, body: String| {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::CONTENT_TYPE, content_type);
        if authorized {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {ID_TOKEN}"));
        }
        builder.body(Body::from(body)).expect("request")
    };
    vec![
        (
            "no credentials, empty object",
            with("application/json", false, "{}".into()),
        ),
        (
            "bearer, empty object",
            with("application/json", true, "{}".into()),
        ),
        ("bearer, not JSON", with("text/plain", true, "hello".into())),
        (
            "bearer, body over the limit",
            with(
                "application/json",
                true,
                format!(r#"{{"email": "{}"}}"#, "x".repeat(MAX_BODY_BYTES)),
            ),
        ),
    ]
}

/// Every documented operation is served, answers only statuses it documents
/// (errors in the error schema), and requires the bearer scheme exactly when
/// it answers 401 to a request without credentials.
async fn assert_every_documented_operation_is_served_as_documented(base_path: &str) {
    let app = app(base_path);
    let (_, spec) = served_document(&app, base_path).await;
    assert!(spec.operations().next().is_some(), "no operations");

    for (path, method, op) in spec.operations() {
        let statuses = documented_statuses(op);
        for (probe, request) in probes(&method, &path) {
            let (status, headers, body) = send(&app, request).await;
            let what = format!("{method} {path} ({probe}) answered {status}");
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED
                    && (status != StatusCode::NOT_FOUND || statuses.contains(&404)),
                "{what}: not served"
            );
            assert!(statuses.contains(&status.as_u16()), "{what}: undocumented");
            if status.is_client_error() || status.is_server_error() {
                let body: Value = serde_json::from_slice(&body).expect("JSON error body");
                assert!(body["error"]["type"].is_string(), "{what}: {body}");
                assert_eq!(
                    response_schema_ref(op, status.as_str()).as_deref(),
                    Some(ERROR_SCHEMA),
                    "{what}"
                );
            }
            if probe == "no credentials, empty object" {
                assert_eq!(
                    status == StatusCode::UNAUTHORIZED,
                    requires_bearer(op),
                    "{what}: 401 without credentials exactly when the bearer scheme is required"
                );
            }
            if status == StatusCode::UNAUTHORIZED {
                assert!(headers.contains_key(header::WWW_AUTHENTICATE), "{what}");
            }
        }
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn the_served_document_is_valid_openapi_3_and_every_reference_resolves() {
    let app = app(BASE);
    let (raw, spec) = served_document(&app, BASE).await;

    assert!(spec.openapi.starts_with("3."), "openapi: {}", spec.openapi);
    spec.validate_version()
        .expect("a version oas3 supports (3.1)");
    assert_eq!(spec.info.title, "account");
    assert_eq!(spec.info.version, env!("CARGO_PKG_VERSION"));

    // Every reference points into the document (oas3 resolves them itself).
    let mut refs = BTreeSet::new();
    collect_refs(&raw, &mut refs);
    assert!(refs.contains(ERROR_SCHEMA));
    for target in refs {
        Schema::Object(Box::new(ObjectOrReference::<ObjectSchema>::Ref {
            ref_path: target.clone(),
            summary: None,
            description: None,
        }))
        .resolve(&spec)
        .unwrap_or_else(|err| panic!("{target} does not resolve: {err}"));
    }
    for (path, method, op) in spec.operations() {
        op.request_body(&spec)
            .unwrap_or_else(|err| panic!("{method} {path}: request body: {err}"));
        for (status, response) in op.responses(&spec) {
            for (media, content) in &response.content {
                content
                    .schema(&spec)
                    .unwrap_or_else(|err| panic!("{method} {path} {status} {media}: {err}"));
            }
        }
    }

    // What is served is what `openapi` builds for the same base path.
    assert_eq!(
        raw,
        serde_json::to_value(super::openapi(BASE)).expect("document")
    );
}

#[tokio::test]
async fn the_document_lists_exactly_the_expected_routes() {
    let (_, spec) = served_document(&app(BASE), BASE).await;
    assert_eq!(documented_routes(&spec), expected_routes(BASE));
}

#[tokio::test]
async fn the_router_serves_exactly_the_routes_the_document_lists() {
    let app = app(BASE);
    let (_, spec) = served_document(&app, BASE).await;
    assert_eq!(served_routes(&app).await, documented_routes(&spec));
}

#[tokio::test]
async fn every_documented_operation_is_served_and_answers_only_documented_statuses() {
    assert_every_documented_operation_is_served_as_documented(BASE).await;
}

#[tokio::test]
async fn the_document_follows_a_custom_base_path() {
    let base = "/v2/acct";
    let app = app(base);
    let (_, spec) = served_document(&app, base).await;

    assert!(
        spec.operation(&Method::POST, "/v2/acct/signup").is_some(),
        "sign-up under the custom base path"
    );
    assert_eq!(documented_routes(&spec), expected_routes(base));
    assert_eq!(served_routes(&app).await, documented_routes(&spec));
    let (status, _, _) = send(&app, request(Method::GET, "/api/account/openapi.json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert_every_documented_operation_is_served_as_documented(base).await;
}

#[tokio::test]
async fn signup_documents_201_with_the_tokens_response_and_409_with_the_error_schema() {
    let (raw, spec) = served_document(&app(BASE), BASE).await;
    let signup = spec
        .operation(&Method::POST, "/api/account/signup")
        .expect("POST /api/account/signup");

    assert_eq!(
        response_schema_ref(signup, "201").as_deref(),
        Some("#/components/schemas/TokensResponse")
    );
    assert_eq!(
        response_schema_ref(signup, "409").as_deref(),
        Some(ERROR_SCHEMA)
    );
    assert!(
        !documented_statuses(signup).contains(&200),
        "sign-up answers 201, not 200"
    );
    assert_eq!(
        raw["paths"]["/api/account/signup"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/CredentialsRequest"
    );

    let schemas = &raw["components"]["schemas"];
    assert_eq!(
        schemas["TokensResponse"]["properties"]["tokens"]["$ref"],
        "#/components/schemas/TokenPair"
    );
    assert_eq!(
        schemas["TokenPair"]["required"],
        serde_json::json!(["idToken", "refreshToken"])
    );
    assert_eq!(
        schemas["ErrorBody"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    assert_eq!(
        schemas["ErrorDetail"]["required"],
        serde_json::json!(["type", "message"])
    );
    assert_eq!(
        schemas["ErrorDetail"]["properties"]["invalidArgs"]["items"]["$ref"],
        "#/components/schemas/InvalidArg"
    );
}

#[tokio::test]
async fn me_signout_and_details_require_the_bearer_scheme_and_nothing_else_does() {
    let (raw, spec) = served_document(&app(BASE), BASE).await;

    let scheme = spec
        .components
        .as_ref()
        .and_then(|c| c.security_schemes.get("bearer"))
        .expect("a `bearer` security scheme");
    match scheme.resolve(&spec).expect("scheme") {
        SecurityScheme::Http {
            scheme,
            bearer_format,
            ..
        } => {
            assert_eq!(scheme, "bearer");
            assert_eq!(bearer_format.as_deref(), Some("JWT"));
        }
        other => panic!("not an HTTP bearer scheme: {other:?}"),
    }
    assert!(
        raw.get("security").is_none(),
        "no document-wide requirement"
    );

    let protected: BTreeSet<(String, String)> = spec
        .operations()
        .filter(|(_, _, op)| requires_bearer(op))
        .map(|(path, method, _)| (method.to_string(), path))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("GET", "/api/account/me"),
        ("POST", "/api/account/signout"),
        ("PUT", "/api/account/details"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(protected, expected);

    let me = spec
        .operation(&Method::GET, "/api/account/me")
        .expect("GET /api/account/me");
    let unauthorized = me.responses(&spec).remove("401").expect("401 documented");
    assert!(unauthorized.headers.contains_key("WWW-Authenticate"));
    assert_eq!(
        response_schema_ref(me, "401").as_deref(),
        Some(ERROR_SCHEMA)
    );
}
