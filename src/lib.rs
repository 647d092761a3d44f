//! Account service: sign-up and sign-in with Argon2id passwords, RS256 ID tokens,
//! HS256 refresh tokens whitelisted as `<uid>:<jti>`, rotation on refresh and
//! sign-out on every device.
//!
//! The public surface is small on purpose:
//! - [`verifier`] (feature `verifier`): what a domain service needs to check
//!   ID tokens offline, with [`jwks`] (the key sets it reads) and [`web`] (the
//!   error shape and extractors our services share);
//! - [`token_cache`](mod@token_cache) (feature `token-cache`): what an API
//!   client needs to call services with OAuth2 client-credentials tokens,
//!   shared by its replicas through Redis;
//! - [`startup::Application`] and [`config::Config`] (feature `server`): the
//!   account service itself, and [`cli`] / [`telemetry`], what its binary's
//!   `main` calls;
//! - [`todo`](mod@todo) (feature `todo-example`, on by default): an example domain
//!   service.
//!
//! Everything else is internal; `ARCHITECTURE.md` at the repository root maps
//! it (model → service → repository, handler, startup). `testing` re-exports
//! the few internals the integration tests and the benchmark drive; it is not
//! a supported API.

#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "verifier")]
pub mod jwks;
#[cfg(feature = "verifier")]
pub mod settings;
#[cfg(feature = "server")]
pub mod startup;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "todo-example")]
pub mod todo;
#[cfg(feature = "token-cache")]
pub mod token_cache;
#[cfg(feature = "verifier")]
pub mod verifier;
#[cfg(feature = "verifier")]
pub mod web;

#[cfg(feature = "server")]
mod error;
#[cfg(feature = "server")]
mod fs_private;
#[cfg(feature = "server")]
mod handler;
#[cfg(feature = "server")]
mod keys;
#[cfg(feature = "server")]
mod mail;
#[cfg(feature = "server")]
mod model;
#[cfg(feature = "token-cache")]
mod redis_conn;
#[cfg(feature = "server")]
mod repository;
#[cfg(feature = "server")]
mod secret;
#[cfg(feature = "server")]
mod service;

/// Internals the integration tests and the benchmarks drive (key files, the
/// in-process token store, one Argon2 hashing thread's work). Not a supported
/// API: it may change at any time.
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod testing {
    pub use crate::keys::{
        GeneratedKeyFiles, IdTokenSigner, KeyPaths, KeyReloader, generate_keys, retire_key,
        rotate_keys, stage_next_key,
    };
    pub use crate::repository::{MemoryTokenRepository, PING_IF_IDLE_FOR};
    pub use crate::service::ThreadHasher;
}

#[cfg(all(test, feature = "server"))]
pub(crate) mod test_keys;
#[cfg(all(test, feature = "server"))]
pub(crate) mod test_logs;
