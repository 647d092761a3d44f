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
    async fn set_refresh_token(&self, uid: Uuid, jti: Uuid, ttl: Duration) -> AppResult<()> {
        self.entries().insert(key(uid, jti), Instant::now() + ttl);
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        uid: Uuid,
        old_jti: Uuid,
        new_jti: Uuid,
        ttl: Duration,
    ) -> AppResult<bool> {
        let now = Instant::now();
        let mut entries = self.entries();
        // One lock: the take and the insert are one atomic step, as in Redis.
        if !entries.take(&key(uid, old_jti), now) {
            return Ok(false);
        }
        entries.insert(key(uid, new_jti), now + ttl);
        Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn rotation_takes_the_old_entry_once_and_whitelists_the_new_one() {
        let store = MemoryTokenRepository::new();
        let (uid, old, new) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        store.set_refresh_token(uid, old, TTL).await.unwrap();
        assert!(
            store
                .rotate_refresh_token(uid, old, new, TTL)
                .await
                .unwrap()
        );
        assert!(
            !store
                .rotate_refresh_token(uid, old, Uuid::new_v4(), TTL)
                .await
                .unwrap()
        );
        let keys: Vec<String> = store
            .live_entries(&format!("{uid}:"))
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(keys, vec![format!("{uid}:{new}")]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_rotations_of_one_entry_have_exactly_one_winner() {
        let store = MemoryTokenRepository::new();
        let (uid, old) = (Uuid::new_v4(), Uuid::new_v4());
        store.set_refresh_token(uid, old, TTL).await.unwrap();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .rotate_refresh_token(uid, old, Uuid::new_v4(), TTL)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap());
        }
        assert_eq!(winners, 1);
        assert_eq!(store.live_entries(&format!("{uid}:")).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_entry_is_refused_at_once_and_reclaimed_by_the_sweep() {
        let store = MemoryTokenRepository::new();
        let _sweeper = store.spawn_sweeper(Duration::from_secs(10));
        let (uid, jti) = (Uuid::new_v4(), Uuid::new_v4());
        store
            .set_refresh_token(uid, jti, Duration::from_secs(3))
            .await
            .unwrap();
        let other = Uuid::new_v4();
        store
            .set_refresh_token(other, Uuid::new_v4(), Duration::from_secs(3))
            .await
            .unwrap();
        store
            .set_refresh_token(other, Uuid::new_v4(), Duration::from_secs(3600))
            .await
            .unwrap();

        tokio::time::advance(Duration::from_secs(4)).await;
        // Expired but not yet swept: unusable already.
        assert_eq!(store.len(), 3);
        assert!(store.live_entries(&format!("{uid}:")).is_empty());
        assert!(
            !store
                .rotate_refresh_token(uid, jti, Uuid::new_v4(), TTL)
                .await
                .unwrap()
        );

        // The sweep reclaims the other expired entry without anyone reading it.
        tokio::time::advance(Duration::from_secs(10)).await;
        tokio::task::yield_now().await;
        assert_eq!(store.len(), 1, "only the unexpired entry is left");
    }

    #[tokio::test]
    async fn signout_sweeps_the_users_prefix_and_nothing_else() {
        let store = MemoryTokenRepository::new();
        let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..3 {
            store
                .set_refresh_token(ada, Uuid::new_v4(), TTL)
                .await
                .unwrap();
        }
        store
            .set_refresh_token(bob, Uuid::new_v4(), TTL)
            .await
            .unwrap();
        assert_eq!(store.delete_user_refresh_tokens(ada).await.unwrap(), 3);
        assert!(store.live_entries(&format!("{ada}:")).is_empty());
        assert_eq!(store.live_entries(&format!("{bob}:")).len(), 1);
    }

    #[tokio::test]
    async fn a_snapshot_keeps_live_entries_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let store = MemoryTokenRepository::new();
        let (uid, jti) = (Uuid::new_v4(), Uuid::new_v4());
        store.set_refresh_token(uid, jti, TTL).await.unwrap();
        assert_eq!(store.save_snapshot(&path).unwrap(), 1);

        let restored = MemoryTokenRepository::load_snapshot(&path).unwrap();
        let entries = restored.live_entries(&format!("{uid}:"));
        assert_eq!(entries.len(), 1);
        assert!(entries[0].1 <= TTL && entries[0].1 >= TTL - Duration::from_secs(2));
        assert!(
            restored
                .rotate_refresh_token(uid, jti, Uuid::new_v4(), TTL)
                .await
                .unwrap()
        );
        assert!(
            MemoryTokenRepository::load_snapshot(&dir.path().join("missing.json"))
                .unwrap()
                .is_empty()
        );
    }
}
