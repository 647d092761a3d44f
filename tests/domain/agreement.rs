//! The account service and a domain service apply the one ID-token validator:
//! the same forged tokens, signed with the service's own private key, get the
//! same verdict from `GET /api/account/me` and from the todo service.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{AccountService, TodoService, claims_of, http, kid_of, now, unsigned};

/// One forged variant of a valid token, and whether it must pass.
struct Case {
    what: &'static str,
    token: String,
    accepted: bool,
}

fn case(what: &'static str, token: String, accepted: bool) -> Case {
    Case {
        what,
        token,
        accepted,
    }
}

/// Tokens derived from `valid` (an ID token the service issued), each signed
/// with the service's private key unless the case is about the signature.
fn cases(valid: &str, private_pem: &[u8], public_pem: &[u8]) -> Vec<Case> {
    let kid = kid_of(valid);
    let claims = claims_of(valid);
    let key = EncodingKey::from_rsa_pem(private_pem).expect("RSA private key");
    let header = || {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.clone());
        header
    };
    let sign =
        |header: Header, claims: &Value| jsonwebtoken::encode(&header, claims, &key).expect("sign");
    // Exactly this header JSON, signed RS256 (jsonwebtoken's `Header` cannot
    // say `"crit": null`).
    let sign_raw = |header: Value, claims: &Value| {
        let message = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256).expect("sign");
        format!("{message}.{signature}")
    };
    let with = |name: &str, value: Value| {
        let mut claims = claims.clone();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value;
        }
        sign(header(), &claims)
    };
    let with_header = |edit: &dyn Fn(&mut Header)| {
        let mut h = header();
        edit(&mut h);
        sign(h, &claims)
    };
    let iat = claims["iat"].as_u64().expect("iat");
    let now = now();
    let mut cases = vec![
        case("as issued, re-signed", sign(header(), &claims), true),
        // Claims.
        case("nbf an hour ahead", with("nbf", json!(now + 3600)), false),
        case("nbf in the past", with("nbf", json!(now - 10)), true),
        case(
            "aud an array containing the audience",
            with("aud", json!(["billing", "domain-services"])),
            true,
        ),
        case(
            "aud an array without the audience",
            with("aud", json!(["billing", "reports"])),
            false,
        ),
        case("another audience", with("aud", json!("billing")), false),
        case("another issuer", with("iss", json!("evil")), false),
        case("sub not a UUID", with("sub", json!("admin")), false),
        case("expired", with("exp", json!(now - 60)), false),
        case(
            "iat 2 s ahead (within the leeway)",
            with("iat", json!(now + 2)),
            true,
        ),
        case(
            "iat a day in the future",
            {
                let mut c = claims.clone();
                c["iat"] = json!(now + 86_400);
                c["exp"] = json!(now + 86_400 + 600);
                sign(header(), &c)
            },
            false,
        ),
        case("exp = 2^63", with("exp", json!(1u64 << 63)), false),
        case(
            "a lifetime one second over ID_TOKEN_EXP",
            with("exp", json!(iat + 901)),
            false,
        ),
        // Size.
        case(
            "a 9 KB token",
            with("name", json!("x".repeat(6_300))),
            false,
        ),
        case(
            "a token just under 8 KiB",
            with("name", json!("x".repeat(5_400))),
            true,
        ),
        // Header.
        case(
            "an unknown crit header",
            with_header(&|h| h.crit = Some(vec!["urn:example:unknown".into()])),
            false,
        ),
        case(
            "crit: null",
            sign_raw(
                json!({"alg": "RS256", "typ": "JWT", "kid": kid, "crit": null}),
                &claims,
            ),
            false,
        ),
        case(
            "the same header without crit, signed the same way",
            sign_raw(json!({"alg": "RS256", "typ": "JWT", "kid": kid}), &claims),
            true,
        ),
        case(
            "typ at+jwt (a client access token)",
            with_header(&|h| h.typ = Some("at+jwt".into())),
            false,
        ),
        case("no typ", with_header(&|h| h.typ = None), false),
        case(
            "typ jwt in lower case",
            with_header(&|h| h.typ = Some("jwt".into())),
            true,
        ),
        case("no kid", with_header(&|h| h.kid = None), false),
        case(
            "an unknown kid",
            with_header(&|h| h.kid = Some("not-a-published-key".into())),
            false,
        ),
        // Signature.
        case("alg none", unsigned(&kid, &claims), false),
        case(
            "HS256 keyed with the public key's PEM",
            {
                let mut h = Header::new(Algorithm::HS256);
                h.kid = Some(kid.clone());
                jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(public_pem))
                    .expect("sign")
            },
            false,
        ),
    ];
    for (what, accepted) in [
        ("missing jti", true),
        ("missing email", true),
        ("missing name", true),
        ("missing auth_time", true),
        ("missing acr", true),
        ("missing amr", true),
        ("missing iat", false),
        ("missing exp", false),
        ("missing iss", false),
        ("missing aud", false),
        ("missing sub", false),
    ] {
        let claim = what.trim_start_matches("missing ");
        cases.push(case(what, with(claim, Value::Null), accepted));
    }
    for (what, claim, value) in [
        ("acr a number", "acr", json!(2)),
        ("amr a string", "amr", json!("pwd")),
        ("auth_time a string", "auth_time", json!("yesterday")),
    ] {
        cases.push(case(what, with(claim, value), false));
    }
    cases
}

async fn status_of(url: String, token: &str) -> StatusCode {
    http()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
}

#[tokio::test]
async fn me_and_the_todo_service_give_the_same_verdict_on_every_forged_token() {
    let account = AccountService::start().await;
    let valid = account.sign_up().await;
    let todo = TodoService::start(&account.jwks_url()).await;

    let cases = cases(&valid, &account.private_pem(), &account.public_pem());
    let size = |what: &str| cases.iter().find(|c| c.what == what).unwrap().token.len();
    assert!(size("a token just under 8 KiB") <= 8 * 1024);
    assert!((8 * 1024 + 1..10 * 1024).contains(&size("a 9 KB token")));

    let mut disagreements = Vec::new();
    for case in cases {
        let me = status_of(format!("{}/api/account/me", account.base), &case.token).await;
        let todos = status_of(format!("{}/api/todos", todo.base), &case.token).await;
        let expected = if case.accepted {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        if me != expected || todos != expected {
            disagreements.push(format!(
                "{}: /me {me}, todo {todos}, expected {expected}",
                case.what
            ));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}
