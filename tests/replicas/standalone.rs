//! Two replicas on one PostgreSQL database and one Redis server
//! (`TEST_REDIS_URL`).

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{PASSWORD, Replicas, http, me, run_to_exit, unique_email};
use crate::scenarios;

/// `Replicas::standalone(..)`, or return from the test (skipped).
macro_rules! replicas {
    ($test:expr, $vars:expr) => {
        match Replicas::standalone($test, $vars).await {
            Some(replicas) => replicas,
            None => return,
        }
    };
}

#[tokio::test]
async fn lifecycle_across_replicas() {
    let r = replicas!("lifecycle_across_replicas", &[]);
    scenarios::lifecycle_across_replicas(&r).await;
}

#[tokio::test]
async fn concurrent_rotation_across_replicas() {
    let r = replicas!("concurrent_rotation_across_replicas", &[]);
    scenarios::concurrent_rotation_across_replicas(&r).await;
}

#[tokio::test]
async fn profile_changes_reach_every_replica() {
    let r = replicas!("profile_changes_reach_every_replica", &[]);
    scenarios::profile_changes_reach_every_replica(&r).await;
}

#[tokio::test]
async fn a_deletion_reaches_every_replica() {
    let r = replicas!("a_deletion_reaches_every_replica", &[]);
    scenarios::a_deletion_reaches_every_replica(&r).await;
}

/// Hex SHA-256: how counter keys name an email.
fn sha256_hex(text: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An IPv4 source of this test's own (198.18.0.0/15, the benchmarking range).
fn unique_source() -> String {
    let r = Uuid::new_v4().as_u128();
    format!(
        "198.{}.{}.{}",
        18 + (r & 1) as u8,
        (r >> 8) as u8,
        ((r >> 16) as u8).clamp(1, 254)
    )
}

const SIGNIN_LIMIT: usize = 4;

/// Failed sign-ins from one source for one account, alternating between A
/// and B, reach the limit at its configured count in total: the next one is
/// 429 on either replica, the right password included.
#[tokio::test]
async fn limits_are_shared_between_replicas() {
    let limit = SIGNIN_LIMIT.to_string();
    let r = replicas!(
        "limits_are_shared_between_replicas",
        &[
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
            ("RATE_LIMIT_WINDOW", "60"),
            ("SIGNIN_RATE_LIMIT", &limit),
        ]
    );
    let (source, another) = (unique_source(), unique_source());
    let email = unique_email();
    let digest = sha256_hex(&email);
    for key in [
        format!("ratelimit:signin:email-ip:{digest}:{source}"),
        format!("ratelimit:signin:ip:{source}"),
        format!("ratelimit:signin:email:{digest}"),
        format!("ratelimit:signup:ip:{source}"),
        format!("ratelimit:signin:email-ip:{digest}:{another}"),
        format!("ratelimit:signin:ip:{another}"),
    ] {
        r.track_key(key);
    }
    let sign_in = |base: &str, password: &str| {
        http()
            .post(format!("{base}/api/account/signin"))
            .header("x-forwarded-for", &source)
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    let response = http()
        .post(format!("{}/api/account/signup", r.a))
        .header("x-forwarded-for", &source)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    r.track(crate::helpers::Tokens::from_body(&body).uid());

    for i in 0..SIGNIN_LIMIT {
        let base = if i % 2 == 0 { &r.a } else { &r.b };
        let response = sign_in(base, "not the password").await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    for (base, password) in [(&r.a, "not the password"), (&r.b, PASSWORD)] {
        let response = sign_in(base, password).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "past the shared limit on {base}"
        );
        assert!(response.headers().contains_key("retry-after"));
    }
    // Another source is not limited: the counter is per email and source.
    let response = http()
        .post(format!("{}/api/account/signin", r.b))
        .header("x-forwarded-for", &another)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "another source");
}

/// Both replicas publish the same JWKS and accept each other's ID tokens,
/// and neither writes a key of its own; a replica whose `PRIV_KEY_FILE` is
/// missing (or whose refresh secret is) refuses to start, naming the
/// variable, and generates nothing.
#[tokio::test]
async fn keys_come_from_configuration_never_per_replica() {
    let r = replicas!("keys_come_from_configuration_never_per_replica", &[]);
    let jwks = |base: String| async move {
        let response = http()
            .get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()
    };
    let (a, b) = (jwks(r.a.clone()).await, jwks(r.b.clone()).await);
    assert_eq!(a, b, "one key set");
    assert_eq!(a["keys"].as_array().map(Vec::len), Some(1), "{a}");

    let tokens = r.sign_up(&r.a, &unique_email()).await;
    let header = crate::helpers::jwt_header(&tokens.id_token);
    assert_eq!(
        header["kid"], a["keys"][0]["kid"],
        "signed with the shared key"
    );
    assert_eq!(me(&r.b, &tokens.id_token).await.status(), StatusCode::OK);
    assert_eq!(
        crate::helpers::refresh(&r.b, &tokens.refresh_token)
            .await
            .status(),
        StatusCode::OK,
        "the refresh secret is shared too"
    );
    for dir in &r.dirs {
        let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(written.is_empty(), "a replica wrote {written:?}");
    }

    // A third replica whose private key file is missing does not start.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("keys/private.pem");
    let mut env = r.env().to_vec();
    env.retain(|(name, _)| *name != "PRIV_KEY_FILE");
    env.push(("PRIV_KEY_FILE", missing.display().to_string()));
    let (started, output) = run_to_exit(dir.path(), &env);
    assert!(!started, "it must not start:\n{output}");
    assert!(
        output.contains("PRIV_KEY_FILE"),
        "names the variable:\n{output}"
    );
    assert!(!missing.exists(), "no key generated:\n{output}");
    assert!(!output.contains("account service listening"), "{output}");

    // Nor does one without a refresh secret.
    let mut env = r.env().to_vec();
    env.retain(|(name, _)| *name != "REFRESH_SECRET");
    let (started, output) = run_to_exit(dir.path(), &env);
    assert!(!started, "it must not start:\n{output}");
    assert!(
        output.contains("REFRESH_SECRET"),
        "names the variable:\n{output}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}
