//! The OpenAPI 3 document of the HTTP API, served at `{base_path}/openapi.json`.
//!
//! Nothing here lists routes: each handler carries its `#[utoipa::path]`, and
//! [`super::routes`] registers handler and operation together with
//! `utoipa_axum::routes!`, so the router and the document cannot drift apart.
//! This module adds what belongs to the document as a whole: its info, tags
//! and the bearer security scheme.

use std::collections::BTreeMap;

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

/// The name of the security scheme of ID-token-protected operations (spelled
/// out in their `security(("bearer" = []))`, which takes only a literal).
pub const BEARER: &str = "bearer";

/// Tags grouping the operations.
pub mod tags {
    pub const ACCOUNT: &str = "account";
    pub const PROBES: &str = "probes";
    pub const KEYS: &str = "keys";
    pub const OPENAPI: &str = "openapi";
    pub const OAUTH: &str = "oauth";
    pub const PAGES: &str = "pages";
    pub const BROWSER: &str = "browser";
}

/// The document's root: info, tags and security schemes. Paths and schemas are
/// added by the router registration.
#[derive(OpenApi)]
#[openapi(
    info(description = "JWT account service: sign-up, sign-in, refresh-token rotation, \
sign-out on every device, email verification and password reset.

Bodies are JSON in camelCase. Every error, whatever its origin (handler, extractor, \
unknown route, wrong method, body limit, timeout), has one shape, the `ErrorBody` schema: \
`{\"error\": {\"type\": \"CONFLICT\", \"message\": \"email already registered\"}}`, with \
`invalidArgs: [{field, message}]` added for field errors.

Besides the statuses listed on each operation: a path the service does not serve answers \
404 `NOT_FOUND`, and a method a path does not serve answers 405 `METHOD_NOT_ALLOWED` with \
an `Allow` header."),
    modifiers(&SecuritySchemes, &SharedResponses),
    tags(
        (name = tags::ACCOUNT, description = "Sign-up, sign-in, token refresh, sign-out, profile, email verification and password reset, under the configured base path (`ACCOUNT_API_URL`)."),
        (name = tags::PROBES, description = "Liveness and readiness probes."),
        (name = tags::KEYS, description = "The public keys that verify ID tokens (RFC 7517)."),
        (name = tags::OPENAPI, description = "This document."),
        (name = tags::OAUTH, description = "Access tokens for machine clients: the client-credentials grant (RFC 6749 §4.4), at the root. Errors in OAuth's shape (RFC 6749 §5.2)."),
        (name = tags::BROWSER, description = "The browser session, under the base path beside the API for programs: sign-in, sign-up, refresh and sign-out whose refresh token lives in an `HttpOnly; SameSite=Strict` cookie scoped to `{base}/browser`, and whose answers carry the ID token alone. Only requests from `PUBLIC_URL`'s origin are answered (403 `FORBIDDEN` otherwise)."),
        (name = tags::PAGES, description = "Pages for people, at the root (`text/html`; `PAGES=off` removes them): sign-in, sign-up and the account page, the pages the mailed links open, and asking for a password-reset link. They call the JSON API of the same origin, and keep their session through the `browser` routes."),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` scheme: `Authorization: Bearer <ID token>`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An RS256 ID token from sign-up, sign-in or refresh, valid for \
                         ID_TOKEN_EXP seconds (15 minutes by default).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The error responses many operations share, each one component under
/// `#/components/responses`: (name, status, description).
const SHARED_RESPONSES: [(&str, &str, &str); 7] = [
    (
        "Unauthorized",
        "401",
        "No `Authorization: Bearer` header, or an ID token that does not verify \
         (`AUTHORIZATION`)",
    ),
    (
        "RequestTimeout",
        "408",
        "The body did not arrive within `BODY_READ_TIMEOUT` of the request head \
         (`REQUEST_TIMEOUT`); the connection is closed",
    ),
    (
        "PayloadTooLarge",
        "413",
        "Body over `MAX_BODY_BYTES` (`PAYLOAD_TOO_LARGE`)",
    ),
    (
        "UnsupportedMediaType",
        "415",
        "Body not `application/json` (`UNSUPPORTED_MEDIA_TYPE`)",
    ),
    (
        "TooManyRequests",
        "429",
        "Too many attempts in the window (`TOO_MANY_REQUESTS`): sign-ins and \
         re-authentications per email and client address, per client address and per \
         email; sign-ups and password-reset requests per client address; verification \
         mails resent per user; failed verification and reset tokens per client address. \
         Nothing was checked or counted; retry after `Retry-After` seconds",
    ),
    (
        "Internal",
        "500",
        "A bug (`INTERNAL`); the cause is logged, not returned",
    ),
    (
        "ServiceUnavailable",
        "503",
        "A store is down, the request timed out, or (sign-in, sign-up, \
         re-authentication) the password-hashing queue is full, then with `Retry-After` \
         (`SERVICE_UNAVAILABLE`)",
    ),
];

/// Adds the [`SHARED_RESPONSES`] components, each with the `ErrorBody` schema.
struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, status, description) in SHARED_RESPONSES {
            let mut response = ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            );
            if status == "401" {
                response = response.header(
                    "WWW-Authenticate",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some(
                            "`Bearer`, or `Bearer error=\"invalid_token\"` for a token that \
                             does not verify",
                        ))
                        .build(),
                );
            }
            if status == "429" {
                response = response.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(1)),
                        )
                        .description(Some(
                            "Seconds until the window lets the caller in again (at most \
                             `RATE_LIMIT_WINDOW`)",
                        ))
                        .build(),
                );
            }
            let response = response.build();
            components
                .responses
                .insert(name.to_owned(), RefOr::T(response));
        }
    }
}

/// References to the shared responses with these names.
fn shared(names: &[&str]) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    SHARED_RESPONSES
        .iter()
        .filter(|(name, _, _)| names.contains(name))
        .map(|(name, status, _)| {
            (
                (*status).to_owned(),
                RefOr::Ref(Ref::from_response_name(*name)),
            )
        })
        .collect()
}

/// 500 and 503: what any operation that reaches a store may answer.
/// Listed in an operation's `responses(...)`.
pub struct ServerErrors;

impl IntoResponses for ServerErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        shared(&["Internal", "ServiceUnavailable"])
    }
}

/// 408, 413, 415, 500 and 503: what any operation with a JSON body may
/// answer besides its own statuses.
pub struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        shared(&[
            "RequestTimeout",
            "PayloadTooLarge",
            "UnsupportedMediaType",
            "Internal",
            "ServiceUnavailable",
        ])
    }
}

/// 401, 500 and 503: what any operation behind the bearer ID token may
/// answer besides its own statuses.
pub struct BearerErrors;

impl IntoResponses for BearerErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        shared(&["Unauthorized", "Internal", "ServiceUnavailable"])
    }
}

/// 429: what an operation that checks a password, signs up or sends a mail
/// may answer once a limit is reached.
pub struct LimitErrors;

impl IntoResponses for LimitErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        shared(&["TooManyRequests"])
    }
}

/// [`BearerErrors`] and [`BodyErrors`]: a bearer operation with a JSON body.
pub struct BearerBodyErrors;

impl IntoResponses for BearerBodyErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut responses = BearerErrors::responses();
        responses.append(&mut BodyErrors::responses());
        responses
    }
}

/// The document, serialized once when the router is built.
#[derive(Debug, Clone)]
pub struct OpenApiJson(Bytes);

impl OpenApiJson {
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Self {
        // A tree of strings, maps and numbers: serializing it cannot fail, and
        // the handler tests parse what is served.
        let json = serde_json::to_vec(doc).expect("the OpenAPI document serializes");
        Self(Bytes::from(json))
    }
}

/// `GET {base_path}/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = tags::OPENAPI,
    summary = "The OpenAPI document of this service",
    description = "This document, generated from the code that builds the router, with \
                   paths under the configured base path.",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object,
         content_type = "application/json"),
    )
)]
pub async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> Response {
    let mut response = doc.0.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
