//! Email verification and password reset against mocked services, token
//! store and mailer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mockall::Sequence;
use mockall::predicate::eq;

use super::super::tests::{
    SID, TOKEN, build, caller, client, credentials, details, hashing_users, is_too_many, no_limits,
    pair, password, too_many, user,
};
use super::*;
use crate::mail::MockMailer;
use crate::model::interfaces::{
    MockAccountTokenService, MockRateLimitService, MockTokenService, MockUserService,
};
use crate::model::{AccountService, SignUp, TokenHolder, UserDetails};

const VERIFY_LINK: &str = "https://app.example/verify-email?token=";
const RESET_LINK: &str = "https://app.example/reset-password?lang=en&token=";

/// A mailer that keeps what it is given.
fn recording_mailer() -> (MockMailer, Arc<Mutex<Vec<Mail>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let mut mailer = MockMailer::new();
    let record = Arc::clone(&sent);
    mailer
        .expect_send()
        .returning(move |mail| record.lock().unwrap().push(mail));
    (mailer, sent)
}

fn silent_mailer() -> MockMailer {
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();
    mailer
}

fn holder() -> TokenHolder {
    TokenHolder {
        uid: user().uid,
        email: user().email,
    }
}

fn is_invalid_token(err: &AppError) -> bool {
    matches!(
        err,
        AppError::BadRequest { invalid_args, .. }
            if invalid_args.len() == 1
                && invalid_args[0].field == "token"
                && invalid_args[0].message == INVALID_TOKEN
    )
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

#[test]
fn a_link_appends_the_token_as_a_query_parameter() {
    let token = Secret::new(TOKEN.into());
    assert_eq!(
        link("https://app.example/verify", &token),
        format!("https://app.example/verify?token={TOKEN}")
    );
    assert_eq!(
        link("https://app.example/reset?lang=en", &token),
        format!("https://app.example/reset?lang=en&token={TOKEN}")
    );
}

#[test]
fn lifetimes_read_in_the_largest_whole_unit() {
    for (secs, text) in [
        (86_400, "24 hours"),
        (3_600, "1 hour"),
        (5_400, "90 minutes"),
        (60, "1 minute"),
        (1, "1 second"),
        (61, "61 seconds"),
    ] {
        assert_eq!(lifetime(Duration::from_secs(secs)), text);
    }
}

// ------------------------------------------------------------ verification

#[tokio::test]
async fn a_sign_up_mails_one_verification_link_to_the_new_address() {
    let mut users = hashing_users();
    users
        .expect_signup()
        .times(1)
        .returning(|_, _, _| Ok(user()));
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().times(1).returning(|_, _| Ok(pair()));
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens
        .expect_issue()
        .withf(|u, purpose| u.uid == user().uid && *purpose == TokenPurpose::Verify)
        .times(1)
        .returning(|_, _| Ok(Secret::new(TOKEN.into())));
    let (mailer, sent) = recording_mailer();
    let (email, pw) = credentials();
    let got = build(users, tokens, no_limits(), account_tokens, mailer)
        .sign_up(email, pw, client())
        .await
        .unwrap();
    assert_eq!(got, SignUp::SignedIn(pair()));
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, "ada@example.com");
    assert_eq!(sent[0].subject, "Verify your email address");
    assert!(
        sent[0].body.contains(&format!("{VERIFY_LINK}{TOKEN}\n")),
        "{}",
        sent[0].body
    );
    assert!(sent[0].body.contains("within 24 hours"), "{}", sent[0].body);
}

#[tokio::test]
async fn a_sign_up_whose_verification_mail_cannot_be_prepared_still_succeeds() {
    let mut users = hashing_users();
    users.expect_signup().returning(|_, _, _| Ok(user()));
    users.expect_delete().never();
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().returning(|_, _| Ok(pair()));
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens
        .expect_issue()
        .times(1)
        .returning(|_, _| Err(AppError::unavailable("database is unavailable")));
    let (email, pw) = credentials();
    let got = build(users, tokens, no_limits(), account_tokens, silent_mailer())
        .sign_up(email, pw, client())
        .await
        .unwrap();
    assert_eq!(
        got,
        SignUp::SignedIn(pair()),
        "the account exists: the user can ask again"
    );
}

#[tokio::test]
async fn a_sign_up_that_is_undone_mails_nothing() {
    let mut users = hashing_users();
    users.expect_signup().returning(|_, _, _| Ok(user()));
    users.expect_delete().times(1).returning(|_| Ok(()));
    let mut tokens = MockTokenService::new();
    tokens
        .expect_issue()
        .returning(|_, _| Err(AppError::unavailable("token store is unavailable")));
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_issue().never();
    let (email, pw) = credentials();
    build(users, tokens, no_limits(), account_tokens, silent_mailer())
        .sign_up(email, pw, client())
        .await
        .unwrap_err();
}

fn moved_user(details: UserDetails) -> User {
    User {
        email: details.email.into_inner(),
        email_verified: false,
        ..user()
    }
}

#[tokio::test]
async fn an_email_change_mails_a_verification_link_to_the_new_address() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users.expect_check_password().returning(|_, _| Ok(()));
    users
        .expect_update_details()
        .times(1)
        .returning(|_, d| Ok(moved_user(d)));
    let mut tokens = MockTokenService::new();
    tokens.expect_end_other_sessions().returning(|_, _| Ok(0));
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens
        .expect_issue()
        .withf(|u, purpose| u.email == "eve@example.com" && *purpose == TokenPurpose::Verify)
        .times(1)
        .returning(|_, _| Ok(Secret::new(TOKEN.into())));
    let (mailer, sent) = recording_mailer();
    let updated = build(users, tokens, no_limits(), account_tokens, mailer)
        .update_details(
            &caller(Some(SID)),
            details("eve@example.com"),
            Some(password("correct horse")),
            client(),
        )
        .await
        .unwrap();
    assert!(!updated.email_verified);
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, "eve@example.com");
    assert!(sent[0].body.contains(&format!("{VERIFY_LINK}{TOKEN}")));
}

#[tokio::test]
async fn keeping_the_email_mails_nothing() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users.expect_update_details().returning(|_, _| Ok(user()));
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_issue().never();
    build(
        users,
        MockTokenService::new(),
        no_limits(),
        account_tokens,
        silent_mailer(),
    )
    .update_details(
        &caller(Some(SID)),
        details("ada@example.com"),
        None,
        client(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_verification_token_verifies_the_address_it_was_sent_to() {
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens
        .expect_redeem()
        .withf(|token, purpose| token == TOKEN && *purpose == TokenPurpose::Verify)
        .times(1)
        .returning(|_, _| Ok(Some(holder())));
    let mut users = MockUserService::new();
    users
        .expect_mark_email_verified()
        .with(eq(user().uid), eq("ada@example.com"))
        .times(1)
        .returning(|_, _| Ok(true));
    build(
        users,
        MockTokenService::new(),
        no_limits(),
        account_tokens,
        silent_mailer(),
    )
    .verify_email(TOKEN, client())
    .await
    .unwrap();
}

#[tokio::test]
async fn past_the_link_token_limit_a_verification_token_is_not_even_looked_up() {
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_redeem().never();
    let mut limits = MockRateLimitService::new();
    limits
        .expect_link_token_attempt()
        .with(eq("10.0.0.1"))
        .times(1)
        .returning(|_| {
            Err(AppError::TooManyRequests {
                retry_after_secs: 42,
            })
        });
    limits.expect_link_token_succeeded().never();
    let err = build(
        MockUserService::new(),
        MockTokenService::new(),
        limits,
        account_tokens,
        silent_mailer(),
    )
    .verify_email(TOKEN, client())
    .await
    .unwrap_err();
    assert!(is_too_many(&err), "{err:?}");
}

#[tokio::test]
async fn a_bad_used_or_expired_verification_token_is_a_400_naming_token() {
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_redeem().returning(|_, _| Ok(None));
    let mut users = MockUserService::new();
    users.expect_mark_email_verified().never();
    let err = build(
        users,
        MockTokenService::new(),
        no_limits(),
        account_tokens,
        silent_mailer(),
    )
    .verify_email("whatever", client())
    .await
    .unwrap_err();
    assert!(is_invalid_token(&err), "{err:?}");
}

#[tokio::test]
async fn a_verification_token_for_an_address_the_user_has_left_is_a_400() {
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens
        .expect_redeem()
        .returning(|_, _| Ok(Some(holder())));
    let mut users = MockUserService::new();
    users
        .expect_mark_email_verified()
        .times(1)
        .returning(|_, _| Ok(false));
    users.expect_get().returning(|_| Ok(user()));
    // Nor is it a pending email of the user's.
    users
        .expect_confirm_pending_email()
        .times(1)
        .returning(|_, _| Ok(false));
    let err = build(
        users,
        MockTokenService::new(),
        no_limits(),
        account_tokens,
        silent_mailer(),
    )
    .verify_email(TOKEN, client())
    .await
    .unwrap_err();
    assert!(is_invalid_token(&err), "{err:?}");
}

#[tokio::test]
async fn a_resend_is_counted_per_user_then_mails_a_new_link() {
    let mut limits = MockRateLimitService::new();
    limits
        .expect_verification_mail_attempt()
        .with(eq(user().uid))
        .times(1)
        .returning(|_| Ok(()));
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens
        .expect_issue()
        .withf(|u, purpose| u.uid == user().uid && *purpose == TokenPurpose::Verify)
        .times(1)
        .returning(|_, _| Ok(Secret::new(TOKEN.into())));
    let (mailer, sent) = recording_mailer();
    build(
        users,
        MockTokenService::new(),
        limits,
        account_tokens,
        mailer,
    )
    .resend_verification(&caller(Some(SID)))
    .await
    .unwrap();
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "ada@example.com");
}

#[tokio::test]
async fn a_resend_over_the_limit_is_refused_and_mails_nothing() {
    let mut limits = MockRateLimitService::new();
    limits
        .expect_verification_mail_attempt()
        .returning(|_| Err(too_many()));
    let mut users = MockUserService::new();
    users.expect_get().never();
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_issue().never();
    let err = build(
        users,
        MockTokenService::new(),
        limits,
        account_tokens,
        silent_mailer(),
    )
    .resend_verification(&caller(Some(SID)))
    .await
    .unwrap_err();
    assert!(is_too_many(&err), "{err:?}");
}

#[tokio::test]
async fn a_resend_for_a_verified_address_is_a_conflict() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| {
        Ok(User {
            email_verified: true,
            ..user()
        })
    });
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_issue().never();
    let err = build(
        users,
        MockTokenService::new(),
        no_limits(),
        account_tokens,
        silent_mailer(),
    )
    .resend_verification(&caller(Some(SID)))
    .await
    .unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m == ALREADY_VERIFIED),
        "{err:?}"
    );
}

// ------------------------------------------------------------ reset request

fn ada() -> Email {
    Email::parse("ada@example.com").unwrap()
}

/// Limits that count a reset of `ada@example.com` from the client's address.
fn reset_limits() -> MockRateLimitService {
    let mut limits = MockRateLimitService::new();
    limits
        .expect_reset_request_attempt()
        .with(eq("10.0.0.1"))
        .times(1)
        .returning(|_| Ok(()));
    limits
        .expect_reset_mail_attempt()
        .with(eq("ada@example.com"))
        .times(1)
        .returning(|_| Ok(()));
    limits
}

#[tokio::test]
async fn a_reset_of_a_known_email_mails_a_link_to_it() {
    let mut users = MockUserService::new();
    users
        .expect_find_by_email()
        .withf(|e| e.as_str() == "ada@example.com")
        .times(1)
        .returning(|_| Ok(Some(user())));
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens
        .expect_issue()
        .withf(|u, purpose| u.uid == user().uid && *purpose == TokenPurpose::Reset)
        .times(1)
        .returning(|_, _| Ok(Secret::new(TOKEN.into())));
    let (mailer, sent) = recording_mailer();
    build(
        users,
        MockTokenService::new(),
        reset_limits(),
        account_tokens,
        mailer,
    )
    .request_password_reset(ada(), client())
    .await
    .unwrap();
    let sent = mails(&sent, 1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].to.as_str(), sent[0].subject.as_str()),
        ("ada@example.com", "Reset your password")
    );
    assert!(
        sent[0].body.contains(&format!("{RESET_LINK}{TOKEN}\n")),
        "{}",
        sent[0].body
    );
    assert!(sent[0].body.contains("within 1 hour"), "{}", sent[0].body);
}

#[tokio::test]
async fn a_reset_of_an_unknown_email_answers_the_same_and_stores_and_mails_nothing() {
    let mut users = MockUserService::new();
    users
        .expect_find_by_email()
        .times(1)
        .returning(|_| Ok(None));
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_issue().never();
    let answer = build(
        users,
        MockTokenService::new(),
        reset_limits(),
        account_tokens,
        silent_mailer(),
    )
    .request_password_reset(ada(), client())
    .await;
    assert!(answer.is_ok(), "{answer:?}");
    tokio::task::yield_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_to_a_known_email_does_not_wait_for_the_token_or_the_mail() {
    let mut users = MockUserService::new();
    users.expect_find_by_email().returning(|_| Ok(Some(user())));
    let mut account_tokens = MockAccountTokenService::new();
    // Storing the token does not end until the test lets it: an answer that
    // waited for it (or for the mail after it) would never come first.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    account_tokens
        .expect_issue()
        .times(1)
        .returning(move |_, _| {
            let _ = released
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(60));
            Ok(Secret::new(TOKEN.into()))
        });
    let (mailer, sent) = recording_mailer();
    let svc = build(
        users,
        MockTokenService::new(),
        reset_limits(),
        account_tokens,
        mailer,
    );
    tokio::time::timeout(
        Duration::from_secs(30),
        svc.request_password_reset(ada(), client()),
    )
    .await
    .expect("answered while the token is still being stored")
    .unwrap();
    assert!(sent.lock().unwrap().is_empty(), "not yet");
    release.send(()).unwrap();
    assert_eq!(mails(&sent, 1).await.len(), 1, "sent all the same");
}

#[tokio::test]
async fn a_reset_over_the_source_limit_is_refused_before_anything_else() {
    let mut limits = MockRateLimitService::new();
    limits
        .expect_reset_request_attempt()
        .returning(|_| Err(too_many()));
    limits.expect_reset_mail_attempt().never();
    let mut users = MockUserService::new();
    users.expect_find_by_email().never();
    let err = build(
        users,
        MockTokenService::new(),
        limits,
        MockAccountTokenService::new(),
        silent_mailer(),
    )
    .request_password_reset(ada(), client())
    .await
    .unwrap_err();
    assert!(is_too_many(&err), "{err:?}");
}

#[tokio::test]
async fn a_reset_over_the_email_limit_answers_the_same_and_mails_nothing() {
    let mut limits = MockRateLimitService::new();
    limits.expect_reset_request_attempt().returning(|_| Ok(()));
    limits
        .expect_reset_mail_attempt()
        .returning(|_| Err(too_many()));
    let mut users = MockUserService::new();
    users.expect_find_by_email().never();
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_issue().never();
    build(
        users,
        MockTokenService::new(),
        limits,
        account_tokens,
        silent_mailer(),
    )
    .request_password_reset(ada(), client())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_reset_whose_limits_cannot_be_counted_is_passed_on() {
    let mut limits = MockRateLimitService::new();
    limits.expect_reset_request_attempt().returning(|_| Ok(()));
    limits
        .expect_reset_mail_attempt()
        .returning(|_| Err(AppError::unavailable("token store is unavailable")));
    let err = build(
        MockUserService::new(),
        MockTokenService::new(),
        limits,
        MockAccountTokenService::new(),
        silent_mailer(),
    )
    .request_password_reset(ada(), client())
    .await
    .unwrap_err();
    assert!(
        matches!(err, AppError::ServiceUnavailable { .. }),
        "{err:?}"
    );
}

// ------------------------------------------------------------ reset confirm

const NEW_HASH: &str = "$argon2id$reset";

/// The services of a confirmation, each step once and in order: the token
/// looked at, the new password hashed for the client's address, the token
/// used up, the hash stored, every session ended, the limits cleared.
fn confirming() -> AccountServiceImpl {
    let mut seq = Sequence::new();
    let mut account_tokens = MockAccountTokenService::new();
    let mut users = MockUserService::new();
    let mut tokens = MockTokenService::new();
    let mut limits = MockRateLimitService::new();
    limits
        .expect_link_token_attempt()
        .with(eq("10.0.0.1"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    account_tokens
        .expect_peek()
        .withf(|token, purpose| token == TOKEN && *purpose == TokenPurpose::Reset)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(Some(holder())));
    users
        .expect_hash_password()
        .withf(|pw, source| pw.expose() == "a new passphrase" && source == "10.0.0.1")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(NEW_HASH.into()));
    account_tokens
        .expect_redeem()
        .withf(|token, purpose| token == TOKEN && *purpose == TokenPurpose::Reset)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(Some(holder())));
    users
        .expect_reset_password()
        .with(eq(user().uid), eq("ada@example.com"), eq(NEW_HASH))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(true));
    tokens
        .expect_password_changed()
        .with(eq(user().uid), eq(None), eq(NEW_HASH))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(3));
    limits
        .expect_clear_sign_in()
        .with(eq("ada@example.com"), eq("10.0.0.1"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    limits
        .expect_link_token_succeeded()
        .with(eq("10.0.0.1"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    build(users, tokens, limits, account_tokens, silent_mailer())
}

#[tokio::test]
async fn a_reset_stores_the_new_hash_ends_every_session_and_clears_the_sign_in_limits() {
    confirming()
        .confirm_password_reset(TOKEN, password("a new passphrase"), client())
        .await
        .unwrap();
}

/// The services of a confirmation whose token looks fine until `redeem`.
fn confirm_with(
    peek: Option<TokenHolder>,
    hashed: AppResult<String>,
    redeemed: Option<TokenHolder>,
    still_the_users: bool,
) -> (MockUserService, MockTokenService, MockAccountTokenService) {
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens
        .expect_peek()
        .return_once(move |_, _| Ok(peek));
    let mut users = MockUserService::new();
    let mut hashed = Some(hashed);
    users
        .expect_hash_password()
        .returning(move |_, _| hashed.take().expect("hashed once"));
    account_tokens
        .expect_redeem()
        .return_once(move |_, _| Ok(redeemed));
    users
        .expect_reset_password()
        .returning(move |_, _, _| Ok(still_the_users));
    (users, MockTokenService::new(), account_tokens)
}

#[tokio::test]
async fn a_bad_used_or_expired_reset_token_is_a_400_and_costs_no_hash() {
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens.expect_peek().returning(|_, _| Ok(None));
    account_tokens.expect_redeem().never();
    let mut users = MockUserService::new();
    users.expect_hash_password().never();
    users.expect_reset_password().never();
    let mut tokens = MockTokenService::new();
    tokens.expect_password_changed().never();
    let err = build(users, tokens, no_limits(), account_tokens, silent_mailer())
        .confirm_password_reset("nope", password("a new passphrase"), client())
        .await
        .unwrap_err();
    assert!(is_invalid_token(&err), "{err:?}");
}

#[tokio::test]
async fn a_token_used_up_meanwhile_is_a_400_and_changes_nothing() {
    let (mut users, mut tokens, account_tokens) =
        confirm_with(Some(holder()), Ok(NEW_HASH.into()), None, true);
    users.checkpoint();
    users
        .expect_hash_password()
        .times(1)
        .returning(|_, _| Ok(NEW_HASH.into()));
    users.expect_reset_password().never();
    tokens.expect_password_changed().never();
    let err = build(users, tokens, no_limits(), account_tokens, silent_mailer())
        .confirm_password_reset(TOKEN, password("a new passphrase"), client())
        .await
        .unwrap_err();
    assert!(is_invalid_token(&err), "{err:?}");
}

#[tokio::test]
async fn a_full_hashing_queue_does_not_use_the_token_up() {
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens
        .expect_peek()
        .returning(|_, _| Ok(Some(holder())));
    account_tokens.expect_redeem().never();
    let mut users = MockUserService::new();
    users.expect_hash_password().returning(|_, _| {
        Err(AppError::Overloaded {
            retry_after_secs: 1,
        })
    });
    let err = build(
        users,
        MockTokenService::new(),
        no_limits(),
        account_tokens,
        silent_mailer(),
    )
    .confirm_password_reset(TOKEN, password("a new passphrase"), client())
    .await
    .unwrap_err();
    assert!(matches!(err, AppError::Overloaded { .. }), "{err:?}");
}

#[tokio::test]
async fn a_reset_mailed_to_an_address_the_user_has_left_is_a_400_and_ends_no_session() {
    let (users, mut tokens, account_tokens) =
        confirm_with(Some(holder()), Ok(NEW_HASH.into()), Some(holder()), false);
    tokens.expect_password_changed().never();
    let mut limits = MockRateLimitService::new();
    limits.expect_clear_sign_in().never();
    limits
        .expect_link_token_attempt()
        .times(1)
        .returning(|_| Ok(()));
    limits.expect_link_token_succeeded().never();
    let err = build(users, tokens, limits, account_tokens, silent_mailer())
        .confirm_password_reset(TOKEN, password("a new passphrase"), client())
        .await
        .unwrap_err();
    assert!(is_invalid_token(&err), "{err:?}");
}

#[tokio::test]
async fn limits_that_cannot_be_cleared_do_not_fail_the_reset() {
    let (users, mut tokens, account_tokens) =
        confirm_with(Some(holder()), Ok(NEW_HASH.into()), Some(holder()), true);
    tokens
        .expect_password_changed()
        .times(1)
        .returning(|_, _, _| Ok(0));
    let mut limits = MockRateLimitService::new();
    limits
        .expect_clear_sign_in()
        .returning(|_, _| Err(AppError::unavailable("token store is unavailable")));
    limits.expect_link_token_attempt().returning(|_| Ok(()));
    limits
        .expect_link_token_succeeded()
        .returning(|_| Err(AppError::unavailable("token store is unavailable")));
    build(users, tokens, limits, account_tokens, silent_mailer())
        .confirm_password_reset(TOKEN, password("a new passphrase"), client())
        .await
        .unwrap();
}

#[tokio::test]
async fn sessions_that_cannot_be_ended_fail_the_reset_with_the_store_error() {
    let (users, mut tokens, account_tokens) =
        confirm_with(Some(holder()), Ok(NEW_HASH.into()), Some(holder()), true);
    tokens
        .expect_password_changed()
        .returning(|_, _, _| Err(AppError::unavailable("token store is unavailable")));
    let err = build(users, tokens, no_limits(), account_tokens, silent_mailer())
        .confirm_password_reset(TOKEN, password("a new passphrase"), client())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::ServiceUnavailable { .. }),
        "{err:?}"
    );
}
