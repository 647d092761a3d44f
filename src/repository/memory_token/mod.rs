//! The refresh-token whitelist and its sessions in process memory, for a
//! single embedded instance.
//!
//! The same keys and the same semantics as the Redis store
//! (issue 8): a whitelist entry `<uid>:<jti>` per live
//! token recording its session, the per-user index `<uid>:sessions`, grace
//! successors `<uid>:grace:<jti>`, each with its TTL (an expired key is
//! unusable at once and reclaimed by a background sweep). Each method holds
//! the one lock for its whole step, as a Lua script is atomic in Redis. All of
//! a user's keys start with `<uid>:`, so sign-out everywhere is a prefix
//! sweep. The keys are saved to a snapshot file on shutdown and read back on
//! start, so sessions survive a restart. The sign-in and sign-up attempt
//! counters (`ratelimit:…`) live in the same keyspace and are not saved.

mod keyspace;
mod limits;
mod sessions;
mod snapshot;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::AppResult;
use crate::fs_private::write_private;
use crate::model::{
    CredentialChange, RateCounter, RateDecision, RateLimitRepository, RefreshOutcome, RefreshStep,
    SessionInfo, SessionStart, TokenRepository,
};
use keyspace::{Keyspace, user_prefix};

/// How often the background sweep reclaims expired keys by default.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The refresh-token whitelist and sessions (`TokenRepository`) in process
/// memory. Cloning shares the same store.
#[derive(Clone, Default)]
pub struct MemoryTokenRepository {
    inner: Arc<Mutex<Keyspace>>,
}

impl MemoryTokenRepository {
    pub fn new() -> Self {
        Self::default()
    }

    fn keys(&self) -> MutexGuard<'_, Keyspace> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // (each edit of the keyspace completes before anything can panic), so go on.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one store step under the lock, with the store's clock read once
    /// the lock is held.
    fn step<T>(&self, f: impl FnOnce(&mut Keyspace, Instant) -> T) -> T {
        let mut keys = self.keys();
        f(&mut keys, Instant::now())
    }

    /// Starts the background sweep; it ends when the last clone is dropped.
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Mutex<Keyspace>> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let removed = Self { inner }.sweep_expired();
                if removed > 0 {
                    tracing::debug!(removed, "reclaimed expired token-store keys");
                }
            }
        })
    }

    /// Removes every expired key now; returns how many.
    pub fn sweep_expired(&self) -> usize {
        self.step(|keys, at| keys.sweep(at))
    }

    /// How many keys are held (whitelist entries, indexes, grace successors,
    /// guards, attempt counters), expired-but-not-yet-swept ones included.
    pub fn len(&self) -> usize {
        self.keys().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes one key by name (`DEL`); returns whether it was live.
    pub fn remove(&self, key: &str) -> bool {
        self.step(|keys, at| keys.del(key, at))
    }

    /// Live keys whose name starts with `prefix`, in name order, with their
    /// remaining TTL: whitelist entries `<uid>:<jti>`, and, as a `SCAN
    /// <uid>:*` in Redis finds them, the index `<uid>:sessions` and grace
    /// successors `<uid>:grace:<jti>`.
    pub fn live_entries(&self, prefix: &str) -> Vec<(String, Duration)> {
        self.step(|keys, at| {
            keys.live_with_prefix(prefix, at)
                .map(|(key, _, expires)| (key.to_owned(), expires - at))
                .collect()
        })
    }

    /// Reads a snapshot written by [`Self::save_snapshot`] (or one from
    /// before sessions: its entries become legacy entries), skipping what has
    /// expired; a missing file is an empty store.
    pub fn load_snapshot(path: &Path) -> anyhow::Result<Self> {
        let keys = snapshot::load(path)?.unwrap_or_default();
        Ok(Self {
            inner: Arc::new(Mutex::new(keys)),
        })
    }

    /// Writes every live key to `path` (owner-only, replaced atomically);
    /// returns how many.
    pub fn save_snapshot(&self, path: &Path) -> anyhow::Result<usize> {
        let (json, count) = snapshot::encode(&self.keys())?;
        write_private(path, &json)?;
        Ok(count)
    }
}

#[async_trait]
impl TokenRepository for MemoryTokenRepository {
    async fn start_session(&self, uid: Uuid, start: &SessionStart) -> AppResult<bool> {
        Ok(self.step(|keys, at| keys.start_guarded_session(uid, start, at)))
    }

    async fn refresh(&self, uid: Uuid, step: &RefreshStep) -> AppResult<RefreshOutcome> {
        Ok(self.step(|keys, at| keys.refresh(uid, step, at)))
    }

    async fn rotate_legacy(&self, uid: Uuid, jti: Uuid, start: &SessionStart) -> AppResult<bool> {
        Ok(self.step(|keys, at| keys.rotate_legacy(uid, jti, start, at)))
    }

    async fn list_sessions(&self, uid: Uuid, now: u64) -> AppResult<Vec<SessionInfo>> {
        Ok(self.step(|keys, at| keys.list_sessions(uid, now, at)))
    }

    async fn end_session(&self, uid: Uuid, sid: Uuid) -> AppResult<bool> {
        Ok(self.step(|keys, at| keys.end_session(uid, sid, at)))
    }

    async fn end_other_sessions(
        &self,
        uid: Uuid,
        keep: Option<Uuid>,
        change: Option<CredentialChange>,
    ) -> AppResult<u64> {
        Ok(self.step(|keys, at| keys.end_other_sessions(uid, keep, change.as_ref(), at)))
    }

    /// One step, where Redis needs a marker and a SCAN: no refresh of the
    /// user can run while the sweep does.
    async fn delete_user_refresh_tokens(&self, uid: Uuid) -> AppResult<u64> {
        Ok(self.step(|keys, at| keys.remove_prefix(&user_prefix(uid), at)))
    }

    async fn ping(&self) -> AppResult<()> {
        Ok(())
    }
}

#[async_trait]
impl RateLimitRepository for MemoryTokenRepository {
    async fn attempt(&self, counters: &[RateCounter], window: Duration) -> AppResult<RateDecision> {
        Ok(self.step(|keys, at| keys.rate_attempt(counters, window, at)))
    }

    async fn refund(&self, keys: &[String]) -> AppResult<()> {
        self.step(|space, at| space.rate_refund(keys, at));
        Ok(())
    }

    async fn clear(&self, keys: &[String]) -> AppResult<()> {
        self.step(|space, at| {
            for key in keys {
                space.del(key, at);
            }
        });
        Ok(())
    }
}
