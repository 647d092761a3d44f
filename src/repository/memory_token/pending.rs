//! Pending two-step sign-ins (`<uid>:mfa:<id>`), as the Redis store keeps
//! them: the failed second steps so far, expiring with the mfa token. Each is
//! one step under the store's lock, written through like the session keys.
//! The name is never a whitelist entry's (`<uid>:<jti>`) and no index lists
//! it, so no session step reads it; sign-out everywhere, a prefix sweep,
//! removes it.

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::keyspace::{Keyspace, Value, pending_sign_in_key};

impl Keyspace {
    /// `SET <uid>:mfa:<id> 0 PX ttl` (at least a millisecond, as `PX`).
    pub(super) fn put_pending_sign_in(&mut self, uid: Uuid, id: Uuid, ttl: Duration, at: Instant) {
        let ttl = ttl.max(Duration::from_millis(1));
        let value = Value::PendingSignIn { failures: 0 };
        self.set(pending_sign_in_key(uid, id), value, at + ttl);
    }

    pub(super) fn pending_sign_in(&self, uid: Uuid, id: Uuid, at: Instant) -> bool {
        matches!(
            self.get(&pending_sign_in_key(uid, id), at),
            Some(Value::PendingSignIn { .. })
        )
    }

    /// Counts a failure (the expiry stays); removes the pending sign-in once
    /// its failures reach `max_failures`. `None` if it does not exist.
    pub(super) fn fail_pending_sign_in(
        &mut self,
        uid: Uuid,
        id: Uuid,
        max_failures: u32,
        at: Instant,
    ) -> Option<u32> {
        let key = pending_sign_in_key(uid, id);
        let Some(Value::PendingSignIn { failures }) = self.get_mut(&key, at) else {
            return None;
        };
        *failures = failures.saturating_add(1);
        let failures = *failures;
        if failures >= max_failures {
            self.del(&key, at);
        }
        Some(failures)
    }

    /// `DEL <uid>:mfa:<id>`: whether it existed.
    pub(super) fn take_pending_sign_in(&mut self, uid: Uuid, id: Uuid, at: Instant) -> bool {
        self.del(&pending_sign_in_key(uid, id), at)
    }
}
