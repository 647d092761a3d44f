//! The users `GET /me` shows, kept for a moment in this replica's memory, so
//! that the most frequent read costs no database round trip.
//!
//! [`ProfileCache`] decorates a [`UserService`]: only
//! [`UserService::profile`] reads through the cache; every other read
//! ([`UserService::get`] for the decisions, sign-in, lookups by email) goes
//! to the store as before. Every write of a user through this replica
//! forgets its entry, so the replica that took a change never shows the old
//! profile; other replicas show it at most [`PROFILE_TTL`] later.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;
use uuid::Uuid;

use crate::error::AppResult;
use crate::model::{Email, Password, User, UserDetails, UserService};

/// How long a cached profile is served: how late `GET /me` on one replica
/// may show a change taken by another (a change on the same replica is shown
/// at once). Must stay ≤ 1 s, the freshness `docs/operations.md` promises.
pub const PROFILE_TTL: Duration = Duration::from_millis(500);

/// How many profiles one replica keeps at most (least recently and
/// frequently used go first): a cached user without its hash is ~150 bytes
/// plus the cache's own bookkeeping, so a few MiB at most.
pub const PROFILE_CAPACITY: u64 = 10_000;

/// A [`UserService`] whose [`UserService::profile`] reads through a bounded
/// cache with a time to live; see the module documentation.
pub struct ProfileCache {
    users: Arc<dyn UserService>,
    profiles: Cache<Uuid, User>,
    /// Counts writes begun through this replica: a read that saw it change
    /// while it fetched drops what it fetched (it may predate the write).
    writes: AtomicU64,
}

impl ProfileCache {
    /// [`PROFILE_TTL`] and [`PROFILE_CAPACITY`].
    pub fn new(users: Arc<dyn UserService>) -> Self {
        Self::with_limits(users, PROFILE_TTL, PROFILE_CAPACITY)
    }

    pub fn with_limits(users: Arc<dyn UserService>, ttl: Duration, capacity: u64) -> Self {
        Self {
            users,
            profiles: Cache::builder()
                .time_to_live(ttl)
                .max_capacity(capacity)
                .build(),
            writes: AtomicU64::new(0),
        }
    }

    /// Forgets `uid`'s profile when dropped: after the write it guards,
    /// whether the write succeeded, failed, or was cancelled half-way (its
    /// request dropped) with the row perhaps already changed.
    fn forget_after(&self, uid: Uuid) -> Forget<'_> {
        Forget { cache: self, uid }
    }

    fn forget(&self, uid: Uuid) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.profiles.invalidate(&uid);
    }

    /// How many profiles are held, once the cache's pending upkeep is done.
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.profiles.run_pending_tasks();
        self.profiles.entry_count()
    }
}

struct Forget<'a> {
    cache: &'a ProfileCache,
    uid: Uuid,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.cache.forget(self.uid);
    }
}

#[async_trait]
impl UserService for ProfileCache {
    async fn get(&self, uid: Uuid) -> AppResult<User> {
        self.users.get(uid).await
    }

    async fn profile(&self, uid: Uuid) -> AppResult<User> {
        if let Some(user) = self.profiles.get(&uid) {
            return Ok(user);
        }
        let writes = self.writes.load(Ordering::SeqCst);
        let mut user = self.users.profile(uid).await?;
        // What is cached shows a profile, it decides nothing.
        user.password_hash = String::new();
        self.profiles.insert(uid, user.clone());
        // A write that began after `writes` was read may have been stored
        // before the fetch and forgotten before the insert: drop the insert.
        // (A write that begins after this check forgets it itself.) A user
        // not found is never cached: its sign-up needs no forgetting.
        if self.writes.load(Ordering::SeqCst) != writes {
            self.profiles.invalidate(&uid);
        }
        Ok(user)
    }

    async fn hash_password(&self, password: &Password, source: &str) -> AppResult<String> {
        self.users.hash_password(password, source).await
    }

    async fn signup(
        &self,
        email: Email,
        password_hash: String,
        must_verify: bool,
    ) -> AppResult<User> {
        let user = self.users.signup(email, password_hash, must_verify).await?;
        self.forget(user.uid);
        Ok(user)
    }

    async fn signin(&self, email: Email, password: Password, source: &str) -> AppResult<User> {
        self.users.signin(email, password, source).await
    }

    async fn check_password(&self, user: &User, password: Password) -> AppResult<()> {
        self.users.check_password(user, password).await
    }

    async fn set_password(&self, uid: Uuid, password: Password) -> AppResult<String> {
        let _forget = self.forget_after(uid);
        self.users.set_password(uid, password).await
    }

    async fn update_details(&self, uid: Uuid, details: UserDetails) -> AppResult<User> {
        let _forget = self.forget_after(uid);
        self.users.update_details(uid, details).await
    }

    async fn update_details_pending(&self, uid: Uuid, details: UserDetails) -> AppResult<User> {
        let _forget = self.forget_after(uid);
        self.users.update_details_pending(uid, details).await
    }

    async fn confirm_pending_email(&self, uid: Uuid, email: &str) -> AppResult<bool> {
        let _forget = self.forget_after(uid);
        self.users.confirm_pending_email(uid, email).await
    }

    async fn find_by_email(&self, email: &Email) -> AppResult<Option<User>> {
        self.users.find_by_email(email).await
    }

    async fn mark_email_verified(&self, uid: Uuid, email: &str) -> AppResult<bool> {
        let _forget = self.forget_after(uid);
        self.users.mark_email_verified(uid, email).await
    }

    async fn reset_password(&self, uid: Uuid, email: &str, password_hash: &str) -> AppResult<bool> {
        let _forget = self.forget_after(uid);
        self.users.reset_password(uid, email, password_hash).await
    }

    async fn delete(&self, uid: Uuid) -> AppResult<()> {
        let _forget = self.forget_after(uid);
        self.users.delete(uid).await
    }

    async fn ready(&self) -> AppResult<()> {
        self.users.ready().await
    }
}

#[cfg(test)]
mod tests;
