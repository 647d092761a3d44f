//! `EMAIL_CONFIRMATION=required` against mocked services, token store and
//! mailer: sign-up answers the same for a new and a taken address (the same
//! hashing; what differs goes by mail, within the per-account limit);
//! sign-in of an account that must verify; the pending email change; the
//! resend by address.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mockall::predicate::eq;

use super::super::tests::{
    SID, TOKEN, build_with, caller, client, credentials, details, flow_config, hashing_users,
    is_too_many, no_limits, pair, password, too_many, user,
};
use super::*;
use crate::mail::{Mail, MockMailer};
use crate::model::interfaces::{
    MockAccountTokenService, MockRateLimitService, MockTokenService, MockUserService,
};
use crate::model::{AccountService, SignIn, SignUp, TokenHolder};

const VERIFY_LINK: &str = "https://app.example/verify-email?token=";

/// The use cases over these mocks in `required` mode.
fn required(
    users: MockUserService,
    tokens: MockTokenService,
    limits: MockRateLimitService,
    account_tokens: MockAccountTokenService,
    mailer: MockMailer,
) -> AccountServiceImpl {
    build_with(
        users,
        tokens,
        limits,
        account_tokens,
        mailer,
        FlowConfig {
            email_confirmation: EmailConfirmation::Required,
            ..flow_config()
        },
    )
}

fn recording_mailer() -> (MockMailer, Arc<Mutex<Vec<Mail>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let mut mailer = MockMailer::new();
    let record = Arc::clone(&sent);
    mailer
        .expect_send()
        .returning(move |mail| record.lock().unwrap().push(mail));
    (mailer, sent)
}

/// Waits (a few seconds at most) until `sent` holds `n` mails.
async fn mails(sent: &Arc<Mutex<Vec<Mail>>>, n: usize) -> Vec<Mail> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mails = sent.lock().unwrap().clone();
        if mails.len() >= n {
            return mails;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} mails never sent: {mails:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Gives spawned tasks time to run (for what must NOT happen).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn issuing_for(email: &'static str) -> MockAccountTokenService {
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens
        .expect_issue()
        .withf(move |u, purpose| u.email == email && *purpose == TokenPurpose::Verify)
        .times(1)
        .returning(|_, _| Ok(Secret::new(TOKEN.into())));
    account_tokens
}

fn must_verify(verified: bool) -> User {
    User {
        must_verify: true,
        email_verified: verified,
        ..user()
    }
}

/// A user service whose sign-up hashes once and finds the address taken by
/// `owner`.
fn taken_by(owner: User) -> MockUserService {
    let mut users = hashing_users();
    users
        .expect_signup()
        .times(1)
        .returning(|_, _, _| Err(AppError::Conflict("email already registered".into())));
    users
        .expect_find_by_email()
        .returning(move |_| Ok(Some(owner.clone())));
    users
}

fn no_tokens() -> MockTokenService {
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().never();
    tokens
}

// ---------------------------------------------------------------- sign-up

#[tokio::test]
async fn a_new_address_is_created_as_must_verify_and_mailed_a_link_without_a_session() {
    let mut users = hashing_users();
    users
        .expect_signup()
        .withf(|email, hash, must_verify| {
            email.as_str() == "ada@example.com" && hash == "$argon2id$new" && *must_verify
        })
        .times(1)
        .returning(|_, _, _| Ok(must_verify(false)));
    let (mailer, sent) = recording_mailer();
    let (email, pw) = credentials();
    let got = required(
        users,
        no_tokens(),
        no_limits(),
        issuing_for("ada@example.com"),
        mailer,
    )
    .sign_up(email, pw, client())
    .await
    .unwrap();
    assert_eq!(got, SignUp::Accepted);
    let sent = mails(&sent, 1).await;
    assert_eq!(sent[0].to, "ada@example.com");
    assert_eq!(sent[0].subject, "Verify your email address");
    assert!(sent[0].body.contains(&format!("{VERIFY_LINK}{TOKEN}")));
}

#[tokio::test]
async fn a_taken_verified_address_answers_the_same_and_its_owner_is_told() {
    let mut limits = no_limits();
    limits.checkpoint();
    limits
        .expect_sign_up_attempt()
        .times(1)
        .returning(|_| Ok(()));
    limits
        .expect_verification_mail_attempt()
        .with(eq(user().uid))
        .times(1)
        .returning(|_| Ok(()));
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_issue().never();
    let (mailer, sent) = recording_mailer();
    let (email, pw) = credentials();
    let got = required(
        taken_by(must_verify(true)),
        no_tokens(),
        limits,
        account_tokens,
        mailer,
    )
    .sign_up(email, pw, client())
    .await
    .unwrap();
    assert_eq!(got, SignUp::Accepted);
    let sent = mails(&sent, 1).await;
    assert_eq!(sent[0].to, "ada@example.com");
    assert_eq!(sent[0].subject, SIGNUP_ATTEMPT_SUBJECT);
    assert!(!sent[0].body.contains("token="), "{}", sent[0].body);
}

#[tokio::test]
async fn a_taken_unverified_address_is_mailed_a_fresh_link() {
    let (mailer, sent) = recording_mailer();
    let (email, pw) = credentials();
    // An account from before the switch too: unverified is unverified.
    let owner = user();
    let got = required(
        taken_by(owner),
        no_tokens(),
        no_limits(),
        issuing_for("ada@example.com"),
        mailer,
    )
    .sign_up(email, pw, client())
    .await
    .unwrap();
    assert_eq!(got, SignUp::Accepted);
    let sent = mails(&sent, 1).await;
    assert_eq!(sent[0].subject, "Verify your email address");
    assert!(sent[0].body.contains(&format!("{VERIFY_LINK}{TOKEN}")));
}

#[tokio::test]
async fn past_the_mail_limit_a_taken_address_answers_the_same_and_nothing_is_mailed() {
    let mut limits = MockRateLimitService::new();
    limits.expect_sign_up_attempt().returning(|_| Ok(()));
    limits
        .expect_verification_mail_attempt()
        .times(1)
        .returning(|_| Err(too_many()));
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_issue().never();
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();
    let (email, pw) = credentials();
    let got = required(
        taken_by(must_verify(false)),
        no_tokens(),
        limits,
        account_tokens,
        mailer,
    )
    .sign_up(email, pw, client())
    .await
    .unwrap();
    assert_eq!(got, SignUp::Accepted);
    settle().await;
}

#[tokio::test]
async fn the_sign_up_limit_still_refuses_before_any_hashing() {
    let mut limits = MockRateLimitService::new();
    limits
        .expect_sign_up_attempt()
        .returning(|_| Err(too_many()));
    let mut users = MockUserService::new();
    users.expect_hash_password().never();
    users.expect_signup().never();
    let (email, pw) = credentials();
    let err = required(
        users,
        no_tokens(),
        limits,
        MockAccountTokenService::new(),
        MockMailer::new(),
    )
    .sign_up(email, pw, client())
    .await
    .unwrap_err();
    assert!(is_too_many(&err), "{err:?}");
}

// ---------------------------------------------------------------- sign-in

#[tokio::test]
async fn the_right_password_of_an_unverified_must_verify_account_is_email_not_verified_with_its_counts_given_back()
 {
    let mut users = MockUserService::new();
    users
        .expect_signin()
        .returning(|_, _, _| Ok(must_verify(false)));
    let mut limits = MockRateLimitService::new();
    limits
        .expect_sign_in_attempt()
        .times(1)
        .returning(|_, _| Ok(()));
    limits
        .expect_sign_in_succeeded()
        .with(eq("ada@example.com"), eq("10.0.0.1"))
        .times(1)
        .returning(|_, _| Ok(()));
    let (email, pw) = credentials();
    let err = required(
        users,
        no_tokens(),
        limits,
        MockAccountTokenService::new(),
        MockMailer::new(),
    )
    .sign_in(email, pw, client())
    .await
    .unwrap_err();
    assert!(matches!(err, AppError::EmailNotVerified), "{err:?}");
}

#[tokio::test]
async fn a_wrong_password_of_such_an_account_stays_the_one_401() {
    let mut users = MockUserService::new();
    users.expect_signin().returning(|_, _, _| {
        Err(AppError::unauthorized(
            "invalid email and password combination",
        ))
    });
    let mut limits = MockRateLimitService::new();
    limits.expect_sign_in_attempt().returning(|_, _| Ok(()));
    limits.expect_sign_in_succeeded().never();
    let (email, pw) = credentials();
    let err = required(
        users,
        no_tokens(),
        limits,
        MockAccountTokenService::new(),
        MockMailer::new(),
    )
    .sign_in(email, pw, client())
    .await
    .unwrap_err();
    assert!(matches!(err, AppError::Authorization { .. }), "{err:?}");
}

#[tokio::test]
async fn verified_accounts_and_accounts_from_before_the_switch_sign_in() {
    for signed_in in [must_verify(true), user()] {
        let mut users = MockUserService::new();
        let found = signed_in.clone();
        users
            .expect_signin()
            .returning(move |_, _, _| Ok(found.clone()));
        let mut tokens = MockTokenService::new();
        tokens
            .expect_issue_with()
            .times(1)
            .returning(|_, _, _| Ok(pair()));
        let (email, pw) = credentials();
        let got = required(
            users,
            tokens,
            no_limits(),
            MockAccountTokenService::new(),
            MockMailer::new(),
        )
        .sign_in(email, pw, client())
        .await
        .unwrap();
        assert_eq!(got, SignIn::Tokens(pair()), "{signed_in:?}");
    }
}

// ---------------------------------------------------------------- email change

#[tokio::test]
async fn an_email_change_of_a_must_verify_account_waits_and_mails_the_new_address() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(must_verify(true)));
    users
        .expect_check_password()
        .times(1)
        .returning(|_, _| Ok(()));
    users.expect_update_details().never();
    users
        .expect_update_details_pending()
        .withf(|uid, d| *uid == user().uid && d.email.as_str() == "eve@example.com")
        .times(1)
        .returning(|_, d| {
            Ok(User {
                pending_email: Some(d.email.into_inner()),
                has_factor: false,
                ..must_verify(true)
            })
        });
    let mut tokens = MockTokenService::new();
    tokens
        .expect_end_other_sessions()
        .with(eq(user().uid), eq(SID))
        .times(1)
        .returning(|_, _| Ok(0));
    let (mailer, sent) = recording_mailer();
    let updated = required(
        users,
        tokens,
        no_limits(),
        issuing_for("eve@example.com"),
        mailer,
    )
    .update_details(
        &caller(Some(SID)),
        details("eve@example.com"),
        Some(password("correct horse")),
        client(),
    )
    .await
    .unwrap();
    assert_eq!(updated.email, "ada@example.com", "the verified one stays");
    assert!(updated.email_verified);
    assert_eq!(updated.pending_email.as_deref(), Some("eve@example.com"));
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, "eve@example.com");
    assert!(sent[0].body.contains(&format!("{VERIFY_LINK}{TOKEN}")));
}

fn redeeming(email: &'static str) -> MockAccountTokenService {
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_redeem().returning(move |_, _| {
        Ok(Some(TokenHolder {
            uid: user().uid,
            email: email.into(),
        }))
    });
    account_tokens
}

#[tokio::test]
async fn the_link_to_a_pending_email_makes_it_the_accounts_and_tells_the_previous_address() {
    let mut users = MockUserService::new();
    users
        .expect_mark_email_verified()
        .returning(|_, _| Ok(false));
    users.expect_get().returning(|_| Ok(user()));
    users
        .expect_confirm_pending_email()
        .with(eq(user().uid), eq("eve@example.com"))
        .times(1)
        .returning(|_, _| Ok(true));
    let (mailer, sent) = recording_mailer();
    build_with(
        users,
        MockTokenService::new(),
        no_limits(),
        redeeming("eve@example.com"),
        mailer,
        FlowConfig {
            email_confirmation: EmailConfirmation::Required,
            security_mail: true,
            ..flow_config()
        },
    )
    .verify_email(TOKEN, client())
    .await
    .unwrap();
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, user().email, "to the previous address");
    assert!(
        sent[0].body.contains("e***@example.com"),
        "{}",
        sent[0].body
    );
    assert!(!sent[0].body.contains(TOKEN), "{}", sent[0].body);
}

#[tokio::test]
async fn the_link_to_a_pending_email_another_account_took_is_a_400_naming_token() {
    let mut users = MockUserService::new();
    users
        .expect_mark_email_verified()
        .returning(|_, _| Ok(false));
    users.expect_get().returning(|_| Ok(user()));
    users
        .expect_confirm_pending_email()
        .returning(|_, _| Err(AppError::Conflict("email already registered".into())));
    let mut limits = no_limits();
    limits.checkpoint();
    limits.expect_link_token_attempt().returning(|_| Ok(()));
    limits.expect_link_token_succeeded().never();
    let err = required(
        users,
        MockTokenService::new(),
        limits,
        redeeming("eve@example.com"),
        MockMailer::new(),
    )
    .verify_email(TOKEN, client())
    .await
    .unwrap_err();
    assert!(
        matches!(
            &err,
            AppError::BadRequest { invalid_args, .. }
                if invalid_args.len() == 1 && invalid_args[0].field == "token"
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- resend by address

fn resend_users(found: Option<User>) -> MockUserService {
    let mut users = MockUserService::new();
    users
        .expect_find_by_email()
        .times(1)
        .returning(move |_| Ok(found.clone()));
    users
}

#[tokio::test]
async fn a_resend_by_address_mails_an_unverified_account_within_its_limit() {
    let mut limits = MockRateLimitService::new();
    limits
        .expect_reset_request_attempt()
        .with(eq("10.0.0.1"))
        .times(1)
        .returning(|_| Ok(()));
    limits
        .expect_verification_mail_attempt()
        .with(eq(user().uid))
        .times(1)
        .returning(|_| Ok(()));
    let (mailer, sent) = recording_mailer();
    required(
        resend_users(Some(must_verify(false))),
        MockTokenService::new(),
        limits,
        issuing_for("ada@example.com"),
        mailer,
    )
    .resend_verification_to(credentials().0, client())
    .await
    .unwrap();
    let sent = mails(&sent, 1).await;
    assert_eq!(sent[0].to, "ada@example.com");
    assert!(sent[0].body.contains(&format!("{VERIFY_LINK}{TOKEN}")));
}

#[tokio::test]
async fn a_resend_by_address_answers_the_same_and_mails_nothing_for_an_unknown_or_verified_one() {
    for found in [None, Some(must_verify(true))] {
        let mut limits = MockRateLimitService::new();
        limits
            .expect_reset_request_attempt()
            .times(1)
            .returning(|_| Ok(()));
        limits.expect_verification_mail_attempt().never();
        let mut account_tokens = MockAccountTokenService::new();
        account_tokens.expect_issue().never();
        let mut mailer = MockMailer::new();
        mailer.expect_send().never();
        required(
            resend_users(found),
            MockTokenService::new(),
            limits,
            account_tokens,
            mailer,
        )
        .resend_verification_to(credentials().0, client())
        .await
        .unwrap();
        settle().await;
    }
}

#[tokio::test]
async fn a_resend_by_address_past_the_limits() {
    // Per source: 429, before any lookup.
    let mut limits = MockRateLimitService::new();
    limits
        .expect_reset_request_attempt()
        .returning(|_| Err(too_many()));
    let mut users = MockUserService::new();
    users.expect_find_by_email().never();
    let err = required(
        users,
        MockTokenService::new(),
        limits,
        MockAccountTokenService::new(),
        MockMailer::new(),
    )
    .resend_verification_to(credentials().0, client())
    .await
    .unwrap_err();
    assert!(is_too_many(&err), "{err:?}");

    // Per account: the same answer, no mail.
    let mut limits = MockRateLimitService::new();
    limits.expect_reset_request_attempt().returning(|_| Ok(()));
    limits
        .expect_verification_mail_attempt()
        .times(1)
        .returning(|_| Err(too_many()));
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_issue().never();
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();
    required(
        resend_users(Some(must_verify(false))),
        MockTokenService::new(),
        limits,
        account_tokens,
        mailer,
    )
    .resend_verification_to(credentials().0, client())
    .await
    .unwrap();
    settle().await;
}

// ---------------------------------------------------------------- the setting

#[test]
fn the_mode_parses_optional_and_required_only() {
    assert_eq!(
        EmailConfirmation::parse(None),
        Ok(EmailConfirmation::Optional)
    );
    assert_eq!(
        EmailConfirmation::parse(Some("optional")),
        Ok(EmailConfirmation::Optional)
    );
    assert_eq!(
        EmailConfirmation::parse(Some("required")),
        Ok(EmailConfirmation::Required)
    );
    for bad in ["", "REQUIRED", "on"] {
        let err = EmailConfirmation::parse(Some(bad)).unwrap_err();
        assert!(err.starts_with("EMAIL_CONFIRMATION:"), "{err}");
    }
    assert_eq!(EmailConfirmation::default().as_str(), "optional");
}
