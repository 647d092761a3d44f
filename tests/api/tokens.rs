//! Refresh-token rotation and ID-token verification as clients see them.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, Tokens, assert_error, claims, header, private_key_pem, public_key_pem,
    spawn_app, unique_email,
};

async fn twenty_concurrent_refreshes_of_one_token_rotate_once_and_share_the_successor(
    backend: Backend,
) {
    let app = spawn_app!(backend);
    let (uid, tokens) = app.signup(&unique_email()).await;
    let responses =
        futures::future::join_all((0..20).map(|_| app.refresh(&tokens.refresh_token))).await;
    let mut winners = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        winners.push(Tokens::from_body(&response.json().await.unwrap()));
    }
    assert!(
        winners.iter().all(|pair| *pair == winners[0]),
        "one rotation: every concurrent refresh gets its successor"
    );
    let jti = claims(&winners[0].refresh_token)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.refresh_keys(uid).await,
        vec![format!("{uid}:{jti}")],
        "one live entry"
    );
    app.signout(&winners[0].id_token).await;
}

async fn without_a_grace_window_twenty_concurrent_refreshes_have_one_winner_and_end_the_session(
    backend: Backend,
) {
    // REFRESH_REUSE_GRACE=0: no replay. Of twenty refreshes of one token the
    // first rotates, the next is reuse (the session, the winner's new token
    // included, ends) and the rest find no session.
    let app = spawn_app!(backend, &[("REFRESH_REUSE_GRACE", "0")]);
    let (uid, tokens) = app.signup(&unique_email()).await;
    let responses =
        futures::future::join_all((0..20).map(|_| app.refresh(&tokens.refresh_token))).await;
    let mut winners = Vec::new();
    let (mut reused, mut refused) = (0, 0);
    for response in responses {
        match response.status().as_u16() {
            200 => winners.push(Tokens::from_body(&response.json().await.unwrap())),
            401 => {
                let body: Value = response.json().await.unwrap();
                match body["error"]["type"].as_str() {
                    Some("REFRESH_TOKEN_REUSED") => reused += 1,
                    Some("AUTHORIZATION") => refused += 1,
                    _ => panic!("unexpected 401 {body}"),
                }
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((winners.len(), reused, refused), (1, 1, 18));
    assert_error(
        app.refresh(&winners[0].refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert!(
        app.refresh_keys(uid).await.is_empty(),
        "nothing whitelisted"
    );
    assert!(app.sessions(&winners[0].id_token).await.is_empty());
}

async fn a_refresh_token_whose_entry_is_gone_is_refused_though_it_verifies(backend: Backend) {
    let app = spawn_app!(backend);
    let (uid, tokens) = app.signup(&unique_email()).await;
    let key = app.refresh_keys(uid).await.remove(0);
    app.delete_refresh_key(&key).await;
    let body = assert_error(
        app.refresh(&tokens.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refresh token")
    );
    assert!(
        app.refresh_keys(uid).await.is_empty(),
        "nothing whitelisted by a refused refresh"
    );
    assert!(
        app.sessions(&tokens.id_token).await.is_empty(),
        "its session ended"
    );
}

async fn malformed_or_foreign_refresh_tokens_are_unauthorized_and_missing_ones_bad_requests(
    backend: Backend,
) {
    let app = spawn_app!(backend);
    let (_, tokens) = app.signup(&unique_email()).await;
    // An ID token is not a refresh token.
    assert_error(app.refresh(&tokens.id_token).await, 401, "AUTHORIZATION").await;
    assert_error(app.refresh("not-a-jwt").await, 401, "AUTHORIZATION").await;
    // Same claims, signed with another secret.
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(&tokens.refresh_token),
        &EncodingKey::from_secret(b"another secret, long enough to be plausible"),
    )
    .unwrap();
    assert_error(app.refresh(&forged).await, 401, "AUTHORIZATION").await;
    let body = assert_error(
        app.post_json("/tokens", &json!({})).await,
        400,
        "BAD_REQUEST",
    )
    .await;
    assert_eq!(body["error"]["invalidArgs"][0]["field"], "refreshToken");
    app.signout(&tokens.id_token).await;
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn valid_claims(sub: &str) -> Value {
    json!({
        "sub": sub, "iss": "account", "aud": "domain-services",
        "iat": now(), "exp": now() + 600, "jti": uuid::Uuid::new_v4(),
        "email": "x@example.com", "name": ""
    })
}

/// Signs with the service's own key, with the `kid` of its tokens.
fn rs256(claims: &Value, kid: &str) -> String {
    let key = EncodingKey::from_rsa_pem(&private_key_pem()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

async fn assert_me_unauthorized(app: &TestApp, token: &str, why: &str) {
    let response = app.me(token).await;
    assert_eq!(response.status(), 401, "{why}");
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#,
        "{why}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "AUTHORIZATION", "{why}");
}

async fn forged_tampered_expired_and_misissued_id_tokens_are_refused(backend: Backend) {
    let app = spawn_app!(backend);
    let (uid, tokens) = app.signup(&unique_email()).await;
    let sub = uid.to_string();
    let kid = header(&tokens.id_token)["kid"].as_str().unwrap().to_owned();

    // Our own key with valid claims is accepted: the forgeries below differ in one way each.
    assert_eq!(
        app.me(&rs256(&valid_claims(&sub), &kid)).await.status(),
        200
    );
    // Without a kid, the key is unknown.
    let key = EncodingKey::from_rsa_pem(&private_key_pem()).unwrap();
    let no_kid =
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &valid_claims(&sub), &key).unwrap();
    assert_me_unauthorized(&app, &no_kid, "no kid").await;

    // Tampered: the payload swapped for another user's, the signature kept.
    let mut parts: Vec<String> = tokens.id_token.split('.').map(str::to_owned).collect();
    let mut payload = claims(&tokens.id_token);
    payload["sub"] = json!(uuid::Uuid::new_v4());
    parts[1] = B64.encode(serde_json::to_vec(&payload).unwrap());
    assert_me_unauthorized(&app, &parts.join("."), "tampered").await;

    // Expired beyond the 5 s leeway.
    let mut expired = valid_claims(&sub);
    expired["iat"] = json!(now() - 1000);
    expired["exp"] = json!(now() - 30);
    assert_me_unauthorized(&app, &rs256(&expired, &kid), "expired").await;

    // alg: none with no signature.
    let none_header = B64.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
    let none_payload = B64.encode(serde_json::to_vec(&valid_claims(&sub)).unwrap());
    assert_me_unauthorized(&app, &format!("{none_header}.{none_payload}."), "alg none").await;

    // HS256 signed with the public key as the HMAC secret (algorithm confusion).
    let confused = jsonwebtoken::encode(
        &Header {
            kid: Some(kid.clone()),
            ..Header::new(Algorithm::HS256)
        },
        &valid_claims(&sub),
        &EncodingKey::from_secret(&public_key_pem()),
    )
    .unwrap();
    assert_me_unauthorized(&app, &confused, "HS256 with the public key").await;

    // Wrong issuer, wrong audience, and each required claim missing.
    let mut other_issuer = valid_claims(&sub);
    other_issuer["iss"] = json!("someone-else");
    assert_me_unauthorized(&app, &rs256(&other_issuer, &kid), "other issuer").await;
    let mut other_audience = valid_claims(&sub);
    other_audience["aud"] = json!("someone-else");
    assert_me_unauthorized(&app, &rs256(&other_audience, &kid), "other audience").await;
    for claim in ["exp", "iss", "aud", "sub"] {
        let mut missing = valid_claims(&sub);
        missing.as_object_mut().unwrap().remove(claim);
        assert_me_unauthorized(&app, &rs256(&missing, &kid), claim).await;
    }

    // The refresh token is not an ID token.
    assert_me_unauthorized(&app, &tokens.refresh_token, "refresh token as bearer").await;
    app.signout(&tokens.id_token).await;
}

async fn protected_routes_without_a_bearer_token_answer_401_with_www_authenticate(
    backend: Backend,
) {
    let app = spawn_app!(backend);
    for (method, path) in [
        ("GET", "/me"),
        ("POST", "/signout"),
        ("PUT", "/details"),
        ("PUT", "/password"),
        ("GET", "/sessions"),
        ("DELETE", "/sessions/00000000-0000-0000-0000-000000000000"),
    ] {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .json(&json!({"email": "a@example.com"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer",
            "{method} {path}"
        );
        assert_error(response, 401, "AUTHORIZATION").await;
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .header("Authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "AUTHORIZATION").await;
    }
}

/// Every ID token says when and how its session's sign-in happened
/// (`auth_time`, `acr`, `amr`), and a refresh keeps all three.
async fn id_tokens_carry_the_sign_in_s_time_and_assurance_across_refreshes(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let before = crate::helpers::unix_now();
    let (_, signup) = app.signup(&email).await;
    let signin = app.signin(&email).await;
    let after = crate::helpers::unix_now();
    for tokens in [&signup, &signin] {
        let id = claims(&tokens.id_token);
        let auth_time = id["auth_time"].as_u64().expect("auth_time");
        assert!((before..=after).contains(&auth_time), "{id}");
        assert_eq!(id["acr"], "aal1", "{id}");
        assert_eq!(id["amr"], json!(["pwd"]), "{id}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let refreshed = app.refreshed(&signin.refresh_token).await;
    let (first, next) = (claims(&signin.id_token), claims(&refreshed.id_token));
    assert!(next["iat"].as_u64() > first["iat"].as_u64(), "a new token");
    for claim in ["auth_time", "acr", "amr", "sid"] {
        assert_eq!(next[claim], first[claim], "{claim} kept by the refresh");
    }
    app.signout(&refreshed.id_token).await;
}

crate::on_every_backend!(
    id_tokens_carry_the_sign_in_s_time_and_assurance_across_refreshes,
    twenty_concurrent_refreshes_of_one_token_rotate_once_and_share_the_successor,
    without_a_grace_window_twenty_concurrent_refreshes_have_one_winner_and_end_the_session,
    a_refresh_token_whose_entry_is_gone_is_refused_though_it_verifies,
    malformed_or_foreign_refresh_tokens_are_unauthorized_and_missing_ones_bad_requests,
    forged_tampered_expired_and_misissued_id_tokens_are_refused,
    protected_routes_without_a_bearer_token_answer_401_with_www_authenticate
);

/// PostgreSQL + Redis only: it writes the sign-out marker by hand.
#[tokio::test]
async fn a_refresh_during_a_signout_sweep_is_refused_so_the_sweep_misses_no_key() {
    let app = spawn_app!(Backend::Real);
    let (uid, tokens) = app.signup(&unique_email()).await;
    let mut redis = app.redis().unwrap();
    let marker = format!("signout:{uid}");
    redis::cmd("SET")
        .arg(&marker)
        .arg("1")
        .arg("EX")
        .arg(30)
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    assert_error(
        app.refresh(&tokens.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert_eq!(app.refresh_keys(uid).await.len(), 1, "no new key written");
    redis::cmd("DEL")
        .arg(&marker)
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    // Sign-out removes the keys and its own marker.
    assert_eq!(app.signout(&tokens.id_token).await.status(), 200);
    assert!(app.user_keys(uid).await.is_empty());
    let exists: bool = redis::cmd("EXISTS")
        .arg(&marker)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!exists, "marker removed after the sweep");
}
