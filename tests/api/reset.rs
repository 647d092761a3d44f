//! Password reset (issue 10) on both backends, with mails read from the test
//! SMTP sink: the same answer for an unknown and a known email; the link sets
//! the password, ends every session, verifies the address and lets a locked
//! out owner in again; a link works once, not after `RESET_TOKEN_EXP`, and
//! not once a newer one was sent, nor once the password was changed or the
//! address it went to was left; reset mails are limited per email and
//! requests per source.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Backend, MAIL_WAIT, PASSWORD, PUBLIC_URL, TestApp, assert_error, assert_invalid_token, claims,
    nth_mail_to, spawn_app, token_in, unique_email,
};
use crate::smtp_sink::SmtpSink;

crate::on_every_backend!(
    a_reset_for_an_unknown_and_a_known_email_answers_the_same,
    a_reset_sets_the_password_ends_every_session_and_verifies_the_email,
    a_reset_lets_the_owner_in_after_the_per_email_limit_locked_the_account,
    a_reset_link_works_once_and_only_while_it_is_the_newest_and_alive,
    a_password_change_voids_the_reset_links_sent_before_it,
    an_email_change_voids_the_reset_links_sent_to_the_old_address,
    reset_mails_are_limited_per_email_and_requests_per_source,
);

const NEW_PASSWORD: &str = "a brand new passphrase";
const ANSWER: &str =
    "if an account has this email, a link to reset its password has been sent to it";

/// `POST /password-reset`: its status, its body and how long it took.
async fn timed_reset(app: &TestApp, email: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = app.request_reset(email).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body, started.elapsed())
}

async fn a_reset_for_an_unknown_and_a_known_email_answers_the_same(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &[("SMTP_URL", &smtp), ("PUBLIC_URL", PUBLIC_URL)]);
    let known = unique_email();
    app.signup(&known).await;
    nth_mail_to(&sink, &known, 1).await;
    let unknown = unique_email();

    // The answer never waits for the mail. With the mail server hanging,
    // every attempt to send lasts until its 10 s timeout: a known address
    // whose answer waited for its mail would take 10 s or more, an unknown
    // one milliseconds. The bound sits between the two, far from both.
    sink.hang(true);
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (status, body, took) = timed_reset(&app, &known).await;
        assert_eq!((status, &body), (202, &json!({"message": ANSWER})));
        known_times.push(took);
        let (status, body, took) = timed_reset(&app, &unknown).await;
        assert_eq!((status, &body), (202, &json!({"message": ANSWER})));
        unknown_times.push(took);
    }
    sink.hang(false);
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (k, u) = (median(&mut known_times), median(&mut unknown_times));
    assert!(
        k.saturating_sub(u) < Duration::from_secs(5),
        "known {known_times:?}, unknown {unknown_times:?}"
    );

    // The known address got its mails (the sign-up's, then one per
    // request, each sent again after its hung attempt timed out); the
    // unknown one nothing.
    let mails = sink
        .wait_for_mails_to(&known, 4, MAIL_WAIT + Duration::from_secs(30))
        .await;
    assert_eq!(mails.len(), 4);
    assert_eq!(mails[3].subject, "Reset your password");
    token_in(&mails[3], "/reset-password");
    assert!(
        sink.mails_to(&unknown, Duration::from_millis(300))
            .await
            .is_empty()
    );
    // A body that is not an address is a 400, for either kind.
    let response = app.request_reset("not an address").await;
    let body = assert_error(response, 400, "BAD_REQUEST").await;
    assert_eq!(body["error"]["invalidArgs"][0]["field"], "email");
}

async fn a_reset_sets_the_password_ends_every_session_and_verifies_the_email(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &[("SMTP_URL", &smtp), ("PUBLIC_URL", PUBLIC_URL)]);
    let email = unique_email();
    let (uid, first) = app.signup(&email).await;
    nth_mail_to(&sink, &email, 1).await;
    let second = app.signin(&email).await;
    assert_eq!(app.me_user(&first.id_token).await["emailVerified"], false);

    // Any spelling of the address.
    assert_eq!(app.request_reset(&email.to_uppercase()).await.status(), 202);
    let token = token_in(&nth_mail_to(&sink, &email, 2).await, "/reset-password");
    assert_eq!(app.confirm_reset(&token, NEW_PASSWORD).await.status(), 204);

    // Every session ended: no refresh token works any more.
    for tokens in [&first, &second] {
        assert_error(
            app.refresh(&tokens.refresh_token).await,
            401,
            "AUTHORIZATION",
        )
        .await;
    }
    assert!(app.refresh_keys(uid).await.is_empty());
    assert_error(
        app.signin_response(&email, PASSWORD, "").await,
        401,
        "AUTHORIZATION",
    )
    .await;
    let response = app.signin_response(&email, NEW_PASSWORD, "").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let id_token = body["tokens"]["idToken"].as_str().unwrap();
    // The person read the mail: the address is verified.
    assert_eq!(claims(id_token)["email_verified"], true);
    assert_eq!(app.me_user(id_token).await["emailVerified"], true);

    // The link worked once.
    assert_invalid_token(app.confirm_reset(&token, "yet another passphrase").await).await;
}

async fn a_reset_lets_the_owner_in_after_the_per_email_limit_locked_the_account(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(
        backend,
        &[
            ("SMTP_URL", &smtp),
            ("PUBLIC_URL", PUBLIC_URL),
            ("SIGNIN_EMAIL_RATE_LIMIT", "3"),
            ("RATE_LIMIT_WINDOW", "60"),
        ]
    );
    let email = unique_email();
    app.signup(&email).await;
    nth_mail_to(&sink, &email, 1).await;
    // Someone guesses: the account is locked for the window, even with
    // the right password.
    for _ in 0..3 {
        let response = app.signin_response(&email, "a wrong guess", "").await;
        assert_eq!(response.status(), 401);
    }
    let locked = app.signin_response(&email, PASSWORD, "").await;
    assert_error(locked, 429, "TOO_MANY_REQUESTS").await;

    assert_eq!(app.request_reset(&email).await.status(), 202);
    let token = token_in(&nth_mail_to(&sink, &email, 2).await, "/reset-password");
    assert_eq!(app.confirm_reset(&token, NEW_PASSWORD).await.status(), 204);
    let response = app.signin_response(&email, NEW_PASSWORD, "").await;
    assert_eq!(response.status(), 200, "the owner is in again");
}

async fn a_reset_link_works_once_and_only_while_it_is_the_newest_and_alive(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(
        backend,
        &[
            ("SMTP_URL", &smtp),
            ("PUBLIC_URL", PUBLIC_URL),
            ("RESET_TOKEN_EXP", "2"),
        ]
    );
    let email = unique_email();
    app.signup(&email).await;
    nth_mail_to(&sink, &email, 1).await;

    // A newer request replaces the older link.
    app.request_reset(&email).await;
    let older = token_in(&nth_mail_to(&sink, &email, 2).await, "/reset-password");
    app.request_reset(&email).await;
    let newer = token_in(&nth_mail_to(&sink, &email, 3).await, "/reset-password");
    assert_invalid_token(app.confirm_reset(&older, NEW_PASSWORD).await).await;

    // A bad or malformed token, or a verification token, is refused alike.
    for bad in ["x".repeat(43), "short".into(), Uuid::new_v4().to_string()] {
        assert_invalid_token(app.confirm_reset(&bad, NEW_PASSWORD).await).await;
    }
    let verification = token_in(&nth_mail_to(&sink, &email, 1).await, "/verify-email");
    assert_invalid_token(app.confirm_reset(&verification, NEW_PASSWORD).await).await;

    // Past RESET_TOKEN_EXP the newest one is refused too, and the password
    // is unchanged.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert_invalid_token(app.confirm_reset(&newer, NEW_PASSWORD).await).await;
    assert_eq!(
        app.signin_response(&email, PASSWORD, "").await.status(),
        200
    );

    // Missing fields are named, as in any other body.
    let response = app
        .post_json("/password-reset/confirm", &json!({"newPassword": "short"}))
        .await;
    let body = assert_error(response, 400, "BAD_REQUEST").await;
    let fields: Vec<&str> = body["error"]["invalidArgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["token", "newPassword"]);
}

async fn a_password_change_voids_the_reset_links_sent_before_it(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &[("SMTP_URL", &smtp), ("PUBLIC_URL", PUBLIC_URL)]);
    let email = unique_email();
    let (_, tokens) = app.signup(&email).await;
    nth_mail_to(&sink, &email, 1).await;
    assert_eq!(app.request_reset(&email).await.status(), 202);
    let mailed = token_in(&nth_mail_to(&sink, &email, 2).await, "/reset-password");

    // The owner, signed in, changes the password: the link mailed before
    // it no longer works, answered like a used or expired one.
    let changed = app
        .change_password(&tokens.id_token, PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(changed.status(), 204);
    let reset_password = "the reset link's passphrase";
    assert_invalid_token(app.confirm_reset(&mailed, reset_password).await).await;

    // The changed password stands; the refused reset set nothing.
    assert_eq!(
        app.signin_response(&email, NEW_PASSWORD, "").await.status(),
        200
    );
    for refused in [reset_password, PASSWORD] {
        assert_error(
            app.signin_response(&email, refused, "").await,
            401,
            "AUTHORIZATION",
        )
        .await;
    }

    // The third mail tells the owner of the change.
    let told = nth_mail_to(&sink, &email, 3).await;
    assert_eq!(told.subject, "Your password was changed");
    // Only the links sent before the change: a reset asked for after it works.
    assert_eq!(app.request_reset(&email).await.status(), 202);
    let later = token_in(&nth_mail_to(&sink, &email, 4).await, "/reset-password");
    assert_eq!(
        app.confirm_reset(&later, reset_password).await.status(),
        204
    );
    assert_eq!(
        app.signin_response(&email, reset_password, "")
            .await
            .status(),
        200
    );
}

async fn an_email_change_voids_the_reset_links_sent_to_the_old_address(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &[("SMTP_URL", &smtp), ("PUBLIC_URL", PUBLIC_URL)]);
    let old_email = unique_email();
    let (_, tokens) = app.signup(&old_email).await;
    nth_mail_to(&sink, &old_email, 1).await;
    assert_eq!(app.request_reset(&old_email).await.status(), 202);
    let mailed = token_in(&nth_mail_to(&sink, &old_email, 2).await, "/reset-password");

    // The account leaves the address: whoever reads its mail takes
    // nothing over.
    let new_email = unique_email();
    let changed = app
        .put_details(
            &tokens.id_token,
            &json!({"email": new_email, "currentPassword": PASSWORD}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    nth_mail_to(&sink, &new_email, 1).await;
    assert_invalid_token(app.confirm_reset(&mailed, NEW_PASSWORD).await).await;
    assert_eq!(
        app.signin_response(&new_email, PASSWORD, "").await.status(),
        200,
        "the password is unchanged"
    );
    assert_error(
        app.signin_response(&new_email, NEW_PASSWORD, "").await,
        401,
        "AUTHORIZATION",
    )
    .await;
}

/// A source of its own (an IPv6 /64 no other test picks), named with
/// `X-Forwarded-For` to an app that trusts the test client.
fn unique_source() -> String {
    let r = Uuid::new_v4().as_u128();
    Ipv6Addr::new(0x2001, 0xdb8, r as u16, (r >> 16) as u16, 0, 0, 0, 1).to_string()
}

async fn reset_from(app: &TestApp, ip: &str, email: &str) -> reqwest::Response {
    app.client
        .post(app.url("/password-reset"))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email}))
        .send()
        .await
        .expect("request")
}

async fn reset_mails_are_limited_per_email_and_requests_per_source(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(
        backend,
        &[
            ("SMTP_URL", &smtp),
            ("PUBLIC_URL", PUBLIC_URL),
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
            ("RATE_LIMIT_WINDOW", "60"),
            ("MAIL_RATE_LIMIT", "2"),
            ("SIGNIN_IP_RATE_LIMIT", "4"),
        ]
    );
    let email = unique_email();
    app.signup(&email).await;
    nth_mail_to(&sink, &email, 1).await;

    // Per email: past MAIL_RATE_LIMIT the same 202, and no mail.
    let source = unique_source();
    for _ in 0..3 {
        let response = reset_from(&app, &source, &email).await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"message": ANSWER}));
    }
    assert_eq!(sink.wait_for_mails_to(&email, 3, MAIL_WAIT).await.len(), 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sink.mails_to(&email, Duration::ZERO).await.len(),
        3,
        "the sign-up's and two reset mails"
    );

    // Per source: the fourth request is the last, whatever the address.
    assert_eq!(
        reset_from(&app, &source, &unique_email()).await.status(),
        202
    );
    let refused = reset_from(&app, &source, &unique_email()).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_error(refused, 429, "TOO_MANY_REQUESTS").await;
    assert_eq!(
        reset_from(&app, &unique_source(), &unique_email())
            .await
            .status(),
        202,
        "another source is counted on its own"
    );
}
