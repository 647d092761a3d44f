//! The use cases against mocked user and token services.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mockall::predicate::eq;

use super::*;
use crate::mail::MockMailer;
use crate::model::interfaces::{
    MockAccountTokenService, MockFactorRepository, MockRateLimitService, MockTokenService,
    MockUserService,
};
use crate::model::{Assurance, Audience, RefreshClaims};
use crate::secret::Secret;

pub(super) const SID: Uuid = Uuid::from_u128(0x5e55);

pub(super) fn user() -> User {
    User {
        uid: Uuid::from_u128(0x1234),
        email: "ada@example.com".into(),
        password_hash: "$argon2id$…".into(),
        name: String::new(),
        image_url: String::new(),
        website: String::new(),
        email_verified: false,
        must_verify: false,
        pending_email: None,
        has_factor: false,
    }
}

pub(super) fn pair() -> TokenPair {
    TokenPair {
        id_token: "id".into(),
        refresh_token: "refresh".into(),
    }
}

pub(super) fn client() -> ClientInfo {
    ClientInfo::new("curl/8", "10.0.0.1")
}

pub(super) fn caller(sid: Option<Uuid>) -> IdClaims {
    IdClaims {
        sub: user().uid,
        iss: "account".into(),
        aud: Audience::One("domain-services".into()),
        iat: 1,
        exp: 2,
        nbf: None,
        jti: None,
        email: user().email,
        email_verified: false,
        name: String::new(),
        sid: sid.map(|s| s.to_string()),
        auth_time: Some(1),
        acr: Some("aal1".into()),
        amr: vec!["pwd".into()],
    }
}

fn refresh_claims() -> RefreshClaims {
    RefreshClaims {
        sub: user().uid,
        jti: Uuid::from_u128(0x77),
        iat: 1,
        exp: 2,
        sid: Some(SID),
        auth_time: Some(1),
        acr: None,
        amr: None,
    }
}

fn service(users: MockUserService, tokens: MockTokenService) -> AccountServiceImpl {
    service_with(users, tokens, no_limits())
}

fn service_with(
    users: MockUserService,
    tokens: MockTokenService,
    limits: MockRateLimitService,
) -> AccountServiceImpl {
    build(
        users,
        tokens,
        limits,
        issuing(),
        MockMailer::new().accepting(),
    )
}

/// The use cases over these mocks, with the links of [`flow_config`].
pub(super) fn build(
    users: MockUserService,
    tokens: MockTokenService,
    limits: MockRateLimitService,
    account_tokens: MockAccountTokenService,
    mailer: MockMailer,
) -> AccountServiceImpl {
    build_with(users, tokens, limits, account_tokens, mailer, flow_config())
}

/// [`build`] with flows of `config`.
pub(super) fn build_with(
    users: MockUserService,
    tokens: MockTokenService,
    limits: MockRateLimitService,
    account_tokens: MockAccountTokenService,
    mailer: MockMailer,
    config: FlowConfig,
) -> AccountServiceImpl {
    AccountServiceImpl::new(
        Arc::new(users),
        Arc::new(tokens),
        Arc::new(limits),
        Arc::new(account_tokens),
        Arc::new(mailer),
        config,
        mfa_with(no_factors()),
    )
}

/// A factor store of users without a second factor.
pub(super) fn no_factors() -> MockFactorRepository {
    let mut factors = MockFactorRepository::new();
    factors.expect_has_factor().returning(|_| Ok(false));
    factors
}

/// The second-factor set-up over `factors`, with a data key.
pub(super) fn mfa_with(factors: MockFactorRepository) -> Mfa {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    Mfa {
        factors: Arc::new(factors),
        data_key: Some(Arc::new(
            crate::keys::DataKey::from_base64(&key).expect("a data key"),
        )),
        passkeys: Err("not in these tests".into()),
        config: MfaConfig {
            issuer: "account.test".into(),
            pending_ttl: Duration::from_secs(600),
            reauth_max_age: Duration::from_secs(300),
            ceremony_ttl: Duration::from_secs(300),
        },
    }
}

pub(super) fn flow_config() -> FlowConfig {
    FlowConfig {
        verify_email_url: "https://app.example/verify-email".into(),
        reset_password_url: "https://app.example/reset-password?lang=en".into(),
        verify_token_ttl: Duration::from_secs(86_400),
        reset_token_ttl: Duration::from_secs(3_600),
        email_confirmation: EmailConfirmation::Optional,
        account_url: "https://app.example/account".into(),
        // On in the tests of `notices.rs` and over HTTP (`tests/api`).
        security_mail: false,
    }
}

/// The token [`issuing`] hands out.
pub(super) const TOKEN: &str = "Tq3lk1zq8gE6b4C1y8wJf0K3o9N2xS7vR5uA4mD6hPe";

/// Account tokens that issue [`TOKEN`] for anything.
pub(super) fn issuing() -> MockAccountTokenService {
    let mut account_tokens = MockAccountTokenService::new();
    account_tokens
        .expect_issue()
        .returning(|_, _| Ok(Secret::new(TOKEN.into())));
    account_tokens
}

pub(super) trait Accepting {
    /// Takes every mail it is given.
    fn accepting(self) -> Self;
}

impl Accepting for MockMailer {
    fn accepting(mut self) -> Self {
        self.expect_send().returning(|_| ());
        self
    }
}

/// Limits that let every attempt in.
pub(super) fn no_limits() -> MockRateLimitService {
    let mut limits = MockRateLimitService::new();
    limits.expect_sign_in_attempt().returning(|_, _| Ok(()));
    limits.expect_sign_in_succeeded().returning(|_, _| Ok(()));
    limits.expect_sign_up_attempt().returning(|_| Ok(()));
    limits.expect_reset_request_attempt().returning(|_| Ok(()));
    limits.expect_reset_mail_attempt().returning(|_| Ok(()));
    limits
        .expect_verification_mail_attempt()
        .returning(|_| Ok(()));
    limits.expect_clear_sign_in().returning(|_, _| Ok(()));
    limits.expect_link_token_attempt().returning(|_| Ok(()));
    limits.expect_link_token_succeeded().returning(|_| Ok(()));
    limits
}

pub(super) fn credentials() -> (Email, Password) {
    (
        Email::parse("ada@example.com").unwrap(),
        Password::parse("correct horse").unwrap(),
    )
}

/// A user service that hashes sign-up passwords for the client's IP.
pub(super) fn hashing_users() -> MockUserService {
    let mut users = MockUserService::new();
    users
        .expect_hash_password()
        .withf(|_, source| source == client().ip)
        .returning(|_, _| Ok("$argon2id$new".into()));
    users
}

pub(super) fn password(s: &str) -> Password {
    Password::parse(s).unwrap()
}

fn is_invalid_token(err: &AppError) -> bool {
    matches!(
        err,
        AppError::Authorization { message, invalid_token: true } if message == REFRESH_TOKEN_REFUSED
    )
}

// ------------------------------------------------------------ sign-up / sign-in

#[tokio::test]
async fn sign_up_creates_the_user_and_starts_its_first_session_with_the_client() {
    let mut users = hashing_users();
    users
        .expect_signup()
        .withf(|_, hash, _| hash == "$argon2id$new")
        .times(1)
        .returning(|_, _, _| Ok(user()));
    users.expect_delete().never();
    let mut tokens = MockTokenService::new();
    tokens
        .expect_issue()
        .withf(|u, c| u.uid == user().uid && *c == client())
        .times(1)
        .returning(|_, _| Ok(pair()));
    let (email, password) = credentials();
    let got = service(users, tokens)
        .sign_up(email, password, client())
        .await
        .unwrap();
    assert_eq!(got, SignUp::SignedIn(pair()));
}

#[tokio::test]
async fn a_sign_up_whose_pair_cannot_be_issued_is_undone_and_the_error_passed_on() {
    let mut users = hashing_users();
    users
        .expect_signup()
        .times(1)
        .returning(|_, _, _| Ok(user()));
    users
        .expect_delete()
        .with(eq(user().uid))
        .times(1)
        .returning(|_| Ok(()));
    let mut tokens = MockTokenService::new();
    tokens
        .expect_issue()
        .times(1)
        .returning(|_, _| Err(AppError::unavailable("token store is unavailable")));
    let (email, password) = credentials();
    let err = service(users, tokens)
        .sign_up(email, password, client())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::ServiceUnavailable { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_conflicting_sign_up_issues_nothing_and_undoes_nothing() {
    let mut users = hashing_users();
    users
        .expect_signup()
        .returning(|_, _, _| Err(AppError::Conflict("email already registered".into())));
    users.expect_delete().never();
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().never();
    let (email, password) = credentials();
    let err = service(users, tokens)
        .sign_up(email, password, client())
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Conflict(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_runs_to_its_end_and_undoes_itself_even_when_the_caller_goes_away() {
    let deleted = Arc::new(AtomicBool::new(false));
    let mut users = hashing_users();
    users.expect_signup().returning(|_, _, _| Ok(user()));
    users.expect_delete().times(1).returning({
        let deleted = Arc::clone(&deleted);
        move |_| {
            deleted.store(true, Ordering::SeqCst);
            Ok(())
        }
    });
    let mut tokens = MockTokenService::new();
    // Issuing is slow and then fails: the caller gives up before that.
    tokens.expect_issue().returning(|_, _| {
        std::thread::sleep(Duration::from_millis(200));
        Err(AppError::unavailable("token store is unavailable"))
    });
    let svc = service(users, tokens);
    let (email, password) = credentials();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(20),
        svc.sign_up(email, password, client()),
    )
    .await;
    assert!(gave_up.is_err(), "the caller stopped waiting");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !deleted.load(Ordering::SeqCst) {
        assert!(tokio::time::Instant::now() < deadline, "never undone");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_sign_up_refused_by_a_full_hashing_queue_creates_nothing() {
    let mut users = MockUserService::new();
    users.expect_hash_password().returning(|_, _| {
        Err(AppError::Overloaded {
            retry_after_secs: 1,
        })
    });
    users.expect_signup().never();
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().never();
    let (email, password) = credentials();
    let err = service(users, tokens)
        .sign_up(email, password, client())
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Overloaded { .. }), "{err:?}");
}

#[tokio::test]
async fn sign_in_starts_a_session_for_the_user_the_credentials_match() {
    let mut users = MockUserService::new();
    users
        .expect_signin()
        .withf(|_, _, source| source == client().ip)
        .times(1)
        .returning(|_, _, _| Ok(user()));
    let mut tokens = MockTokenService::new();
    tokens
        .expect_issue_with()
        .withf(|u, c, a| u.uid == user().uid && *c == client() && *a == Assurance::password())
        .times(1)
        .returning(|_, _, _| Ok(pair()));
    let (email, password) = credentials();
    assert_eq!(
        service(users, tokens)
            .sign_in(email, password, client())
            .await
            .unwrap(),
        SignIn::Tokens(pair())
    );
}

// ------------------------------------------------------------ refresh: the decision table

/// A refresh whose store step comes to `rotation`.
async fn refresh_coming_to(rotation: Rotation) -> AppResult<TokenPair> {
    let mut tokens = MockTokenService::new();
    tokens
        .expect_validate_refresh_token()
        .with(eq("the-refresh-token"))
        .times(1)
        .returning(|_| Ok(refresh_claims()));
    tokens
        .expect_rotate()
        .withf(|u, previous, presented, c| {
            u.uid == user().uid
                && *previous == refresh_claims()
                && presented == "the-refresh-token"
                && *c == client()
        })
        .times(1)
        .return_once(move |_, _, _, _| Ok(rotation));
    let mut users = MockUserService::new();
    users
        .expect_get()
        .with(eq(user().uid))
        .times(1)
        .returning(|_| Ok(user()));
    service(users, tokens)
        .refresh("the-refresh-token", client())
        .await
}

/// `/me` shows the user's profile (which may be served from memory), and
/// never asks for the row the decisions read.
#[tokio::test]
async fn me_reads_the_profile_not_the_row_for_decisions() {
    let mut users = MockUserService::new();
    users.expect_get().never();
    users
        .expect_profile()
        .with(eq(user().uid))
        .times(1)
        .returning(|_| Ok(user()));
    let shown = service(users, MockTokenService::new())
        .me(user().uid)
        .await
        .unwrap();
    assert_eq!(shown, user());
}

#[tokio::test]
async fn a_rotated_refresh_answers_the_new_pair() {
    assert_eq!(
        refresh_coming_to(Rotation::Rotated(pair())).await.unwrap(),
        pair()
    );
}

#[tokio::test]
async fn a_replay_within_the_grace_window_answers_the_same_successor() {
    assert_eq!(
        refresh_coming_to(Rotation::Replayed(pair())).await.unwrap(),
        pair()
    );
}

#[tokio::test]
async fn a_reused_refresh_token_is_refresh_token_reused() {
    let err = refresh_coming_to(Rotation::Reused).await.unwrap_err();
    assert!(matches!(err, AppError::RefreshTokenReused), "{err:?}");
}

#[tokio::test]
async fn a_refresh_of_an_ended_session_is_an_ordinary_invalid_token() {
    let err = refresh_coming_to(Rotation::Ended).await.unwrap_err();
    assert!(is_invalid_token(&err), "{err:?}");
}

#[tokio::test]
async fn a_refresh_token_that_does_not_verify_touches_neither_users_nor_the_store() {
    let mut tokens = MockTokenService::new();
    tokens
        .expect_validate_refresh_token()
        .returning(|_| Err(AppError::invalid_token(REFRESH_TOKEN_REFUSED)));
    tokens.expect_rotate().never();
    let mut users = MockUserService::new();
    users.expect_get().never();
    let err = service(users, tokens)
        .refresh("forged", client())
        .await
        .unwrap_err();
    assert!(is_invalid_token(&err), "{err:?}");
}

#[tokio::test]
async fn a_refresh_for_a_user_that_no_longer_exists_is_an_invalid_token_not_a_404() {
    let mut tokens = MockTokenService::new();
    tokens
        .expect_validate_refresh_token()
        .returning(|_| Ok(refresh_claims()));
    tokens.expect_rotate().never();
    let mut users = MockUserService::new();
    users
        .expect_get()
        .returning(|_| Err(AppError::NotFound("no such user".into())));
    let err = service(users, tokens)
        .refresh("token", client())
        .await
        .unwrap_err();
    assert!(is_invalid_token(&err), "{err:?}");
}

#[tokio::test]
async fn a_refresh_while_a_store_is_down_is_unavailable_not_unauthorized() {
    let mut tokens = MockTokenService::new();
    tokens
        .expect_validate_refresh_token()
        .returning(|_| Ok(refresh_claims()));
    tokens.expect_rotate().never();
    let mut users = MockUserService::new();
    users
        .expect_get()
        .returning(|_| Err(AppError::unavailable("database is unavailable")));
    let err = service(users, tokens)
        .refresh("token", client())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::ServiceUnavailable { .. }),
        "{err:?}"
    );
}

// ------------------------------------------------------------ sign-out and sessions

#[tokio::test]
async fn global_sign_out_revokes_every_key_of_the_user() {
    let mut tokens = MockTokenService::new();
    tokens
        .expect_revoke_all()
        .with(eq(user().uid))
        .times(1)
        .returning(|_| Ok(4));
    service(MockUserService::new(), tokens)
        .sign_out(&caller(Some(SID)), SignOutScope::Global)
        .await
        .unwrap();
}

#[tokio::test]
async fn local_sign_out_ends_the_callers_session_and_others_every_other() {
    let mut tokens = MockTokenService::new();
    tokens
        .expect_end_session()
        .with(eq(user().uid), eq(SID))
        .times(1)
        .returning(|_, _| Ok(true));
    tokens
        .expect_end_other_sessions()
        .with(eq(user().uid), eq(SID))
        .times(1)
        .returning(|_, _| Ok(2));
    tokens.expect_revoke_all().never();
    let svc = service(MockUserService::new(), tokens);
    svc.sign_out(&caller(Some(SID)), SignOutScope::Local)
        .await
        .unwrap();
    svc.sign_out(&caller(Some(SID)), SignOutScope::Others)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_scoped_sign_out_with_an_id_token_from_before_sessions_is_a_400() {
    let mut tokens = MockTokenService::new();
    tokens.expect_end_session().never();
    tokens.expect_end_other_sessions().never();
    let svc = service(MockUserService::new(), tokens);
    for scope in [SignOutScope::Local, SignOutScope::Others] {
        let err = svc.sign_out(&caller(None), scope).await.unwrap_err();
        assert!(matches!(err, AppError::BadRequest { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn ending_a_session_that_is_not_the_callers_is_not_found() {
    let mut tokens = MockTokenService::new();
    tokens.expect_end_session().returning(|_, _| Ok(false));
    let err = service(MockUserService::new(), tokens)
        .end_session(&caller(Some(SID)), Uuid::from_u128(9))
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn naming_a_session_passes_the_callers_user_the_id_and_the_name_on() {
    let other = Uuid::from_u128(9);
    let mut tokens = MockTokenService::new();
    tokens
        .expect_rename_session()
        .withf(move |uid, sid, name| {
            *uid == user().uid
                && *sid == other
                && name.as_ref().map(SessionName::as_str) == Some("work laptop")
        })
        .times(1)
        .returning(|_, _, _| Ok(true));
    tokens
        .expect_rename_session()
        .withf(move |_, sid, name| *sid == other && name.is_none())
        .times(1)
        .returning(|_, _, _| Ok(true));
    let svc = service(MockUserService::new(), tokens);
    let name = SessionName::parse("work laptop").unwrap();
    svc.rename_session(&caller(Some(SID)), other, Some(name))
        .await
        .unwrap();
    svc.rename_session(&caller(Some(SID)), other, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn naming_a_session_that_is_not_the_callers_is_not_found() {
    let mut tokens = MockTokenService::new();
    tokens
        .expect_rename_session()
        .returning(|_, _, _| Ok(false));
    let err = service(MockUserService::new(), tokens)
        .rename_session(&caller(Some(SID)), Uuid::from_u128(9), None)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::NotFound(_)), "{err:?}");
}

// ------------------------------------------------------------ re-authentication

#[tokio::test]
async fn a_password_change_checks_the_current_one_stores_the_new_one_and_ends_the_other_sessions() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users
        .expect_check_password()
        .withf(|u, p| u.uid == user().uid && p.expose() == "old password")
        .times(1)
        .returning(|_, _| Ok(()));
    users
        .expect_set_password()
        .withf(|uid, p| *uid == user().uid && p.expose() == "new password")
        .times(1)
        .returning(|_, _| Ok("$argon2id$new".into()));
    let mut tokens = MockTokenService::new();
    tokens
        .expect_password_changed()
        .withf(|uid, keep, hash| {
            *uid == user().uid && *keep == Some(SID) && hash == "$argon2id$new"
        })
        .times(1)
        .returning(|_, _, _| Ok(3));
    service(users, tokens)
        .change_password(
            &caller(Some(SID)),
            password("old password"),
            password("new password"),
            client(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_current_password_changes_nothing_and_is_forbidden() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users
        .expect_check_password()
        .returning(|_, _| Err(AppError::Forbidden("the current password is wrong".into())));
    users.expect_set_password().never();
    let mut tokens = MockTokenService::new();
    tokens.expect_end_other_sessions().never();
    tokens.expect_password_changed().never();
    let err = service(users, tokens)
        .change_password(
            &caller(Some(SID)),
            password("wrong password"),
            password("new password"),
            client(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
}

pub(super) fn details(email: &str) -> UserDetails {
    UserDetails {
        email: Email::parse(email).unwrap(),
        name: "Ada".into(),
        website: crate::model::Website::parse("").unwrap(),
    }
}

#[tokio::test]
async fn changing_the_email_without_the_current_password_is_a_400_naming_it() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users.expect_update_details().never();
    let err = service(users, MockTokenService::new())
        .update_details(
            &caller(Some(SID)),
            details("eve@example.com"),
            None,
            client(),
        )
        .await
        .unwrap_err();
    match err {
        AppError::BadRequest { invalid_args, .. } => {
            assert_eq!(invalid_args[0].field, "currentPassword")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn changing_the_email_with_the_current_password_ends_the_other_sessions() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users
        .expect_check_password()
        .times(1)
        .returning(|_, _| Ok(()));
    users
        .expect_update_details()
        .times(1)
        .returning(|_, _| Ok(user()));
    let mut tokens = MockTokenService::new();
    tokens
        .expect_end_other_sessions()
        .with(eq(user().uid), eq(SID))
        .times(1)
        .returning(|_, _| Ok(1));
    service(users, tokens)
        .update_details(
            &caller(Some(SID)),
            details("eve@example.com"),
            Some(password("correct horse")),
            client(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn keeping_the_email_needs_no_password_and_ends_no_session() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users.expect_check_password().never();
    users
        .expect_update_details()
        .times(1)
        .returning(|_, _| Ok(user()));
    let mut tokens = MockTokenService::new();
    tokens.expect_end_other_sessions().never();
    service(users, tokens)
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
async fn ready_needs_both_stores() {
    let mut users = MockUserService::new();
    users.expect_ready().returning(|| Ok(()));
    let mut tokens = MockTokenService::new();
    tokens
        .expect_ready()
        .returning(|| Err(AppError::unavailable("token store is unavailable")));
    let err = service(users, tokens).ready().await.unwrap_err();
    assert!(
        matches!(err, AppError::ServiceUnavailable { .. }),
        "{err:?}"
    );
}

// ------------------------------------------------------------ limits

pub(super) fn too_many() -> AppError {
    AppError::TooManyRequests {
        retry_after_secs: 42,
    }
}

pub(super) fn is_too_many(err: &AppError) -> bool {
    matches!(
        err,
        AppError::TooManyRequests {
            retry_after_secs: 42
        }
    )
}

#[tokio::test]
async fn a_sign_in_over_a_limit_is_refused_before_any_password_is_hashed() {
    let mut limits = MockRateLimitService::new();
    limits
        .expect_sign_in_attempt()
        .with(eq("ada@example.com"), eq("10.0.0.1"))
        .times(1)
        .returning(|_, _| Err(too_many()));
    limits.expect_sign_in_succeeded().never();
    let mut users = MockUserService::new();
    users.expect_signin().never();
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().never();
    let (email, password) = credentials();
    let err = service_with(users, tokens, limits)
        .sign_in(email, password, client())
        .await
        .unwrap_err();
    assert!(is_too_many(&err), "{err:?}");
}

#[tokio::test]
async fn a_sign_in_is_counted_first_and_given_back_once_the_password_checks_out() {
    let mut seq = mockall::Sequence::new();
    let mut limits = MockRateLimitService::new();
    let mut users = MockUserService::new();
    let mut tokens = MockTokenService::new();
    limits
        .expect_sign_in_attempt()
        .with(eq("ada@example.com"), eq("10.0.0.1"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    users
        .expect_signin()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(user()));
    limits
        .expect_sign_in_succeeded()
        .with(eq("ada@example.com"), eq("10.0.0.1"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    tokens
        .expect_issue_with()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(pair()));
    let email = Email::parse("Ada@Example.com").unwrap();
    let got = service_with(users, tokens, limits)
        .sign_in(email, password("correct horse"), client())
        .await
        .unwrap();
    assert_eq!(got, SignIn::Tokens(pair()));
}

#[tokio::test]
async fn a_failed_sign_in_stays_counted() {
    let mut limits = MockRateLimitService::new();
    limits
        .expect_sign_in_attempt()
        .times(1)
        .returning(|_, _| Ok(()));
    limits.expect_sign_in_succeeded().never();
    let mut users = MockUserService::new();
    users.expect_signin().returning(|_, _, _| {
        Err(AppError::unauthorized(
            "invalid email and password combination",
        ))
    });
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().never();
    let (email, password) = credentials();
    let err = service_with(users, tokens, limits)
        .sign_in(email, password, client())
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Authorization { .. }), "{err:?}");
}

#[tokio::test]
async fn a_give_back_that_fails_does_not_fail_the_sign_in() {
    let mut limits = MockRateLimitService::new();
    limits.expect_sign_in_attempt().returning(|_, _| Ok(()));
    limits
        .expect_sign_in_succeeded()
        .times(1)
        .returning(|_, _| Err(AppError::unavailable("token store is unavailable")));
    let mut users = MockUserService::new();
    users.expect_signin().returning(|_, _, _| Ok(user()));
    let mut tokens = MockTokenService::new();
    tokens
        .expect_issue_with()
        .times(1)
        .returning(|_, _, _| Ok(pair()));
    let (email, password) = credentials();
    let got = service_with(users, tokens, limits)
        .sign_in(email, password, client())
        .await
        .unwrap();
    assert_eq!(got, SignIn::Tokens(pair()));
}

#[tokio::test]
async fn a_sign_up_over_the_limit_is_refused_before_the_password_is_hashed() {
    let mut limits = MockRateLimitService::new();
    limits
        .expect_sign_up_attempt()
        .with(eq("10.0.0.1"))
        .times(1)
        .returning(|_| Err(too_many()));
    let mut users = MockUserService::new();
    users.expect_signup().never();
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().never();
    let (email, password) = credentials();
    let err = service_with(users, tokens, limits)
        .sign_up(email, password, client())
        .await
        .unwrap_err();
    assert!(is_too_many(&err), "{err:?}");
}

#[tokio::test]
async fn a_re_authentication_counts_as_a_sign_in_of_the_users_email_from_the_caller() {
    // Over the limit: no password is checked, nothing changes.
    let mut limits = MockRateLimitService::new();
    limits
        .expect_sign_in_attempt()
        .with(eq("ada@example.com"), eq("10.0.0.1"))
        .times(2)
        .returning(|_, _| Err(too_many()));
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users.expect_check_password().never();
    users.expect_set_password().never();
    users.expect_update_details().never();
    let mut tokens = MockTokenService::new();
    tokens.expect_end_other_sessions().never();
    tokens.expect_password_changed().never();
    let svc = service_with(users, tokens, limits);
    let err = svc
        .change_password(
            &caller(Some(SID)),
            password("guess one"),
            password("new password"),
            client(),
        )
        .await
        .unwrap_err();
    assert!(is_too_many(&err), "{err:?}");
    let err = svc
        .update_details(
            &caller(Some(SID)),
            details("eve@example.com"),
            Some(password("guess two")),
            client(),
        )
        .await
        .unwrap_err();
    assert!(is_too_many(&err), "{err:?}");
}

#[tokio::test]
async fn a_wrong_current_password_stays_counted_and_a_right_one_is_given_back() {
    let mut limits = MockRateLimitService::new();
    limits
        .expect_sign_in_attempt()
        .with(eq("ada@example.com"), eq("10.0.0.1"))
        .times(2)
        .returning(|_, _| Ok(()));
    limits
        .expect_sign_in_succeeded()
        .with(eq("ada@example.com"), eq("10.0.0.1"))
        .times(1)
        .returning(|_, _| Ok(()));
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users
        .expect_check_password()
        .withf(|_, p| p.expose() == "wrong password")
        .returning(|_, _| Err(AppError::Forbidden("the current password is wrong".into())));
    users
        .expect_check_password()
        .withf(|_, p| p.expose() == "old password")
        .returning(|_, _| Ok(()));
    users
        .expect_set_password()
        .times(1)
        .returning(|_, _| Ok("$argon2id$new".into()));
    let mut tokens = MockTokenService::new();
    tokens
        .expect_password_changed()
        .times(1)
        .returning(|_, _, _| Ok(0));
    let svc = service_with(users, tokens, limits);
    let err = svc
        .change_password(
            &caller(Some(SID)),
            password("wrong password"),
            password("new password"),
            client(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
    svc.change_password(
        &caller(Some(SID)),
        password("old password"),
        password("new password"),
        client(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn keeping_the_email_counts_nothing() {
    let mut limits = MockRateLimitService::new();
    limits.expect_sign_in_attempt().never();
    limits.expect_sign_in_succeeded().never();
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users
        .expect_update_details()
        .times(1)
        .returning(|_, _| Ok(user()));
    service_with(users, MockTokenService::new(), limits)
        .update_details(
            &caller(Some(SID)),
            details("ada@example.com"),
            Some(password("not needed")),
            client(),
        )
        .await
        .unwrap();
}

// ------------------------------------------------------------ account deletion

#[tokio::test]
async fn deleting_the_account_checks_the_password_signs_out_everywhere_then_removes_the_user() {
    let mut seq = mockall::Sequence::new();
    let mut users = MockUserService::new();
    let mut tokens = MockTokenService::new();
    users.expect_get().returning(|_| Ok(user()));
    users
        .expect_check_password()
        .withf(|u, p| u.uid == user().uid && p.expose() == "correct horse")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    tokens
        .expect_revoke_all()
        .with(eq(user().uid))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(2));
    users
        .expect_delete()
        .with(eq(user().uid))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    // Again, for a sign-in that raced the deletion.
    tokens
        .expect_revoke_all()
        .with(eq(user().uid))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(0));
    service(users, tokens)
        .delete_account(&caller(Some(SID)), password("correct horse"), client())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_password_deletes_nothing_is_forbidden_and_stays_counted() {
    let mut limits = MockRateLimitService::new();
    limits
        .expect_sign_in_attempt()
        .with(eq("ada@example.com"), eq("10.0.0.1"))
        .times(1)
        .returning(|_, _| Ok(()));
    limits.expect_sign_in_succeeded().never();
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users
        .expect_check_password()
        .returning(|_, _| Err(AppError::Forbidden("the current password is wrong".into())));
    users.expect_delete().never();
    let mut tokens = MockTokenService::new();
    tokens.expect_revoke_all().never();
    let err = service_with(users, tokens, limits)
        .delete_account(&caller(Some(SID)), password("wrong horse"), client())
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
}

#[tokio::test]
async fn with_the_token_store_down_nothing_is_deleted() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users.expect_check_password().returning(|_, _| Ok(()));
    users.expect_delete().never();
    let mut tokens = MockTokenService::new();
    tokens
        .expect_revoke_all()
        .returning(|_| Err(AppError::unavailable("token store is unavailable")));
    let err = service(users, tokens)
        .delete_account(&caller(Some(SID)), password("correct horse"), client())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::ServiceUnavailable { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_failed_second_sweep_does_not_fail_the_deletion() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users.expect_check_password().returning(|_, _| Ok(()));
    users.expect_delete().times(1).returning(|_| Ok(()));
    let mut tokens = MockTokenService::new();
    let mut calls = 0;
    tokens.expect_revoke_all().times(2).returning(move |_| {
        calls += 1;
        if calls == 1 {
            Ok(1)
        } else {
            Err(AppError::unavailable("token store is unavailable"))
        }
    });
    service(users, tokens)
        .delete_account(&caller(Some(SID)), password("correct horse"), client())
        .await
        .unwrap();
}
