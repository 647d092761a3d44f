//! The sign-in gate and the second step against mocked services: a user
//! with a factor never gets a pair from the password alone, and a wrong
//! code counts on the pending sign-in. Codes against the real stores run
//! in `tests/api/mfa.rs`.

use std::sync::Arc;

use super::tests::{client, mfa_with, no_limits, user};
use super::*;
use crate::mail::MockMailer;
use crate::model::interfaces::{
    MockAccountTokenService, MockFactorRepository, MockTokenService, MockUserService,
};
use crate::model::{
    AccountService, Factor, FactorKind, MfaChallenge, PendingSignIn, SecondFactorMethod, SignIn,
};

fn service(
    users: MockUserService,
    tokens: MockTokenService,
    factors: MockFactorRepository,
) -> AccountServiceImpl {
    let mut limits = no_limits();
    limits.expect_mfa_attempt().returning(|_| Ok(()));
    limits.expect_mfa_succeeded().returning(|_| Ok(()));
    AccountServiceImpl::new(
        Arc::new(users),
        Arc::new(tokens),
        Arc::new(limits),
        Arc::new(MockAccountTokenService::new()),
        Arc::new(MockMailer::new()),
        super::tests::flow_config(),
        mfa_with(factors),
    )
}

#[tokio::test]
async fn the_right_password_of_a_user_with_a_factor_answers_the_second_step_and_no_pair() {
    let mut users = MockUserService::new();
    users.expect_signin().returning(|_, _, _| {
        Ok(User {
            has_factor: true,
            ..user()
        })
    });
    let mut tokens = MockTokenService::new();
    tokens.expect_issue().never();
    tokens.expect_issue_with().never();
    tokens
        .expect_start_second_step()
        .times(1)
        .returning(|_| Ok(("mfa-token".into(), 300)));
    let mut factors = MockFactorRepository::new();
    factors.expect_recovery_codes_left().returning(|_| Ok(0));
    factors.expect_factors().returning(|uid| {
        Ok(vec![Factor {
            id: Uuid::from_u128(7),
            uid,
            kind: FactorKind::Totp,
            name: None,
            secret: Vec::new(),
            created_at: 1,
            confirmed_at: Some(2),
            last_used_at: None,
            last_step: None,
            credential: None,
            credential_id: None,
        }])
    });
    let got = service(users, tokens, factors)
        .sign_in(
            Email::parse("ada@example.com").unwrap(),
            Password::parse_for_signin("correct horse").unwrap(),
            client(),
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        SignIn::SecondFactor(MfaChallenge {
            token: "mfa-token".into(),
            expires_in: 300,
            methods: vec![SecondFactorMethod::Totp],
        }),
        "no recovery code left: not offered"
    );
}

#[tokio::test]
async fn a_wrong_code_counts_on_the_pending_sign_in_and_issues_nothing() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    let mut tokens = MockTokenService::new();
    let (uid, id) = (user().uid, Uuid::from_u128(7));
    tokens.expect_pending_second_step().returning(move |_| {
        Ok(Some(PendingSignIn {
            uid,
            id,
            credential: crate::service::token::credential_of(&user().password_hash),
        }))
    });
    let mut alive = vec![false, true];
    tokens
        .expect_second_step_failed()
        .times(2)
        .returning(move |_, _| Ok(alive.pop().unwrap()));
    tokens.expect_finish_second_step().never();
    tokens.expect_issue_with().never();
    let mut factors = MockFactorRepository::new();
    factors
        .expect_redeem_recovery_code()
        .returning(|_, _| Ok(false));
    let service = service(users, tokens, factors);
    let code = "0000-0000-0000-0000";
    let err = service
        .sign_in_second_step(
            "t",
            SecondFactorMethod::RecoveryCode,
            crate::model::SecondFactorProof::Code(code.into()),
            client(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Authorization { message, .. } if message.contains("wrong")),
        "{err:?}"
    );
    // The fifth: the pending sign-in is over.
    let err = service
        .sign_in_second_step(
            "t",
            SecondFactorMethod::RecoveryCode,
            crate::model::SecondFactorProof::Code(code.into()),
            client(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Authorization { message, .. } if message.contains("sign in again")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_password_changed_since_the_first_step_ends_the_pending_sign_in() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    let mut tokens = MockTokenService::new();
    tokens.expect_pending_second_step().returning(|_| {
        Ok(Some(PendingSignIn {
            uid: user().uid,
            id: Uuid::from_u128(7),
            credential: crate::service::token::credential_of("$argon2id$the-old-hash"),
        }))
    });
    tokens.expect_finish_second_step().never();
    tokens.expect_issue_with().never();
    let mut factors = MockFactorRepository::new();
    factors.expect_redeem_recovery_code().never();
    let err = service(users, tokens, factors)
        .sign_in_second_step(
            "t",
            SecondFactorMethod::RecoveryCode,
            crate::model::SecondFactorProof::Code("0000-0000-0000-0000".into()),
            client(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Authorization { message, .. } if message.contains("sign in again")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_sensitive_change_of_a_user_with_a_factor_needs_an_aal2_token() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_| Ok(user()));
    users.expect_check_password().never();
    users.expect_set_password().never();
    let mut factors = MockFactorRepository::new();
    factors.expect_has_factor().returning(|_| Ok(true));
    let service = service(users, MockTokenService::new(), factors);
    let caller = super::tests::caller(Some(super::tests::SID));
    let err = service
        .change_password(
            &caller,
            Password::parse_for_signin("correct horse").unwrap(),
            Password::parse("a new password").unwrap(),
            client(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::StepUp(crate::verifier::StepUp::Acr("aal2"))),
        "{err:?}"
    );
}
