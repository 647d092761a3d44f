//! What holds across replicas whatever Redis they share (one server or a
//! cluster): each scenario takes two running replicas.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Replicas, Tokens, http, me, refresh, unique_email};

/// How many refreshes of one token race each other, split over A and B.
pub const RACING_REFRESHES: usize = 20;

async fn tokens_of(response: reqwest::Response, what: &str) -> Tokens {
    assert_eq!(response.status(), StatusCode::OK, "{what}");
    Tokens::from_body(&response.json().await.expect("JSON body"))
}

async fn error_type(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("JSON error body");
    (
        status,
        body["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// A pair minted by A is accepted and rotates on B, B's pair rotates on A,
/// each sees the other's sessions, and a sign-out everywhere on A is seen by
/// B at once (its next refresh is 401, nothing of the user is left in Redis).
pub async fn lifecycle_across_replicas(r: &Replicas) {
    let email = unique_email();
    let first = r.sign_up(&r.a, &email).await;
    let uid = first.uid();

    let response = me(&r.b, &first.id_token).await;
    assert_eq!(response.status(), StatusCode::OK, "A's ID token on B's /me");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["uid"], uid.to_string());
    assert_eq!(body["user"]["email"], email);

    let second = tokens_of(refresh(&r.b, &first.refresh_token).await, "A's pair on B").await;
    assert_ne!(second, first);
    assert_eq!(
        r.redis.whitelisted_jtis(uid),
        [second.refresh_jti()],
        "B's rotation replaced A's entry"
    );
    let third = tokens_of(refresh(&r.a, &second.refresh_token).await, "B's pair on A").await;
    let sid = |t: &Tokens| crate::helpers::claims(&t.refresh_token)["sid"].clone();
    assert_eq!(sid(&third), sid(&first), "one session throughout");

    // A second session, signed in on B, is listed by A.
    let other = tokens_of(
        crate::helpers::post_json(
            format!("{}/api/account/signin", r.b),
            &serde_json::json!({"email": email, "password": crate::helpers::PASSWORD}),
        )
        .await,
        "sign-in on B",
    )
    .await;
    let sessions: Value = http()
        .get(format!("{}/api/account/sessions", r.a))
        .bearer_auth(&third.id_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = sessions["sessions"].as_array().expect("sessions");
    assert_eq!(listed.len(), 2, "both sessions on A: {sessions}");

    // Sign out everywhere on A: B refuses both sessions' refresh tokens at once.
    let response = http()
        .post(format!("{}/api/account/signout", r.a))
        .bearer_auth(&third.id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "sign-out on A");
    for token in [&third.refresh_token, &other.refresh_token] {
        assert_eq!(
            error_type(refresh(&r.b, token).await).await,
            (StatusCode::UNAUTHORIZED, "AUTHORIZATION".to_owned()),
            "B after the sign-out on A"
        );
    }
    assert_eq!(
        r.redis.user_keys(uid),
        Vec::<String>::new(),
        "no key of the user is left"
    );
}

/// Many refreshes of one token at once, half on A and half on B: one
/// rotation wins, every request gets 200 with that same successor (the grace
/// window, on either replica), and Redis whitelists the successor only.
pub async fn concurrent_rotation_across_replicas(r: &Replicas) {
    let first = r.sign_up(&r.a, &unique_email()).await;
    let uid = first.uid();

    let tasks: Vec<_> = (0..RACING_REFRESHES)
        .map(|i| {
            let base = if i % 2 == 0 { r.a.clone() } else { r.b.clone() };
            let token = first.refresh_token.clone();
            tokio::spawn(async move { refresh(&base, &token).await })
        })
        .collect();
    let mut pairs = Vec::new();
    for task in tasks {
        pairs.push(tokens_of(task.await.expect("request task"), "a racing refresh").await);
    }
    let successor = pairs[0].clone();
    assert_ne!(successor, first);
    assert!(
        pairs.iter().all(|pair| *pair == successor),
        "every racing refresh got the one successor"
    );
    assert_eq!(
        r.redis.whitelisted_jtis(uid),
        [successor.refresh_jti()],
        "exactly the successor is whitelisted"
    );

    // Still within the window, the old token gets the same pair on either.
    for base in [&r.a, &r.b] {
        let again = tokens_of(refresh(base, &first.refresh_token).await, "grace replay").await;
        assert_eq!(again, successor, "grace replay on {base}");
    }
    // And the successor itself rotates, on B.
    let next = tokens_of(refresh(&r.b, &successor.refresh_token).await, "successor").await;
    assert_eq!(r.redis.whitelisted_jtis(uid), [next.refresh_jti()]);
}
