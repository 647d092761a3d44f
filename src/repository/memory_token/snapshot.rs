//! The snapshot file: every live key with its value and its expiry (Unix
//! seconds), written on a graceful stop and read back on start.
//!
//! `{"entries": {"<key>": {"expires_at": 1767225600, "value": {...}}}}`. The
//! format from before sessions held only whitelist keys and their expiry
//! (`{"entries": {"<uid>:<jti>": 1767225600}}`); such entries load as legacy
//! entries (value `1`, no session) that `rotate_legacy` can take.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::keyspace::{Keyspace, Value};

#[derive(Serialize)]
struct SnapshotOut<'a> {
    entries: BTreeMap<&'a str, ItemOut<'a>>,
}

#[derive(Serialize)]
struct ItemOut<'a> {
    expires_at: u64,
    value: &'a Value,
}

#[derive(Deserialize)]
struct SnapshotIn {
    entries: BTreeMap<String, ItemIn>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ItemIn {
    /// The format from before sessions: a whitelist entry's expiry only.
    Legacy(u64),
    Item {
        expires_at: u64,
        value: Value,
    },
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads a snapshot, skipping what has expired since; `None` if there is no
/// file.
pub(super) fn load(path: &Path) -> anyhow::Result<Option<Keyspace>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let snapshot: SnapshotIn = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a token-store snapshot", path.display()))?;
    let (at, unix_now) = (Instant::now(), unix_now());
    let mut keys = Keyspace::default();
    for (key, item) in snapshot.entries {
        let (expires_at, value) = match item {
            ItemIn::Legacy(expires_at) => (expires_at, Value::legacy_token()),
            ItemIn::Item { expires_at, value } => (expires_at, value),
        };
        if expires_at > unix_now {
            keys.set(key, value, at + Duration::from_secs(expires_at - unix_now));
        }
    }
    Ok(Some(keys))
}

/// Every live key as snapshot JSON, and how many.
pub(super) fn encode(keys: &Keyspace) -> anyhow::Result<(Vec<u8>, usize)> {
    let (at, unix_now) = (Instant::now(), unix_now());
    let entries: BTreeMap<&str, ItemOut<'_>> = keys
        .live(at)
        // Attempt counters are not worth keeping: a restart forgets them.
        .filter(|(_, value, _)| !matches!(value, Value::Counter(_)))
        .map(|(key, value, expires)| {
            let expires_at = unix_now + (expires - at).as_secs().max(1);
            (key, ItemOut { expires_at, value })
        })
        .collect();
    let count = entries.len();
    Ok((serde_json::to_vec(&SnapshotOut { entries })?, count))
}
