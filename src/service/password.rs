//! Argon2id hashing, always off the async reactor and with bounded concurrency.

use std::sync::{Arc, LazyLock};

use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

use crate::error::{AppError, AppResult};
use crate::model::Password;

/// A hash verified when the user does not exist, so an unknown email costs the
/// same time as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Argon2::default()
        .hash_password(uuid::Uuid::new_v4().as_bytes())
        .expect("argon2 hashes a 16-byte input")
        .to_string()
});

/// Hashes and verifies passwords with Argon2id (the crate's defaults are the
/// OWASP parameters: m=19 MiB, t=2, p=1) on the blocking pool. A semaphore
/// caps how many run at once, so a burst of sign-ins queues here instead of
/// taking every core from token refreshes and `/me`.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

impl PasswordHasher {
    /// `concurrency` hashes may run at once (at least one).
    pub fn new(concurrency: usize) -> Self {
        LazyLock::force(&DUMMY_HASH);
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// One hash at a time per core but one, leaving a core for everything else.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores.saturating_sub(1))
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) with a fresh salt.
    pub async fn hash(&self, password: &Password) -> AppResult<String> {
        let password = password.expose().to_owned();
        self.run_blocking(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| AppError::Internal(anyhow::anyhow!("argon2 hash failed: {e}")))
        })
        .await
    }

    /// Whether `password` matches `hash`. `None` verifies against a dummy hash
    /// and answers `false`, taking the same time as a real check.
    pub async fn verify(&self, password: &Password, hash: Option<&str>) -> AppResult<bool> {
        let password = password.expose().to_owned();
        let known = hash.is_some();
        let hash = hash.unwrap_or(DUMMY_HASH.as_str()).to_owned();
        self.run_blocking(move || {
            match Argon2::default().verify_password(password.as_bytes(), hash.as_str()) {
                Ok(()) => Ok(known),
                Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                Err(e) => Err(AppError::Internal(anyhow::anyhow!(
                    "stored password hash is unusable: {e}"
                ))),
            }
        })
        .await
    }

    async fn run_blocking<T, F>(&self, work: F) -> AppResult<T>
    where
        F: FnOnce() -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
        // The permit moves into the blocking task: if the request is dropped
        // (timeout, client gone), the hash still runs to its end and only then
        // frees its slot, so the cap holds for the CPU actually used.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_is_argon2id_and_verifies_only_the_right_password() {
        let hasher = PasswordHasher::new(1);
        let password = Password::parse("correct horse").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
        let wrong = Password::parse("wrong horse").unwrap();
        assert!(!hasher.verify(&wrong, Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_salt() {
        let hasher = PasswordHasher::new(1);
        let password = Password::parse("same password").unwrap();
        assert_ne!(
            hasher.hash(&password).await.unwrap(),
            hasher.hash(&password).await.unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_user_verifies_against_the_dummy_and_fails() {
        let hasher = PasswordHasher::new(1);
        let password = Password::parse("anything at all").unwrap();
        assert!(!hasher.verify(&password, None).await.unwrap());
    }

    #[tokio::test]
    async fn corrupt_stored_hash_is_an_internal_error() {
        let hasher = PasswordHasher::new(1);
        let password = Password::parse("anything at all").unwrap();
        let err = hasher
            .verify(&password, Some("not-a-hash"))
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::Internal(_)));
    }
}
