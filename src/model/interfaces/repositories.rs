//! What services expect of the stores: users, the refresh-token whitelist and
//! its sessions, attempt counters, the mailed links' tokens and machine
//! clients. Implementations are in `crate::repository`.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::AppResult;
use crate::model::{
    AccountToken, Assurance, CeremonyKey, CredentialChange, OAuthClient, RateCounter, RateDecision,
    RefreshOutcome, RefreshStep, SessionInfo, SessionName, SessionStart, TokenHolder, TokenPurpose,
    User, UserDetails,
};

/// Where users are stored.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// `NotFound` if no user has this uid.
    async fn find_by_id(&self, uid: Uuid) -> AppResult<User>;
    /// Lookup of an address in its normal form ([`crate::model::Email`]),
    /// case-insensitive; `None` if no user has this email.
    async fn find_by_email(&self, email: &str) -> AppResult<Option<User>>;
    /// Inserts a user; `Conflict` if the email is taken.
    async fn create(&self, user: &User) -> AppResult<()>;
    /// Replaces name, email and website of an existing user and returns it
    /// (a changed email is no longer verified); `NotFound` if it does not
    /// exist, `Conflict` if the email is taken.
    async fn update_details(&self, uid: Uuid, details: &UserDetails) -> AppResult<User>;
    /// Replaces name and website and records `details.email` as the
    /// user's pending email (`email` itself stays); the user as it is then.
    /// `NotFound` if it does not exist.
    async fn update_details_pending(&self, uid: Uuid, details: &UserDetails) -> AppResult<User>;
    /// Makes the user's pending email, if it is `email`, its verified email;
    /// whether it was. `Conflict` (nothing changed) if another user has the
    /// address.
    async fn confirm_pending_email(&self, uid: Uuid, email: &str) -> AppResult<bool>;
    /// Replaces the password hash and deletes the user's reset tokens (the
    /// links mailed before the change), in one transaction; `NotFound` (and
    /// nothing changed) if the user does not exist.
    async fn update_password_hash(&self, uid: Uuid, password_hash: &str) -> AppResult<()>;
    /// Sets `email_verified` if the user's email is `email`; whether it is.
    async fn mark_email_verified(&self, uid: Uuid, email: &str) -> AppResult<bool>;
    /// Replaces the password hash and sets `email_verified`, in one step, if
    /// the user's email is `email`; whether it is.
    async fn reset_password(&self, uid: Uuid, email: &str, password_hash: &str) -> AppResult<bool>;
    /// Removes a user; removing one that does not exist is not an error.
    async fn delete(&self, uid: Uuid) -> AppResult<()>;
    /// Answers when the store is reachable.
    async fn ping(&self) -> AppResult<()>;
}

/// The refresh-token whitelist and the sessions it records: one entry
/// `<uid>:<jti>` per live refresh token (its value records the session), a
/// per-user index `<uid>:sessions`, and the pending two-step sign-ins
/// `<uid>:mfa:<id>`. Every key of a user starts with `<uid>:`
/// (on Redis Cluster `{<uid>}:`, so that they share one slot). Each method is
/// one atomic step of the store.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenRepository: Send + Sync {
    /// Whitelists the session's first token and adds the session to the
    /// index, ending the least recently used sessions beyond
    /// `start.max_sessions` (and pruning ended ones). `false` (nothing
    /// written) when a password change guards `<uid>:credential` with another
    /// fingerprint than `start.credential`.
    async fn start_session(&self, uid: Uuid, start: &SessionStart) -> AppResult<bool>;
    /// Decides a refresh (see [`RefreshOutcome`]): exactly one of concurrent
    /// steps with the same token rotates; the others replay or are refused.
    async fn refresh(&self, uid: Uuid, step: &RefreshStep) -> AppResult<RefreshOutcome>;
    /// A refresh token from before sessions (entry `<uid>:<jti>` without a
    /// session): takes the entry and, only if it was there, starts `start` in
    /// the same step. Whether it did. Refused (nothing taken) while
    /// `<uid>:nolegacy` exists (the user's other sessions were ended) or the
    /// credential guard refuses `start`.
    async fn rotate_legacy(&self, uid: Uuid, jti: Uuid, start: &SessionStart) -> AppResult<bool>;
    /// The user's live sessions, most recently used first; sessions whose
    /// token or absolute lifetime has expired are pruned on the way.
    async fn list_sessions(&self, uid: Uuid, now: u64) -> AppResult<Vec<SessionInfo>>;
    /// Ends one session (its current token, its grace successor, its index
    /// entry); whether it existed.
    async fn end_session(&self, uid: Uuid, sid: Uuid) -> AppResult<bool>;
    /// Sets the name of one live session in its index entry (`None` clears
    /// it); rotations keep it, and it goes with the entry. Whether the session
    /// is live at `now` (one past its token's `exp` or its absolute end is
    /// ended on the way, as listing prunes it).
    async fn rename_session(
        &self,
        uid: Uuid,
        sid: Uuid,
        name: Option<SessionName>,
        now: u64,
    ) -> AppResult<bool>;
    /// Ends every session of the user but `keep` (all of them with `None`),
    /// and from then on refuses the user's refresh tokens from before sessions
    /// (`<uid>:nolegacy`); with `change`, also guards `<uid>:credential`
    /// against sessions authenticated with the previous password. How many
    /// sessions ended.
    async fn end_other_sessions(
        &self,
        uid: Uuid,
        keep: Option<Uuid>,
        change: Option<CredentialChange>,
    ) -> AppResult<u64>;
    /// Stores `assurance` (what a second factor raised the session to) in
    /// the session's index entry, as a name is stored; rotations and renames
    /// keep it, and it goes with the entry. Whether the session is live at
    /// `now` (one past its token's `exp` or its absolute end is ended on the
    /// way, as by [`Self::rename_session`]).
    async fn raise_session(
        &self,
        uid: Uuid,
        sid: Uuid,
        assurance: &Assurance,
        now: u64,
    ) -> AppResult<bool>;
    /// The assurance [`Self::raise_session`] stored with the session, if the
    /// session is in the user's index; `None` if it was never raised, or there
    /// is no such session (never, or ended). One read, changing nothing (a
    /// session past its end that no step has ended yet still answers: the
    /// refresh that reads it decides that).
    async fn session_assurance(&self, uid: Uuid, sid: Uuid) -> AppResult<Option<Assurance>>;
    /// Stores a pending two-step sign-in `<uid>:mfa:<id>` (the mfa token a
    /// right password earns) with no failures, expiring after `ttl`. Neither a
    /// whitelist entry nor a session: listing, ending and refreshing sessions
    /// never see it; sign-out everywhere removes it.
    async fn put_pending_sign_in(&self, uid: Uuid, id: Uuid, ttl: Duration) -> AppResult<()>;
    /// Whether the pending sign-in exists (has not expired, been taken or
    /// failed too often).
    async fn pending_sign_in(&self, uid: Uuid, id: Uuid) -> AppResult<bool>;
    /// Counts one failed second step on the pending sign-in, which keeps its
    /// expiry: its failures so far, and once they reach `max_failures` it is
    /// removed in the same step. `None` (nothing counted) if it does not exist.
    async fn fail_pending_sign_in(
        &self,
        uid: Uuid,
        id: Uuid,
        max_failures: u32,
    ) -> AppResult<Option<u32>>;
    /// Removes the pending sign-in; whether it existed. Of concurrent takes
    /// exactly one gets `true`: a pending sign-in completes once.
    async fn take_pending_sign_in(&self, uid: Uuid, id: Uuid) -> AppResult<bool>;
    /// Keeps the state of a WebAuthn ceremony under `key` for `ttl`,
    /// replacing any state under the same key. Neither a session nor a
    /// whitelist entry; a user's goes with sign-out everywhere.
    async fn put_ceremony(&self, key: &CeremonyKey, state: &str, ttl: Duration) -> AppResult<()>;
    /// Takes the state under `key`: reads and removes it in one step, so of
    /// concurrent takes exactly one gets it. `None` when absent or expired.
    async fn take_ceremony(&self, key: &CeremonyKey) -> AppResult<Option<String>>;
    /// Removes every key `<uid>:*` (sign-out everywhere, by SCAN), pending
    /// sign-ins too; how many.
    async fn delete_user_refresh_tokens(&self, uid: Uuid) -> AppResult<u64>;
    /// Answers when the store is reachable.
    async fn ping(&self) -> AppResult<()>;
}

/// Attempt counters, kept by the token store so that replicas share them:
/// one key `ratelimit:…` per counter, in fixed windows (a counter lives one
/// window from its first count). Each method is one atomic step.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait RateLimitRepository: Send + Sync {
    /// If no counter has reached its limit, counts the attempt on every one
    /// (a counter's window starts with its first count) and answers
    /// `Allowed`; otherwise counts nothing (a refused attempt does not burn
    /// more) and answers `Limited` with the longest wait until a full
    /// counter's window ends.
    async fn attempt(&self, counters: &[RateCounter], window: Duration) -> AppResult<RateDecision>;
    /// Takes one count back from each counter, never below zero; a counter
    /// whose window has ended stays gone.
    async fn refund(&self, keys: &[String]) -> AppResult<()>;
    /// Removes the counters: their next attempt starts a new window.
    async fn clear(&self, keys: &[String]) -> AppResult<()>;
}

/// The single-use tokens of the account flows, in the user store (table
/// `account_tokens`, removed with their user; a user's reset tokens also go
/// with a password change, [`UserRepository::update_password_hash`]). Each
/// method is one statement.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AccountTokenRepository: Send + Sync {
    /// Stores a token in place of the user's token of the same purpose, if
    /// any; `NotFound` if the user does not exist.
    async fn store_token(&self, token: &AccountToken) -> AppResult<()>;
    /// The holder of the token with this hash and purpose, if it has not
    /// expired at `now` (Unix seconds).
    async fn find_token(
        &self,
        token_hash: &[u8],
        purpose: TokenPurpose,
        now: u64,
    ) -> AppResult<Option<TokenHolder>>;
    /// Deletes the token with this hash and purpose and returns its holder
    /// if it had not expired at `now`: of concurrent calls, only one gets it.
    /// An expired token is deleted too.
    async fn take_token(
        &self,
        token_hash: &[u8],
        purpose: TokenPurpose,
        now: u64,
    ) -> AppResult<Option<TokenHolder>>;
}

/// Where clients are stored (table `oauth_clients`, in the user store). Each
/// method is one statement.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ClientRepository: Send + Sync {
    /// Inserts a client; `Conflict` if the id is taken.
    async fn create_client(&self, client: &OAuthClient) -> AppResult<()>;
    /// The client with this id, if any.
    async fn find_client(&self, client_id: &str) -> AppResult<Option<OAuthClient>>;
    /// Every client, oldest first.
    async fn list_clients(&self) -> AppResult<Vec<OAuthClient>>;
    /// Deletes a client; whether it existed.
    async fn delete_client(&self, client_id: &str) -> AppResult<bool>;
}
