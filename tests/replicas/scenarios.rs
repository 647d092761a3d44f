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

/// How late a replica may show a change of a profile taken by another one
/// (`docs/operations.md`: "What `/me` shows").
const PROFILE_FRESHNESS: std::time::Duration = std::time::Duration::from_secs(1);

/// What `/me` on `base` answers, and when the request was sent.
async fn me_at(base: &str, id_token: &str) -> (std::time::Instant, StatusCode, Value) {
    let sent = std::time::Instant::now();
    let response = me(base, id_token).await;
    let status = response.status();
    (sent, status, response.json().await.expect("JSON body"))
}

/// Polls `/me` on `base` from `changed` on: every answer is `old` or `new`,
/// `old` only to requests sent within the bound, and once `new` has been
/// seen never `old` again; until five requests sent past the bound have been
/// answered (`new`, then), however long a loaded machine takes for them.
async fn shows_within_the_bound(
    base: &str,
    id_token: &str,
    changed: std::time::Instant,
    is_old: impl Fn(StatusCode, &Value) -> bool,
    is_new: impl Fn(StatusCode, &Value) -> bool,
) {
    let give_up = changed + std::time::Duration::from_secs(60);
    let mut first_new = None;
    let mut answered_past_the_bound = 0;
    while answered_past_the_bound < 5 {
        assert!(
            std::time::Instant::now() < give_up,
            "{base}: {answered_past_the_bound} requests past the bound answered in a minute"
        );
        let (sent, status, body) = me_at(base, id_token).await;
        let late = sent.duration_since(changed);
        if is_new(status, &body) {
            first_new.get_or_insert(late);
        } else if is_old(status, &body) {
            assert!(
                first_new.is_none(),
                "{base} showed the old profile again at {late:?}, after the new one at {first_new:?}"
            );
            assert!(
                late <= PROFILE_FRESHNESS,
                "{base} still showed the old profile {late:?} after the change: {status} {body}"
            );
        } else {
            panic!("{base} answered neither the old nor the new profile: {status} {body}");
        }
        if late > PROFILE_FRESHNESS {
            answered_past_the_bound += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `PUT /details` on A: A's `/me` shows it at once, B's within a second
/// (B showed, and may hold, the profile from before).
pub async fn profile_changes_reach_every_replica(r: &Replicas) {
    let email = unique_email();
    let tokens = r.sign_up(&r.a, &email).await;
    for base in [&r.a, &r.b] {
        let (_, status, body) = me_at(base, &tokens.id_token).await;
        assert_eq!(status, StatusCode::OK, "{base}: {body}");
        assert_eq!(body["user"]["name"], "", "{base}: {body}");
    }

    let response = http()
        .put(format!("{}/api/account/details", r.a))
        .bearer_auth(&tokens.id_token)
        .json(&serde_json::json!({"name": "Ada Lovelace", "email": email, "website": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "PUT /details on A");
    let changed = std::time::Instant::now();

    let (_, status, body) = me_at(&r.a, &tokens.id_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"]["name"], "Ada Lovelace", "A at once: {body}");
    let named = |name: &'static str| {
        move |status: StatusCode, body: &Value| {
            status == StatusCode::OK && body["user"]["name"] == name
        }
    };
    shows_within_the_bound(
        &r.b,
        &tokens.id_token,
        changed,
        named(""),
        named("Ada Lovelace"),
    )
    .await;
    // And A kept showing it meanwhile.
    let (_, _, body) = me_at(&r.a, &tokens.id_token).await;
    assert_eq!(body["user"]["name"], "Ada Lovelace", "{body}");
}

/// `DELETE /me` on A: A's `/me` answers as for any missing user (404
/// `NOT_FOUND`) at once, B's within a second, with the still valid ID token.
pub async fn a_deletion_reaches_every_replica(r: &Replicas) {
    let email = unique_email();
    let tokens = r.sign_up(&r.a, &email).await;
    for base in [&r.a, &r.b] {
        let (_, status, body) = me_at(base, &tokens.id_token).await;
        assert_eq!(status, StatusCode::OK, "{base}: {body}");
    }

    let response = http()
        .delete(format!("{}/api/account/me", r.a))
        .bearer_auth(&tokens.id_token)
        .json(&serde_json::json!({"currentPassword": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "DELETE /me on A");
    let changed = std::time::Instant::now();

    let gone = |status: StatusCode, body: &Value| {
        status == StatusCode::NOT_FOUND && body["error"]["type"] == "NOT_FOUND"
    };
    let (_, status, body) = me_at(&r.a, &tokens.id_token).await;
    assert!(gone(status, &body), "A at once: {status} {body}");
    let shown = |status: StatusCode, body: &Value| {
        status == StatusCode::OK && body["user"]["email"] == email.as_str()
    };
    shows_within_the_bound(&r.b, &tokens.id_token, changed, shown, gone).await;
}
