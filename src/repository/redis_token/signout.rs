//! Sign-out everywhere: SCAN the user's keys with a large COUNT and UNLINK
//! each batch, under the sign-out marker (no refresh of the user writes while
//! it exists, so no key appears behind the cursor).
//!
//! On Redis Cluster every key of a user carries the hash tag `{<uid>}` and so
//! lives on the one master that owns that slot: the SCAN is routed to that
//! master only, and costs that master's share of the keyspace, not the whole
//! cluster's. A cursor belongs to the node that issued it: if the slot's
//! master changes during the sweep (a failover), the sweep starts again
//! from cursor 0 on the new one (it only removes, so repeating it is safe).

use redis::{ErrorKind, RedisError, RedisResult};
use uuid::Uuid;

use super::keys::KeyScheme;
use crate::redis_conn::{RedisConn, RedisMode};

/// Keys found per SCAN step on sign-out; small COUNTs multiply round trips.
pub(super) const SCAN_COUNT: usize = 1000;

/// How often a sweep starts over because its slot changed master mid-way
/// before giving up (the caller answers 503; the user can sign out again).
const MAX_RESTARTS: u32 = 3;

/// Removes every key of `uid` matching the scheme's pattern; how many.
pub(super) async fn sweep(conn: &mut RedisConn, keys: KeyScheme, uid: Uuid) -> RedisResult<u64> {
    let slot_key = keys.slot_key(uid);
    let pattern = keys.user_pattern(uid);
    let mut deleted: u64 = 0;
    let mut restarts = 0;
    loop {
        let master = master_id(conn, &slot_key).await?;
        deleted += sweep_once(conn, &slot_key, &pattern).await?;
        if master == master_id(conn, &slot_key).await? {
            return Ok(deleted);
        }
        if restarts == MAX_RESTARTS {
            // An I/O error: the store is unavailable (503), not a bug.
            return Err(RedisError::from((
                ErrorKind::Io,
                "sign-out sweep: the user's slot kept changing master",
            )));
        }
        restarts += 1;
        tracing::info!(%uid, "sign-out sweep: the slot changed master during the SCAN; sweeping again");
    }
}

/// One SCAN from cursor 0 to 0 on the master of `slot_key`, UNLINKing what it
/// finds (in cluster mode the keys of one batch share a slot, so one UNLINK
/// takes them all).
async fn sweep_once(conn: &mut RedisConn, slot_key: &str, pattern: &str) -> RedisResult<u64> {
    let mut cursor: u64 = 0;
    let mut deleted: u64 = 0;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, found): (u64, Vec<String>) =
            conn.query_on_master_of(&scan, slot_key.as_bytes()).await?;
        if !found.is_empty() {
            let n: u64 = redis::cmd("UNLINK").arg(&found).query_async(conn).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// The id of the node serving `slot_key`'s slot (cluster); `None` on a
/// single Redis, where there is one node.
async fn master_id(conn: &mut RedisConn, slot_key: &str) -> RedisResult<Option<String>> {
    if conn.mode() == RedisMode::Standalone {
        return Ok(None);
    }
    let id: String = conn
        .query_on_master_of(redis::cmd("CLUSTER").arg("MYID"), slot_key.as_bytes())
        .await?;
    Ok(Some(id))
}
