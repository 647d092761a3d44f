//! The refresh-token whitelist in process memory, for a single embedded instance.
//!
//! Same semantics as the Redis store: one entry `<uid>:<jti>` per live token,
//! expiry by TTL (an expired entry is unusable at once and reclaimed by a
//! background sweep), an atomic take-on-rotate, and a prefix sweep on sign-out.
//! Entries are saved to a snapshot file on shutdown and read back on start, so
//! refresh tokens survive a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::AppResult;
use crate::fs_private::write_private;
use crate::model::TokenRepository;
use crate::model::{RefreshOutcome, RefreshStep, SessionInfo, SessionStart};

/// How often the background sweep reclaims expired entries by default.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The refresh-token whitelist (`TokenRepository`) in process memory. Cloning shares the same store.
#[derive(Clone, Default)]
pub struct MemoryTokenRepository {
    inner: Arc<Mutex<Entries>>,
}

/// Entries by key, plus an index by expiry so a sweep touches only what expired.
#[derive(Default)]
struct Entries {
    by_key: BTreeMap<String, Instant>,
    by_expiry: BTreeSet<(Instant, String)>,
}

impl Entries {
    fn insert(&mut self, key: String, expires: Instant) {
        if let Some(old) = self.by_key.insert(key.clone(), expires) {
            self.by_expiry.remove(&(old, key.clone()));
        }
        self.by_expiry.insert((expires, key));
    }

    /// Removes a key; returns whether it was live (present and unexpired).
    fn take(&mut self, key: &str, now: Instant) -> bool {
        match self.by_key.remove(key) {
            Some(expires) => {
                self.by_expiry.remove(&(expires, key.to_owned()));
                expires > now
            }
            None => false,
        }
    }

    fn sweep(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some((expires, _)) = self.by_expiry.first() {
            if *expires > now {
                break;
            }
            if let Some((_, key)) = self.by_expiry.pop_first() {
                self.by_key.remove(&key);
                removed += 1;
            }
        }
        removed
    }
}

fn key(uid: Uuid, jti: Uuid) -> String {
    format!("{uid}:{jti}")
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// `<uid>:<jti>` → expiry as Unix seconds.
    entries: BTreeMap<String, u64>,
}

impl MemoryTokenRepository {
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // (each method finishes its edits before anything can panic), so go on.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the background sweep; it ends when the last clone is dropped.
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Mutex<Entries>> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let removed = Self { inner }.sweep_expired();
                if removed > 0 {
                    tracing::debug!(removed, "reclaimed expired refresh-token entries");
                }
            }
        })
    }

    /// Removes every expired entry now; returns how many.
    pub fn sweep_expired(&self) -> usize {
        self.entries().sweep(Instant::now())
    }

    /// How many entries are held, expired-but-not-yet-swept ones included.
    pub fn len(&self) -> usize {
        self.entries().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes one entry by key; returns whether it was live.
    pub fn remove(&self, key: &str) -> bool {
        self.entries().take(key, Instant::now())
    }

    /// Live entries whose key starts with `prefix`, with their remaining TTL.
    pub fn live_entries(&self, prefix: &str) -> Vec<(String, Duration)> {
        let now = Instant::now();
        self.entries()
            .by_key
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, expires)| **expires > now)
            .map(|(k, expires)| (k.clone(), *expires - now))
            .collect()
    }

    /// Reads a snapshot written by [`Self::save_snapshot`], skipping expired
    /// entries; a missing file is an empty store.
    pub fn load_snapshot(path: &Path) -> anyhow::Result<Self> {
        let store = Self::new();
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let snapshot: Snapshot = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a token-store snapshot", path.display()))?;
        let (now, unix_now) = (Instant::now(), unix_now());
        let mut entries = store.entries();
        for (key, expires_at) in snapshot.entries {
            if expires_at > unix_now {
                entries.insert(key, now + Duration::from_secs(expires_at - unix_now));
            }
        }
        drop(entries);
        Ok(store)
    }

    /// Writes the live entries to `path` (owner-only, replaced atomically).
    pub fn save_snapshot(&self, path: &Path) -> anyhow::Result<usize> {
        let (now, unix_now) = (Instant::now(), unix_now());
        let entries: BTreeMap<String, u64> = self
            .entries()
            .by_key
            .iter()
            .filter(|(_, expires)| **expires > now)
            .map(|(k, expires)| (k.clone(), unix_now + (*expires - now).as_secs().max(1)))
            .collect();
        let count = entries.len();
        let json = serde_json::to_vec(&Snapshot { entries })?;
        write_private(path, &json)?;
        Ok(count)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[async_trait]
impl TokenRepository for MemoryTokenRepository {
    async fn start_session(&self, _uid: Uuid, _start: &SessionStart) -> AppResult<()> {
        Err(pending())
    }

    async fn refresh(&self, _uid: Uuid, _step: &RefreshStep) -> AppResult<RefreshOutcome> {
        Err(pending())
    }

    async fn rotate_legacy(
        &self,
        _uid: Uuid,
        _jti: Uuid,
        _start: &SessionStart,
    ) -> AppResult<bool> {
        Err(pending())
    }

    async fn list_sessions(&self, _uid: Uuid, _now: u64) -> AppResult<Vec<SessionInfo>> {
        Err(pending())
    }

    async fn end_session(&self, _uid: Uuid, _sid: Uuid) -> AppResult<bool> {
        Err(pending())
    }

    async fn end_other_sessions(&self, _uid: Uuid, _keep: Uuid) -> AppResult<u64> {
        Err(pending())
    }

    async fn delete_user_refresh_tokens(&self, uid: Uuid) -> AppResult<u64> {
        let prefix = format!("{uid}:");
        let now = Instant::now();
        let mut entries = self.entries();
        let keys: Vec<String> = entries
            .by_key
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        let live = keys.iter().filter(|k| entries.take(k, now)).count();
        Ok(live as u64)
    }

    async fn ping(&self) -> AppResult<()> {
        Ok(())
    }
}

// BASE placeholder, replaced by the sessions implementation of this store.
fn pending() -> crate::error::AppError {
    crate::error::AppError::Internal(anyhow::anyhow!(
        "sessions not implemented in this store yet"
    ))
}
