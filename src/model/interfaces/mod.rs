//! Every contract between the layers: what handlers expect of the use cases,
//! what the use cases expect of the services, and what services expect of
//! repositories. Implementations are private types behind constructors; unit
//! tests use the mockall mocks generated here.

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    Assurance, ClientCredentials, ClientInfo, ClientToken, ClientTokenError, Email,
    FactorConfirmed, FactorList, IdClaims, OAuthClient, Password, PendingSignIn, RefreshClaims,
    Rotation, SecondFactorMethod, SecondFactorProof, SessionInfo, SessionName, SignIn,
    SignOutScope, SignUp, TokenHolder, TokenPair, TokenPurpose, TotpEnrolment, User, UserDetails,
};
use crate::error::AppResult;
use crate::jwks::JwkSet;
use crate::secret::Secret;

mod factors;
mod repositories;
pub use factors::*;
pub use repositories::*;

/// The use cases, one per endpoint: what the HTTP layer calls. Flows that span
/// users and tokens (sign-up then the first pair, refresh then rotation,
/// password change then the other sessions' end) are sequenced here, not in
/// handlers.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AccountService: Send + Sync {
    /// Creates the user and starts its first session. Runs to its end even
    /// when the caller goes away; if the pair cannot be issued, the user is
    /// removed again (so a retry is a sign-up, not a conflict). Counted per
    /// source first: `TooManyRequests` over the limit.
    ///
    /// With `EMAIL_CONFIRMATION=required`: `SignUp::Accepted` for every
    /// address, after the same hashing: a new one is created (it must verify
    /// before it signs in) and mailed a link; a taken one's owner is mailed
    /// a notice (verified) or a fresh link (unverified), within the per
    /// account mail limit, on a task of its own.
    async fn sign_up(
        &self,
        email: Email,
        password: Password,
        client: ClientInfo,
    ) -> AppResult<SignUp>;
    /// Checks the credentials and starts a session; the same `Authorization`
    /// error for an unknown email and a wrong password. The right password
    /// of an account that must verify its address and has not is
    /// `EmailNotVerified` (its counts given back as on a success). Counted first (per
    /// email and source, per source, per email): `TooManyRequests` over a
    /// limit, before any password is hashed.
    async fn sign_in(
        &self,
        email: Email,
        password: Password,
        client: ClientInfo,
    ) -> AppResult<SignIn>;
    /// The second step of a user with a factor: the mfa token of the right
    /// password and a code of `method`. A wrong code is `Authorization` and
    /// counts on the token (the fifth ends it) and on `MFA_RATE_LIMIT`
    /// (`TooManyRequests`); a right one ends the token (it works once) and
    /// starts an `aal2` session.
    async fn sign_in_second_step(
        &self,
        mfa_token: &str,
        method: SecondFactorMethod,
        proof: SecondFactorProof,
        client: ClientInfo,
    ) -> AppResult<TokenPair>;
    /// The options of a passkey second step for the pending sign-in of
    /// `mfa_token` (its ceremony kept for `WEBAUTHN_CEREMONY_EXP`, once).
    async fn begin_passkey_step(&self, mfa_token: &str) -> AppResult<serde_json::Value>;
    /// Starts registering a passkey (the enrolment rule of
    /// [`Self::begin_totp`]): the options `navigator.credentials.create`
    /// takes.
    async fn begin_passkey_registration(
        &self,
        caller: &IdClaims,
        current_password: Option<Password>,
        client: ClientInfo,
    ) -> AppResult<serde_json::Value>;
    /// Finishes it with the browser's credential: the new factor's id, and
    /// for the account's first factor its recovery codes (as a confirmed
    /// authenticator's).
    async fn finish_passkey_registration(
        &self,
        caller: &IdClaims,
        name: Option<SessionName>,
        credential: serde_json::Value,
        client: ClientInfo,
    ) -> AppResult<(Uuid, FactorConfirmed)>;
    /// The options of a sign-in with a passkey alone (a discoverable
    /// credential: no email asked); counted on the per-address sign-in limit.
    async fn begin_passkey_sign_in(&self, client: ClientInfo) -> AppResult<serde_json::Value>;
    /// Signs in the user whose passkey made `credential` for a ceremony of
    /// [`Self::begin_passkey_sign_in`]: `aal2`, `amr` `["hwk"|"swk", "user"]`.
    /// Anything refused is one 401; a failure counts per address.
    async fn finish_passkey_sign_in(
        &self,
        credential: serde_json::Value,
        client: ClientInfo,
    ) -> AppResult<TokenPair>;
    /// Starts an authenticator enrolment: a pending factor and what the app
    /// needs. Needs a recent sign-in (`REAUTH_MAX_AGE`) or the current
    /// password, and for a user with a factor an `aal2` session (`StepUp`);
    /// 503 without a data key.
    async fn begin_totp(
        &self,
        caller: &IdClaims,
        current_password: Option<Password>,
        client: ClientInfo,
    ) -> AppResult<TotpEnrolment>;
    /// Confirms a pending factor with its first code; the account's first
    /// factor also gets recovery codes, raises the caller's session to
    /// `aal2` and ends every other session.
    async fn confirm_totp(
        &self,
        caller: &IdClaims,
        id: Uuid,
        code: &str,
        client: ClientInfo,
    ) -> AppResult<FactorConfirmed>;
    /// The caller's confirmed factors and recovery codes left.
    async fn factors(&self, caller: &IdClaims) -> AppResult<FactorList>;
    /// Names one of the caller's factors; `NotFound` if not theirs.
    async fn rename_factor(
        &self,
        caller: &IdClaims,
        id: Uuid,
        name: Option<SessionName>,
    ) -> AppResult<()>;
    /// Removes one of the caller's factors (an `aal2` session needed); the
    /// last one takes the recovery codes with it.
    async fn delete_factor(&self, caller: &IdClaims, id: Uuid, client: ClientInfo)
    -> AppResult<()>;
    /// A new set of recovery codes (an `aal2` session needed); the old set
    /// stops working.
    async fn new_recovery_codes(
        &self,
        caller: &IdClaims,
        client: ClientInfo,
    ) -> AppResult<Vec<String>>;
    /// Verifies the refresh token, loads its user and lets the store decide:
    /// a new pair (rotation), the same successor again (a replay within the
    /// grace window), `RefreshTokenReused` (theft: the session is ended), or
    /// one `Authorization` (invalid token) error for everything else.
    async fn refresh(&self, refresh_token: &str, client: ClientInfo) -> AppResult<TokenPair>;
    /// Ends the caller's sessions in `scope`: all of them (and every other
    /// key of the user), only the caller's, or all but the caller's.
    async fn sign_out(&self, caller: &IdClaims, scope: SignOutScope) -> AppResult<()>;
    /// The same by a refresh token (a browser's cookie): it must verify
    /// (`Authorization` otherwise). `Local` ends its session whether or not
    /// it is still live; `Others` and `Global` need it live.
    async fn sign_out_by_refresh(&self, refresh_token: &str, scope: SignOutScope) -> AppResult<()>;
    /// The caller's live sessions, most recently used first.
    async fn sessions(&self, caller: &IdClaims) -> AppResult<Vec<SessionInfo>>;
    /// Ends one of the caller's sessions; `NotFound` if it is not one of them.
    async fn end_session(&self, caller: &IdClaims, sid: Uuid) -> AppResult<()>;
    /// Names one of the caller's sessions (`None` clears its name);
    /// `NotFound` if it is not one of them.
    async fn rename_session(
        &self,
        caller: &IdClaims,
        sid: Uuid,
        name: Option<SessionName>,
    ) -> AppResult<()>;
    /// The user of an ID token; `NotFound` if it no longer exists.
    async fn me(&self, uid: Uuid) -> AppResult<User>;
    /// Replaces name, email and website; `Conflict` if the email is taken. A
    /// new email of an account that must verify (`must_verify`) waits as its
    /// pending email until the link mailed to it is opened. A
    /// new email needs the current password (`BadRequest` naming
    /// `currentPassword` without it, `Forbidden` when wrong, counted as a
    /// sign-in attempt of the user's email from `client`) and ends every
    /// other session.
    async fn update_details(
        &self,
        caller: &IdClaims,
        details: UserDetails,
        current_password: Option<Password>,
        client: ClientInfo,
    ) -> AppResult<User>;
    /// Checks the current password (`Forbidden` when wrong; counted as a
    /// sign-in attempt of the user's email from `client`), stores the new
    /// one (voiding the reset links mailed before it: a confirmation with
    /// one is `BadRequest` naming `token`), and ends every session but the
    /// caller's.
    async fn change_password(
        &self,
        caller: &IdClaims,
        current: Password,
        new: Password,
        client: ClientInfo,
    ) -> AppResult<()>;
    /// Deletes the caller's account after checking its current password
    /// (`Forbidden` when wrong, counted as a failed sign-in): every key of the
    /// user goes first (sign-out everywhere; `ServiceUnavailable` with the
    /// token store down, and nothing is deleted), then the user row, so the
    /// email can be signed up again. ID tokens already issued live out their
    /// lifetime; the user's `/me` is `NotFound` and refresh is refused.
    async fn delete_account(
        &self,
        caller: &IdClaims,
        current_password: Password,
        client: ClientInfo,
    ) -> AppResult<()>;
    /// Redeems a verification token: the address it was sent to is verified
    /// if it is still the user's. A bad, used or expired token (or one for
    /// an address the user no longer has) is `BadRequest` naming `token`.
    ///
    /// Tokens are counted per client address first
    /// (`RateLimitService::link_token_attempt`; `TooManyRequests`), and a
    /// token that works gives its count back (as in `confirm_password_reset`).
    async fn verify_email(&self, token: &str, client: ClientInfo) -> AppResult<()>;
    /// Sends the caller a new verification mail (the older link stops
    /// working). Counted per user first (`TooManyRequests`); `Conflict` when
    /// the address is already verified, `NotFound` when the user is gone.
    async fn resend_verification(&self, caller: &IdClaims) -> AppResult<()>;
    /// Mails a new verification link to `email` if an account has it and it
    /// is unverified; the same `Ok`, in about the same time, otherwise.
    /// Counted as a reset request: per source (`TooManyRequests`), then per
    /// account (past it `Ok`, nothing sent).
    async fn resend_verification_to(&self, email: Email, client: ClientInfo) -> AppResult<()>;
    /// Asks for a reset mail to `email`. The same `Ok` whether or not an
    /// account has it, in about the same time: the token is stored and the
    /// mail sent off the request's path. Counted per source
    /// (`TooManyRequests`), then per email (over it: `Ok`, nothing sent).
    async fn request_password_reset(&self, email: Email, client: ClientInfo) -> AppResult<()>;
    /// Redeems a reset token: stores `new` (hashed), ends every session of
    /// the user, marks the address verified and clears its sign-in limits. A
    /// bad, used or expired token (or one mailed before a password change,
    /// or to an address the user has left) is `BadRequest` naming `token`.
    async fn confirm_password_reset(
        &self,
        token: &str,
        new: Password,
        client: ClientInfo,
    ) -> AppResult<()>;
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
    /// The user with this uid, as the store holds it now; `NotFound` if
    /// there is none. Every decision (sign-in, refresh, re-authentication,
    /// deletion) reads the user through this.
    async fn get(&self, uid: Uuid) -> AppResult<User>;
    /// The user with this uid for display (`GET /me`); `NotFound` if there
    /// is none. Never for a decision: it may be a copy up to `PROFILE_TTL`
    /// (`service/profile_cache.rs`) old when another replica changed the
    /// user, and its `password_hash` may be empty.
    async fn profile(&self, uid: Uuid) -> AppResult<User>;
    /// The hash a new account stores for `password`. Hashing waits its turn
    /// among `source`'s (the client's IP) requests; `Overloaded` when the
    /// queue is full.
    async fn hash_password(&self, password: &Password, source: &str) -> AppResult<String>;
    /// Creates a user with a hash from [`UserService::hash_password`];
    /// `Conflict` if the email is taken (in any letter case). `must_verify`:
    /// signed up under `EMAIL_CONFIRMATION=required`, it may sign in only
    /// once its address is verified.
    async fn signup(
        &self,
        email: Email,
        password_hash: String,
        must_verify: bool,
    ) -> AppResult<User>;
    /// The user whose email and password match; the same `Authorization`
    /// error for an unknown email and a wrong password. `source` as for
    /// [`UserService::hash_password`].
    async fn signin(&self, email: Email, password: Password, source: &str) -> AppResult<User>;
    /// `Ok` if `password` is the user's; `Forbidden` if not (a failed
    /// re-authentication is never a 401, which clients read as "refresh").
    async fn check_password(&self, user: &User, password: Password) -> AppResult<()>;
    /// Stores a new password (hashed) and, in the same step, voids the
    /// user's outstanding reset links; returns the stored hash.
    async fn set_password(&self, uid: Uuid, password: Password) -> AppResult<String>;
    /// Replaces name, email and website; `Conflict` if the email is taken.
    /// A new email is not verified.
    async fn update_details(&self, uid: Uuid, details: UserDetails) -> AppResult<User>;
    /// Replaces name and website and records `details.email` as the pending
    /// email of a `must_verify` user (its email stays until the address is
    /// confirmed, [`UserService::confirm_pending_email`]).
    async fn update_details_pending(&self, uid: Uuid, details: UserDetails) -> AppResult<User>;
    /// Makes the user's pending email, if it is `email`, its verified email;
    /// whether it was. `Conflict` if another user has the address.
    async fn confirm_pending_email(&self, uid: Uuid, email: &str) -> AppResult<bool>;
    /// The user with this email, if any (no password is checked).
    async fn find_by_email(&self, email: &Email) -> AppResult<Option<User>>;
    /// Marks `email` verified if it is still the user's; whether it was.
    async fn mark_email_verified(&self, uid: Uuid, email: &str) -> AppResult<bool>;
    /// Stores a hash from [`UserService::hash_password`] and marks `email`
    /// verified, if `email` is still the user's; whether it was.
    async fn reset_password(&self, uid: Uuid, email: &str, password_hash: &str) -> AppResult<bool>;
    /// Removes a user (a sign-up whose tokens could not be issued is undone).
    async fn delete(&self, uid: Uuid) -> AppResult<()>;
    /// Whether the user store answers.
    async fn ready(&self) -> AppResult<()>;
}

/// Tokens and the sessions they belong to: issuing, rotating, verifying.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenService: Send + Sync {
    /// Starts a session for `user`, signed in with the password alone, and
    /// issues its first pair.
    async fn issue(&self, user: &User, client: &ClientInfo) -> AppResult<TokenPair>;
    /// The same for a sign-in with `assurance` (a second factor).
    async fn issue_with(
        &self,
        user: &User,
        client: &ClientInfo,
        assurance: &Assurance,
    ) -> AppResult<TokenPair>;
    /// Raises session `sid` to `assurance`: its next refresh carries it.
    /// Whether the session is live.
    async fn raise_session(&self, uid: Uuid, sid: Uuid, assurance: &Assurance) -> AppResult<bool>;
    /// A pending two-step sign-in of `uid`: the mfa token naming it, and
    /// its lifetime in seconds (`MFA_TOKEN_EXP`).
    async fn start_second_step(&self, user: &User) -> AppResult<(String, u64)>;
    /// `(uid, id)` of the pending sign-in an mfa token names, if the token
    /// verifies and the sign-in is still pending.
    async fn pending_second_step(&self, mfa_token: &str) -> AppResult<Option<PendingSignIn>>;
    /// Counts a wrong code on a pending sign-in; whether it is still pending
    /// (it ends at the fifth).
    async fn second_step_failed(&self, uid: Uuid, id: Uuid) -> AppResult<bool>;
    /// Ends a pending sign-in that succeeded; whether it was still pending
    /// (of concurrent completions one gets `true`).
    async fn finish_second_step(&self, uid: Uuid, id: Uuid) -> AppResult<bool>;
    /// Keeps the state of a WebAuthn ceremony under `key` for `ttl` in the
    /// token store (any replica finishes it), replacing any state there.
    async fn put_ceremony(
        &self,
        key: &super::CeremonyKey,
        state: &str,
        ttl: std::time::Duration,
    ) -> AppResult<()>;
    /// Takes a ceremony's state once: of concurrent takes one gets it;
    /// `None` when absent, expired or already taken.
    async fn take_ceremony(&self, key: &super::CeremonyKey) -> AppResult<Option<String>>;
    /// Lets the store decide a refresh with the verified token `previous`
    /// (`presented` is its text: the grace successor is sealed with it).
    async fn rotate(
        &self,
        user: &User,
        previous: &RefreshClaims,
        presented: &str,
        client: &ClientInfo,
    ) -> AppResult<Rotation>;
    /// The user's live sessions, most recently used first.
    async fn sessions(&self, uid: Uuid) -> AppResult<Vec<SessionInfo>>;
    /// Ends one session; whether it existed.
    async fn end_session(&self, uid: Uuid, sid: Uuid) -> AppResult<bool>;
    /// Names one live session (`None` clears its name); whether it exists.
    async fn rename_session(
        &self,
        uid: Uuid,
        sid: Uuid,
        name: Option<SessionName>,
    ) -> AppResult<bool>;
    /// Ends every session of the user but `keep`; how many.
    async fn end_other_sessions(&self, uid: Uuid, keep: Uuid) -> AppResult<u64>;
    /// After a password change (the new hash is stored): ends every session
    /// but `keep` (all with `None`) and refuses, in the same step, any session
    /// a sign-in that read the previous hash would still start.
    async fn password_changed(
        &self,
        uid: Uuid,
        keep: Option<Uuid>,
        password_hash: &str,
    ) -> AppResult<u64>;
    /// Removes every key of the user (sign-out everywhere); how many.
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

/// The sign-in and sign-up limits: which counters an attempt is counted
/// against, and their limits.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait RateLimitService: Send + Sync {
    /// Counts a sign-in attempt (or a re-authentication) of `email` from
    /// `ip` per (email, address), per address and per email; once one of them
    /// is full, `TooManyRequests` and nothing is counted.
    async fn sign_in_attempt(&self, email: &str, ip: &str) -> AppResult<()>;
    /// Gives back what a successful attempt counted for its source: the
    /// (email, address) and the address counts.
    async fn sign_in_succeeded(&self, email: &str, ip: &str) -> AppResult<()>;
    /// Counts a sign-up from `ip`; once the address's counter is full,
    /// `TooManyRequests` and nothing is counted.
    async fn sign_up_attempt(&self, ip: &str) -> AppResult<()>;
    /// Counts a password-reset request from `ip`; `TooManyRequests` once
    /// the address's counter is full.
    async fn reset_request_attempt(&self, ip: &str) -> AppResult<()>;
    /// Counts a reset mail to `email`; `TooManyRequests` once the email's
    /// counter is full (the caller then sends nothing, and says nothing).
    async fn reset_mail_attempt(&self, email: &str) -> AppResult<()>;
    /// Counts a resent verification mail of user `uid`; `TooManyRequests`
    /// once the user's counter is full.
    async fn verification_mail_attempt(&self, uid: Uuid) -> AppResult<()>;
    /// Counts a client authentication of `client_id` from `ip`, per (client
    /// id, address) and per address; once one is full, `TooManyRequests`
    /// and nothing is counted (nor checked).
    async fn client_auth_attempt(&self, client_id: &str, ip: &str) -> AppResult<()>;
    /// Gives back what a successful client authentication counted.
    async fn client_auth_succeeded(&self, client_id: &str, ip: &str) -> AppResult<()>;
    /// Counts a verification or reset token presented from `ip`; once the
    /// address's counter is full, `TooManyRequests` and nothing is looked up.
    async fn link_token_attempt(&self, ip: &str) -> AppResult<()>;
    /// Gives back what a token that worked counted.
    async fn link_token_succeeded(&self, ip: &str) -> AppResult<()>;
    /// A second-factor code of `uid` (a sign-in's second step or an
    /// enrolment's confirmation): `TooManyRequests` past `MFA_RATE_LIMIT`.
    async fn mfa_attempt(&self, uid: Uuid) -> AppResult<()>;
    /// Gives back what a right code counted.
    async fn mfa_succeeded(&self, uid: Uuid) -> AppResult<()>;
    /// Counts a password-free sign-in's start or finish from `ip` on the
    /// per-address sign-in counter (`SIGNIN_IP_RATE_LIMIT`);
    /// `TooManyRequests` once it is full.
    async fn passkey_attempt(&self, ip: &str) -> AppResult<()>;
    /// Gives back what a sign-in that happened counted: its start's and its
    /// finish's counts.
    async fn passkey_succeeded(&self, ip: &str) -> AppResult<()>;
    /// Forgets the sign-in attempts of `email`: its per-email counter and
    /// its (email, `ip`) counter (after a password reset proved the
    /// person reads its mail).
    async fn clear_sign_in(&self, email: &str, ip: &str) -> AppResult<()>;
}

/// The single-use tokens of the account flows (see [`AccountToken`]):
/// made, stored by their hash only, and redeemed.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AccountTokenService: Send + Sync {
    /// A new token of `purpose` for `user`'s current email, stored (by its
    /// hash) in place of the user's older token of that purpose; its text,
    /// to send in a link.
    async fn issue(&self, user: &User, purpose: TokenPurpose) -> AppResult<Secret>;
    /// What a live token of `purpose` proves, without using it up; `None`
    /// for a bad, used or expired one.
    async fn peek(&self, token: &str, purpose: TokenPurpose) -> AppResult<Option<TokenHolder>>;
    /// Uses a live token of `purpose` up (of concurrent calls with one
    /// token, one gets it); `None` for a bad, used or expired one.
    async fn redeem(&self, token: &str, purpose: TokenPurpose) -> AppResult<Option<TokenHolder>>;
}

/// Machine clients of the client-credentials grant: registering them (the
/// `account clients` commands) and issuing their access tokens
/// (`POST /oauth/token`).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ClientService: Send + Sync {
    /// Registers a client named `name` with `scope` (space-separated); its id
    /// and its secret, which is stored only as a hash.
    async fn register(&self, name: &str, scope: &str) -> AppResult<ClientCredentials>;
    /// Every registered client, oldest first.
    async fn list(&self) -> AppResult<Vec<OAuthClient>>;
    /// Removes a client; whether it existed. Its tokens already issued live
    /// out their lifetime; no new one is issued.
    async fn remove(&self, client_id: &str) -> AppResult<bool>;
    /// Authenticates the client by its secret and issues an access token for
    /// `scope` (space-separated; `None`: every scope of the client), which
    /// must be among the client's.
    /// Failed authentications are counted per (client id, `ip`) and per
    /// `ip` (`RateLimitService::client_auth_attempt`): past a limit,
    /// `Failed(TooManyRequests)` and nothing is checked; a success gives its
    /// counts back.
    async fn issue_token(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: Option<String>,
        ip: &str,
    ) -> Result<ClientToken, ClientTokenError>;
}
