//! `EMAIL_CONFIRMATION=required` on both backends, with mails read from the
//! test SMTP sink: sign-up answers the same 202, in the same time, for a new
//! and a taken address, and says what happened only by mail (a link to a new
//! address, a notice to a verified owner, a fresh link to an unverified one);
//! such an account signs in only once verified (403 `EMAIL_NOT_VERIFIED`
//! after the right password, 401 after a wrong one); accounts from before the
//! switch keep signing in; a resend by address answers the same for every
//! address; an email change waits for the link mailed to the new address.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use account::config::EmailConfirmation;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Backend, PASSWORD, PUBLIC_URL, TestApp, Tokens, assert_error, assert_invalid_token,
    nth_mail_to, spawn_app, token_in, unique_email,
};
use crate::smtp_sink::SmtpSink;

crate::on_every_backend!(
    a_new_and_a_taken_address_get_the_same_answer_in_the_same_time,
    the_owner_of_a_taken_address_is_told_or_sent_a_fresh_link_within_the_mail_limit,
    sign_in_before_verification_is_403_only_after_the_right_password,
    an_account_from_before_the_switch_still_signs_in,
    sign_ups_are_still_limited_per_source,
    a_resend_by_address_answers_the_same_and_mails_only_an_unverified_account,
    an_email_change_waits_for_the_link_mailed_to_the_new_address,
    a_pending_email_another_account_took_meanwhile_is_refused,
);

const REQUIRED: (&str, &str) = ("EMAIL_CONFIRMATION", "required");
const ACCEPTED: &str = "a mail has been sent to this address: follow it to finish signing up";
const NOTICE_SUBJECT: &str = "Someone tried to sign up with your email address";
const VERIFY_SUBJECT: &str = "Verify your email address";
const OTHER_PASSWORD: &str = "another passphrase";

/// The variables of an app in `required` mode mailing to `smtp`, and `extra`.
fn required<'a>(smtp: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut vars = vec![("SMTP_URL", smtp), ("PUBLIC_URL", PUBLIC_URL), REQUIRED];
    vars.extend_from_slice(extra);
    vars
}

/// `POST /signup`: its status, its body and how long it took.
async fn timed_signup(app: &TestApp, email: &str, password: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = app.signup_response(email, password).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body, started.elapsed())
}

/// A sign-up answered 202 with the one message and no tokens.
async fn signup_accepted(app: &TestApp, email: &str, password: &str) {
    let (status, body, _) = timed_signup(app, email, password).await;
    assert_eq!(status, 202, "sign-up of {email}: {body}");
    assert_eq!(body, json!({"message": ACCEPTED}));
}

/// Signs up `email` and follows the link of its first mail.
async fn verified_account(app: &TestApp, sink: &SmtpSink, email: &str) {
    signup_accepted(app, email, PASSWORD).await;
    let mail = nth_mail_to(sink, email, 1).await;
    assert_eq!(mail.subject, VERIFY_SUBJECT);
    assert_eq!(
        app.verify_email(&token_in(&mail, "/verify-email"))
            .await
            .status(),
        204
    );
}

/// Signs in with `password`; a 200's tokens, the user tracked.
async fn signed_in(app: &TestApp, email: &str, password: &str) -> Tokens {
    let response = app.signin_response(email, password, "").await;
    assert_eq!(response.status(), 200, "sign-in of {email}");
    let tokens = Tokens::from_body(&response.json().await.unwrap());
    app.track(tokens.uid());
    tokens
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Waits for mails meant to come, then counts every mail to `address`.
async fn mails_to_after_a_while(sink: &SmtpSink, address: &str) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sink.mails()
        .into_iter()
        .filter(|mail| mail.is_to(address))
        .map(|mail| mail.subject)
        .collect()
}

async fn a_new_and_a_taken_address_get_the_same_answer_in_the_same_time(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &required(&smtp, &[]));
    let taken = unique_email();
    verified_account(&app, &sink, &taken).await;

    let (mut new_times, mut taken_times) = (Vec::new(), Vec::new());
    let mut answers = Vec::new();
    // Interleaved, so that a slower moment of the machine hits both.
    for _ in 0..7 {
        let (status, body, took) = timed_signup(&app, &unique_email(), PASSWORD).await;
        answers.push((status, body));
        new_times.push(took);
        let (status, body, took) = timed_signup(&app, &taken, OTHER_PASSWORD).await;
        answers.push((status, body));
        taken_times.push(took);
    }
    for (status, body) in &answers {
        assert_eq!(*status, 202, "{body}");
        assert_eq!(
            *body,
            json!({"message": ACCEPTED}),
            "no tokens, one message"
        );
    }
    let (new, taken_median) = (median(new_times), median(taken_times));
    let apart = new.abs_diff(taken_median);
    assert!(
        apart <= Duration::from_millis(250),
        "medians: new {new:?}, taken {taken_median:?}"
    );
    // The taken account is untouched: its own password still signs in,
    // the one of the attempts does not.
    signed_in(&app, &taken, PASSWORD).await;
    assert_error(
        app.signin_response(&taken, OTHER_PASSWORD, "").await,
        401,
        "AUTHORIZATION",
    )
    .await;
}

async fn the_owner_of_a_taken_address_is_told_or_sent_a_fresh_link_within_the_mail_limit(
    backend: Backend,
) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &required(&smtp, &[("MAIL_RATE_LIMIT", "2")]));
    // A verified owner is told, at most MAIL_RATE_LIMIT times a window.
    let verified = unique_email();
    verified_account(&app, &sink, &verified).await;
    for _ in 0..3 {
        signup_accepted(&app, &verified, OTHER_PASSWORD).await;
    }
    let notice = nth_mail_to(&sink, &verified, 2).await;
    assert_eq!(notice.subject, NOTICE_SUBJECT);
    assert!(notice.body.contains(&verified), "{}", notice.body);
    assert!(
        !notice.body.contains("token="),
        "no link that would act: {}",
        notice.body
    );
    assert_eq!(
        mails_to_after_a_while(&sink, &verified).await,
        [VERIFY_SUBJECT, NOTICE_SUBJECT, NOTICE_SUBJECT],
        "the sign-up's link, then two notices: the third attempt is past the limit"
    );

    // An unverified owner gets a fresh link, which verifies the account
    // with its own password (the attempt's changes nothing).
    let unverified = unique_email();
    signup_accepted(&app, &unverified, PASSWORD).await;
    let first = token_in(&nth_mail_to(&sink, &unverified, 1).await, "/verify-email");
    signup_accepted(&app, &unverified, OTHER_PASSWORD).await;
    let again = nth_mail_to(&sink, &unverified, 2).await;
    assert_eq!(again.subject, VERIFY_SUBJECT);
    let fresh = token_in(&again, "/verify-email");
    assert_ne!(fresh, first, "a fresh link");
    assert_eq!(app.verify_email(&fresh).await.status(), 204);
    signed_in(&app, &unverified, PASSWORD).await;
    assert_error(
        app.signin_response(&unverified, OTHER_PASSWORD, "").await,
        401,
        "AUTHORIZATION",
    )
    .await;
}

async fn sign_in_before_verification_is_403_only_after_the_right_password(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    // Two attempts per (email, address): the right password's attempts
    // are given back, so more of them than that are never a 429.
    let app = spawn_app!(backend, &required(&smtp, &[("SIGNIN_RATE_LIMIT", "2")]));
    let email = unique_email();
    signup_accepted(&app, &email, PASSWORD).await;
    assert_error(
        app.signin_response(&email, OTHER_PASSWORD, "").await,
        401,
        "AUTHORIZATION",
    )
    .await;
    for _ in 0..3 {
        let body = assert_error(
            app.signin_response(&email, PASSWORD, "").await,
            403,
            "EMAIL_NOT_VERIFIED",
        )
        .await;
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("not verified")),
            "{body}"
        );
    }
    let token = token_in(&nth_mail_to(&sink, &email, 1).await, "/verify-email");
    assert_eq!(app.verify_email(&token).await.status(), 204);
    let tokens = signed_in(&app, &email, PASSWORD).await;
    let me = app.me_user(&tokens.id_token).await;
    assert_eq!(me["emailVerified"], true);
    assert_eq!(me["email"], email);
}

async fn an_account_from_before_the_switch_still_signs_in(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &[("SMTP_URL", &smtp), ("PUBLIC_URL", PUBLIC_URL)]);
    let before = unique_email();
    // `optional`: 201 with tokens, and 409 for a taken address.
    app.signup(&before).await;
    assert_eq!(
        app.signup_response(&before, PASSWORD).await.status(),
        409,
        "optional mode tells a taken address"
    );
    let app = app
        .restart_editing(|config| config.pages.email_confirmation = EmailConfirmation::Required)
        .await;
    // Never verified, yet it signs in: it was not created under `required`.
    let tokens = signed_in(&app, &before, PASSWORD).await;
    assert_eq!(app.me_user(&tokens.id_token).await["emailVerified"], false);
    // New sign-ups now wait for their link, and a taken address is a 202.
    signup_accepted(&app, &before, PASSWORD).await;
    let after = unique_email();
    signup_accepted(&app, &after, PASSWORD).await;
    assert_error(
        app.signin_response(&after, PASSWORD, "").await,
        403,
        "EMAIL_NOT_VERIFIED",
    )
    .await;
}

/// A source of its own: an IPv6 address in a /64 no other test picks.
fn unique_ip() -> String {
    let r = Uuid::new_v4().as_u128();
    Ipv6Addr::new(0x2001, 0xdb8, r as u16, (r >> 16) as u16, 0, 0, 0, 1).to_string()
}

async fn sign_ups_are_still_limited_per_source(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(
        backend,
        &required(
            &smtp,
            &[
                ("TRUSTED_PROXIES", "127.0.0.1/32"),
                ("SIGNUP_RATE_LIMIT", "2"),
            ]
        )
    );
    let ip = unique_ip();
    let signup_from = |email: String| {
        app.client
            .post(app.url("/signup"))
            .header("x-forwarded-for", &ip)
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
    };
    let taken = unique_email();
    assert_eq!(signup_from(taken.clone()).await.unwrap().status(), 202);
    assert_eq!(signup_from(taken).await.unwrap().status(), 202);
    let response = signup_from(unique_email()).await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}

/// `POST /verify-email/resend {email}` without a bearer token.
async fn resend_to(app: &TestApp, email: &str) -> (u16, Value) {
    let response = app
        .post_json("/verify-email/resend", &json!({"email": email}))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn a_resend_by_address_answers_the_same_and_mails_only_an_unverified_account(
    backend: Backend,
) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &required(&smtp, &[]));
    let verified = unique_email();
    verified_account(&app, &sink, &verified).await;
    let unverified = unique_email();
    signup_accepted(&app, &unverified, PASSWORD).await;
    nth_mail_to(&sink, &unverified, 1).await;
    let unknown = unique_email();

    let answers = [
        resend_to(&app, &unknown).await,
        resend_to(&app, &verified).await,
        resend_to(&app, &unverified).await,
    ];
    for answer in &answers {
        assert_eq!(answer, &answers[0], "the same for every address");
    }
    assert_eq!(answers[0].0, 202);
    assert!(answers[0].1["message"].is_string(), "{:?}", answers[0]);

    let mail = nth_mail_to(&sink, &unverified, 2).await;
    assert_eq!(mail.subject, VERIFY_SUBJECT);
    assert_eq!(
        app.verify_email(&token_in(&mail, "/verify-email"))
            .await
            .status(),
        204
    );
    signed_in(&app, &unverified, PASSWORD).await;
    assert_eq!(
        mails_to_after_a_while(&sink, &verified).await,
        [VERIFY_SUBJECT],
        "only the sign-up's mail"
    );
    assert!(mails_to_after_a_while(&sink, &unknown).await.is_empty());
    // Not an address: 400 naming the field.
    let response = app
        .post_json("/verify-email/resend", &json!({"email": "not an address"}))
        .await;
    let body = assert_error(response, 400, "BAD_REQUEST").await;
    assert_eq!(body["error"]["invalidArgs"][0]["field"], "email");
}

/// `PUT /details` with a new email and the current password.
async fn change_email(app: &TestApp, id_token: &str, new_email: &str) -> Value {
    let response = app
        .put_details(
            id_token,
            &json!({"email": new_email, "currentPassword": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200, "email change");
    let body: Value = response.json().await.unwrap();
    body["user"].clone()
}

async fn an_email_change_waits_for_the_link_mailed_to_the_new_address(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &required(&smtp, &[]));
    let old = unique_email();
    verified_account(&app, &sink, &old).await;
    let tokens = signed_in(&app, &old, PASSWORD).await;
    let new = unique_email();
    let user = change_email(&app, &tokens.id_token, &new).await;
    assert_eq!(user["email"], old, "the verified address stays");
    assert_eq!(user["emailVerified"], true);
    assert_eq!(user["pendingEmail"], new);

    // Until the link is opened, the old address signs in, the new one not.
    signed_in(&app, &old, PASSWORD).await;
    assert_error(
        app.signin_response(&new, PASSWORD, "").await,
        401,
        "AUTHORIZATION",
    )
    .await;
    let mail = nth_mail_to(&sink, &new, 1).await;
    assert_eq!(mail.subject, VERIFY_SUBJECT);
    assert_eq!(
        app.verify_email(&token_in(&mail, "/verify-email"))
            .await
            .status(),
        204
    );

    let tokens = signed_in(&app, &new, PASSWORD).await;
    let me = app.me_user(&tokens.id_token).await;
    assert_eq!(me["email"], new);
    assert_eq!(me["emailVerified"], true);
    assert!(me.get("pendingEmail").is_none(), "{me}");
    assert_error(
        app.signin_response(&old, PASSWORD, "").await,
        401,
        "AUTHORIZATION",
    )
    .await;
}

async fn a_pending_email_another_account_took_meanwhile_is_refused(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app!(backend, &required(&smtp, &[]));
    let old = unique_email();
    verified_account(&app, &sink, &old).await;
    let tokens = signed_in(&app, &old, PASSWORD).await;
    let wanted = unique_email();
    change_email(&app, &tokens.id_token, &wanted).await;
    let link = token_in(&nth_mail_to(&sink, &wanted, 1).await, "/verify-email");
    // Someone else signs up with the address before the link is opened.
    signup_accepted(&app, &wanted, OTHER_PASSWORD).await;
    assert_invalid_token(app.verify_email(&link).await).await;
    // The account keeps its address.
    let tokens = signed_in(&app, &old, PASSWORD).await;
    assert_eq!(app.me_user(&tokens.id_token).await["email"], old);
}
