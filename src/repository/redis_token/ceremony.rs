//! The state of WebAuthn ceremonies (passkeys, issue 29): one string key per
//! ceremony, `<uid>:webauthn:<challenge>` among the user's keys (in the
//! user's slot on Redis Cluster) or `webauthn:auth:<challenge>` before anyone
//! is known (`keys.rs`).
//!
//! Each step is one command on one key: `SET … PX` (replacing state and TTL)
//! and `GETDEL` (Redis 6.2 or later), which reads and removes in one atomic
//! step, so of concurrent takes exactly one gets the state and a ceremony
//! finishes once. No index lists the key and its name is never a whitelist
//! entry's (`<uid>:<jti>`), so no session step reads it; sign-out everywhere
//! (SCAN `<uid>:*`) removes a user's. A challenge that may name no key
//! (`keys::ceremony_challenge_ok`) is refused before any command: its take
//! finds nothing.

use std::time::Duration;

use super::RedisTokenRepository;
use super::sign_in::ttl_ms;
use crate::error::{AppError, AppResult};
use crate::model::CeremonyKey;

impl RedisTokenRepository {
    /// `SET <key> state PX ttl`: the state and a new TTL in place of any.
    pub(super) async fn put_ceremony_state(
        &self,
        key: &CeremonyKey,
        state: &str,
        ttl: Duration,
    ) -> AppResult<()> {
        let Some(name) = self.keys.ceremony(key) else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "a ceremony challenge must be base64url of 1 to 128 characters"
            )));
        };
        let mut set = redis::cmd("SET");
        set.arg(name).arg(state).arg("PX").arg(ttl_ms(ttl));
        self.query::<()>(&set).await
    }

    /// `GETDEL <key>`: the state, removed in the same step; `None` when absent,
    /// expired, or the challenge names no key.
    pub(super) async fn take_ceremony_state(&self, key: &CeremonyKey) -> AppResult<Option<String>> {
        let Some(name) = self.keys.ceremony(key) else {
            return Ok(None);
        };
        let mut getdel = redis::cmd("GETDEL");
        getdel.arg(name);
        self.query(&getdel).await
    }
}
