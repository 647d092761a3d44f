//! The verifier's unit tests, by concern: the token rules, its settings, the
//! extractor, fetching keys, and credentials in the JWKS URL.

mod client;
mod config;
mod credentials;
mod extract;
mod fetching;
mod rules;

use serde_json::Value;
use uuid::Uuid;

use super::test_support::claims_for;
use super::{Verifier, VerifyError};

fn user() -> Uuid {
    Uuid::new_v4()
}

/// Replaces (or with `Value::Null`, removes) one claim of valid claims.
fn claims_with(name: &str, value: Value) -> Value {
    let mut claims = claims_for(user());
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(name);
    } else {
        claims[name] = value;
    }
    claims
}

async fn refusal(verifier: &Verifier, token: &str) -> VerifyError {
    verifier
        .verify(token)
        .await
        .expect_err("the token must be refused")
}
