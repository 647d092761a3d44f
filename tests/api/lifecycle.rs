//! The whole life of an account: sign-up, profile, refresh, sign-out.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Backend, PASSWORD, Tokens, assert_error, claims, header, spawn_app, unique_email,
};

async fn signup_me_refresh_signout_lifecycle(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (uid, tokens) = app.signup(&email.to_uppercase()).await;

    // Token claims as documented.
    let id = claims(&tokens.id_token);
    assert_eq!(header(&tokens.id_token)["alg"], "RS256");
    assert!(
        header(&tokens.id_token)["kid"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
    assert_eq!(id["email"], email, "stored lowercased");
    assert_eq!(id["iss"], "account");
    assert_eq!(id["aud"], "domain-services");
    assert_eq!(
        id["exp"].as_u64().unwrap() - id["iat"].as_u64().unwrap(),
        900
    );
    assert!(id["jti"].as_str().unwrap().parse::<Uuid>().is_ok());
    let refresh = claims(&tokens.refresh_token);
    assert_eq!(header(&tokens.refresh_token)["alg"], "HS256");
    assert_eq!(refresh["sub"], uid.to_string());
    let jti: Uuid = refresh["jti"].as_str().unwrap().parse().unwrap();
    assert_eq!(jti.get_version_num(), 4);
    assert_eq!(app.refresh_keys(uid).await, vec![format!("{uid}:{jti}")]);

    // /me
    let response = app.me(&tokens.id_token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"user": {
            "uid": uid, "email": email, "name": "", "imageUrl": "", "website": "",
            "emailVerified": false,
        }})
    );

    // Refresh rotates: a new pair; the old refresh token, presented again
    // within the grace window (a retried request), gets that same pair.
    let response = app.refresh(&tokens.refresh_token).await;
    assert_eq!(response.status(), 200);
    let rotated = Tokens::from_body(&response.json().await.unwrap());
    let new_jti = claims(&rotated.refresh_token)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_jti, jti.to_string());
    let key = format!("{uid}:{new_jti}");
    assert_eq!(
        app.refresh_keys(uid).await,
        vec![key.clone()],
        "old entry gone, new one there"
    );
    let ttl = app.ttl(&key).await;
    assert!((259_170..=259_200).contains(&ttl), "TTL {ttl}");
    assert_eq!(app.me(&rotated.id_token).await.status(), 200);
    let response = app.refresh(&tokens.refresh_token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(Tokens::from_body(&response.json().await.unwrap()), rotated);
    assert_eq!(
        app.refresh_keys(uid).await,
        vec![key.clone()],
        "nothing new"
    );

    // A second user signed in twice keeps both entries through the first user's sign-out.
    let other_email = unique_email();
    let (other, _) = app.signup(&other_email).await;
    let response = app
        .post_json(
            "/signin",
            &json!({"email": other_email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let other_keys = app.refresh_keys(other).await;
    assert_eq!(other_keys.len(), 2);

    // The first user signs in on a second device, then signs out everywhere.
    let response = app
        .post_json("/signin", &json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), 200);
    let device2 = Tokens::from_body(&response.json().await.unwrap());
    assert_eq!(app.refresh_keys(uid).await.len(), 2);

    let response = app.signout(&rotated.id_token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().is_some());
    assert!(
        app.user_keys(uid).await.is_empty(),
        "no <uid>:* key left (entries, session index, grace keys)"
    );
    assert_eq!(
        app.refresh_keys(other).await,
        other_keys,
        "other user's keys untouched"
    );

    // Every refresh token of the user is now refused.
    let refused = assert_error(
        app.refresh(&rotated.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refresh token")
    );
    assert_error(
        app.refresh(&tokens.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    assert_error(
        app.refresh(&device2.refresh_token).await,
        401,
        "AUTHORIZATION",
    )
    .await;
}

async fn signin_finds_the_account_in_any_letter_case(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (uid, _) = app.signup(&email).await;
    let response = app
        .post_json(
            "/signin",
            &json!({"email": email.to_uppercase(), "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let tokens = Tokens::from_body(&response.json().await.unwrap());
    assert_eq!(claims(&tokens.id_token)["sub"], uid.to_string());
    assert_eq!(
        app.refresh_keys(uid).await.len(),
        2,
        "sign-up and sign-in each whitelisted"
    );
    app.signout(&tokens.id_token).await;
}

async fn the_password_is_stored_as_an_argon2id_hash(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let hash = app.stored_password_hash(&email).await;
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
    app.signout(&tokens.id_token).await;
}

async fn duplicate_signup_is_a_conflict_in_any_letter_case(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let body = assert_error(
        app.signup_response(&email.to_uppercase(), PASSWORD).await,
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(body["error"]["message"], "email already registered");
    app.signout(&tokens.id_token).await;
}

async fn concurrent_signups_with_one_email_create_exactly_one_account(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let variants: Vec<String> = (0..8)
        .map(|i| {
            if i % 2 == 0 {
                email.clone()
            } else {
                email.to_uppercase()
            }
        })
        .collect();
    let responses =
        futures::future::join_all(variants.iter().map(|e| app.signup_response(e, PASSWORD))).await;
    let mut created = Vec::new();
    let mut conflicts = 0;
    let mut unexpected = Vec::new();
    for response in responses {
        match response.status().as_u16() {
            201 => {
                let tokens = Tokens::from_body(&response.json().await.unwrap());
                // Tracked at once, so its Redis keys go even if an assertion fails.
                app.track(
                    claims(&tokens.id_token)["sub"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap(),
                );
                created.push(tokens);
            }
            409 => conflicts += 1,
            other => unexpected.push(other),
        }
    }
    assert!(unexpected.is_empty(), "unexpected statuses {unexpected:?}");
    assert_eq!((created.len(), conflicts), (1, 7));
    assert_eq!(app.count_users_with_email(&email).await, 1);
    app.signout(&created[0].id_token).await;
}

async fn unknown_email_and_wrong_password_get_identical_401s(backend: Backend) {
    let app = spawn_app!(backend);
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let wrong = app
        .post_json(
            "/signin",
            &json!({"email": email, "password": "not the password"}),
        )
        .await;
    let unknown = app
        .post_json(
            "/signin",
            &json!({"email": unique_email(), "password": PASSWORD}),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    assert_eq!(
        wrong.headers()["www-authenticate"],
        unknown.headers()["www-authenticate"]
    );
    let wrong: Value = wrong.json().await.unwrap();
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"]["type"], "AUTHORIZATION");
    app.signout(&tokens.id_token).await;
}

crate::on_every_backend!(
    signup_me_refresh_signout_lifecycle,
    signin_finds_the_account_in_any_letter_case,
    the_password_is_stored_as_an_argon2id_hash,
    duplicate_signup_is_a_conflict_in_any_letter_case,
    concurrent_signups_with_one_email_create_exactly_one_account,
    unknown_email_and_wrong_password_get_identical_401s
);
