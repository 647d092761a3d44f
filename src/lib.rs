//! Account service: sign-up and sign-in with Argon2id passwords, RS256 ID tokens,
//! HS256 refresh tokens whitelisted as `<uid>:<jti>`, rotation on refresh and
//! sign-out on every device.
//!
//! Read in this order: `model` (the domain and every contract), `service`
//! (the rules), `repository` (the stores), `handler` (HTTP), `startup`
//! (the wiring); all of them are behind the default `server` feature.
//!
//! Domain services that only verify ID tokens depend on this crate with
//! `default-features = false, features = ["verifier"]` and use [`verifier`];
//! `todo` (feature `todo-example`, on by default) is an example of such a
//! service.

#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod fs_private;
#[cfg(feature = "server")]
pub mod handler;
#[cfg(feature = "verifier")]
pub mod jwks;
#[cfg(feature = "server")]
pub mod keys;
#[cfg(feature = "server")]
pub mod model;
#[cfg(feature = "server")]
pub mod repository;
#[cfg(feature = "server")]
pub mod secret;
#[cfg(feature = "server")]
pub mod service;
#[cfg(feature = "server")]
pub mod startup;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "todo-example")]
pub mod todo;
#[cfg(feature = "verifier")]
pub mod verifier;
#[cfg(feature = "verifier")]
pub mod web;

#[cfg(all(test, feature = "server"))]
pub(crate) mod test_keys;
