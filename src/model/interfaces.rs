//! Every contract between the layers: what handlers expect of the use cases,
//! what the use cases expect of the services, and what services expect of
//! repositories. Implementations are private types behind constructors; unit
//! tests use the mockall mocks generated here.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Email, IdClaims, Password, RefreshClaims, TokenPair, User, UserDetails};
use crate::error::AppResult;
use crate::jwks::JwkSet;

/// The use cases, one per endpoint: what the HTTP layer calls. Flows that span
/// users and tokens (sign-up then the first pair, refresh then rotation) are
/// sequenced here, not in handlers.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AccountService: Send + Sync {
    /// Creates the user and issues its first pair. Runs to its end even when
    /// the caller goes away; if the pair cannot be issued, the user is removed
    /// again (so a retry is a sign-up, not a conflict) and the error returned.
    async fn sign_up(&self, email: Email, password: Password) -> AppResult<TokenPair>;
    /// Checks the credentials and issues a new pair; the same `Authorization`
    /// error for an unknown email and a wrong password.
    async fn sign_in(&self, email: Email, password: Password) -> AppResult<TokenPair>;
    /// Verifies the refresh token, loads its user and rotates the pair. A
    /// token that does not verify, is no longer whitelisted, or whose user is
    /// gone is one `Authorization` (invalid token) error.
    async fn refresh(&self, refresh_token: &str) -> AppResult<TokenPair>;
    /// Removes every refresh token of the user (sign-out everywhere).
    async fn sign_out(&self, uid: Uuid) -> AppResult<()>;
    /// The user of an ID token; `NotFound` if it no longer exists.
    async fn me(&self, uid: Uuid) -> AppResult<User>;
    /// Replaces name, email and website; `Conflict` if the email is taken.
    async fn update_details(&self, uid: Uuid, details: UserDetails) -> AppResult<User>;
    /// The claims of a bearer ID token that passes the one validator.
    fn authenticate(&self, id_token: &str) -> AppResult<IdClaims>;
    /// Every public key ID tokens may be verified with (RFC 7517).
    fn jwks(&self) -> JwkSet;
    /// Whether both stores answer.
    async fn ready(&self) -> AppResult<()>;
}

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
    /// Issues a fresh pair for `user` and whitelists its refresh token.
    async fn issue(&self, user: &User) -> AppResult<TokenPair>;
    /// Issues a fresh pair for `user` in place of the verified refresh token
    /// `previous`, taking its whitelist entry in the same atomic step: if it
    /// is already gone (used, revoked, signed out) the call fails with
    /// `Authorization` and nothing is whitelisted.
    async fn rotate(&self, user: &User, previous: RefreshClaims) -> AppResult<TokenPair>;
    /// Removes every whitelisted refresh token of the user; returns how many.
    async fn revoke_all(&self, uid: Uuid) -> AppResult<u64>;
    /// Checks an ID token with the one validator and the published keys.
    fn validate_id_token(&self, token: &str) -> AppResult<IdClaims>;
    /// Verifies a refresh token's signature and claims (not the whitelist).
    fn validate_refresh_token(&self, token: &str) -> AppResult<RefreshClaims>;
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
