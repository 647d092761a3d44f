//! Where second factors are stored (tables `mfa_factors` and
//! `recovery_codes`, in the user store, removed with their user). Each method
//! is one statement or one transaction.

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::AppResult;
use crate::model::Factor;

#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait FactorRepository: Send + Sync {
    /// Stores a new (pending) factor; `NotFound` if the user does not exist.
    async fn create_factor(&self, factor: &Factor) -> AppResult<()>;
    /// The user's factors, confirmed and pending, oldest first.
    async fn factors(&self, uid: Uuid) -> AppResult<Vec<Factor>>;
    /// Whether the user has a confirmed factor (asked at every sign-in).
    async fn has_factor(&self, uid: Uuid) -> AppResult<bool>;
    /// Confirms the pending factor `id` of `uid` created at or after
    /// `created_after`, recording `step` as its last used one; whether it did
    /// (not pending, too old, or not the user's: `false`).
    async fn confirm_factor(
        &self,
        uid: Uuid,
        id: Uuid,
        created_after: u64,
        step: u64,
        now: u64,
    ) -> AppResult<bool>;
    /// Records `step` as used on the confirmed factor `id`, only if it is
    /// later than its last used one (one conditional `UPDATE`: of two
    /// replicas given the same code, one wins); whether it did.
    async fn use_step(&self, uid: Uuid, id: Uuid, step: u64, now: u64) -> AppResult<bool>;
    /// Names the confirmed factor `id` (`None` clears it); whether it exists.
    async fn rename_factor(&self, uid: Uuid, id: Uuid, name: Option<String>) -> AppResult<bool>;
    /// Removes the factor `id` (confirmed or pending); whether it existed.
    async fn delete_factor(&self, uid: Uuid, id: Uuid) -> AppResult<bool>;
    /// Removes the user's pending factors created before `before`.
    async fn sweep_pending(&self, uid: Uuid, before: u64) -> AppResult<()>;
    /// Replaces the user's recovery codes with these digests (one transaction).
    async fn replace_recovery_codes(
        &self,
        uid: Uuid,
        digests: &[String],
        now: u64,
    ) -> AppResult<()>;
    /// Removes the code with this digest; whether it was there (so a code
    /// works once).
    async fn redeem_recovery_code(&self, uid: Uuid, digest: &str) -> AppResult<bool>;
    /// How many recovery codes the user has left.
    async fn recovery_codes_left(&self, uid: Uuid) -> AppResult<u64>;
    /// Stores a passkey's credential as its last use left it (counter,
    /// backup state) and the time of that use, only while it is still
    /// `previous` (of two concurrent uses, one wins); whether it did.
    async fn update_passkey(
        &self,
        uid: Uuid,
        id: Uuid,
        previous: &str,
        credential: &str,
        now: u64,
    ) -> AppResult<bool>;
    /// The confirmed passkey whose credential id (base64url) this is.
    async fn find_passkey(&self, credential_id: &str) -> AppResult<Option<Factor>>;
    /// Removes every factor (confirmed or pending) and recovery code of the
    /// user in one transaction: `(confirmed factors, recovery codes)` removed.
    async fn remove_all_factors(&self, uid: Uuid) -> AppResult<(u64, u64)>;
}
