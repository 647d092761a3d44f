//! The use cases: each endpoint's flow, composed of the user and token services.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::{AppError, AppResult, REFRESH_TOKEN_REFUSED};
use crate::jwks::JwkSet;
use crate::model::{
    AccountService, Email, IdClaims, Password, TokenPair, TokenService, User, UserDetails,
    UserService,
};

/// [`AccountService`] over a [`UserService`] and a [`TokenService`].
#[derive(Clone)]
pub struct AccountServiceImpl {
    users: Arc<dyn UserService>,
    tokens: Arc<dyn TokenService>,
}

impl AccountServiceImpl {
    pub fn new(users: Arc<dyn UserService>, tokens: Arc<dyn TokenService>) -> Self {
        Self { users, tokens }
    }

    /// Creates the user and its first pair; without a pair the account is
    /// removed again, so a retry once the token store is back succeeds.
    async fn sign_up_to_the_end(self, email: Email, password: Password) -> AppResult<TokenPair> {
        let user = self.users.signup(email, password).await?;
        match self.tokens.issue(&user).await {
            Ok(pair) => Ok(pair),
            Err(err) => {
                if let Err(undo) = self.users.delete(user.uid).await {
                    tracing::error!(uid = %user.uid, error = ?undo, "cannot undo a failed sign-up");
                }
                Err(err)
            }
        }
    }
}

#[async_trait]
impl AccountService for AccountServiceImpl {
    async fn sign_up(&self, email: Email, password: Password) -> AppResult<TokenPair> {
        // On a task of its own, so it runs to its end even when the request is
        // dropped (handler timeout, client gone): never left half done.
        tokio::spawn(self.clone().sign_up_to_the_end(email, password))
            .await
            .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("sign-up task failed")))?
    }

    async fn sign_in(&self, email: Email, password: Password) -> AppResult<TokenPair> {
        let user = self.users.signin(email, password).await?;
        self.tokens.issue(&user).await
    }

    async fn refresh(&self, refresh_token: &str) -> AppResult<TokenPair> {
        let previous = self.tokens.validate_refresh_token(refresh_token)?;
        let user: User = match self.users.get(previous.sub).await {
            // A deleted user's tokens are refused like any other unusable token.
            Err(AppError::NotFound(_)) => {
                return Err(AppError::invalid_token(REFRESH_TOKEN_REFUSED));
            }
            other => other?,
        };
        self.tokens.rotate(&user, previous).await
    }

    async fn sign_out(&self, uid: Uuid) -> AppResult<()> {
        self.tokens.revoke_all(uid).await.map(|_| ())
    }

    async fn me(&self, uid: Uuid) -> AppResult<User> {
        self.users.get(uid).await
    }

    async fn update_details(&self, uid: Uuid, details: UserDetails) -> AppResult<User> {
        self.users.update_details(uid, details).await
    }

    fn authenticate(&self, id_token: &str) -> AppResult<IdClaims> {
        self.tokens.validate_id_token(id_token)
    }

    fn jwks(&self) -> JwkSet {
        self.tokens.jwks()
    }

    async fn ready(&self) -> AppResult<()> {
        let (users, tokens) = tokio::join!(self.users.ready(), self.tokens.ready());
        users.and(tokens)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use mockall::predicate::eq;

    use super::*;
    use crate::model::RefreshClaims;
    use crate::model::interfaces::{MockTokenService, MockUserService};

    fn user() -> User {
        User {
            uid: Uuid::from_u128(0x1234),
            email: "ada@example.com".into(),
            password_hash: "$argon2id$…".into(),
            name: String::new(),
            image_url: String::new(),
            website: String::new(),
        }
    }

    fn pair() -> TokenPair {
        TokenPair {
            id_token: "id".into(),
            refresh_token: "refresh".into(),
        }
    }

    fn refresh_claims() -> RefreshClaims {
        RefreshClaims {
            sub: user().uid,
            jti: Uuid::from_u128(0x77),
            iat: 1,
            exp: 2,
        }
    }

    fn service(users: MockUserService, tokens: MockTokenService) -> AccountServiceImpl {
        AccountServiceImpl::new(Arc::new(users), Arc::new(tokens))
    }

    fn credentials() -> (Email, Password) {
        (
            Email::parse("ada@example.com").unwrap(),
            Password::parse("correct horse").unwrap(),
        )
    }

    fn is_invalid_token(err: &AppError) -> bool {
        matches!(
            err,
            AppError::Authorization { message, invalid_token: true } if message == REFRESH_TOKEN_REFUSED
        )
    }

    #[tokio::test]
    async fn sign_up_creates_the_user_and_issues_its_first_pair() {
        let mut users = MockUserService::new();
        users.expect_signup().times(1).returning(|_, _| Ok(user()));
        users.expect_delete().never();
        let mut tokens = MockTokenService::new();
        tokens
            .expect_issue()
            .withf(|u| u.uid == user().uid)
            .times(1)
            .returning(|_| Ok(pair()));
        let (email, password) = credentials();
        let got = service(users, tokens)
            .sign_up(email, password)
            .await
            .unwrap();
        assert_eq!(got, pair());
    }

    #[tokio::test]
    async fn a_sign_up_whose_pair_cannot_be_issued_is_undone_and_the_error_passed_on() {
        let mut users = MockUserService::new();
        users.expect_signup().times(1).returning(|_, _| Ok(user()));
        users
            .expect_delete()
            .with(eq(user().uid))
            .times(1)
            .returning(|_| Ok(()));
        let mut tokens = MockTokenService::new();
        tokens
            .expect_issue()
            .times(1)
            .returning(|_| Err(AppError::unavailable("token store is unavailable")));
        let (email, password) = credentials();
        let err = service(users, tokens)
            .sign_up(email, password)
            .await
            .unwrap_err();
        assert!(
            matches!(err, AppError::ServiceUnavailable { .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_conflicting_sign_up_issues_nothing_and_undoes_nothing() {
        let mut users = MockUserService::new();
        users
            .expect_signup()
            .returning(|_, _| Err(AppError::Conflict("email already registered".into())));
        users.expect_delete().never();
        let mut tokens = MockTokenService::new();
        tokens.expect_issue().never();
        let (email, password) = credentials();
        let err = service(users, tokens)
            .sign_up(email, password)
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::Conflict(_)), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sign_up_runs_to_its_end_and_undoes_itself_even_when_the_caller_goes_away() {
        let deleted = Arc::new(AtomicBool::new(false));
        let mut users = MockUserService::new();
        users.expect_signup().returning(|_, _| Ok(user()));
        users.expect_delete().times(1).returning({
            let deleted = Arc::clone(&deleted);
            move |_| {
                deleted.store(true, Ordering::SeqCst);
                Ok(())
            }
        });
        let mut tokens = MockTokenService::new();
        // Issuing is slow and then fails: the caller gives up before that.
        tokens.expect_issue().returning(|_| {
            std::thread::sleep(Duration::from_millis(200));
            Err(AppError::unavailable("token store is unavailable"))
        });
        let svc = service(users, tokens);
        let (email, password) = credentials();
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), svc.sign_up(email, password)).await;
        assert!(gave_up.is_err(), "the caller stopped waiting");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !deleted.load(Ordering::SeqCst) {
            assert!(tokio::time::Instant::now() < deadline, "never undone");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn sign_in_issues_a_pair_for_the_user_the_credentials_match() {
        let mut users = MockUserService::new();
        users.expect_signin().times(1).returning(|_, _| Ok(user()));
        let mut tokens = MockTokenService::new();
        tokens
            .expect_issue()
            .withf(|u| u.uid == user().uid)
            .times(1)
            .returning(|_| Ok(pair()));
        let (email, password) = credentials();
        assert_eq!(
            service(users, tokens)
                .sign_in(email, password)
                .await
                .unwrap(),
            pair()
        );
    }

    #[tokio::test]
    async fn refresh_verifies_loads_the_user_and_rotates_the_presented_token() {
        let mut tokens = MockTokenService::new();
        tokens
            .expect_validate_refresh_token()
            .with(eq("the-refresh-token"))
            .times(1)
            .returning(|_| Ok(refresh_claims()));
        tokens
            .expect_rotate()
            .withf(|u, previous| u.uid == user().uid && *previous == refresh_claims())
            .times(1)
            .returning(|_, _| Ok(pair()));
        let mut users = MockUserService::new();
        users
            .expect_get()
            .with(eq(user().uid))
            .times(1)
            .returning(|_| Ok(user()));
        assert_eq!(
            service(users, tokens)
                .refresh("the-refresh-token")
                .await
                .unwrap(),
            pair()
        );
    }

    #[tokio::test]
    async fn a_refresh_token_that_does_not_verify_touches_neither_users_nor_the_whitelist() {
        let mut tokens = MockTokenService::new();
        tokens
            .expect_validate_refresh_token()
            .returning(|_| Err(AppError::invalid_token(REFRESH_TOKEN_REFUSED)));
        tokens.expect_rotate().never();
        let mut users = MockUserService::new();
        users.expect_get().never();
        let err = service(users, tokens).refresh("forged").await.unwrap_err();
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
        let err = service(users, tokens).refresh("token").await.unwrap_err();
        assert!(is_invalid_token(&err), "{err:?}");
    }

    #[tokio::test]
    async fn a_refresh_while_the_user_store_is_down_is_unavailable_not_unauthorized() {
        let mut tokens = MockTokenService::new();
        tokens
            .expect_validate_refresh_token()
            .returning(|_| Ok(refresh_claims()));
        tokens.expect_rotate().never();
        let mut users = MockUserService::new();
        users
            .expect_get()
            .returning(|_| Err(AppError::unavailable("database is unavailable")));
        let err = service(users, tokens).refresh("token").await.unwrap_err();
        assert!(
            matches!(err, AppError::ServiceUnavailable { .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_refresh_that_loses_the_rotation_race_is_passed_on() {
        let mut tokens = MockTokenService::new();
        tokens
            .expect_validate_refresh_token()
            .returning(|_| Ok(refresh_claims()));
        tokens
            .expect_rotate()
            .returning(|_, _| Err(AppError::invalid_token(REFRESH_TOKEN_REFUSED)));
        let mut users = MockUserService::new();
        users.expect_get().returning(|_| Ok(user()));
        let err = service(users, tokens).refresh("token").await.unwrap_err();
        assert!(is_invalid_token(&err), "{err:?}");
    }

    #[tokio::test]
    async fn sign_out_revokes_every_refresh_token_of_the_user() {
        let mut tokens = MockTokenService::new();
        tokens
            .expect_revoke_all()
            .with(eq(user().uid))
            .times(1)
            .returning(|_| Ok(4));
        service(MockUserService::new(), tokens)
            .sign_out(user().uid)
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
}
