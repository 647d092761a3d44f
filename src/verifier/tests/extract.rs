use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::super::test_support::{claims_for, key, static_verifier};
use super::super::*;
use super::fetching::JwksServer;
use super::{claims_with, user};

// ---- the extractor --------------------------------------------------------

async fn whoami(AuthenticatedUser(user): AuthenticatedUser) -> String {
    user.sub.to_string()
}

fn protected_app(verifier: Verifier) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .with_state(verifier)
}

async fn call(app: Router, authorization: Option<&str>) -> (StatusCode, Option<String>, String) {
    let mut request = Request::get("/whoami");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = app
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_extractor_lets_a_valid_bearer_token_through() {
    let sub = user();
    let token = key(0).sign(&claims_for(sub));
    let (status, _, body) = call(
        protected_app(static_verifier()),
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, sub.to_string());
}

#[tokio::test]
async fn the_extractor_answers_401_bearer_without_credentials() {
    for authorization in [
        None,
        Some("Basic dXNlcjpwdw=="),
        Some("Bearer "),
        Some("token"),
    ] {
        let (status, challenge, body) = call(protected_app(static_verifier()), authorization).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(challenge.as_deref(), Some("Bearer"));
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["type"], "AUTHORIZATION");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Bearer")
        );
    }
}

#[tokio::test]
async fn the_extractor_answers_401_invalid_token_without_echoing_it() {
    let token = key(0).sign(&claims_with("iss", json!("evil-issuer-marker")));
    let (status, challenge, body) = call(
        protected_app(static_verifier()),
        Some(&format!("bearer {token}")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["type"], "AUTHORIZATION");
    assert_eq!(json["error"]["message"], "the token has the wrong issuer");
    for part in token.split('.') {
        assert!(!body.contains(part));
    }
    assert!(!body.contains("evil-issuer-marker"));
}

#[tokio::test]
async fn the_extractor_answers_503_when_no_key_can_be_fetched() {
    let server = JwksServer::start(&[0]).await;
    server.set_down(true);
    let verifier = server.verifier(VerifierConfig::default());
    let token = key(0).sign(&claims_for(user()));
    let (status, challenge, body) =
        call(protected_app(verifier), Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(challenge, None);
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["type"], "SERVICE_UNAVAILABLE");
    server.stop().await;
}
