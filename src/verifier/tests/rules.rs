use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::super::test_support::{claims_for, key, now, static_verifier};
use super::super::*;
use super::{claims_with, refusal, user};
use crate::jwks::JwkSet;

// ---- static sources -------------------------------------------------------

#[tokio::test]
async fn a_valid_token_yields_its_user() {
    let sub = user();
    let token = key(0).sign(&claims_for(sub));
    let verified = static_verifier().verify(&token).await.unwrap();
    assert_eq!(verified.sub, sub);
    assert_eq!(verified.email, "ada@example.com");
    assert_eq!(verified.name, "Ada");
    assert!(verified.exp > now());
}

#[tokio::test]
async fn a_verifier_from_a_public_pem_knows_the_key_by_its_thumbprint() {
    let verifier =
        Verifier::from_public_pem(key(0).public_pem.as_bytes(), VerifierConfig::default()).unwrap();
    let token = key(0).sign(&claims_for(user()));
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn keys_without_a_kid_are_known_by_their_thumbprint() {
    let mut jwk = key(0).jwk.clone();
    jwk.kid = None;
    let verifier =
        Verifier::from_jwks(JwkSet { keys: vec![jwk] }, VerifierConfig::default()).unwrap();
    assert!(
        verifier
            .verify(&key(0).sign(&claims_for(user())))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_expired_token_is_refused_beyond_the_leeway_only() {
    let verifier = static_verifier();
    let expired = key(0).sign(&claims_with("exp", json!(now() - 10)));
    assert_eq!(refusal(&verifier, &expired).await, VerifyError::Expired);
    let within_leeway = key(0).sign(&claims_with("exp", json!(now() - 2)));
    assert!(verifier.verify(&within_leeway).await.is_ok());
}

#[tokio::test]
async fn a_token_of_another_issuer_is_refused() {
    let token = key(0).sign(&claims_with("iss", json!("evil")));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::Issuer
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let token = key(0).sign(&claims_with("aud", json!("billing")));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::Audience
    );
}

#[tokio::test]
async fn a_token_lacking_any_required_claim_is_refused() {
    for claim in ["exp", "iat", "iss", "aud", "sub"] {
        let token = key(0).sign(&claims_with(claim, Value::Null));
        assert_eq!(
            refusal(&static_verifier(), &token).await,
            VerifyError::MissingClaim(claim.into()),
            "without {claim}"
        );
    }
}

#[tokio::test]
async fn a_subject_that_is_not_a_uuid_is_refused() {
    let token = key(0).sign(&claims_with("sub", json!("admin")));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::Subject
    );
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let header = B64.encode(json!({"alg": "none", "typ": "JWT", "kid": key(0).kid}).to_string());
    let payload = B64.encode(claims_for(user()).to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert!(static_verifier().verify(&token).await.is_err());
    }
    assert_eq!(
        refusal(&static_verifier(), &format!("{header}.{payload}.")).await,
        VerifyError::Algorithm
    );
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    // The classic RS/HS confusion: the public key PEM used as an HMAC secret.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key(0).kid.clone());
    let secret = EncodingKey::from_secret(key(0).public_pem.as_bytes());
    let token = jsonwebtoken::encode(&header, &claims_for(user()), &secret).unwrap();
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::Algorithm
    );
}

#[tokio::test]
async fn a_token_with_a_tampered_payload_is_refused() {
    let token = key(0).sign(&claims_for(user()));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = B64.encode(claims_for(user()).to_string());
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    assert_eq!(
        refusal(&static_verifier(), &tampered).await,
        VerifyError::Signature
    );
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_a_known_kid_is_refused() {
    let token = key(1).sign_with_kid(Some(&key(0).kid), &claims_for(user()));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::Signature
    );
}

#[tokio::test]
async fn an_unknown_kid_is_refused_by_a_static_source() {
    let token = key(1).sign(&claims_for(user()));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::UnknownKey
    );
}

#[tokio::test]
async fn a_token_without_a_kid_is_refused() {
    let token = key(0).sign_with_kid(None, &claims_for(user()));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::MissingKeyId
    );
}

#[tokio::test]
async fn garbage_is_refused_as_malformed() {
    let verifier = static_verifier();
    for token in ["", "abc", "a.b.c", "a.b.c.d", "!!.??.**"] {
        assert_eq!(
            refusal(&verifier, token).await,
            VerifyError::Malformed,
            "{token:.20}"
        );
    }
}

// ---- the rules the account service applies too ------------------------------

/// A token signed by `key(0)` under a header built from the standard one.
fn sign_with_header(edit: impl FnOnce(&mut Header), claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key(0).kid.clone());
    edit(&mut header);
    key(0).sign_with_header(header, claims)
}

#[tokio::test]
async fn a_token_over_8_kib_is_refused_before_any_parsing_even_when_validly_signed() {
    let mut claims = claims_for(user());
    claims["name"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let token = key(0).sign(&claims);
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::TooLarge
    );
    let garbage = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(
        refusal(&static_verifier(), &garbage).await,
        VerifyError::TooLarge
    );
    // Just under the limit is fine.
    claims["name"] = json!("x".repeat(MAX_TOKEN_BYTES / 2));
    assert!(
        static_verifier()
            .verify(&key(0).sign(&claims))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_header_type_must_be_jwt_so_access_tokens_never_pass_as_id_tokens() {
    for typ in [Some("at+jwt"), Some("JWS"), None] {
        let token = sign_with_header(|h| h.typ = typ.map(str::to_owned), &claims_for(user()));
        assert_eq!(
            refusal(&static_verifier(), &token).await,
            VerifyError::TokenType,
            "typ {typ:?}"
        );
    }
    let token = sign_with_header(|h| h.typ = Some("jwt".into()), &claims_for(user()));
    assert!(static_verifier().verify(&token).await.is_ok(), "any case");
}

#[tokio::test]
async fn a_critical_header_extension_is_refused() {
    let token = sign_with_header(|h| h.crit = Some(vec!["exp".into()]), &claims_for(user()));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::CriticalHeader
    );
    // Present is enough, whatever the value.
    for crit in [json!(null), json!([])] {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": key(0).kid, "crit": crit});
        let token = key(0).sign_raw(&header, &claims_for(user()));
        assert_eq!(
            refusal(&static_verifier(), &token).await,
            VerifyError::CriticalHeader,
            "crit {crit}"
        );
    }
    // The same header without crit passes: the signing is right.
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": key(0).kid});
    let token = key(0).sign_raw(&header, &claims_for(user()));
    assert!(static_verifier().verify(&token).await.is_ok());
}

#[tokio::test]
async fn iat_is_required_and_may_not_be_in_the_future_beyond_the_leeway() {
    let token = key(0).sign(&claims_with("iat", Value::Null));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::MissingClaim("iat".into())
    );
    let mut claims = claims_for(user());
    claims["iat"] = json!(now() + 86_400);
    claims["exp"] = json!(now() + 86_400 + 900);
    assert_eq!(
        refusal(&static_verifier(), &key(0).sign(&claims)).await,
        VerifyError::IssuedInFuture
    );
    let mut claims = claims_for(user());
    claims["iat"] = json!(now() + 2);
    assert!(
        static_verifier()
            .verify(&key(0).sign(&claims))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_lifetime_longer_than_the_maximum_is_refused() {
    let now = now();
    for exp in [now + 901, now + 86_400, 1 << 63] {
        let mut claims = claims_for(user());
        claims["iat"] = json!(now);
        claims["exp"] = json!(exp);
        assert_eq!(
            refusal(&static_verifier(), &key(0).sign(&claims)).await,
            VerifyError::LifetimeTooLong,
            "exp {exp}"
        );
    }
    let mut claims = claims_for(user());
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 900);
    assert!(
        static_verifier()
            .verify(&key(0).sign(&claims))
            .await
            .is_ok()
    );
    // A verifier configured with a longer ID_TOKEN_EXP takes longer lifetimes.
    let mut config = VerifierConfig::default();
    config.rules.max_lifetime = Duration::from_secs(3600);
    let verifier = Verifier::from_jwks(key(0).jwks(), config).unwrap();
    claims["exp"] = json!(now + 3600);
    assert!(verifier.verify(&key(0).sign(&claims)).await.is_ok());
}

#[tokio::test]
async fn nbf_is_honoured_when_present() {
    let token = key(0).sign(&claims_with("nbf", json!(now() + 3600)));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::NotYetValid
    );
    let nbf = now() - 1;
    let token = key(0).sign(&claims_with("nbf", json!(nbf)));
    let claims = static_verifier().verify(&token).await.unwrap();
    assert_eq!(claims.nbf, Some(nbf));
}

#[tokio::test]
async fn aud_may_be_an_array_that_contains_the_audience() {
    let token = key(0).sign(&claims_with("aud", json!(["billing", "domain-services"])));
    let claims = static_verifier().verify(&token).await.unwrap();
    assert!(claims.aud.contains("domain-services"));
    let token = key(0).sign(&claims_with("aud", json!(["billing", "reports"])));
    assert_eq!(
        refusal(&static_verifier(), &token).await,
        VerifyError::Audience
    );
}

#[tokio::test]
async fn jti_email_and_name_are_exposed_but_not_required() {
    let verified = static_verifier()
        .verify(&key(0).sign(&claims_for(user())))
        .await
        .unwrap();
    assert!(verified.jti.is_some());
    for claim in ["jti", "email", "name"] {
        let token = key(0).sign(&claims_with(claim, Value::Null));
        let claims = static_verifier().verify(&token).await.unwrap();
        match claim {
            "jti" => assert_eq!(claims.jti, None),
            "email" => assert_eq!(claims.email, ""),
            _ => assert_eq!(claims.name, ""),
        }
    }
}

#[tokio::test]
async fn email_verified_is_exposed_and_false_when_absent() {
    let older = key(0).sign(&claims_for(user()));
    assert!(
        !static_verifier()
            .verify(&older)
            .await
            .unwrap()
            .email_verified,
        "a token from before verification still verifies, unverified"
    );
    for verified in [true, false] {
        let token = key(0).sign(&claims_with("email_verified", Value::Bool(verified)));
        let claims = static_verifier().verify(&token).await.unwrap();
        assert_eq!(claims.email_verified, verified);
    }
}
