//! Abuse resistance (issue 9): sign-in and sign-up limits, counted in the
//! token store per window, and the client address behind trusted proxies.
//!
//! Every app here trusts the test client's peer (`TRUSTED_PROXIES=127.0.0.1/32`)
//! and names its sources with `X-Forwarded-For`: each test picks sources and
//! emails of its own, so counters left in the shared Redis by other tests or
//! runs never meet its own (they expire with their window).

use std::net::Ipv6Addr;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Backend, PASSWORD, TestApp, Tokens, assert_error, claims, spawn_app, unique_email,
};

/// `RATE_LIMIT_WINDOW` of these apps, seconds.
const WINDOW: u64 = 60;
const WINDOW_VAR: (&str, &str) = ("RATE_LIMIT_WINDOW", "60");
const TRUST_LOCALHOST: (&str, &str) = ("TRUSTED_PROXIES", "127.0.0.1/32");
const WRONG: &str = "not the password";
const NEW_PASSWORD: &str = "a brand new passphrase";

/// A source of its own: an IPv6 address in a /64 (the unit a per-address
/// counter counts IPv6 clients by) no other test or run picks.
fn unique_ip() -> String {
    let r = Uuid::new_v4().as_u128();
    Ipv6Addr::new(0x2001, 0xdb8, r as u16, (r >> 16) as u16, 0, 0, 0, 1).to_string()
}

/// An IPv4 source (198.18.0.0/15, for benchmarks), random enough for a test.
fn unique_ipv4() -> String {
    let r = Uuid::new_v4().as_u128();
    format!(
        "198.{}.{}.{}",
        18 + (r & 1) as u8,
        (r >> 8) as u8,
        ((r >> 16) as u8).clamp(1, 254)
    )
}

/// The /64 network of an IPv6 address, as counter keys name it.
fn net64(ip: &str) -> String {
    let s = ip.parse::<Ipv6Addr>().expect("IPv6").segments();
    format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
}

/// Another address in the /64 of `ip`.
fn neighbour(ip: &str, last: u16) -> String {
    let s = ip.parse::<Ipv6Addr>().expect("IPv6").segments();
    Ipv6Addr::new(s[0], s[1], s[2], s[3], 0xabcd, 0, 0, last).to_string()
}

/// Hex SHA-256: how counter keys name an email (never in clear).
fn sha256_hex(text: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn signin_from(app: &TestApp, ip: &str, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/signin"))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("request")
}

/// A sign-in from `ip` that must succeed: its tokens.
async fn signed_in_from(app: &TestApp, ip: &str, email: &str, password: &str) -> Tokens {
    let response = signin_from(app, ip, email, password).await;
    assert_eq!(response.status(), 200, "sign-in of {email} from {ip}");
    Tokens::from_body(&response.json().await.unwrap())
}

/// A sign-up from `ip`; a created user is tracked (its keys removed at the end).
async fn signup_from(app: &TestApp, ip: &str, email: &str) -> u16 {
    let response = app
        .client
        .post(app.url("/signup"))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    if status == 201 {
        let body: Value = response.json().await.unwrap();
        let tokens = Tokens::from_body(&body);
        app.track(
            claims(&tokens.id_token)["sub"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
        );
    }
    status
}

async fn put_from(
    app: &TestApp,
    ip: &str,
    path: &str,
    id_token: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .put(app.url(path))
        .header("x-forwarded-for", ip)
        .bearer_auth(id_token)
        .json(body)
        .send()
        .await
        .expect("request")
}

/// Asserts a 429 in the error shape with a `Retry-After` of 1 to [`WINDOW`]
/// seconds; returns it.
async fn assert_limited(response: reqwest::Response) -> u64 {
    let retry_after = response
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("a Retry-After header on {}", response.status()))
        .to_str()
        .unwrap()
        .parse::<u64>()
        .expect("Retry-After in whole seconds");
    assert!(
        (1..=WINDOW).contains(&retry_after),
        "Retry-After {retry_after}, window {WINDOW}"
    );
    assert_error(response, 429, "TOO_MANY_REQUESTS").await;
    retry_after
}

async fn one_source_guessing_one_account_is_refused_after_signin_rate_limit_failures(
    backend: Backend,
) {
    let app = spawn_app!(
        backend,
        &[TRUST_LOCALHOST, WINDOW_VAR, ("SIGNIN_RATE_LIMIT", "3")]
    );
    let email = unique_email();
    app.signup(&email).await;
    let (attacker, other) = (unique_ip(), unique_ip());

    for _ in 0..3 {
        assert_error(
            signin_from(&app, &attacker, &email, WRONG).await,
            401,
            "AUTHORIZATION",
        )
        .await;
    }
    assert_limited(signin_from(&app, &attacker, &email, WRONG).await).await;
    // Refused before the password is looked at: the right one too.
    assert_limited(signin_from(&app, &attacker, &email, PASSWORD).await).await;

    // The owner, from elsewhere, is not affected; nor is another account
    // from the attacker's address.
    let tokens = signed_in_from(&app, &other, &email, PASSWORD).await;
    assert_error(
        signin_from(&app, &attacker, &unique_email(), WRONG).await,
        401,
        "AUTHORIZATION",
    )
    .await;
    app.signout(&tokens.id_token).await;
}

async fn one_source_spraying_many_accounts_is_refused_by_the_address_limit(backend: Backend) {
    let app = spawn_app!(
        backend,
        &[TRUST_LOCALHOST, WINDOW_VAR, ("SIGNIN_IP_RATE_LIMIT", "3")]
    );
    let (sprayer, other) = (unique_ip(), unique_ip());
    for _ in 0..3 {
        assert_error(
            signin_from(&app, &sprayer, &unique_email(), WRONG).await,
            401,
            "AUTHORIZATION",
        )
        .await;
    }
    assert_limited(signin_from(&app, &sprayer, &unique_email(), WRONG).await).await;
    assert_error(
        signin_from(&app, &other, &unique_email(), WRONG).await,
        401,
        "AUTHORIZATION",
    )
    .await;
}

async fn many_sources_guessing_one_account_are_refused_by_the_email_limit(backend: Backend) {
    let app = spawn_app!(
        backend,
        &[
            TRUST_LOCALHOST,
            WINDOW_VAR,
            ("SIGNIN_EMAIL_RATE_LIMIT", "3")
        ]
    );
    let (email, bystander) = (unique_email(), unique_email());
    app.signup(&email).await;
    app.signup(&bystander).await;
    for _ in 0..3 {
        assert_error(
            signin_from(&app, &unique_ip(), &email, WRONG).await,
            401,
            "AUTHORIZATION",
        )
        .await;
    }
    assert_limited(signin_from(&app, &unique_ip(), &email, WRONG).await).await;
    // The account is closed to every source for the window, whatever the
    // letter case of its email, until the window ends.
    assert_limited(signin_from(&app, &unique_ip(), &email.to_uppercase(), PASSWORD).await).await;
    // Other accounts are not.
    let tokens = signed_in_from(&app, &unique_ip(), &bystander, PASSWORD).await;
    app.signout(&tokens.id_token).await;
}

async fn a_successful_sign_in_gives_back_what_it_counted_for_its_source(backend: Backend) {
    let app = spawn_app!(
        backend,
        &[
            TRUST_LOCALHOST,
            WINDOW_VAR,
            ("SIGNIN_RATE_LIMIT", "3"),
            ("SIGNIN_IP_RATE_LIMIT", "4"),
        ]
    );
    let email = unique_email();
    app.signup(&email).await;

    // (email, address): fail, fail, succeed, fail is three failures, not yet
    // the limit: without the refund the fourth attempt would be refused.
    let ip = unique_ip();
    for _ in 0..2 {
        assert_eq!(signin_from(&app, &ip, &email, WRONG).await.status(), 401);
    }
    let tokens = signed_in_from(&app, &ip, &email, PASSWORD).await;
    app.signout(&tokens.id_token).await;
    assert_eq!(signin_from(&app, &ip, &email, WRONG).await.status(), 401);
    assert_limited(signin_from(&app, &ip, &email, WRONG).await).await;

    // The address: successes, however many, leave its budget of four failures whole.
    let ip = unique_ip();
    for _ in 0..5 {
        let tokens = signed_in_from(&app, &ip, &email, PASSWORD).await;
        app.signout(&tokens.id_token).await;
    }
    for _ in 0..4 {
        let response = signin_from(&app, &ip, &unique_email(), WRONG).await;
        assert_eq!(response.status(), 401);
    }
    assert_limited(signin_from(&app, &ip, &unique_email(), WRONG).await).await;
}

async fn sign_ups_are_limited_per_source(backend: Backend) {
    let app = spawn_app!(
        backend,
        &[TRUST_LOCALHOST, WINDOW_VAR, ("SIGNUP_RATE_LIMIT", "2")]
    );
    let (ip, other) = (unique_ipv4(), unique_ipv4());
    let taken = unique_email();
    assert_eq!(signup_from(&app, &ip, &taken).await, 201);
    // A refused sign-up is an attempt too.
    assert_eq!(signup_from(&app, &ip, &taken).await, 409);
    let response = app
        .client
        .post(app.url("/signup"))
        .header("x-forwarded-for", &ip)
        .json(&json!({"email": unique_email(), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_limited(response).await;
    assert_eq!(signup_from(&app, &other, &unique_email()).await, 201);
}

async fn a_wrong_current_password_counts_as_a_failed_sign_in(backend: Backend) {
    let app = spawn_app!(
        backend,
        &[TRUST_LOCALHOST, WINDOW_VAR, ("SIGNIN_RATE_LIMIT", "3")]
    );
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    let id = &tokens.id_token;
    let ip = unique_ip();
    let password = |current: &str| json!({"currentPassword": current, "newPassword": NEW_PASSWORD});
    let new_email = |current: &str| json!({"name": "", "email": unique_email(), "website": "", "currentPassword": current});

    // Two failures, on either endpoint; a success gives its count back.
    assert_error(
        put_from(&app, &ip, "/password", id, &password(WRONG)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_error(
        put_from(&app, &ip, "/details", id, &new_email(WRONG)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    let response = put_from(&app, &ip, "/password", id, &password(PASSWORD)).await;
    assert_eq!(response.status(), 204);
    // The third failure, then the limit.
    assert_error(
        put_from(&app, &ip, "/password", id, &password(WRONG)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_limited(put_from(&app, &ip, "/password", id, &password(NEW_PASSWORD)).await).await;
    assert_limited(put_from(&app, &ip, "/details", id, &new_email(NEW_PASSWORD)).await).await;
    // The same counters as a sign-in of that email from that address.
    assert_limited(signin_from(&app, &ip, &email, NEW_PASSWORD).await).await;

    // What needs no password is not limited; another source is not affected.
    let keep = json!({"name": "Ada", "email": email, "website": ""});
    assert_eq!(
        put_from(&app, &ip, "/details", id, &keep).await.status(),
        200
    );
    let other = signed_in_from(&app, &unique_ip(), &email, NEW_PASSWORD).await;
    app.signout(&other.id_token).await;
}

async fn each_counter_is_one_key_with_the_window_as_its_ttl_and_no_email_in_clear(
    backend: Backend,
) {
    let app = spawn_app!(backend, &[TRUST_LOCALHOST, WINDOW_VAR]);
    let email = unique_email();
    let ip = unique_ip();
    assert_eq!(signin_from(&app, &ip, &email, WRONG).await.status(), 401);
    let ipv4 = unique_ipv4();
    assert_eq!(signup_from(&app, &ipv4, &unique_email()).await, 201);

    let (net, hash) = (net64(&ip), sha256_hex(&email));
    for key in [
        format!("ratelimit:signin:ip:{net}"),
        format!("ratelimit:signin:email:{hash}"),
        format!("ratelimit:signin:email-ip:{hash}:{net}"),
        format!("ratelimit:signup:ip:{ipv4}"),
    ] {
        let ttl = app.ttl(&key).await;
        assert!(
            (1..=WINDOW as i64).contains(&ttl),
            "{key}: TTL {ttl}, window {WINDOW}"
        );
    }
    let local_part = email.split('@').next().unwrap();
    let keys = app.live_keys("ratelimit:").await;
    assert!(keys.len() >= 4, "{keys:?}");
    assert!(
        keys.iter().all(|key| !key.contains(local_part)),
        "an email in clear: {keys:?}"
    );
}

async fn addresses_of_one_ipv6_64_share_their_counters(backend: Backend) {
    let app = spawn_app!(
        backend,
        &[TRUST_LOCALHOST, WINDOW_VAR, ("SIGNIN_IP_RATE_LIMIT", "2")]
    );
    let ip = unique_ip();
    let next_door = neighbour(&ip, 2);
    assert_eq!(net64(&ip), net64(&next_door));
    assert_eq!(
        signin_from(&app, &ip, &unique_email(), WRONG)
            .await
            .status(),
        401
    );
    assert_eq!(
        signin_from(&app, &next_door, &unique_email(), WRONG)
            .await
            .status(),
        401
    );
    assert_limited(signin_from(&app, &neighbour(&ip, 3), &unique_email(), WRONG).await).await;
    assert_eq!(
        signin_from(&app, &unique_ip(), &unique_email(), WRONG)
            .await
            .status(),
        401
    );
}

async fn behind_a_trusted_proxy_the_forwarded_client_is_the_source_and_what_sessions_record(
    backend: Backend,
) {
    let app = spawn_app!(
        backend,
        &[("TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8"), WINDOW_VAR]
    );
    let email = unique_email();
    app.signup(&email).await;
    let client = unique_ipv4();

    // The right-most entry that is not a trusted proxy: what the client
    // wrote to the left of it (here a forged address) is not taken.
    let forwarded = format!("203.0.113.66, {client}, 10.1.2.3");
    let response = app
        .client
        .post(app.url("/signin"))
        .header("x-forwarded-for", &forwarded)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens = Tokens::from_body(&response.json().await.unwrap());
    let sessions = app.sessions(&tokens.id_token).await;
    let mine = sessions
        .iter()
        .find(|s| s["current"] == true)
        .expect("the current session");
    assert_eq!(mine["ip"], client.as_str());

    // A malformed entry: the peer.
    let response = app
        .client
        .post(app.url("/tokens"))
        .header("x-forwarded-for", format!("{client}, not-an-address"))
        .json(&json!({"refreshToken": tokens.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens = Tokens::from_body(&response.json().await.unwrap());
    let sessions = app.sessions(&tokens.id_token).await;
    let mine = sessions.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(mine["ip"], "127.0.0.1");
    app.signout(&tokens.id_token).await;
}

async fn a_forwarded_for_header_from_an_untrusted_peer_is_ignored(backend: Backend) {
    // No TRUSTED_PROXIES: every request below comes from 127.0.0.1, whatever
    // it claims. The (email, address) counter is the test's own (a fresh email).
    let app = spawn_app!(backend, &[WINDOW_VAR, ("SIGNIN_RATE_LIMIT", "2")]);
    let email = unique_email();
    app.signup(&email).await;
    for _ in 0..2 {
        assert_eq!(
            signin_from(&app, &unique_ip(), &email, WRONG)
                .await
                .status(),
            401
        );
    }
    assert_limited(signin_from(&app, &unique_ip(), &email, PASSWORD).await).await;

    // Sessions record the peer too.
    let other = unique_email();
    app.signup(&other).await;
    let tokens = signed_in_from(&app, &unique_ip(), &other, PASSWORD).await;
    let sessions = app.sessions(&tokens.id_token).await;
    assert!(
        sessions.iter().all(|s| s["ip"] == "127.0.0.1"),
        "{sessions:?}"
    );
    app.signout(&tokens.id_token).await;
}

async fn refreshes_are_not_limited(backend: Backend) {
    let app = spawn_app!(
        backend,
        &[
            TRUST_LOCALHOST,
            WINDOW_VAR,
            ("SIGNIN_RATE_LIMIT", "1"),
            ("SIGNIN_IP_RATE_LIMIT", "1"),
        ]
    );
    let email = unique_email();
    app.signup(&email).await;
    let ip = unique_ip();
    assert_eq!(signin_from(&app, &ip, &email, WRONG).await.status(), 401);
    let tokens = signed_in_from(&app, &unique_ip(), &email, PASSWORD).await;
    let mut refresh_token = tokens.refresh_token;
    for _ in 0..3 {
        let response = app
            .client
            .post(app.url("/tokens"))
            .header("x-forwarded-for", &ip)
            .json(&json!({"refreshToken": refresh_token}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        refresh_token = Tokens::from_body(&response.json().await.unwrap()).refresh_token;
    }
    let tokens = app.refreshed(&refresh_token).await;
    app.signout(&tokens.id_token).await;
}

crate::on_every_backend!(
    one_source_guessing_one_account_is_refused_after_signin_rate_limit_failures,
    one_source_spraying_many_accounts_is_refused_by_the_address_limit,
    many_sources_guessing_one_account_are_refused_by_the_email_limit,
    a_successful_sign_in_gives_back_what_it_counted_for_its_source,
    sign_ups_are_limited_per_source,
    a_wrong_current_password_counts_as_a_failed_sign_in,
    each_counter_is_one_key_with_the_window_as_its_ttl_and_no_email_in_clear,
    addresses_of_one_ipv6_64_share_their_counters,
    behind_a_trusted_proxy_the_forwarded_client_is_the_source_and_what_sessions_record,
    a_forwarded_for_header_from_an_untrusted_peer_is_ignored,
    refreshes_are_not_limited,
);
