//! The document itself: valid OpenAPI 3.1 whose references all resolve, the
//! schemas of sign-up, the shared error responses, the bearer scheme, the
//! session routes (sign-out scope, session list, password change), the
//! limits (429), and email verification and password reset.

use oas3::spec::{ObjectSchema, RefError, SecurityScheme};
use serde_json::json;

use super::*;

/// The shared error responses, `(component, status)`: each a component under
/// `#/components/responses` with the error schema, referenced by operations.
const SHARED_RESPONSES: [(&str, &str); 5] = [
    ("RequestTimeout", "408"),
    ("PayloadTooLarge", "413"),
    ("UnsupportedMediaType", "415"),
    ("Internal", "500"),
    ("ServiceUnavailable", "503"),
];

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

/// Resolves a `$ref` of the document as what it names: a schema or a response
/// (the only kinds of component this document references).
fn resolve_ref(spec: &oas3::Spec, target: &str) -> Result<(), RefError> {
    if target.starts_with("#/components/schemas/") {
        Schema::Object(Box::new(ObjectOrReference::<ObjectSchema>::Ref {
            ref_path: target.to_owned(),
            summary: None,
            description: None,
        }))
        .resolve(spec)
        .map(drop)
    } else if target.starts_with("#/components/responses/") {
        ObjectOrReference::<Response>::Ref {
            ref_path: target.to_owned(),
            summary: None,
            description: None,
        }
        .resolve(spec)
        .map(drop)
    } else {
        panic!("a reference to neither a schema nor a response: {target}")
    }
}

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
    assert!(refs.contains("#/components/responses/ServiceUnavailable"));
    for target in refs {
        resolve_ref(&spec, &target)
            .unwrap_or_else(|err| panic!("{target} does not resolve: {err}"));
    }
    for (path, method, op) in spec.operations() {
        op.request_body(&spec)
            .unwrap_or_else(|err| panic!("{method} {path}: request body: {err}"));
        // `responses(&spec)` leaves out what does not resolve: nothing may be left out.
        let responses = op.responses(&spec);
        assert_eq!(
            responses.len(),
            documented_statuses(op).len(),
            "{method} {path}: a response does not resolve"
        );
        for (status, response) in responses {
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
        serde_json::to_value(crate::handler::openapi(BASE)).expect("document")
    );
}

#[tokio::test]
async fn signup_documents_201_with_the_tokens_response_and_409_with_the_error_schema() {
    let (raw, spec) = served_document(&app(BASE), BASE).await;
    let signup = spec
        .operation(&Method::POST, "/api/account/signup")
        .expect("POST /api/account/signup");

    assert_eq!(
        response_schema_ref(&spec, signup, "201").as_deref(),
        Some("#/components/schemas/TokensResponse")
    );
    assert_eq!(
        response_schema_ref(&spec, signup, "409").as_deref(),
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
        json!(["idToken", "refreshToken"])
    );
    assert_eq!(
        schemas["ErrorBody"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    assert_eq!(
        schemas["ErrorDetail"]["required"],
        json!(["type", "message"])
    );
    assert_eq!(
        schemas["ErrorDetail"]["properties"]["invalidArgs"]["items"]["$ref"],
        "#/components/schemas/InvalidArg"
    );
}

#[tokio::test]
async fn the_shared_error_responses_are_components_with_the_error_schema_that_operations_reference()
{
    let (raw, spec) = served_document(&app(BASE), BASE).await;
    let components = spec.components.as_ref().expect("components");

    for (name, _) in SHARED_RESPONSES {
        let response = components
            .responses
            .get(name)
            .unwrap_or_else(|| panic!("no response component {name}"))
            .resolve(&spec)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(
            response
                .description
                .as_deref()
                .is_some_and(|d| !d.is_empty()),
            "{name} has a description"
        );
        assert_eq!(
            schema_ref(&response).as_deref(),
            Some(ERROR_SCHEMA),
            "{name}"
        );
    }

    // Operations with a JSON body reference all four, the others only the
    // server errors; never inline.
    let with_body = ["signup", "signin", "tokens", "details", "password"];
    for (path, method, op) in spec.operations() {
        let expects_body_errors = with_body.iter().any(|p| path == format!("{BASE}/{p}"));
        let responses = &raw["paths"][&path][method.as_str().to_lowercase()]["responses"];
        for (name, status) in SHARED_RESPONSES {
            let what = format!("{method} {path} {status}");
            if !documented_statuses(op).contains(&status.parse().expect("status")) {
                assert!(
                    !expects_body_errors,
                    "{what}: an operation with a body documents it"
                );
                continue;
            }
            assert_eq!(
                responses[status],
                json!({"$ref": format!("#/components/responses/{name}")}),
                "{what}"
            );
            assert_eq!(
                response_schema_ref(&spec, op, status).as_deref(),
                Some(ERROR_SCHEMA),
                "{what}"
            );
        }
    }

    let signup = &raw["paths"]["/api/account/signup"]["post"]["responses"];
    for (name, status) in SHARED_RESPONSES {
        assert_eq!(
            signup[status]["$ref"],
            format!("#/components/responses/{name}"),
            "sign-up {status}"
        );
    }
    // The bearer operations share one 401, with its challenge header.
    let unauthorized = spec
        .components
        .as_ref()
        .expect("components")
        .responses
        .get("Unauthorized")
        .expect("an Unauthorized component")
        .resolve(&spec)
        .expect("resolves");
    assert!(unauthorized.headers.contains_key("WWW-Authenticate"));
    assert_eq!(schema_ref(&unauthorized).as_deref(), Some(ERROR_SCHEMA));
    for (path, method) in [
        ("/api/account/me", "get"),
        ("/api/account/me", "delete"),
        ("/api/account/signout", "post"),
        ("/api/account/details", "put"),
        ("/api/account/password", "put"),
        ("/api/account/sessions", "get"),
        ("/api/account/sessions/{id}", "delete"),
        ("/api/account/sessions/{id}", "put"),
    ] {
        assert_eq!(
            raw["paths"][path][method]["responses"]["401"]["$ref"],
            "#/components/responses/Unauthorized",
            "{method} {path}"
        );
    }
    let me = &raw["paths"]["/api/account/me"]["get"]["responses"];
    assert_eq!(me["500"]["$ref"], "#/components/responses/Internal");
    assert_eq!(
        me["503"]["$ref"],
        "#/components/responses/ServiceUnavailable"
    );
    assert!(
        me.get("408").is_none() && me.get("413").is_none() && me.get("415").is_none(),
        "{me}"
    );
}

#[tokio::test]
async fn the_profile_session_password_and_resend_routes_require_the_bearer_scheme_and_nothing_else_does()
 {
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
        ("DELETE", "/api/account/me"),
        ("POST", "/api/account/signout"),
        ("PUT", "/api/account/details"),
        ("PUT", "/api/account/password"),
        ("GET", "/api/account/sessions"),
        ("DELETE", "/api/account/sessions/{id}"),
        ("PUT", "/api/account/sessions/{id}"),
        ("POST", "/api/account/mfa/totp"),
        ("POST", "/api/account/mfa/totp/{id}/confirm"),
        ("POST", "/api/account/mfa/webauthn/register/start"),
        ("POST", "/api/account/mfa/webauthn/register/finish"),
        ("GET", "/api/account/mfa"),
        ("PUT", "/api/account/mfa/{id}"),
        ("DELETE", "/api/account/mfa/{id}"),
        ("POST", "/api/account/mfa/recovery-codes"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(protected, expected);
    let resend = spec
        .operation(&Method::POST, "/api/account/verify-email/resend")
        .expect("POST /api/account/verify-email/resend");
    assert!(
        accepts_bearer(resend) && !requires_bearer(resend),
        "a resend takes the bearer token or, by address, none"
    );

    let me = spec
        .operation(&Method::GET, "/api/account/me")
        .expect("GET /api/account/me");
    let unauthorized = me.responses(&spec).remove("401").expect("401 documented");
    assert!(unauthorized.headers.contains_key("WWW-Authenticate"));
    assert_eq!(
        response_schema_ref(&spec, me, "401").as_deref(),
        Some(ERROR_SCHEMA)
    );
}

#[tokio::test]
async fn signout_documents_an_optional_scope_query_parameter_and_its_400() {
    let (raw, spec) = served_document(&app(BASE), BASE).await;
    let signout = spec
        .operation(&Method::POST, "/api/account/signout")
        .expect("POST /api/account/signout");
    assert!(documented_statuses(signout).contains(&400));

    let params = raw["paths"]["/api/account/signout"]["post"]["parameters"]
        .as_array()
        .expect("sign-out parameters");
    let scope: Vec<&Value> = params.iter().filter(|p| p["name"] == "scope").collect();
    assert_eq!(scope.len(), 1, "{params:?}");
    let scope = scope[0];
    assert_eq!(scope["in"], "query", "{scope}");
    assert_ne!(
        scope["required"],
        json!(true),
        "the scope is optional: {scope}"
    );
    let schema_type = &scope["schema"]["type"];
    assert!(
        *schema_type == json!("string") || *schema_type == json!(["string", "null"]),
        "{scope}"
    );
    let description = scope["description"].as_str().unwrap_or_default();
    for value in ["global", "local", "others"] {
        assert!(description.contains(value), "{value} in {description:?}");
    }
}

#[tokio::test]
async fn the_session_and_password_routes_document_their_answers() {
    let (raw, spec) = served_document(&app(BASE), BASE).await;
    let op = |method: Method, path: &str| {
        spec.operation(&method, &format!("{BASE}{path}"))
            .unwrap_or_else(|| panic!("{method} {path}"))
    };

    let list = op(Method::GET, "/sessions");
    assert_eq!(
        response_schema_ref(&spec, list, "200").as_deref(),
        Some("#/components/schemas/SessionsResponse")
    );
    let schemas = &raw["components"]["schemas"];
    assert_eq!(
        schemas["SessionsResponse"]["properties"]["sessions"]["items"]["$ref"],
        "#/components/schemas/SessionView"
    );
    let mut fields: Vec<&str> = schemas["SessionView"]["required"]
        .as_array()
        .expect("required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "createdAt",
            "current",
            "id",
            "ip",
            "lastUsedAt",
            "name",
            "userAgent"
        ]
    );
    let name = &schemas["SessionView"]["properties"]["name"];
    assert!(
        name["type"] == json!(["string", "null"]) || name["nullable"] == json!(true),
        "a name or null: {name}"
    );

    let end = op(Method::DELETE, "/sessions/{id}");
    assert_eq!(
        documented_statuses(end),
        BTreeSet::from([204, 401, 404, 500, 503])
    );
    let id = &raw["paths"]["/api/account/sessions/{id}"]["delete"]["parameters"][0];
    assert_eq!(id["name"], "id");
    assert_eq!(id["in"], "path");
    assert_eq!(id["required"], true);
    assert_eq!(id["schema"]["format"], "uuid");

    let rename = op(Method::PUT, "/sessions/{id}");
    for status in [204, 400, 401, 404] {
        assert!(
            documented_statuses(rename).contains(&status),
            "PUT /sessions/{{id}} {status}"
        );
    }
    let put = &raw["paths"]["/api/account/sessions/{id}"]["put"];
    assert_eq!(put["parameters"][0]["name"], "id");
    assert_eq!(put["parameters"][0]["schema"]["format"], "uuid");
    assert_eq!(
        put["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/RenameSessionRequest"
    );
    assert_eq!(schemas["RenameSessionRequest"]["required"], json!(["name"]));

    let password = op(Method::PUT, "/password");
    for status in [204, 400, 401, 403, 404] {
        assert!(
            documented_statuses(password).contains(&status),
            "PUT /password {status}"
        );
    }
    assert_eq!(
        response_schema_ref(&spec, password, "403").as_deref(),
        Some(ERROR_SCHEMA)
    );
    assert_eq!(
        raw["paths"]["/api/account/password"]["put"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/PasswordRequest"
    );
    assert_eq!(
        schemas["PasswordRequest"]["required"],
        json!(["currentPassword", "newPassword"])
    );
    assert!(
        schemas["DetailsRequest"]["properties"]
            .get("currentPassword")
            .is_some(),
        "PUT /details takes currentPassword"
    );
    assert!(documented_statuses(op(Method::PUT, "/details")).contains(&403));
    assert!(
        raw["paths"]["/api/account/tokens"]["post"]["responses"]["401"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("REFRESH_TOKEN_REUSED")),
        "the refresh documents REFRESH_TOKEN_REUSED"
    );
}

#[tokio::test]
async fn the_operations_that_check_a_password_sign_up_or_send_a_mail_document_429_with_retry_after()
{
    let (raw, spec) = served_document(&app(BASE), BASE).await;
    let component = &raw["components"]["responses"]["TooManyRequests"];
    assert_eq!(
        component["content"]["application/json"]["schema"]["$ref"],
        ERROR_SCHEMA
    );
    let retry_after = &component["headers"]["Retry-After"];
    assert_eq!(retry_after["schema"]["type"], "integer", "{component}");
    assert_eq!(retry_after["schema"]["minimum"], 1, "{component}");
    assert!(
        component["description"]
            .as_str()
            .is_some_and(|d| d.contains("TOO_MANY_REQUESTS")),
        "{component}"
    );

    let limited: BTreeSet<(String, String)> = spec
        .operations()
        .filter(|(_, _, op)| documented_statuses(op).contains(&429))
        .map(|(path, method, _)| (method.to_string(), path))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("POST", "signup"),
        ("POST", "signin"),
        ("PUT", "details"),
        ("PUT", "password"),
        ("DELETE", "me"),
        ("POST", "password-reset"),
        ("POST", "password-reset/confirm"),
        ("POST", "verify-email"),
        ("POST", "verify-email/resend"),
        ("POST", "browser/signup"),
        ("POST", "browser/signin"),
        ("POST", "signin/mfa"),
        ("POST", "browser/signin/mfa"),
        ("POST", "mfa/totp"),
        ("POST", "mfa/totp/{id}/confirm"),
        ("POST", "mfa/webauthn/register/start"),
        ("POST", "signin/passkey/start"),
        ("POST", "signin/passkey/finish"),
        ("POST", "browser/signin/passkey/finish"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), format!("{BASE}/{p}")))
    // In OAuth's shape, not the shared response.
    .chain([("POST".to_owned(), "/oauth/token".to_owned())])
    .collect();
    assert_eq!(limited, expected, "refreshes and the rest are not limited");
    for (method, path) in expected.iter().filter(|(_, path)| path != "/oauth/token") {
        assert_eq!(
            raw["paths"][path][method.to_lowercase()]["responses"]["429"],
            json!({"$ref": "#/components/responses/TooManyRequests"}),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn verification_and_reset_document_their_answers_bodies_and_the_verified_flag() {
    let (raw, spec) = served_document(&app(BASE), BASE).await;
    let schemas = &raw["components"]["schemas"];
    for (method, path, statuses, request) in [
        (
            Method::POST,
            "verify-email",
            &[204, 400][..],
            Some("VerifyEmailRequest"),
        ),
        (
            Method::POST,
            "verify-email/resend",
            &[202, 400, 404, 409, 429][..],
            Some("ResendVerificationRequest"),
        ),
        (
            Method::POST,
            "password-reset",
            &[202, 400, 429][..],
            Some("PasswordResetRequest"),
        ),
        (
            Method::POST,
            "password-reset/confirm",
            &[204, 400][..],
            Some("PasswordResetConfirmRequest"),
        ),
    ] {
        let path = format!("{BASE}/{path}");
        let op = spec
            .operation(&method, &path)
            .unwrap_or_else(|| panic!("{method} {path}"));
        let documented = documented_statuses(op);
        for status in statuses {
            assert!(documented.contains(status), "{method} {path}: {status}");
        }
        assert!(
            documented.contains(&503),
            "{method} {path}: stores behind it"
        );
        let body = &raw["paths"][&path]["post"]["requestBody"];
        let schema_of_body = &body["content"]["application/json"]["schema"];
        // An optional body (a resend by address) is `oneOf: [null, $ref]`.
        let reference = schema_of_body["oneOf"]
            .as_array()
            .and_then(|alternatives| alternatives.iter().find(|a| a["$ref"].is_string()))
            .unwrap_or(schema_of_body);
        match request {
            Some(schema) => assert_eq!(
                reference["$ref"],
                format!("#/components/schemas/{schema}"),
                "{method} {path}: {body}"
            ),
            None => assert!(body.is_null(), "{method} {path}: no body"),
        }
    }
    for (schema, field) in [
        ("VerifyEmailRequest", "token"),
        ("PasswordResetRequest", "email"),
        ("ResendVerificationRequest", "email"),
        ("PasswordResetConfirmRequest", "token"),
        ("PasswordResetConfirmRequest", "newPassword"),
    ] {
        assert!(
            schemas[schema]["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!(field))),
            "{schema}.{field} required: {}",
            schemas[schema]
        );
    }
    assert_eq!(
        schemas["UserView"]["properties"]["emailVerified"]["type"],
        "boolean"
    );
}
