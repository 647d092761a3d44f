//! What the router and its middleware answer around the handlers: unknown
//! routes and methods, the base path, the handler timeout, panics, the probes
//! and the key set.

use std::time::Instant;

use async_trait::async_trait;

use super::*;
use crate::error::{AppError, AppResult};
use crate::jwks::{Jwk, JwkSet};
use crate::model::{Email, Password, SessionInfo, SignOutScope, UserDetails};

#[tokio::test]
async fn an_unknown_path_answers_404_not_found_in_the_json_shape() {
    for path in [url("/nope"), "/nope".to_owned(), "/".to_owned()] {
        let (status, headers, body) = send(app(MockAccountService::new()), get(&path)).await;

        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_json_content_type(&headers);
        assert_eq!(body, error_body("NOT_FOUND", "no such route"), "{path}");
    }
}

#[tokio::test]
async fn a_wrong_method_answers_405_method_not_allowed_with_an_allow_header() {
    let mut account = MockAccountService::new();
    account.expect_sign_up().never();

    let (status, headers, body) = send(app(account), get(&url("/signup"))).await;

    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_json_content_type(&headers);
    assert_eq!(body, error_body("METHOD_NOT_ALLOWED", "method not allowed"));
    assert_eq!(
        headers.get(header::ALLOW).and_then(|v| v.to_str().ok()),
        Some("POST")
    );
}

#[tokio::test]
async fn a_wrong_method_on_a_root_route_also_answers_405_in_the_json_shape() {
    let mut account = MockAccountService::new();
    account.expect_ready().never();

    let (status, headers, body) = send(app(account), empty(Method::POST, "/readyz")).await;

    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body, error_body("METHOD_NOT_ALLOWED", "method not allowed"));
    let allow = headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        allow.split(',').any(|m| m.trim() == "GET"),
        "Allow: {allow}"
    );
}

#[tokio::test]
async fn a_custom_base_path_serves_the_account_routes_there_and_not_under_the_default() {
    let mut account = authenticating(&user());
    account.expect_me().times(1).returning(|_| Ok(user()));
    let router = app_with(account, &settings("/v2/acct"));

    let (status, _, body) = send(router.clone(), authorized(get("/v2/acct/me"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"]["email"], "alice@example.com");

    let (status, _, body) = send(router.clone(), authorized(get("/api/account/me"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_type(&body), "NOT_FOUND");

    let (status, _, _) = send(router, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "health stays at the root");
}

// ---------------------------------------------------------------- timeout and panics

/// What [`SignInOnly`]'s sign-in does.
#[derive(Clone, Copy)]
enum SignIn {
    /// Answers long after the handler timeout.
    Slow,
    /// Panics: a bug in a use case.
    Panics,
}

/// Use cases whose only working one is sign-in, as scripted. Hand-written:
/// mockall's `returning` cannot produce a slow future for an `async_trait`
/// method.
struct SignInOnly(SignIn);

#[async_trait]
impl AccountService for SignInOnly {
    async fn sign_up(
        &self,
        _email: Email,
        _password: Password,
        _client: ClientInfo,
    ) -> AppResult<crate::model::SignUp> {
        unreachable!("only sign-in is called")
    }
    async fn sign_in(
        &self,
        _email: Email,
        _password: Password,
        _client: ClientInfo,
    ) -> AppResult<crate::model::SignIn> {
        match self.0 {
            SignIn::Slow => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(crate::model::SignIn::Tokens(pair()))
            }
            SignIn::Panics => panic!("a bug in sign-in"),
        }
    }
    async fn refresh(&self, _refresh_token: &str, _client: ClientInfo) -> AppResult<TokenPair> {
        unreachable!("only sign-in is called")
    }
    async fn sign_out(&self, _caller: &IdClaims, _scope: SignOutScope) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    async fn sign_out_by_refresh(&self, _token: &str, _scope: SignOutScope) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    async fn sign_in_second_step(
        &self,
        _mfa_token: &str,
        _method: crate::model::SecondFactorMethod,
        _proof: crate::model::SecondFactorProof,
        _client: ClientInfo,
    ) -> AppResult<TokenPair> {
        unreachable!("only sign-in is called")
    }
    async fn begin_passkey_sign_in(&self, _client: ClientInfo) -> AppResult<serde_json::Value> {
        unreachable!("only sign-in is called")
    }
    async fn finish_passkey_sign_in(
        &self,
        _credential: serde_json::Value,
        _client: ClientInfo,
    ) -> AppResult<TokenPair> {
        unreachable!("only sign-in is called")
    }
    async fn begin_passkey_step(&self, _mfa_token: &str) -> AppResult<serde_json::Value> {
        unreachable!("only sign-in is called")
    }
    async fn begin_passkey_registration(
        &self,
        _caller: &IdClaims,
        _current_password: Option<Password>,
        _client: ClientInfo,
    ) -> AppResult<serde_json::Value> {
        unreachable!("only sign-in is called")
    }
    async fn finish_passkey_registration(
        &self,
        _caller: &IdClaims,
        _name: Option<crate::model::SessionName>,
        _credential: serde_json::Value,
        _client: ClientInfo,
    ) -> AppResult<(Uuid, crate::model::FactorConfirmed)> {
        unreachable!("only sign-in is called")
    }
    async fn begin_totp(
        &self,
        _caller: &IdClaims,
        _current_password: Option<Password>,
        _client: ClientInfo,
    ) -> AppResult<crate::model::TotpEnrolment> {
        unreachable!("only sign-in is called")
    }
    async fn confirm_totp(
        &self,
        _caller: &IdClaims,
        _id: Uuid,
        _code: &str,
        _client: ClientInfo,
    ) -> AppResult<crate::model::FactorConfirmed> {
        unreachable!("only sign-in is called")
    }
    async fn factors(&self, _caller: &IdClaims) -> AppResult<crate::model::FactorList> {
        unreachable!("only sign-in is called")
    }
    async fn rename_factor(
        &self,
        _caller: &IdClaims,
        _id: Uuid,
        _name: Option<crate::model::SessionName>,
    ) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    async fn delete_factor(
        &self,
        _caller: &IdClaims,
        _id: Uuid,
        _client: ClientInfo,
    ) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    async fn new_recovery_codes(
        &self,
        _caller: &IdClaims,
        _client: ClientInfo,
    ) -> AppResult<Vec<String>> {
        unreachable!("only sign-in is called")
    }
    async fn sessions(&self, _caller: &IdClaims) -> AppResult<Vec<SessionInfo>> {
        unreachable!("only sign-in is called")
    }
    async fn end_session(&self, _caller: &IdClaims, _sid: Uuid) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    async fn rename_session(
        &self,
        _caller: &IdClaims,
        _sid: Uuid,
        _name: Option<crate::model::SessionName>,
    ) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    async fn me(&self, _uid: Uuid) -> AppResult<User> {
        unreachable!("only sign-in is called")
    }
    async fn update_details(
        &self,
        _caller: &IdClaims,
        _details: UserDetails,
        _current_password: Option<Password>,
        _client: ClientInfo,
    ) -> AppResult<User> {
        unreachable!("only sign-in is called")
    }
    async fn change_password(
        &self,
        _caller: &IdClaims,
        _current: Password,
        _new: Password,
        _client: ClientInfo,
    ) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    async fn delete_account(
        &self,
        _caller: &IdClaims,
        _current_password: Password,
        _client: ClientInfo,
    ) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    async fn verify_email(&self, _token: &str, _client: ClientInfo) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    async fn resend_verification(&self, _caller: &IdClaims) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    async fn resend_verification_to(&self, _email: Email, _client: ClientInfo) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    async fn request_password_reset(&self, _email: Email, _client: ClientInfo) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    async fn confirm_password_reset(
        &self,
        _token: &str,
        _new: Password,
        _client: ClientInfo,
    ) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
    fn authenticate(&self, _id_token: &str) -> AppResult<IdClaims> {
        unreachable!("only sign-in is called")
    }
    fn jwks(&self) -> JwkSet {
        unreachable!("only sign-in is called")
    }
    async fn ready(&self) -> AppResult<()> {
        unreachable!("only sign-in is called")
    }
}

fn signin_request() -> Request<Body> {
    post_json(
        &url("/signin"),
        json!({"email": "alice@example.com", "password": "correct horse"}),
    )
}

#[tokio::test]
async fn a_use_case_slower_than_the_handler_timeout_answers_503_service_unavailable_at_the_timeout()
{
    let router = app_with(SignInOnly(SignIn::Slow), &settings(BASE));

    let started = Instant::now();
    let (status, headers, body) = send(router, signin_request()).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_json_content_type(&headers);
    assert_eq!(
        body,
        error_body(
            "SERVICE_UNAVAILABLE",
            "the request timed out, try again later"
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}, not at the 200 ms timeout",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_panicking_use_case_answers_500_in_the_json_shape_without_the_panic_message() {
    let router = app_with(SignInOnly(SignIn::Panics), &settings(BASE));

    let (status, headers, body) = send(router, signin_request()).await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_json_content_type(&headers);
    assert_eq!(body, error_body("INTERNAL", "internal server error"));
}

// ---------------------------------------------------------------- probes and keys

#[tokio::test]
async fn healthz_answers_200_ok_without_touching_the_stores() {
    let mut account = MockAccountService::new();
    account.expect_ready().never();

    let (status, _, body) = send(app(account), get("/healthz")).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_answers_200_when_the_use_case_finds_both_stores_ready() {
    let mut account = MockAccountService::new();
    account.expect_ready().times(1).returning(|| Ok(()));

    let (status, _, body) = send(app(account), get("/readyz")).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ready"}));
}

#[tokio::test]
async fn readyz_answers_503_when_a_store_does_not_answer_without_the_cause() {
    let mut account = MockAccountService::new();
    account.expect_ready().times(1).returning(|| {
        Err(AppError::store_unavailable(
            "token store",
            &"connection to 10.0.0.7:6379 refused",
        ))
    });

    let (status, _, body) = send(app(account), get("/readyz")).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        error_body(
            "SERVICE_UNAVAILABLE",
            "token store is unavailable, try again later"
        )
    );
}

#[tokio::test]
async fn the_key_set_of_the_use_case_is_served_at_the_root_cacheable_for_five_minutes() {
    let mut account = MockAccountService::new();
    account.expect_jwks().times(1).returning(|| JwkSet {
        keys: vec![Jwk {
            kty: "RSA".into(),
            kid: Some("key-1".into()),
            alg: Some("RS256".into()),
            use_: Some("sig".into()),
            n: Some("AQAB".into()),
            e: Some("AQAB".into()),
        }],
    });

    let (status, headers, body) = send(app(account), get("/.well-known/jwks.json")).await;

    assert_eq!(status, StatusCode::OK);
    assert_json_content_type(&headers);
    assert_eq!(
        headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("public, max-age=300")
    );
    assert_eq!(
        body,
        json!({"keys": [{
            "kty": "RSA", "kid": "key-1", "alg": "RS256", "use": "sig", "n": "AQAB", "e": "AQAB",
        }]})
    );
}

// ---------------------------------------------------------------- logging

/// The log lines at `level` (`WARN`, `ERROR`).
fn lines_at<'a>(logs: &'a str, level: &str) -> Vec<&'a str> {
    logs.lines().filter(|line| line.contains(level)).collect()
}

#[tokio::test]
async fn a_503_is_logged_once_as_a_warning_with_its_cause_and_never_as_an_error() {
    let mut account = MockAccountService::new();
    account.expect_ready().returning(|| {
        Err(AppError::store_unavailable(
            "token store",
            &"connection to 10.0.0.7:6379 refused",
        ))
    });

    let ((status, _, _), logs) =
        crate::test_logs::logged_during(send(app(account), get("/readyz"))).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let warnings = lines_at(&logs, "WARN");
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings[0].contains("10.0.0.7:6379 refused"), "{logs}");
    assert!(lines_at(&logs, "ERROR").is_empty(), "{logs}");
}

#[tokio::test]
async fn a_panic_is_logged_once_as_an_error() {
    let router = app_with(SignInOnly(SignIn::Panics), &settings(BASE));

    let ((status, _, _), logs) =
        crate::test_logs::logged_during(send(router, signin_request())).await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let errors = lines_at(&logs, "ERROR");
    assert_eq!(errors.len(), 1, "{logs}");
    assert!(errors[0].contains("a bug in sign-in"), "{logs}");
}
