//! The snapshot file of earlier versions (every live key with its value and
//! its expiry, in Unix seconds, written on a graceful stop): read once at
//! start-up into the durable store, then removed.
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
use serde::Deserialize;
use tokio::time::Instant;

use super::keyspace::{Keyspace, Value};

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

/// Reads a snapshot into `keys`, skipping what has expired since and the
/// keys `keys` already holds (the durable store is newer); how many keys it
/// added, `None` if there is no file.
pub(super) fn load(path: &Path, keys: &mut Keyspace) -> anyhow::Result<Option<usize>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let snapshot: SnapshotIn = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a token-store snapshot", path.display()))?;
    let (at, unix_now) = (Instant::now(), unix_now());
    let mut added = 0;
    for (key, item) in snapshot.entries {
        let (expires_at, value) = match item {
            ItemIn::Legacy(expires_at) => (expires_at, Value::legacy_token()),
            ItemIn::Item { expires_at, value } => (expires_at, value),
        };
        if expires_at > unix_now && keys.stored(&key).is_none() {
            keys.set(key, value, at + Duration::from_secs(expires_at - unix_now));
            added += 1;
        }
    }
    Ok(Some(added))
}
