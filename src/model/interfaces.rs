//! Every contract between the layers: what handlers expect of services and what
//! services expect of repositories. Implementations are private types behind
//! constructors; unit tests use the mockall mocks generated here.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Email, IdTokenClaims, Password, RefreshToken, TokenPair, User, UserDetails};
use crate::error::AppResult;
use crate::jwks::JwkSet;

/// Users: sign-up, sign-in and profile.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserService: Send + Sync {
    /// The user with this uid; `NotFound` if there is none.
    async fn get(&self, uid: Uuid) -> AppResult<User>;
    /// Creates a user; `Conflict` if the email is taken (in any letter case).
    async fn signup(&self, email: Email, password: Password) -> AppResult<User>;
    /// The user whose email and password match; the same `Authorization`
    /// error for an unknown email and a wrong password.
    async fn signin(&self, email: Email, password: Password) -> AppResult<User>;
    /// Replaces name, email and website; `Conflict` if the email is taken.
    async fn update_details(&self, uid: Uuid, details: UserDetails) -> AppResult<User>;
    /// Removes a user (a sign-up whose tokens could not be issued is undone).
    async fn delete(&self, uid: Uuid) -> AppResult<()>;
    /// Whether the user store answers.
    async fn ready(&self) -> AppResult<()>;
}

/// Tokens: issuing, rotating and verifying ID and refresh tokens.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenService: Send + Sync {
    /// Issues a fresh pair for `user` and whitelists its refresh token. With
    /// `previous`, the previous refresh token's whitelist entry is taken in the
    /// same atomic step: if it is already gone the call fails with
    /// `Authorization` and nothing is whitelisted.
    async fn new_pair_from_user(
        &self,
        user: &User,
        previous: Option<RefreshToken>,
    ) -> AppResult<TokenPair>;
    /// Removes every whitelisted refresh token of the user (sign-out everywhere).
    async fn signout(&self, uid: Uuid) -> AppResult<()>;
    /// Verifies an ID token (signature, algorithm, `exp`, `iss`, `aud`, `sub`).
    fn validate_id_token(&self, token: &str) -> AppResult<IdTokenClaims>;
    /// Verifies a refresh token's signature and claims (not the whitelist).
    fn validate_refresh_token(&self, token: &str) -> AppResult<RefreshToken>;
    /// Every public key ID tokens may be verified with (RFC 7517).
    fn jwks(&self) -> JwkSet;
    /// Whether the token store answers.
    async fn ready(&self) -> AppResult<()>;
}

/// Where users are stored.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// `NotFound` if no user has this uid.
    async fn find_by_id(&self, uid: Uuid) -> AppResult<User>;
    /// Case-insensitive lookup; `None` if no user has this email.
    async fn find_by_email(&self, email: &str) -> AppResult<Option<User>>;
    /// Inserts a user; `Conflict` if the email is taken.
    async fn create(&self, user: &User) -> AppResult<()>;
    /// Replaces name, email and website of an existing user and returns it;
    /// `NotFound` if it does not exist, `Conflict` if the email is taken.
    async fn update_details(&self, uid: Uuid, details: &UserDetails) -> AppResult<User>;
    /// Removes a user; removing one that does not exist is not an error.
    async fn delete(&self, uid: Uuid) -> AppResult<()>;
    /// Answers when the store is reachable.
    async fn ping(&self) -> AppResult<()>;
}

/// The refresh-token whitelist: one entry `<uid>:<jti>` per live refresh token.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenRepository: Send + Sync {
    /// Whitelists a refresh token for `ttl`.
    async fn set_refresh_token(&self, uid: Uuid, jti: Uuid, ttl: Duration) -> AppResult<()>;
    /// Atomically removes the entry `uid:old_jti` and, only if it was there,
    /// whitelists `uid:new_jti` for `ttl`. Returns whether the old entry was
    /// there: of concurrent calls with the same `old_jti`, exactly one wins.
    async fn rotate_refresh_token(
        &self,
        uid: Uuid,
        old_jti: Uuid,
        new_jti: Uuid,
        ttl: Duration,
    ) -> AppResult<bool>;
    /// Removes every entry of the user; returns how many were removed.
    async fn delete_user_refresh_tokens(&self, uid: Uuid) -> AppResult<u64>;
    /// Answers when the store is reachable.
    async fn ping(&self) -> AppResult<()>;
}
