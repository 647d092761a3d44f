//! The client-token rules ([`ClientTokenValidator`] through
//! [`Verifier::verify_client`]) and the [`AuthenticatedClient`] extractor.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::super::test_support::{claims_for, key, now, static_verifier};
use super::super::*;
use super::user;

const CLIENT: &str = "cl_AAAAAAAAAAAAAAAAAAAAAA";

fn client_claims() -> Value {
    let now = now();
    json!({
        "sub": CLIENT, "client_id": CLIENT, "iss": "account", "aud": "domain-services",
        "scope": "todos:read reports", "iat": now, "exp": now + 3600, "jti": "j",
    })
}

fn at_jwt(claims: &Value) -> String {
    key(0).sign_raw(
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": key(0).kid}),
        claims,
    )
}

fn with(name: &str, value: Value) -> Value {
    let mut claims = client_claims();
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(name);
    } else {
        claims[name] = value;
    }
    claims
}

#[tokio::test]
async fn a_client_token_yields_its_client_and_scopes() {
    let claims = static_verifier()
        .verify_client(&at_jwt(&client_claims()))
        .await
        .unwrap();
    assert_eq!(claims.client_id, CLIENT);
    assert!(claims.has_scope("todos:read") && claims.has_scope("reports"));
    assert!(!claims.has_scope("todos"));
}

#[tokio::test]
async fn client_and_id_tokens_never_pass_for_each_other() {
    let verifier = static_verifier();
    // A user's ID token (typ JWT) where a client's is required.
    let id_token = key(0).sign(&claims_for(user()));
    assert_eq!(
        verifier.verify_client(&id_token).await,
        Err(VerifyError::NotAccessToken)
    );
    // A client token where a user is expected.
    assert_eq!(
        verifier.verify(&at_jwt(&client_claims())).await,
        Err(VerifyError::TokenType)
    );
    // Even typed JWT, a client's claims have no UUID subject.
    let untyped = key(0).sign(&client_claims());
    assert_eq!(verifier.verify(&untyped).await, Err(VerifyError::Subject));
}

#[tokio::test]
async fn the_client_rules_refuse_what_the_service_never_signs() {
    let verifier = static_verifier();
    let uuid = user().to_string();
    for (what, claims, error) in [
        (
            "uuid subject",
            with("sub", json!(uuid)),
            VerifyError::ClientSubject,
        ),
        (
            "sub is not client_id",
            with("sub", json!("cl_other")),
            VerifyError::ClientSubject,
        ),
        (
            "no client_id",
            with("client_id", Value::Null),
            VerifyError::MissingClaim("client_id".into()),
        ),
        (
            "no iat",
            with("iat", Value::Null),
            VerifyError::MissingClaim("iat".into()),
        ),
        (
            "other audience",
            with("aud", json!("elsewhere")),
            VerifyError::Audience,
        ),
        (
            "other issuer",
            with("iss", json!("evil")),
            VerifyError::Issuer,
        ),
        (
            "expired",
            with("exp", json!(now() - 10)),
            VerifyError::Expired,
        ),
        (
            "too long a life",
            with("exp", json!(now() + 3601)),
            VerifyError::LifetimeTooLong,
        ),
    ] {
        assert_eq!(
            verifier.verify_client(&at_jwt(&claims)).await,
            Err(error),
            "{what}"
        );
    }
    // `sub` and `client_id` both a UUID: still no client.
    let mut both = client_claims();
    both["sub"] = json!(uuid);
    both["client_id"] = json!(uuid);
    assert_eq!(
        verifier.verify_client(&at_jwt(&both)).await,
        Err(VerifyError::ClientSubject)
    );
}

struct TodosRead;
impl Scope for TodosRead {
    const SCOPE: &'static str = "todos:read";
}
struct Admin;
impl Scope for Admin {
    const SCOPE: &'static str = "admin";
}

async fn status_of(app: Router, token: &str) -> (StatusCode, Option<String>) {
    let response = app
        .oneshot(
            Request::get("/")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status(), challenge)
}

#[tokio::test]
async fn the_extractor_requires_the_scope_with_a_403() {
    let reader = Router::new()
        .route(
            "/",
            get(|c: AuthenticatedClient<TodosRead>| async move { c.claims.client_id }),
        )
        .with_state(static_verifier());
    let admin = Router::new()
        .route("/", get(|_: AuthenticatedClient<Admin>| async { "ok" }))
        .with_state(static_verifier());
    let token = at_jwt(&client_claims());
    assert_eq!(status_of(reader.clone(), &token).await.0, StatusCode::OK);
    assert_eq!(
        status_of(admin, &token).await,
        (
            StatusCode::FORBIDDEN,
            Some(r#"Bearer error="insufficient_scope", scope="admin""#.into())
        )
    );
    let id_token = key(0).sign(&claims_for(user()));
    assert_eq!(
        status_of(reader, &id_token).await,
        (
            StatusCode::UNAUTHORIZED,
            Some(r#"Bearer error="invalid_token""#.into())
        )
    );
}
