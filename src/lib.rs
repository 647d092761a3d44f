//! Account service: sign-up and sign-in with Argon2id passwords, RS256 ID tokens,
//! HS256 refresh tokens whitelisted as `<uid>:<jti>`, rotation on refresh and
//! sign-out on every device.
//!
//! Read in this order: [`model`] (the domain and every contract), [`service`]
//! (the rules), [`repository`] (the stores), [`handler`] (HTTP), [`startup`]
//! (the wiring).

pub mod cli;
pub mod config;
pub mod error;
pub mod handler;
pub mod keys;
pub mod model;
pub mod repository;
pub mod service;
pub mod startup;
pub mod telemetry;

#[cfg(test)]
pub(crate) mod test_keys;
