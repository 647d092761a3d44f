//! The account service and a domain service apply the one ID-token validator:
//! the same forged tokens, signed with the service's own private key, get the
//! same verdict from `GET /api/account/me` and from the todo service.

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

/// Tokens derived from `valid` (an ID token the service issued), each signed
/// with the service's private key unless the case is about the signature.
fn cases(valid: &str, private_pem: &[u8]) -> Vec<Case> {
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
    let with = |name: &str, value: Value| {
        let mut claims = claims.clone();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value;
        }
        sign(header(), &claims)
    };
    let now = now();
    let mut cases = vec![
        Case {
            what: "as issued, re-signed",
            token: sign(header(), &claims),
            accepted: true,
        },
        Case {
            what: "nbf an hour ahead",
            token: with("nbf", json!(now + 3600)),
            accepted: false,
        },
        Case {
            what: "nbf in the past",
            token: with("nbf", json!(now - 10)),
            accepted: true,
        },
        Case {
            what: "aud an array containing the audience",
            token: with("aud", json!(["billing", "domain-services"])),
            accepted: true,
        },
        Case {
            what: "aud an array without the audience",
            token: with("aud", json!(["billing", "reports"])),
            accepted: false,
        },
        Case {
            what: "another audience",
            token: with("aud", json!("billing")),
            accepted: false,
        },
        Case {
            what: "another issuer",
            token: with("iss", json!("evil")),
            accepted: false,
        },
        Case {
            what: "sub not a UUID",
            token: with("sub", json!("admin")),
            accepted: false,
        },
        Case {
            what: "expired",
            token: with("exp", json!(now - 60)),
            accepted: false,
        },
        Case {
            what: "iat a day in the future",
            token: {
                let mut c = claims.clone();
                c["iat"] = json!(now + 86_400);
                c["exp"] = json!(now + 86_400 + 600);
                sign(header(), &c)
            },
            accepted: false,
        },
        Case {
            what: "exp = 2^63",
            token: with("exp", json!(1u64 << 63)),
            accepted: false,
        },
        Case {
            what: "a lifetime one second over ID_TOKEN_EXP",
            token: {
                let mut c = claims.clone();
                c["exp"] = json!(c["iat"].as_u64().unwrap() + 901);
                sign(header(), &c)
            },
            accepted: false,
        },
        Case {
            what: "a 9 KB token",
            token: with("name", json!("x".repeat(9 * 1024))),
            accepted: false,
        },
        Case {
            what: "an unknown crit header",
            token: {
                let mut h = header();
                h.crit = Some(vec!["urn:example:unknown".into()]);
                sign(h, &claims)
            },
            accepted: false,
        },
        Case {
            what: "typ at+jwt (a client access token)",
            token: {
                let mut h = header();
                h.typ = Some("at+jwt".into());
                sign(h, &claims)
            },
            accepted: false,
        },
        Case {
            what: "no typ",
            token: {
                let mut h = header();
                h.typ = None;
                sign(h, &claims)
            },
            accepted: false,
        },
        Case {
            what: "no kid",
            token: {
                let mut h = header();
                h.kid = None;
                sign(h, &claims)
            },
            accepted: false,
        },
        Case {
            what: "an unknown kid",
            token: {
                let mut h = header();
                h.kid = Some("not-a-published-key".into());
                sign(h, &claims)
            },
            accepted: false,
        },
        Case {
            what: "alg none",
            token: unsigned(&kid, &claims),
            accepted: false,
        },
        Case {
            what: "HS256 keyed with the public key",
            token: {
                let mut h = Header::new(Algorithm::HS256);
                h.kid = Some(kid.clone());
                jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(b"public"))
                    .expect("sign")
            },
            accepted: false,
        },
    ];
    for claim in ["jti", "email", "name"] {
        cases.push(Case {
            what: claim,
            token: with(claim, Value::Null),
            accepted: true,
        });
    }
    for claim in ["iat", "exp", "iss", "aud", "sub"] {
        cases.push(Case {
            what: claim,
            token: with(claim, Value::Null),
            accepted: false,
        });
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

    let mut disagreements = Vec::new();
    for case in cases(&valid, &account.private_pem()) {
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
