//! The domain model: users, tokens, and every contract between the layers.
//!
//! Handlers depend on the use-case trait ([`AccountService`]), which composes
//! the user and token services, and services on the repository traits;
//! all of them live in [`interfaces`] (the stores' in `interfaces/repositories.rs`
//! and `interfaces/factors.rs`).

mod account_token;
mod client;
mod factor;
pub mod interfaces;
mod limit;
mod session;
mod token;
mod user;

pub use account_token::{AccountToken, TokenHolder, TokenPurpose};
pub use client::{ClientCredentials, ClientToken, ClientTokenError, OAuthClient};
pub use factor::{
    CeremonyKey, Factor, FactorConfirmed, FactorKind, FactorList, MfaChallenge, PendingSignIn,
    SecondFactorMethod, SecondFactorProof, SignIn, TotpEnrolment,
};
pub use interfaces::{
    AccountService, AccountTokenRepository, AccountTokenService, ClientRepository, ClientService,
    FactorRepository, RateLimitRepository, RateLimitService, TokenRepository, TokenService,
    UserRepository, UserService,
};
pub use limit::{RateCounter, RateDecision};
pub use session::{
    CREDENTIAL_GUARD_SECS, ClientInfo, CredentialChange, LEGACY_GUARD_SECS, RefreshOutcome,
    RefreshStep, Rotation, SessionInfo, SessionName, SessionStart, SignOutScope,
};
pub use token::{Assurance, Audience, IdClaims, RefreshClaims, SignUp, TokenPair};
pub use user::{Email, Password, User, UserDetails, Website, parse_name};
