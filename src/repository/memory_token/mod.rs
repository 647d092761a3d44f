//! The refresh-token whitelist and its sessions in process memory, for a
//! single embedded instance.
//!
//! The same keys and the same semantics as the Redis store
//! (issue 8): a whitelist entry `<uid>:<jti>` per live
//! token recording its session, the per-user index `<uid>:sessions`, grace
//! successors `<uid>:grace:<jti>`, pending two-step sign-ins
//! `<uid>:mfa:<id>` (`pending.rs`), the state of WebAuthn ceremonies,
//! `<uid>:webauthn:<challenge>` and `webauthn:auth:<challenge>`
//! (`ceremony.rs`), each with its TTL (an expired key is unusable at once and
//! reclaimed by a background sweep). Each method holds
//! the one lock for its whole step, as a Lua script is atomic in Redis. All of
//! a user's keys start with `<uid>:`, so sign-out everywhere is a prefix
//! sweep. The sign-in and sign-up attempt counters (`ratelimit:…`) live in
//! the same keyspace, in memory only.
//!
//! Opened on a SQLite file ([`MemoryTokenRepository::open`]), every other key
//! is written through to a table there (`durable.rs`), and no step's caller
//! gets its answer before what the step changed, or read, is committed: a
//! crash undoes no answered change. Without a file (an in-memory user store,
//! the unit tests) the store lives as long as the process.

mod ceremony;
mod durable;
mod keyspace;
mod limits;
mod pending;
mod sessions;
mod snapshot;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ceremony;
#[cfg(test)]
mod tests_durable;
#[cfg(test)]
mod tests_sign_in;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::model::{
    Assurance, CeremonyKey, CredentialChange, RateCounter, RateDecision, RateLimitRepository,
    RefreshOutcome, RefreshStep, SessionInfo, SessionName, SessionStart, TokenRepository,
};
use ceremony::ceremony_key;
pub use durable::COMMIT_WAIT;
use durable::Durable;
use keyspace::{Keyspace, user_prefix};

/// How often the background sweep reclaims expired keys by default.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The refresh-token whitelist and sessions (`TokenRepository`) in process
/// memory, written through to a SQLite table when opened on a file. Cloning
/// shares the same store.
#[derive(Clone, Default)]
pub struct MemoryTokenRepository {
    inner: Arc<Mutex<Keyspace>>,
    durable: Option<Arc<Durable>>,
}

impl MemoryTokenRepository {
    /// A store in memory only: it ends with the process.
    pub fn new() -> Self {
        Self::default()
    }

    /// The store kept in the SQLite file `file` (its table `token_keys`,
    /// created if missing): reads its live keys, then migrates a `snapshot`
    /// file of earlier versions into it, if there is one, and removes that.
    /// A step waits at most `commit_wait` for its commit (else 503).
    pub async fn open(file: &Path, snapshot: &Path, commit_wait: Duration) -> anyhow::Result<Self> {
        let (durable, mut keys) = Durable::open(file, commit_wait).await?;
        let migrated = snapshot::load(snapshot, &mut keys)?;
        let durable = Arc::new(durable);
        let target = durable.record(&mut keys, Instant::now())?;
        let store = Self {
            inner: Arc::new(Mutex::new(keys)),
            durable: Some(durable.clone()),
        };
        if let Some(count) = migrated {
            durable.committed(target).await?;
            std::fs::remove_file(snapshot)
                .with_context(|| format!("cannot remove {}", snapshot.display()))?;
            tracing::info!(
                count,
                from = %snapshot.display(),
                to = %file.display(),
                "moved the refresh-token snapshot into the token store"
            );
        }
        Ok(store)
    }

    fn keys(&self) -> MutexGuard<'_, Keyspace> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // (each edit of the keyspace completes before anything can panic), so go on.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one store step under the lock, with the store's clock read once
    /// the lock is held, and hands what it changed to the writer (if the
    /// store is durable); the step's result and the sequence number to wait
    /// for (see [`Self::durable_step`]).
    fn step<T>(&self, f: impl FnOnce(&mut Keyspace, Instant) -> T) -> AppResult<(T, u64)> {
        let mut keys = self.keys();
        let at = Instant::now();
        let out = f(&mut keys, at);
        let seq = match &self.durable {
            Some(durable) => durable.record(&mut keys, at)?,
            None => {
                keys.take_changed();
                0
            }
        };
        Ok((out, seq))
    }

    /// A whitelist or session step: its result once everything it changed
    /// or saw is committed (503 if that takes too long).
    async fn durable_step<T>(&self, f: impl FnOnce(&mut Keyspace, Instant) -> T) -> AppResult<T> {
        let (out, seq) = self.step(f)?;
        if let Some(durable) = &self.durable {
            durable.committed(seq).await?;
        }
        Ok(out)
    }

    /// A step whose changes need not be waited for (counters, the sweep,
    /// inspection): they are committed in order with the next ones.
    fn quick_step<T>(&self, f: impl FnOnce(&mut Keyspace, Instant) -> T) -> AppResult<T> {
        self.step(f).map(|(out, _)| out)
    }

    /// Starts the background sweep; it ends when the last clone is dropped.
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Mutex<Keyspace>> = Arc::downgrade(&self.inner);
        let durable = self.durable.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let durable = durable.clone();
                let removed = Self { inner, durable }.sweep_expired();
                if removed > 0 {
                    tracing::debug!(removed, "reclaimed expired token-store keys");
                }
            }
        })
    }

    /// Removes every expired key now (from the table too); returns how many.
    pub fn sweep_expired(&self) -> usize {
        self.quick_step(|keys, at| keys.sweep(at))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "token store: cannot record the sweep");
                0
            })
    }

    /// How many keys are held (whitelist entries, indexes, grace successors,
    /// guards, pending sign-ins, ceremonies, attempt counters),
    /// expired-but-not-yet-swept ones included.
    pub fn len(&self) -> usize {
        self.keys().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes one key by name (`DEL`); returns whether it was live.
    pub fn remove(&self, key: &str) -> bool {
        self.quick_step(|keys, at| keys.del(key, at))
            .unwrap_or(false)
    }

    /// Live keys whose name starts with `prefix`, in name order, with their
    /// remaining TTL: whitelist entries `<uid>:<jti>`, and, as a `SCAN
    /// <uid>:*` in Redis finds them, the index `<uid>:sessions`, grace
    /// successors `<uid>:grace:<jti>`, pending sign-ins `<uid>:mfa:<id>` and
    /// ceremonies `<uid>:webauthn:<challenge>`.
    pub fn live_entries(&self, prefix: &str) -> Vec<(String, Duration)> {
        let (keys, at) = (self.keys(), Instant::now());
        keys.live_with_prefix(prefix, at)
            .map(|(key, _, expires)| (key.to_owned(), expires - at))
            .collect()
    }
}

#[async_trait]
impl TokenRepository for MemoryTokenRepository {
    async fn start_session(&self, uid: Uuid, start: &SessionStart) -> AppResult<bool> {
        self.durable_step(|keys, at| keys.start_guarded_session(uid, start, at))
            .await
    }

    async fn refresh(&self, uid: Uuid, step: &RefreshStep) -> AppResult<RefreshOutcome> {
        self.durable_step(|keys, at| keys.refresh(uid, step, at))
            .await
    }

    async fn rotate_legacy(&self, uid: Uuid, jti: Uuid, start: &SessionStart) -> AppResult<bool> {
        self.durable_step(|keys, at| keys.rotate_legacy(uid, jti, start, at))
            .await
    }

    async fn list_sessions(&self, uid: Uuid, now: u64) -> AppResult<Vec<SessionInfo>> {
        self.durable_step(|keys, at| keys.list_sessions(uid, now, at))
            .await
    }

    async fn end_session(&self, uid: Uuid, sid: Uuid) -> AppResult<bool> {
        self.durable_step(|keys, at| keys.end_session(uid, sid, at))
            .await
    }

    async fn rename_session(
        &self,
        uid: Uuid,
        sid: Uuid,
        name: Option<SessionName>,
        now: u64,
    ) -> AppResult<bool> {
        self.durable_step(|keys, at| keys.rename_session(uid, sid, name, now, at))
            .await
    }

    async fn end_other_sessions(
        &self,
        uid: Uuid,
        keep: Option<Uuid>,
        change: Option<CredentialChange>,
    ) -> AppResult<u64> {
        self.durable_step(|keys, at| keys.end_other_sessions(uid, keep, change.as_ref(), at))
            .await
    }

    async fn raise_session(
        &self,
        uid: Uuid,
        sid: Uuid,
        assurance: &Assurance,
        now: u64,
    ) -> AppResult<bool> {
        self.durable_step(|keys, at| keys.raise_session(uid, sid, assurance, now, at))
            .await
    }

    async fn session_assurance(&self, uid: Uuid, sid: Uuid) -> AppResult<Option<Assurance>> {
        self.durable_step(|keys, at| keys.session_assurance(uid, sid, at))
            .await
    }

    async fn put_pending_sign_in(&self, uid: Uuid, id: Uuid, ttl: Duration) -> AppResult<()> {
        self.durable_step(|keys, at| keys.put_pending_sign_in(uid, id, ttl, at))
            .await
    }

    async fn pending_sign_in(&self, uid: Uuid, id: Uuid) -> AppResult<bool> {
        self.durable_step(|keys, at| keys.pending_sign_in(uid, id, at))
            .await
    }

    async fn fail_pending_sign_in(
        &self,
        uid: Uuid,
        id: Uuid,
        max_failures: u32,
    ) -> AppResult<Option<u32>> {
        self.durable_step(|keys, at| keys.fail_pending_sign_in(uid, id, max_failures, at))
            .await
    }

    async fn take_pending_sign_in(&self, uid: Uuid, id: Uuid) -> AppResult<bool> {
        self.durable_step(|keys, at| keys.take_pending_sign_in(uid, id, at))
            .await
    }

    async fn put_ceremony(&self, key: &CeremonyKey, state: &str, ttl: Duration) -> AppResult<()> {
        let Some(key) = ceremony_key(key) else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "a ceremony challenge must be base64url of 1 to 128 characters"
            )));
        };
        self.durable_step(|keys, at| keys.put_ceremony(key, state, ttl, at))
            .await
    }

    /// Durable: a taken ceremony stays taken across a restart.
    async fn take_ceremony(&self, key: &CeremonyKey) -> AppResult<Option<String>> {
        let Some(key) = ceremony_key(key) else {
            return Ok(None);
        };
        self.durable_step(|keys, at| keys.take_ceremony(&key, at))
            .await
    }

    /// One step, where Redis needs a marker and a SCAN: no refresh of the
    /// user can run while the sweep does.
    async fn delete_user_refresh_tokens(&self, uid: Uuid) -> AppResult<u64> {
        self.durable_step(|keys, at| keys.remove_prefix(&user_prefix(uid), at))
            .await
    }

    /// Durable: everything handed to the writer so far is committed (503
    /// while commits fail).
    async fn ping(&self) -> AppResult<()> {
        self.durable_step(|_, _| ()).await
    }
}

#[async_trait]
impl RateLimitRepository for MemoryTokenRepository {
    async fn attempt(&self, counters: &[RateCounter], window: Duration) -> AppResult<RateDecision> {
        self.quick_step(|keys, at| keys.rate_attempt(counters, window, at))
    }

    async fn refund(&self, keys: &[String]) -> AppResult<()> {
        self.quick_step(|space, at| space.rate_refund(keys, at))
    }

    async fn clear(&self, keys: &[String]) -> AppResult<()> {
        self.quick_step(|space, at| {
            for key in keys {
                space.del(key, at);
            }
        })
    }
}
