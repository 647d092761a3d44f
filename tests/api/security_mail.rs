//! Security mails (issue 28): each change to how an account signs in, and a
//! sign-in from a device none of its live sessions runs on, is mailed to its
//! owner through the SMTP server, with what happened, when, the device and
//! the address, and a link to the account page; never a secret, a code or a
//! token, and never counted on (nor held back by) `MAIL_RATE_LIMIT`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, MAIL_WAIT, PASSWORD, PUBLIC_URL, TestApp, Tokens, token_in};
use crate::mfa::{enrolled, post, send};
use crate::smtp_sink::{ReceivedMail, SmtpSink};

const CHROME_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like \
    Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0";
const NEW_PASSWORD: &str = "a brand new passphrase 42";

/// An app mailing to `sink`, with a mail limit of one per account.
async fn app_mailing_to(
    backend: Backend,
    sink: &SmtpSink,
    extra: &[(&str, &str)],
) -> Option<TestApp> {
    let smtp = sink.url();
    let mut vars = vec![
        ("SMTP_URL", smtp.as_str()),
        ("PUBLIC_URL", PUBLIC_URL),
        ("MAIL_RATE_LIMIT", "1"),
    ];
    vars.extend_from_slice(extra);
    crate::helpers::try_spawn_app(backend, crate::helpers::function_name!(), &vars).await
}

/// Waits until `address` has a mail titled `subject` (`n`th of them, from 1).
async fn nth_titled(sink: &SmtpSink, address: &str, subject: &str, n: usize) -> ReceivedMail {
    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
    loop {
        let titled: Vec<ReceivedMail> = sink
            .mails()
            .into_iter()
            .filter(|m| m.is_to(address) && m.subject == subject)
            .collect();
        if titled.len() >= n {
            return titled[n - 1].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "mail {n} titled {subject:?} to {address} never came: {:?}",
            sink.mails()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn titled(sink: &SmtpSink, address: &str, subject: &str) -> usize {
    sink.mails()
        .iter()
        .filter(|m| m.is_to(address) && m.subject == subject)
        .count()
}

/// What every security mail says besides what happened.
fn assert_shape(mail: &ReceivedMail, device: &str) {
    for part in [
        "When:".to_owned(),
        format!("Device:  {device}"),
        "Address: 127.0.0.1".to_owned(),
        format!("Your account: {PUBLIC_URL}/account"),
    ] {
        assert!(
            mail.body.contains(&part),
            "{part:?} in {:?}: {}",
            mail.subject,
            mail.body
        );
    }
    assert!(
        !mail.body.contains("Mozilla"),
        "never the raw User-Agent: {}",
        mail.body
    );
}

async fn signin_as(app: &TestApp, email: &str, password: &str, user_agent: &str) -> Value {
    let response = app.signin_response(email, password, user_agent).await;
    assert_eq!(response.status(), 200, "sign-in of {email}");
    response.json().await.unwrap()
}

async fn each_change_to_how_an_account_signs_in_is_mailed_without_a_secret(backend: Backend) {
    let sink = SmtpSink::start().await;
    let Some(app) = app_mailing_to(backend, &sink, &[]).await else {
        return;
    };
    let (email, secret, raised, codes, _) = enrolled(&app).await;
    let mut secrets: Vec<String> = vec![secret.clone(), PASSWORD.into(), NEW_PASSWORD.into()];
    secrets.extend(codes.iter().flat_map(|c| [c.clone(), c.replace('-', "")]));
    secrets.extend([raised.id_token.clone(), raised.refresh_token.clone()]);
    let added = nth_titled(&sink, &email, "Two-step sign-in: a factor was added", 1).await;
    assert_shape(&added, "an unknown device");
    assert!(
        added.body.contains("recovery codes was made"),
        "{}",
        added.body
    );

    // A sign-in with a recovery code, from a device no session runs on.
    let body = signin_as(&app, &email, PASSWORD, CHROME_LINUX).await;
    let token = body["mfa"]["token"].as_str().unwrap().to_owned();
    secrets.push(token.clone());
    let response = app
        .client
        .post(app.url("/signin/mfa"))
        .header("user-agent", CHROME_LINUX)
        .json(&json!({"mfaToken": token, "method": "recovery_code", "code": codes[0]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let chrome = Tokens::from_body(&response.json().await.unwrap());
    secrets.extend([chrome.id_token.clone(), chrome.refresh_token.clone()]);
    let used = nth_titled(&sink, &email, "A recovery code was used to sign in", 1).await;
    assert_shape(&used, "Chrome on Linux");
    assert!(
        used.body.contains("9 recovery codes are left"),
        "{}",
        used.body
    );
    let new_device = nth_titled(&sink, &email, "A sign-in from a new device", 1).await;
    assert_shape(&new_device, "Chrome on Linux");

    // New recovery codes, then the factor removed (the last one).
    let (status, body, _) = post(&app, "/mfa/recovery-codes", &chrome.id_token, json!({})).await;
    assert_eq!(status, 200, "{body}");
    secrets.extend(
        body["recoveryCodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned()),
    );
    nth_titled(&sink, &email, "New recovery codes were made", 1).await;
    let (_, list, _) = send(
        app.client
            .get(app.url("/mfa"))
            .bearer_auth(&chrome.id_token),
    )
    .await;
    let id = list["factors"][0]["id"].as_str().unwrap().to_owned();
    let status = app
        .client
        .delete(app.url(&format!("/mfa/{id}")))
        .bearer_auth(&chrome.id_token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let removed = nth_titled(&sink, &email, "Two-step sign-in: a factor was removed", 1).await;
    assert!(
        removed.body.contains("It was the last one"),
        "{}",
        removed.body
    );

    // The password, then the email.
    let status = app
        .change_password(&chrome.id_token, PASSWORD, NEW_PASSWORD)
        .await
        .status();
    assert_eq!(status, 204);
    nth_titled(&sink, &email, "Your password was changed", 1).await;
    // Five security mails so far, past a limit of one: they did not use it
    // up either, the one reset mail it allows still comes.
    assert_eq!(app.request_reset(&email).await.status(), 202);
    let reset = nth_titled(&sink, &email, "Reset your password", 1).await;
    secrets.push(token_in(&reset, "/reset-password"));
    let new_email = format!("moved.{email}");
    let response = app
        .put_details(
            &chrome.id_token,
            &json!({"email": new_email, "name": "", "currentPassword": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let changed = nth_titled(
        &sink,
        &email,
        "The email address of your account was changed",
        1,
    )
    .await;
    assert_shape(&changed, "an unknown device");
    assert!(changed.body.contains("m***@"), "masked: {}", changed.body);
    assert!(!changed.body.contains(&new_email), "{}", changed.body);

    // Every security mail went to the owner's (previous) address, past the
    // mail limit of one, and none holds a secret, a code or a token.
    let security: Vec<ReceivedMail> = sink
        .mails()
        .into_iter()
        .filter(|m| {
            m.is_to(&email) && !m.subject.starts_with("Verify") && !m.subject.starts_with("Reset")
        })
        .collect();
    assert_eq!(security.len(), 7, "{security:?}");
    for mail in &security {
        assert_eq!(mail.to, vec![email.clone()]);
        for secret in &secrets {
            assert!(
                !mail.raw.contains(secret.as_str()),
                "{:?} carries a secret: {}",
                mail.subject,
                mail.body
            );
        }
    }
    app.signout(&chrome.id_token).await;
}

async fn a_sign_in_from_a_known_device_sends_no_new_device_mail(backend: Backend) {
    let sink = SmtpSink::start().await;
    let Some(app) = app_mailing_to(backend, &sink, &[]).await else {
        return;
    };
    let email = crate::helpers::unique_email();
    let (_, first) = app.signup(&email).await;
    // The sign-up's own device (no User-Agent: an unknown device) is known.
    signin_as(&app, &email, PASSWORD, "").await;
    signin_as(&app, &email, PASSWORD, CHROME_LINUX).await;
    nth_titled(&sink, &email, "A sign-in from a new device", 1).await;
    // Another version of the same browser on the same system: known.
    let newer = CHROME_LINUX.replace("120.0.0.0", "121.0.6167.85");
    signin_as(&app, &email, PASSWORD, &newer).await;
    // A device mailed after it proves it sent nothing in between.
    signin_as(&app, &email, PASSWORD, FIREFOX_WINDOWS).await;
    let second = nth_titled(&sink, &email, "A sign-in from a new device", 2).await;
    assert_shape(&second, "Firefox on Windows 10");
    assert_eq!(titled(&sink, &email, "A sign-in from a new device"), 2);
    app.signout(&first.id_token).await;
}

async fn a_password_reset_and_a_confirmed_email_change_tell_the_owner(backend: Backend) {
    let sink = SmtpSink::start().await;
    let Some(app) = app_mailing_to(
        backend,
        &sink,
        &[("EMAIL_CONFIRMATION", "required"), ("MAIL_RATE_LIMIT", "5")],
    )
    .await
    else {
        return;
    };
    let email = crate::helpers::unique_email();
    let response = app.signup_response(&email, PASSWORD).await;
    assert_eq!(response.status(), 202);
    let link = nth_titled(&sink, &email, "Verify your email address", 1).await;
    assert_eq!(
        app.verify_email(&token_in(&link, "/verify-email"))
            .await
            .status(),
        204
    );

    assert_eq!(app.request_reset(&email).await.status(), 202);
    let reset = nth_titled(&sink, &email, "Reset your password", 1).await;
    let reset_token = token_in(&reset, "/reset-password");
    let status = app.confirm_reset(&reset_token, NEW_PASSWORD).await.status();
    assert_eq!(status, 204);
    let changed = nth_titled(&sink, &email, "Your password was changed", 1).await;
    assert!(changed.body.contains("reset link"), "{}", changed.body);
    assert!(!changed.raw.contains(&reset_token), "{}", changed.body);

    // An account that must verify changes its email once the new address
    // confirms it: only then is the previous one told.
    let tokens = Tokens::from_body(&signin_as(&app, &email, NEW_PASSWORD, "").await);
    let new_email = format!("new.{email}");
    let response = app
        .put_details(
            &tokens.id_token,
            &json!({"email": new_email, "name": "", "currentPassword": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let link = nth_titled(&sink, &new_email, "Verify your email address", 1).await;
    let subject = "The email address of your account was changed";
    assert_eq!(
        titled(&sink, &email, subject),
        0,
        "not before it is confirmed"
    );
    assert_eq!(
        app.verify_email(&token_in(&link, "/verify-email"))
            .await
            .status(),
        204
    );
    let moved = nth_titled(&sink, &email, subject, 1).await;
    assert!(moved.body.contains("n***@"), "{}", moved.body);
    app.signout(&tokens.id_token).await;
}

async fn with_security_mail_off_nothing_is_mailed_but_the_flows(backend: Backend) {
    let sink = SmtpSink::start().await;
    let Some(app) = app_mailing_to(backend, &sink, &[("SECURITY_MAIL", "off")]).await else {
        return;
    };
    let email = crate::helpers::unique_email();
    let (_, first) = app.signup(&email).await;
    nth_titled(&sink, &email, "Verify your email address", 1).await;
    signin_as(&app, &email, PASSWORD, CHROME_LINUX).await;
    let status = app
        .change_password(&first.id_token, PASSWORD, NEW_PASSWORD)
        .await
        .status();
    assert_eq!(status, 204);
    // A mail after them: the resend of the verification link.
    assert_eq!(app.resend_verification(&first.id_token).await.status(), 202);
    nth_titled(&sink, &email, "Verify your email address", 2).await;
    let subjects: Vec<String> = sink.mails().into_iter().map(|m| m.subject).collect();
    assert!(
        subjects.iter().all(|s| s == "Verify your email address"),
        "{subjects:?}"
    );
    app.signout(&first.id_token).await;
}

crate::on_every_backend!(
    each_change_to_how_an_account_signs_in_is_mailed_without_a_secret,
    a_sign_in_from_a_known_device_sends_no_new_device_mail,
    a_password_reset_and_a_confirmed_email_change_tell_the_owner,
    with_security_mail_off_nothing_is_mailed_but_the_flows,
);
