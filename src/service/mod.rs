//! Services: the use cases ([`AccountServiceImpl`], one per endpoint) over
//! the business rules for users and tokens.
//!
//! They depend only on the traits of [`crate::model`], so each is unit-tested
//! against mockall mocks.

mod account;
mod account_token;
mod argon;
mod argon_memory;
mod client;
mod grace;
mod hash_queue;
mod hash_threads;
pub mod mfa;
mod password;
mod profile_cache;
mod rate_limit;
mod token;
mod user;

pub use account::{AccountServiceImpl, EmailConfirmation, FlowConfig, Mfa, MfaConfig, UserAdmin};
pub use account_token::AccountTokenServiceImpl;
pub use argon::ThreadHasher;
pub use client::{ClientServiceImpl, ClientTokenConfig};
pub use password::PasswordHasher;
pub use profile_cache::ProfileCache;
pub use rate_limit::{RateLimitConfig, RateLimitServiceImpl};
pub use token::{TokenConfig, TokenServiceImpl};
pub use user::UserServiceImpl;
