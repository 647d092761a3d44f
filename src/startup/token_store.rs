//! The token store chosen by `REDIS_URL`: Redis (shared by every process),
//! or the in-process store, which one process owns while it runs.

use std::fs::{File, TryLockError};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use super::user_store::create_private_file;
use crate::config::{Config, RedisMode, TokenStoreConfig};
use crate::model::{RateLimitRepository, TokenRepository};
use crate::repository::{
    COMMIT_WAIT, DEFAULT_SWEEP_INTERVAL, MemoryTokenRepository, RedisTokenRepository,
    redis_connection,
};

/// The refresh-token whitelist chosen by `REDIS_URL`.
pub(super) struct TokenStore {
    pub(super) repo: Arc<dyn TokenRepository>,
    /// The same store, counting sign-in and sign-up attempts.
    pub(super) limits: Arc<dyn RateLimitRepository>,
    /// The in-process store (`None` with Redis).
    pub(super) memory: Option<MemoryTokenRepository>,
    /// What the start-up line calls it.
    pub(super) description: String,
    /// The in-process store's file lock, held as long as this process uses
    /// it (`None` with Redis or in memory only).
    pub(super) lock: Option<StoreLock>,
}

/// An exclusive lock on `<token store file>.lock`: the in-process store lives
/// in one process's memory, written through to its file, so a second process
/// on the same file (another service, or `account users` while the service
/// runs) would work on a copy the first never sees, and each would overwrite
/// the other's keys. The kernel releases it when the process ends, crash
/// included.
pub(crate) struct StoreLock {
    _file: File,
}

/// The lock file of the in-process token store kept in `file`.
fn lock_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of the token store kept in `file`, or says which file
/// another process holds.
pub(crate) fn lock_token_file(file: &Path) -> anyhow::Result<StoreLock> {
    let path = lock_path(file);
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match lock.try_lock() {
        Ok(()) => Ok(StoreLock { _file: lock }),
        Err(TryLockError::WouldBlock) => anyhow::bail!(
            "another process uses the in-process token store {} (a running service: {} is \
             locked); stop it first, or give every process a shared Redis (REDIS_URL)",
            file.display(),
            path.display()
        ),
        Err(TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Prepares the token store chosen by `REDIS_URL`: Redis connects lazily (start-up
/// does not need it); the in-process store is locked to this process, reads its
/// SQLite table (moving an earlier version's snapshot into it) and starts
/// sweeping.
pub(super) async fn open_token_store(config: &Config) -> anyhow::Result<TokenStore> {
    Ok(match &config.token_store {
        TokenStoreConfig::Redis { url, mode } => {
            let redis = redis_connection(*mode, url.expose()).map_err(anyhow::Error::msg)?;
            let store = RedisTokenRepository::new(redis);
            TokenStore {
                repo: Arc::new(store.clone()),
                limits: Arc::new(store),
                memory: None,
                description: match mode {
                    RedisMode::Standalone => "Redis".to_owned(),
                    RedisMode::Cluster => "Redis Cluster".to_owned(),
                },
                lock: None,
            }
        }
        TokenStoreConfig::InProcess { file, snapshot } => {
            let (store, description, lock) = match file {
                Some(file) => {
                    create_private_file(file).context("the token store")?;
                    let lock = lock_token_file(file)?;
                    let store = MemoryTokenRepository::open(file, snapshot, COMMIT_WAIT).await?;
                    (
                        store,
                        format!("in-process, kept in SQLite {}", file.display()),
                        Some(lock),
                    )
                }
                None => (
                    MemoryTokenRepository::new(),
                    "in-process, in memory only".to_owned(),
                    None,
                ),
            };
            store.spawn_sweeper(DEFAULT_SWEEP_INTERVAL);
            TokenStore {
                repo: Arc::new(store.clone()),
                limits: Arc::new(store.clone()),
                memory: Some(store),
                description,
                lock,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_at_a_time_holds_a_token_store_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("account.db");
        let first = lock_token_file(&file).unwrap();
        let err = format!("{:#}", lock_token_file(&file).err().unwrap());
        assert!(err.contains("another process uses"), "{err}");
        assert!(err.contains("account.db.lock"), "{err}");
        // Another store's file is another lock.
        lock_token_file(&dir.path().join("other.db")).unwrap();
        drop(first);
        lock_token_file(&file).expect("free again once its holder is gone");
    }
}
