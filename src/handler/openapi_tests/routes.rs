//! The document against the router: the same routes, and every operation
//! answers only what it documents.

use super::*;

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

/// A body every operation with one accepts (each reads its own fields and
/// ignores the others), so that the probe reaches the use case.
fn valid_body() -> String {
    serde_json::json!({
        "email": "alice@example.com",
        "password": "correct horse",
        "refreshToken": "some-refresh-token",
        "token": "some-mailed-token",
        "name": "Alice",
        "website": "",
        "currentPassword": "correct horse",
        "newPassword": "correct horse battery",
    })
    .to_string()
}

/// The concrete paths a documented path is probed at: each `{id}` filled with
/// a UUID (reaching the use case) and with something else.
fn concrete_paths(path: &str) -> Vec<String> {
    if path.contains("{id}") {
        vec![
            path.replace("{id}", &Uuid::from_u128(0x07e4).to_string()),
            path.replace("{id}", "not-a-uuid"),
        ]
    } else {
        vec![path.to_owned()]
    }
}

/// The requests every operation is probed with: what a client may send,
/// right or wrong.
fn probes(method: &Method, path: &str) -> Vec<(&'static str, Request<Body>)> {
    let with = |content_type: &str, authorized: bool, query: &str, body: String| {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(format!("{path}{query}"))
            .header(header::CONTENT_TYPE, content_type);
        if authorized {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {ID_TOKEN}"));
        }
        builder.body(Body::from(body)).expect("request")
    };
    vec![
        (
            "no credentials, empty object",
            with("application/json", false, "", "{}".into()),
        ),
        (
            "bearer, empty object",
            with("application/json", true, "", "{}".into()),
        ),
        (
            "bearer, valid body",
            with("application/json", true, "", valid_body()),
        ),
        (
            "bearer, valid body, unknown scope",
            with("application/json", true, "?scope=nonsense", valid_body()),
        ),
        (
            "bearer, not JSON",
            with("text/plain", true, "", "hello".into()),
        ),
        (
            "bearer, body over the limit",
            with(
                "application/json",
                true,
                "",
                format!(r#"{{"email": "{}"}}"#, "x".repeat(MAX_BODY_BYTES)),
            ),
        ),
    ]
}

/// Every documented operation is served, answers only statuses it documents
/// (errors in the error schema, also through a shared response component),
/// and requires the bearer scheme exactly when it answers 401 to a request
/// without credentials.
async fn assert_every_documented_operation_is_served_as_documented(base_path: &str) {
    let app = app(base_path);
    let (_, spec) = served_document(&app, base_path).await;
    assert!(spec.operations().next().is_some(), "no operations");

    for (path, method, op) in spec.operations() {
        let statuses = documented_statuses(op);
        for concrete in concrete_paths(&path) {
            for (probe, request) in probes(&method, &concrete) {
                let (status, headers, body) = send(&app, request).await;
                let what = format!("{method} {concrete} ({probe}) answered {status}");
                assert!(
                    status != StatusCode::METHOD_NOT_ALLOWED
                        && (status != StatusCode::NOT_FOUND || statuses.contains(&404)),
                    "{what}: not served"
                );
                assert!(statuses.contains(&status.as_u16()), "{what}: undocumented");
                // 500 is documented almost everywhere: a use case the mock does
                // not answer (a panic) must not pass for a documented answer.
                assert_ne!(
                    status,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "{what}: a use case of the mock panicked"
                );
                if path == OAUTH_TOKEN && status.is_client_error() {
                    let body: Value = serde_json::from_slice(&body).expect("JSON error body");
                    assert!(body["error"].is_string(), "{what}: {body}");
                    assert!(body["error_description"].is_string(), "{what}: {body}");
                    assert_eq!(
                        response_schema_ref(&spec, op, status.as_str()).as_deref(),
                        Some(OAUTH_ERROR_SCHEMA),
                        "{what}"
                    );
                } else if status.is_client_error() || status.is_server_error() {
                    let body: Value = serde_json::from_slice(&body).expect("JSON error body");
                    assert!(body["error"]["type"].is_string(), "{what}: {body}");
                    assert_eq!(
                        response_schema_ref(&spec, op, status.as_str()).as_deref(),
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
