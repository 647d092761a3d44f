//! The published keys and tokens, checked by an independent JWT implementation
//! (jwt-simple) rather than by our own code.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jwt_simple::prelude::{RS256PublicKey, RSAPublicKeyLike as _, VerificationOptions};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::helpers::{AccountService, http, kid_of};

#[derive(Debug, Deserialize)]
struct Profile {
    email: String,
    name: String,
}

/// RFC 7638, computed here from the JWK members (not with the crate's code).
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

#[tokio::test]
async fn an_id_token_verifies_with_another_jwt_library_against_the_published_jwks() {
    let account = AccountService::start().await;
    let token = account.sign_up().await;

    let response = http()
        .get(account.jwks_url())
        .send()
        .await
        .expect("JWKS request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let jwks: Value = response.json().await.expect("JWKS body");

    let kid = kid_of(&token);
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("the token's kid {kid} is published in {jwks}"));
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    let n = jwk["n"].as_str().expect("n");
    let e = jwk["e"].as_str().expect("e");
    assert_eq!(thumbprint(n, e), kid, "kid is the RFC 7638 thumbprint");

    let key = RS256PublicKey::from_components(
        &B64.decode(n).expect("n is base64url"),
        &B64.decode(e).expect("e is base64url"),
    )
    .expect("an RSA public key")
    .with_key_id(&kid);
    // jwt-simple's strict JWK import accepts the published key as it is.
    RS256PublicKey::from_jwk(&jwk.to_string()).expect("a strictly valid RS256 JWK");

    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from(["account".to_owned()])),
        allowed_audiences: Some(HashSet::from(["domain-services".to_owned()])),
        required_key_id: Some(kid.clone()),
        time_tolerance: Some(jwt_simple::prelude::Duration::from_secs(5)),
        ..VerificationOptions::default()
    };
    let claims = key
        .verify_token::<Profile>(&token, Some(options))
        .expect("jwt-simple verifies the ID token");
    let sub = claims.subject.expect("sub");
    uuid::Uuid::parse_str(&sub).expect("sub is a UUID");
    assert!(claims.custom.email.starts_with("user-"));
    assert_eq!(claims.custom.name, "");
    assert!(claims.jwt_id.is_some(), "jti");
    let (iat, exp) = (
        claims.issued_at.expect("iat").as_secs(),
        claims.expires_at.expect("exp").as_secs(),
    );
    assert_eq!(exp - iat, 900, "the default ID token lifetime");

    // The same library refuses a token with one payload byte changed.
    let mut tampered = token.clone().into_bytes();
    let at = token.find('.').unwrap() + 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(key.verify_token::<Profile>(&tampered, None).is_err());
}
