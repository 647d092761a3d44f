//! The OpenAPI document against the router that serves it: the document is
//! valid OpenAPI 3 (read with `oas3`, an independent model of the spec), it
//! lists exactly the routes the router serves (read from the router itself),
//! and what the router answers is what the document says it answers.
//!
//! `document.rs` checks the document itself, `routes.rs` the document against
//! what the router serves and answers.

mod document;
mod gate;
mod routes;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use oas3::spec::{ObjectOrReference, Operation, Response, Schema};
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

use super::{AppState, HttpSettings, router};
use crate::error::{AppError, REFRESH_TOKEN_REFUSED};
use crate::jwks::JwkSet;
use crate::model::interfaces::MockAccountService;
use crate::model::{Audience, IdClaims};
use crate::verifier::VerifyError;

const BASE: &str = "/api/account";
const ID_TOKEN: &str = "valid-id-token";
const MAX_BODY_BYTES: usize = 1024;
const ERROR_SCHEMA: &str = "#/components/schemas/ErrorBody";

/// Every route of the service, as `(method, path)`, `{base}` standing for the
/// base path. A route added or removed must be added or removed here too.
const EXPECTED_ROUTES: [(&str, &str); 49] = [
    ("POST", "{base}/signup"),
    ("POST", "{base}/signin"),
    ("POST", "{base}/tokens"),
    ("POST", "{base}/signout"),
    ("GET", "{base}/me"),
    ("DELETE", "{base}/me"),
    ("PUT", "{base}/details"),
    ("PUT", "{base}/password"),
    ("POST", "{base}/verify-email"),
    ("POST", "{base}/verify-email/resend"),
    ("POST", "{base}/password-reset"),
    ("POST", "{base}/password-reset/confirm"),
    ("GET", "{base}/sessions"),
    ("DELETE", "{base}/sessions/{id}"),
    ("PUT", "{base}/sessions/{id}"),
    ("GET", "{base}/openapi.json"),
    ("POST", "{base}/browser/signin"),
    ("POST", "{base}/browser/signup"),
    ("POST", "{base}/browser/tokens"),
    ("POST", "{base}/browser/signout"),
    ("POST", "{base}/browser/signin/mfa"),
    ("POST", "{base}/signin/mfa"),
    ("POST", "{base}/mfa/totp"),
    ("POST", "{base}/mfa/totp/{id}/confirm"),
    ("GET", "{base}/mfa"),
    ("PUT", "{base}/mfa/{id}"),
    ("DELETE", "{base}/mfa/{id}"),
    ("POST", "{base}/mfa/recovery-codes"),
    ("POST", "{base}/mfa/webauthn/register/start"),
    ("POST", "{base}/mfa/webauthn/register/finish"),
    ("POST", "{base}/signin/mfa/webauthn/start"),
    ("POST", "{base}/signin/passkey/start"),
    ("POST", "{base}/signin/passkey/finish"),
    ("POST", "{base}/browser/signin/passkey/finish"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", "/oauth/token"),
    ("GET", "/signin"),
    ("GET", "/signup"),
    ("GET", "/account"),
    ("GET", "/verify-email"),
    ("GET", "/reset-password"),
    ("GET", "/forgot-password"),
    ("GET", "/assets/pages.css"),
    ("GET", "/assets/pages.js"),
    ("GET", "/assets/account.js"),
    ("GET", "/assets/factors.js"),
    ("GET", "/assets/icon.svg"),
];
/// The one operation that speaks OAuth's error shape (RFC 6749 §5.2) for
/// its client errors.
const OAUTH_TOKEN: &str = "/oauth/token";
const OAUTH_ERROR_SCHEMA: &str = "#/components/schemas/OAuthErrorBody";

// ---------------------------------------------------------------- the app

/// A router whose use cases answer every call without panicking: [`ID_TOKEN`]
/// authenticates, every user is unknown (sign-up conflicts, sign-in and
/// refresh are refused, the profile and the password are not found), sign-out
/// succeeds, the caller has no sessions (so ending or naming one is not found), every
/// verification and reset token is refused, a resend finds the address
/// verified, a reset request is accepted, the stores are ready.
fn app(base_path: &str) -> Router {
    let mut account = MockAccountService::new();
    account.expect_authenticate().returning(|token| {
        if token == ID_TOKEN {
            Ok(IdClaims {
                sub: Uuid::from_u128(0x1234),
                iss: "account-test".into(),
                aud: Audience::One("account-test".into()),
                iat: 1_700_000_000,
                exp: 1_700_000_900,
                nbf: None,
                jti: Some(Uuid::from_u128(0xabcd).to_string()),
                email: "alice@example.com".into(),
                email_verified: false,
                name: String::new(),
                sid: Some(Uuid::from_u128(0x5e55).to_string()),
                auth_time: Some(1_700_000_000),
                acr: Some("aal1".into()),
                amr: vec!["pwd".into()],
            })
        } else {
            Err(AppError::from(VerifyError::Signature))
        }
    });
    account
        .expect_sign_up()
        .returning(|_, _, _| Err(AppError::Conflict("email already registered".into())));
    account.expect_sign_in().returning(|_, _, _| {
        Err(AppError::unauthorized(
            "invalid email and password combination",
        ))
    });
    account
        .expect_refresh()
        .returning(|_, _| Err(AppError::invalid_token(REFRESH_TOKEN_REFUSED)));
    account.expect_sign_out().returning(|_, _| Ok(()));
    account.expect_sessions().returning(|_| Ok(Vec::new()));
    account
        .expect_sign_in_second_step()
        .returning(|_, _, _, _| Err(AppError::invalid_token("the two-step sign-in is over")));
    account
        .expect_begin_totp()
        .returning(|_, _, _| Err(AppError::StepUp(crate::verifier::StepUp::MaxAge(300))));
    account
        .expect_confirm_totp()
        .returning(|_, _, _, _| Err(AppError::NotFound("no such pending factor".into())));
    account.expect_factors().returning(|_| {
        Ok(crate::model::FactorList {
            factors: Vec::new(),
            recovery_codes_left: 0,
        })
    });
    account
        .expect_rename_factor()
        .returning(|_, _, _| Err(AppError::NotFound("no such factor".into())));
    account
        .expect_delete_factor()
        .returning(|_, _, _| Err(AppError::NotFound("no such factor".into())));
    account
        .expect_begin_passkey_registration()
        .returning(|_, _, _| Err(AppError::StepUp(crate::verifier::StepUp::MaxAge(300))));
    account
        .expect_finish_passkey_registration()
        .returning(|_, _, _, _| {
            Err(AppError::invalid_args(vec![crate::error::InvalidArg::new(
                "credential",
                "refused",
            )]))
        });
    account
        .expect_begin_passkey_sign_in()
        .returning(|_| Err(AppError::unavailable("passkeys are off")));
    account
        .expect_finish_passkey_sign_in()
        .returning(|_, _| Err(AppError::unauthorized("this passkey signs nobody in")));
    account
        .expect_begin_passkey_step()
        .returning(|_| Err(AppError::invalid_token("the two-step sign-in is over")));
    account
        .expect_new_recovery_codes()
        .returning(|_, _| Err(AppError::Conflict("no second factor".into())));
    account
        .expect_end_session()
        .returning(|_, _| Err(AppError::NotFound("no such session".into())));
    account
        .expect_rename_session()
        .returning(|_, _, _| Err(AppError::NotFound("no such session".into())));
    account
        .expect_me()
        .returning(|_| Err(AppError::NotFound("user not found".into())));
    account
        .expect_update_details()
        .returning(|_, _, _, _| Err(AppError::NotFound("user not found".into())));
    account
        .expect_change_password()
        .returning(|_, _, _, _| Err(AppError::NotFound("user not found".into())));
    account
        .expect_delete_account()
        .returning(|_, _, _| Err(AppError::NotFound("user not found".into())));
    account
        .expect_verify_email()
        .returning(|_, _| Err(invalid_token_arg()));
    account
        .expect_resend_verification()
        .returning(|_| Err(AppError::Conflict("the email is already verified".into())));
    account
        .expect_resend_verification_to()
        .returning(|_, _| Ok(()));
    account
        .expect_request_password_reset()
        .returning(|_, _| Ok(()));
    account
        .expect_confirm_password_reset()
        .returning(|_, _, _| Err(invalid_token_arg()));
    account.expect_jwks().returning(JwkSet::default);
    account.expect_ready().returning(|| Ok(()));

    let state = AppState {
        account: Arc::new(account),
        clients: Arc::new(crate::model::interfaces::MockClientService::new()),
    };
    router(
        state,
        &HttpSettings {
            base_path: base_path.into(),
            handler_timeout: Duration::from_secs(5),
            max_body_bytes: MAX_BODY_BYTES,
            trusted_proxies: Default::default(),
            pages: true,
            page_options: super::PageOptions {
                public_url: "http://localhost:8080".into(),
                title: "Account".into(),
                redirect_urls: Vec::new(),
            },
        },
    )
}

fn invalid_token_arg() -> AppError {
    AppError::invalid_args(vec![crate::error::InvalidArg::new(
        "token",
        "the token is invalid, used or expired",
    )])
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

// ---------------------------------------------------------------- reading the document

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

/// The `$ref` of the JSON schema of `status`'s response of `op`, if any. A
/// response may itself be a reference to `#/components/responses/…`: it is
/// resolved through the document's components, and must resolve.
fn response_schema_ref(spec: &oas3::Spec, op: &Operation, status: &str) -> Option<String> {
    let response = op
        .responses
        .as_ref()?
        .get(status)?
        .resolve(spec)
        .unwrap_or_else(|err| panic!("response {status} does not resolve: {err}"));
    schema_ref(&response)
}

/// The `$ref` of the JSON schema of `response`, if any.
fn schema_ref(response: &Response) -> Option<String> {
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
    // An empty requirement among the alternatives makes the bearer optional
    // (`POST /verify-email/resend` by address).
    !op.security.is_empty() && op.security.iter().all(|req| req.0.contains_key("bearer"))
}

/// Whether the bearer scheme is one of the operation's alternatives.
fn accepts_bearer(op: &Operation) -> bool {
    op.security.iter().any(|req| req.0.contains_key("bearer"))
}
