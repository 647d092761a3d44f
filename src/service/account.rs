//! The use cases: each endpoint's flow, composed of the user and token services.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::{AppError, AppResult, InvalidArg, REFRESH_TOKEN_REFUSED};
use crate::jwks::JwkSet;
use crate::model::{
    AccountService, ClientInfo, Email, IdClaims, Password, Rotation, SessionInfo, SignOutScope,
    TokenPair, TokenService, User, UserDetails, UserService,
};

/// [`AccountService`] over a [`UserService`] and a [`TokenService`].
#[derive(Clone)]
pub struct AccountServiceImpl {
    users: Arc<dyn UserService>,
    tokens: Arc<dyn TokenService>,
}

/// The session an ID token was issued in; tokens from before sessions have
/// none, and cannot name "this session".
fn session_of(caller: &IdClaims) -> AppResult<Uuid> {
    caller
        .sid
        .as_deref()
        .and_then(|sid| Uuid::parse_str(sid).ok())
        .ok_or_else(|| {
            AppError::bad_request(
                "this ID token belongs to no session (issued before sessions): sign in again",
            )
        })
}

impl AccountServiceImpl {
    pub fn new(users: Arc<dyn UserService>, tokens: Arc<dyn TokenService>) -> Self {
        Self { users, tokens }
    }

    /// Creates the user and its first session; without a pair the account is
    /// removed again, so a retry once the token store is back succeeds.
    async fn sign_up_to_the_end(
        self,
        email: Email,
        password: Password,
        client: ClientInfo,
    ) -> AppResult<TokenPair> {
        let user = self.users.signup(email, password).await?;
        match self.tokens.issue(&user, &client).await {
            Ok(pair) => Ok(pair),
            Err(err) => {
                if let Err(undo) = self.users.delete(user.uid).await {
                    tracing::error!(uid = %user.uid, error = ?undo, "cannot undo a failed sign-up");
                }
                Err(err)
            }
        }
    }

    /// Ends every session of the caller's user but the caller's own (after a
    /// change a stolen session must not outlive). A caller without a session
    /// ends them all.
    async fn end_other_sessions(&self, caller: &IdClaims) -> AppResult<()> {
        match session_of(caller) {
            Ok(sid) => self.tokens.end_other_sessions(caller.sub, sid).await?,
            Err(_) => self.tokens.revoke_all(caller.sub).await?,
        };
        Ok(())
    }
}

#[async_trait]
impl AccountService for AccountServiceImpl {
    async fn sign_up(
        &self,
        email: Email,
        password: Password,
        client: ClientInfo,
    ) -> AppResult<TokenPair> {
        // On a task of its own, so it runs to its end even when the request is
        // dropped (handler timeout, client gone): never left half done.
        tokio::spawn(self.clone().sign_up_to_the_end(email, password, client))
            .await
            .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("sign-up task failed")))?
    }

    async fn sign_in(
        &self,
        email: Email,
        password: Password,
        client: ClientInfo,
    ) -> AppResult<TokenPair> {
        let user = self.users.signin(email, password).await?;
        self.tokens.issue(&user, &client).await
    }

    async fn refresh(&self, refresh_token: &str, client: ClientInfo) -> AppResult<TokenPair> {
        let previous = self.tokens.validate_refresh_token(refresh_token)?;
        let user = match self.users.get(previous.sub).await {
            // A deleted user's tokens are refused like any other unusable token.
            Err(AppError::NotFound(_)) => {
                return Err(AppError::invalid_token(REFRESH_TOKEN_REFUSED));
            }
            other => other?,
        };
        match self
            .tokens
            .rotate(&user, &previous, refresh_token, &client)
            .await?
        {
            Rotation::Rotated(pair) | Rotation::Replayed(pair) => Ok(pair),
            Rotation::Reused => {
                tracing::warn!(uid = %user.uid, "refresh token reuse: session ended");
                Err(AppError::RefreshTokenReused)
            }
            Rotation::Ended => Err(AppError::invalid_token(REFRESH_TOKEN_REFUSED)),
        }
    }

    async fn sign_out(&self, caller: &IdClaims, scope: SignOutScope) -> AppResult<()> {
        match scope {
            SignOutScope::Global => {
                self.tokens.revoke_all(caller.sub).await?;
            }
            SignOutScope::Local => {
                self.tokens
                    .end_session(caller.sub, session_of(caller)?)
                    .await?;
            }
            SignOutScope::Others => {
                self.tokens
                    .end_other_sessions(caller.sub, session_of(caller)?)
                    .await?;
            }
        }
        Ok(())
    }

    async fn sessions(&self, caller: &IdClaims) -> AppResult<Vec<SessionInfo>> {
        self.tokens.sessions(caller.sub).await
    }

    async fn end_session(&self, caller: &IdClaims, sid: Uuid) -> AppResult<()> {
        if self.tokens.end_session(caller.sub, sid).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("no such session".into()))
        }
    }

    async fn me(&self, uid: Uuid) -> AppResult<User> {
        self.users.get(uid).await
    }

    async fn update_details(
        &self,
        caller: &IdClaims,
        details: UserDetails,
        current_password: Option<Password>,
    ) -> AppResult<User> {
        let user = self.users.get(caller.sub).await?;
        let email_changes = user.email != details.email.as_str();
        if email_changes {
            let Some(password) = current_password else {
                return Err(AppError::invalid_args(vec![InvalidArg::new(
                    "currentPassword",
                    "currentPassword is required to change the email",
                )]));
            };
            self.users.check_password(&user, password).await?;
        }
        let updated = self.users.update_details(caller.sub, details).await?;
        if email_changes {
            self.end_other_sessions(caller).await?;
        }
        Ok(updated)
    }

    async fn change_password(
        &self,
        caller: &IdClaims,
        current: Password,
        new: Password,
    ) -> AppResult<()> {
        let user = self.users.get(caller.sub).await?;
        self.users.check_password(&user, current).await?;
        self.users.set_password(caller.sub, new).await?;
        self.end_other_sessions(caller).await
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

#[cfg(all(test, any()))] // TODO(sessions): being rewritten
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
