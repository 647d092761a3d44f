//! The durable copy of the in-process keyspace: a SQLite table written
//! through by one writer task, so that a crash undoes no answered change.
//!
//! The keyspace stays the decision engine (its steps have the Redis
//! semantics); after each step, still under the keyspace lock, [`Durable::record`]
//! turns the keys the step changed into rows (value and expiry, or gone) and
//! hands them, numbered in order, to the writer. The writer owns one SQLite
//! connection (WAL, `synchronous=FULL`) and commits everything pending in one
//! transaction (group commit: concurrent steps share one fsync, and a step's
//! changes are never split). A step's caller waits, by [`Durable::committed`],
//! until the writer has committed up to the sequence number current at its
//! step, also when it only read (what it read may not be committed yet).
//! A commit that fails (disk full, I/O error, the file locked) is retried with
//! backoff, with everything that arrived meanwhile; waiters give up after a
//! bounded wait with a 503, and nothing is answered until it is committed.
//!
//! Attempt counters (`ratelimit:…`) are never written: losing them is harmless.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::keyspace::{Keyspace, Value};
use crate::error::{AppError, AppResult};

/// How long a request waits for its step to be committed before it answers
/// 503 (below the default handler timeout).
pub const COMMIT_WAIT: Duration = Duration::from_secs(3);

/// How long the writer waits for SQLite's write lock (held by the user store
/// while it writes to the same file) before a commit counts as failed.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// The first and the longest pause between retries of a failed commit.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(2);

/// Keys that are not worth a write (see `limits.rs`).
const COUNTER_PREFIX: &str = "ratelimit:";

const SCHEMA: [&str; 2] = [
    // The primary key orders rows by name, so a user's keys (`<uid>:…`) are
    // one range of it.
    "CREATE TABLE IF NOT EXISTS token_keys (
        key TEXT PRIMARY KEY NOT NULL,
        expires_at INTEGER NOT NULL,
        value TEXT NOT NULL
    ) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS token_keys_expires_at ON token_keys (expires_at)",
];

const UPSERT: &str = "INSERT INTO token_keys (key, expires_at, value) VALUES (?1, ?2, ?3) \
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, value = excluded.value";
const DELETE: &str = "DELETE FROM token_keys WHERE key = ?1";

/// What the table must hold for a key: its expiry (Unix milliseconds) and
/// value as JSON, or nothing.
type Row = Option<(i64, String)>;

/// The rows one step changed, and its sequence number.
struct Batch {
    seq: u64,
    rows: Vec<(String, Row)>,
}

/// Converts between the keyspace's monotonic instants and the table's wall
/// clock, from one reading of both.
#[derive(Debug, Clone, Copy)]
struct Clock {
    instant: Instant,
    unix_ms: i64,
}

impl Clock {
    fn now() -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self {
            instant: Instant::now(),
            unix_ms,
        }
    }

    fn unix_ms(&self, at: Instant) -> i64 {
        let since = at.saturating_duration_since(self.instant).as_millis();
        self.unix_ms
            .saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }

    fn instant(&self, unix_ms: i64) -> Instant {
        let ahead = u64::try_from(unix_ms.saturating_sub(self.unix_ms)).unwrap_or(0);
        self.instant + Duration::from_millis(ahead)
    }
}

/// The handle on the table and its writer, shared by every clone of the store.
pub(super) struct Durable {
    batches: mpsc::UnboundedSender<Batch>,
    committed: watch::Receiver<u64>,
    /// The last sequence number handed to the writer; only changed under the
    /// keyspace lock, so numbers follow the order of the steps.
    seq: AtomicU64,
    clock: Clock,
    commit_wait: Duration,
}

impl Durable {
    /// Opens (creating) the table in the SQLite file at `path`, reads its live
    /// rows into a keyspace (deleting the expired ones) and starts the writer.
    pub(super) async fn open(
        path: &Path,
        commit_wait: Duration,
    ) -> anyhow::Result<(Self, Keyspace)> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let mut conn = options
            .connect()
            .await
            .with_context(|| format!("cannot open the token store {}", path.display()))?;
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .context("cannot create the token store's table")?;
        }
        let clock = Clock::now();
        sqlx::query("DELETE FROM token_keys WHERE expires_at <= ?1")
            .bind(clock.unix_ms)
            .execute(&mut conn)
            .await
            .context("cannot delete the token store's expired keys")?;
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT key, expires_at, value FROM token_keys")
                .fetch_all(&mut conn)
                .await
                .context("cannot read the token store")?;
        let mut keys = Keyspace::default();
        let mut unreadable = 0_usize;
        for (key, expires_at, value) in rows {
            match serde_json::from_str::<Value>(&value) {
                Ok(value) => keys.set(key, value, clock.instant(expires_at)),
                Err(_) => unreadable += 1,
            }
        }
        if unreadable > 0 {
            tracing::warn!(
                unreadable,
                "token store: skipped rows that are not a key's value"
            );
        }
        // What was just read is already in the table.
        keys.take_changed();
        let (batches, receiver) = mpsc::unbounded_channel();
        let (committed_tx, committed) = watch::channel(0);
        tokio::spawn(write(conn, receiver, committed_tx));
        let durable = Self {
            batches,
            committed,
            seq: AtomicU64::new(0),
            clock,
            commit_wait,
        };
        Ok((durable, keys))
    }

    /// Hands the keys changed by the step just run on `keys` to the writer;
    /// returns the sequence number the step's caller must see committed.
    /// Call under the keyspace lock, after every step.
    pub(super) fn record(&self, keys: &mut Keyspace, now: Instant) -> AppResult<u64> {
        let mut rows = Vec::new();
        for key in keys.take_changed() {
            if key.starts_with(COUNTER_PREFIX) {
                continue;
            }
            let row = match keys.stored(&key).filter(|(_, expires)| *expires > now) {
                Some((value, expires)) => {
                    let json = serde_json::to_string(value)
                        .map_err(|e| AppError::store_unavailable("token store", &e))?;
                    Some((self.clock.unix_ms(expires), json))
                }
                None => None,
            };
            rows.push((key, row));
        }
        if rows.is_empty() {
            return Ok(self.seq.load(Ordering::Relaxed));
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        // A writer that is gone leaves the waiters to time out (503).
        let _ = self.batches.send(Batch { seq, rows });
        Ok(seq)
    }

    /// Waits until every change up to `target` is committed: 503 if that
    /// takes longer than the commit wait.
    pub(super) async fn committed(&self, target: u64) -> AppResult<()> {
        let mut committed = self.committed.clone();
        if *committed.borrow() >= target {
            return Ok(());
        }
        match tokio::time::timeout(self.commit_wait, committed.wait_for(|c| *c >= target)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(AppError::store_unavailable(
                "token store",
                &"its writer has stopped",
            )),
            Err(_) => Err(AppError::store_unavailable(
                "token store",
                &format!("a change was not committed within {:?}", self.commit_wait),
            )),
        }
    }
}

/// The writer: commits what is pending in one transaction, then tells the
/// waiters the last sequence number it holds; retries a failed commit with
/// backoff (merging what arrives meanwhile) until it succeeds. Ends once the
/// store is dropped and everything is committed.
async fn write(
    mut conn: SqliteConnection,
    mut batches: mpsc::UnboundedReceiver<Batch>,
    committed: watch::Sender<u64>,
) {
    // Key → what the table must hold: a later change of a key replaces an
    // earlier one still pending.
    let mut pending: BTreeMap<String, Row> = BTreeMap::new();
    let mut upto = 0;
    let mut retry = FIRST_RETRY;
    loop {
        if pending.is_empty() {
            match batches.recv().await {
                Some(batch) => take(batch, &mut pending, &mut upto),
                None => return,
            }
        }
        while let Ok(batch) = batches.try_recv() {
            take(batch, &mut pending, &mut upto);
        }
        match commit(&mut conn, &pending).await {
            Ok(()) => {
                pending.clear();
                committed.send_replace(upto);
                retry = FIRST_RETRY;
            }
            Err(e) => {
                tracing::warn!(
                    error = %e, pending = pending.len(), retry_in = ?retry,
                    "token store: cannot commit, retrying"
                );
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(LAST_RETRY);
            }
        }
    }
}

fn take(batch: Batch, pending: &mut BTreeMap<String, Row>, upto: &mut u64) {
    pending.extend(batch.rows);
    *upto = batch.seq;
}

async fn commit(conn: &mut SqliteConnection, pending: &BTreeMap<String, Row>) -> sqlx::Result<()> {
    let mut tx = conn.begin().await?;
    for (key, row) in pending {
        match row {
            Some((expires_at, value)) => {
                sqlx::query(UPSERT)
                    .bind(key)
                    .bind(*expires_at)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?
            }
            None => sqlx::query(DELETE).bind(key).execute(&mut *tx).await?,
        };
    }
    tx.commit().await
}
