//! The state of WebAuthn ceremonies (passkeys, issue 29), as the Redis store
//! keeps them: `<uid>:webauthn:<challenge>` among the user's keys, or
//! `webauthn:auth:<challenge>` before anyone is known, each one string with
//! its TTL. Each step is one step under the store's lock, written through
//! like a pending sign-in (a ceremony survives a restart, and a taken one
//! stays taken). No index lists the key and its name is never a whitelist
//! entry's, so no session step reads it; sign-out everywhere, a prefix sweep,
//! removes a user's. A challenge that may name no key is refused (the rule of
//! `redis_token/keys.rs`): its take finds nothing.

use std::time::Duration;

use tokio::time::Instant;

use super::keyspace::{Keyspace, Value};
use crate::model::CeremonyKey;
use crate::repository::redis_token::ceremony_challenge_ok;

/// The key of a ceremony's state, as on a single Redis; `None` if the
/// challenge may name no key.
pub(super) fn ceremony_key(key: &CeremonyKey) -> Option<String> {
    match key {
        CeremonyKey::User { uid, challenge } => {
            ceremony_challenge_ok(challenge).then(|| format!("{uid}:webauthn:{challenge}"))
        }
        CeremonyKey::Anonymous { challenge } => {
            ceremony_challenge_ok(challenge).then(|| format!("webauthn:auth:{challenge}"))
        }
    }
}

impl Keyspace {
    /// `SET <key> state PX ttl` (at least a millisecond, as `PX`): the state
    /// and expiry in place of any.
    pub(super) fn put_ceremony(&mut self, key: String, state: &str, ttl: Duration, at: Instant) {
        let ttl = ttl.max(Duration::from_millis(1));
        self.set(key, Value::Ceremony(state.to_owned()), at + ttl);
    }

    /// `GETDEL <key>`: the live state, removed; an expired one is reclaimed
    /// and answers `None`.
    pub(super) fn take_ceremony(&mut self, key: &str, at: Instant) -> Option<String> {
        let state = match self.get(key, at) {
            Some(Value::Ceremony(state)) => Some(state.clone()),
            Some(_) => return None,
            None => None,
        };
        self.del(key, at);
        state
    }
}
