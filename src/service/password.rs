//! Argon2id hashing on a fixed pool of threads (one per core by default, each
//! at a lowered scheduling priority: [`super::hash_threads`]), fed by a
//! bounded queue that serves its callers' sources (client IPs) in turn.
//!
//! Why not `spawn_blocking`: every blocking thread that ran a hash kept its
//! freed 19 MiB block in its allocator arena, so a burst of sign-ins left the
//! process at a quarter of a GiB. Here each hashing thread allocates one
//! block of Argon2 memory and reuses it for every hash and verification while
//! work keeps coming; after [`RELEASE_WHEN_IDLE_FOR`] without work it gives
//! the block back to the operating system ([`ArgonMemory`]).
//!
//! Why a queue of its own: a flood of sign-ins from one source must neither
//! make everyone else wait behind it nor pile up work nobody waits for. A
//! request takes a place in the queue first, before it looks the user up, and
//! holds it until its hash has run: at most `limit` places (past it: 503 with
//! `Retry-After` at once, before any other work), one source at most a
//! quarter of them, and the threads take the sources in turn, so another
//! client's sign-in waits for a few hashes, not for the flood. A caller that
//! has gone away before its hash started (timeout, client hung up) is skipped
//! without hashing.
//!
//! What the pool promises about memory, and its tests check exactly: requests
//! that come one at a time (each sent after the previous answer) are all
//! hashed by one thread, in one block. The thread that answered is back among
//! the idle ones, holding its block, before its caller sees the answer, and a
//! new job wakes the idle thread that holds a block and answered last; a
//! thread takes a waiting job only when it was picked for it or when no idle
//! thread was (one that finishes a job or wakes by chance never takes a job
//! meant for another). A burst wakes one idle thread
//! per waiting job, so `k` requests at once hold at most `min(k, threads)`
//! blocks, and every thread gives its block back after
//! [`RELEASE_WHEN_IDLE_FOR`] without a job.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::argon::{DUMMY_HASH, hash_with, verify_with};
use super::argon_memory::{ArgonMemory, RELEASE_WHEN_IDLE_FOR};
use super::hash_queue::{Job, PoolHandle, Queue, Shared, Slot};
use super::hash_threads;
use crate::error::{AppError, AppResult};
use crate::model::Password;

/// How long a caller refused by a full queue is told to wait.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// The share of the queue one source may hold: a quarter of it.
const SOURCE_SHARE_DIVISOR: usize = 4;

/// Hashes and verifies passwords with Argon2id (the crate's defaults are the
/// OWASP parameters: m=19 MiB, t=2, p=1). Clones share one pool; the threads
/// stop when the last clone is dropped.
#[derive(Clone)]
pub struct PasswordHasher {
    pool: Arc<PoolHandle>,
}

impl PasswordHasher {
    /// `threads` hashing threads (at least one) behind a queue of at most
    /// `queue_limit` places (at least one).
    pub fn new(threads: usize, queue_limit: usize) -> Self {
        Self::with_release_after(threads, queue_limit, RELEASE_WHEN_IDLE_FOR)
    }

    /// [`Self::new`], with threads that give their Argon2 memory back after
    /// `release_after` without a job.
    fn with_release_after(threads: usize, queue_limit: usize, release_after: Duration) -> Self {
        LazyLock::force(&DUMMY_HASH);
        let limit = queue_limit.max(1);
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wakeups: (0..threads).map(|_| Condvar::new()).collect(),
            limit,
            per_source: (limit / SOURCE_SHARE_DIVISOR).max(1),
            release_after,
            started: AtomicUsize::new(0),
            memory_held: AtomicUsize::new(0),
            refusals: Mutex::new((None, 0)),
            #[cfg(all(test, target_os = "linux"))]
            thread_ids: Mutex::new(Vec::new()),
            #[cfg(test)]
            start_order: Mutex::new(Vec::new()),
        });
        for n in 0..threads {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    if hash_threads::is_lowered(n)
                        && let Err(e) = hash_threads::lower_current_thread()
                    {
                        tracing::warn!(
                            error = %e,
                            "cannot lower a password-hashing thread's priority: \
                             it competes with request handling at the normal priority"
                        );
                    }
                    #[cfg(all(test, target_os = "linux"))]
                    shared
                        .thread_ids
                        .lock()
                        .unwrap()
                        .push(hash_threads::current_thread_id());
                    shared.work(n)
                })
                .expect("cannot start a password-hashing thread");
        }
        Self {
            pool: Arc::new(PoolHandle { shared }),
        }
    }

    /// One hashing thread per core ([`hash_threads::default_count`]), all but
    /// the first at the lowered priority, so that a flood of sign-ins uses
    /// every core while request handling keeps precedence, and sign-in still
    /// gets its share when requests alone fill the cores.
    pub fn for_this_machine(queue_limit: usize) -> Self {
        Self::new(hash_threads::default_count(), queue_limit)
    }

    /// Takes a place in the queue for one hash of `source` (the client's IP,
    /// or the signed-in user: whose turn it is). Take it before any other
    /// work of the request (the user lookup), so that a request refused for a
    /// full queue costs nothing else. `Overloaded` when the queue, or the
    /// source's share of it, is full.
    pub fn admit(&self, source: &str) -> AppResult<Turn> {
        let shared = &self.pool.shared;
        for first_try in [true, false] {
            if shared.hold(source) {
                return Ok(Turn {
                    slot: Slot {
                        shared: Arc::clone(shared),
                        source: source.to_owned(),
                    },
                });
            }
            if first_try {
                // Callers that left still hold their places until a thread
                // skips them: let those go, and refuse only for live ones.
                drop(shared.take_abandoned());
            }
        }
        shared.warn_full();
        Err(AppError::Overloaded {
            retry_after_secs: BUSY_RETRY_AFTER_SECS,
        })
    }

    /// [`Self::admit`], then [`Turn::hash`].
    pub async fn hash(&self, password: &Password, source: &str) -> AppResult<String> {
        self.admit(source)?.hash(password).await
    }

    /// [`Self::admit`], then [`Turn::verify`].
    pub async fn verify(
        &self,
        password: &Password,
        hash: Option<&str>,
        source: &str,
    ) -> AppResult<bool> {
        self.admit(source)?.verify(password, hash).await
    }

    /// Bytes of Argon2 memory the hashing threads hold (for tests).
    #[cfg(test)]
    fn memory_held(&self) -> usize {
        self.pool
            .shared
            .memory_held
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Jobs waiting for a thread (for tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.pool.shared.lock().waiting
    }
}

/// A place in the hashing queue: dropped unused, it is given back.
pub struct Turn {
    slot: Slot,
}

impl Turn {
    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) with a fresh salt.
    pub async fn hash(self, password: &Password) -> AppResult<String> {
        let password = password.expose().to_owned();
        self.run(move |memory| {
            hash_with(password.as_bytes(), memory)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("argon2 hash failed: {e}")))
        })
        .await
    }

    /// Whether `password` matches `hash`. `None` verifies against a dummy hash
    /// and answers `false`, taking the same time as a real check.
    pub async fn verify(self, password: &Password, hash: Option<&str>) -> AppResult<bool> {
        let password = password.expose().to_owned();
        let known = hash.is_some();
        let hash = hash.unwrap_or(DUMMY_HASH.as_str()).to_owned();
        self.run(move |memory| {
            verify_with(password.as_bytes(), &hash, memory)
                .map(|matches| matches && known)
                .map_err(|e| {
                    AppError::Internal(anyhow::anyhow!("stored password hash is unusable: {e}"))
                })
        })
        .await
    }

    /// Queues `work` and waits for its answer. Dropping the returned future
    /// before a thread takes the job skips it.
    async fn run<T, F>(self, work: F) -> AppResult<T>
    where
        F: FnOnce(&mut ArgonMemory) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let shared = Arc::clone(&self.slot.shared);
        shared.submit(Box::new(Job {
            answer,
            work,
            _slot: self.slot,
        }));
        answered
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("a password-hashing thread stopped")))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

    use super::*;
    use crate::service::ThreadHasher;

    fn password(s: &str) -> Password {
        Password::parse(s).unwrap()
    }

    #[tokio::test]
    async fn hash_is_argon2id_and_verifies_only_the_right_password() {
        let hasher = PasswordHasher::new(1, 8);
        let right = password("correct horse");
        let hash = hasher.hash(&right, "a").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify(&right, Some(&hash), "a").await.unwrap());
        let wrong = password("wrong horse");
        assert!(!hasher.verify(&wrong, Some(&hash), "a").await.unwrap());
    }

    #[tokio::test]
    async fn a_thread_hasher_hashes_as_the_pool_does_and_reuses_its_memory() {
        let mut thread = ThreadHasher::default();
        let first = thread.hash(b"correct horse").unwrap();
        let second = thread.hash(b"correct horse").unwrap();
        for hash in [&first, &second] {
            assert!(
                hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
                "{hash}"
            );
        }
        assert_ne!(first, second, "each hash has a fresh salt");
        assert_eq!(thread.memory.held_bytes(), 19 << 20);
        let pool = PasswordHasher::new(1, 8);
        let right = password("correct horse");
        assert!(pool.verify(&right, Some(&second), "a").await.unwrap());
        let wrong = password("wrong horse");
        assert!(!pool.verify(&wrong, Some(&second), "a").await.unwrap());
    }

    /// One block of Argon2 memory with the default parameters.
    const BLOCK: usize = 19 << 20;

    /// Waits until the threads hold `bytes` of Argon2 memory, at most `within`.
    async fn wait_until_held(hasher: &PasswordHasher, bytes: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while hasher.memory_held() != bytes {
            assert!(
                Instant::now() < deadline,
                "{} bytes held after {within:?}, expected {bytes}",
                hasher.memory_held()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_thread_gives_its_memory_back_when_idle_and_hashes_again_after() {
        let release_after = Duration::from_millis(500);
        let hasher = PasswordHasher::with_release_after(1, 8, release_after);
        assert_eq!(
            hasher.memory_held(),
            0,
            "nothing held before the first hash"
        );
        let right = password("correct horse");
        let hash = hasher.hash(&right, "a").await.unwrap();
        // Counted before the answer: held the moment the caller has it.
        assert_eq!(hasher.memory_held(), BLOCK);
        // Idle for less than the release time, the block is kept. The thread
        // began to idle after `asked`, so it cannot release before
        // `asked + release_after`; a reading later than that proves nothing.
        let asked = Instant::now();
        assert!(hasher.verify(&right, Some(&hash), "a").await.unwrap());
        tokio::time::sleep(release_after / 2).await;
        let held = hasher.memory_held();
        if asked.elapsed() < release_after {
            assert_eq!(held, BLOCK, "released before the idle time");
        }
        wait_until_held(&hasher, 0, Duration::from_secs(30)).await;
        assert!(hasher.verify(&right, Some(&hash), "a").await.unwrap());
        let wrong = password("wrong horse");
        assert!(!hasher.verify(&wrong, Some(&hash), "a").await.unwrap());
        assert_eq!(hasher.memory_held(), BLOCK, "allocated again for new work");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_one_at_a_time_are_hashed_in_one_threads_memory() {
        // No release during the test: a second block could only come from a
        // second thread taking a job.
        let hasher = PasswordHasher::with_release_after(3, 16, Duration::from_secs(3600));
        let right = password("correct horse");
        let hash = hasher.hash(&right, "a").await.unwrap();
        for n in 0..30 {
            let source = ["a", "b", "c"][n % 3];
            assert!(hasher.verify(&right, Some(&hash), source).await.unwrap());
            assert_eq!(hasher.memory_held(), BLOCK, "after request {n}");
        }
    }

    /// Runs a job on a hashing thread that takes its thread's Argon2 memory,
    /// then waits until `all` such jobs run at once (or 30 s have passed);
    /// answers whether they all met.
    async fn meet(
        hasher: &PasswordHasher,
        source: &str,
        met: Arc<(Mutex<usize>, Condvar)>,
        all: usize,
    ) -> bool {
        let turn = hasher.admit(source).unwrap();
        turn.run(move |memory| {
            memory.blocks(Params::default().block_count());
            let (arrived, arrival) = &*met;
            let mut arrived = arrived.lock().unwrap();
            *arrived += 1;
            arrival.notify_all();
            let (arrived, _) = arrival
                .wait_timeout_while(arrived, Duration::from_secs(30), |n| *n < all)
                .unwrap();
            Ok(*arrived >= all)
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_wakes_a_thread_per_job_and_each_gives_its_memory_back() {
        let hasher = PasswordHasher::with_release_after(3, 16, Duration::from_millis(200));
        let met = Arc::new((Mutex::new(0), Condvar::new()));
        // Each job waits for the others: they can only all finish if three
        // threads run them at once.
        let burst = ["a", "b", "c"].map(|source| meet(&hasher, source, Arc::clone(&met), 3));
        for all_met in futures::future::join_all(burst).await {
            assert!(all_met, "the three jobs did not run at once");
        }
        assert_eq!(hasher.memory_held(), 3 * BLOCK);
        wait_until_held(&hasher, 0, Duration::from_secs(30)).await;
    }

    #[tokio::test]
    async fn hashes_agree_with_the_argon2_crates_own_hasher_and_verifier() {
        let hasher = PasswordHasher::new(1, 8);
        let pw = password("interoperable");
        let ours = hasher.hash(&pw, "a").await.unwrap();
        Argon2::default()
            .verify_password(b"interoperable", ours.as_str())
            .expect("the crate verifies our hash");
        let theirs = Argon2::default()
            .hash_password(b"interoperable")
            .unwrap()
            .to_string();
        assert!(hasher.verify(&pw, Some(&theirs), "a").await.unwrap());
        // Other parameters (as an older deployment may have stored) verify too.
        let params = Params::new(8 * 1024, 3, 1, None).unwrap();
        let older = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"interoperable")
            .unwrap()
            .to_string();
        assert!(hasher.verify(&pw, Some(&older), "a").await.unwrap());
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_salt() {
        let hasher = PasswordHasher::new(1, 8);
        let pw = password("same password");
        assert_ne!(
            hasher.hash(&pw, "a").await.unwrap(),
            hasher.hash(&pw, "a").await.unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_user_verifies_against_the_dummy_and_fails() {
        let hasher = PasswordHasher::new(1, 8);
        assert!(
            !hasher
                .verify(&password("anything at all"), None, "a")
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn corrupt_stored_hash_is_an_internal_error() {
        let hasher = PasswordHasher::new(1, 8);
        let err = hasher
            .verify(&password("anything at all"), Some("not-a-hash"), "a")
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::Internal(_)));
    }

    /// Starts `n` hashes from `source` that wait in the queue (one thread, kept
    /// busy by a first job).
    fn queue_up(
        hasher: &PasswordHasher,
        source: &'static str,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<AppResult<String>>> {
        (0..n)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&password("queued pw"), source).await })
            })
            .collect()
    }

    /// Generous: a loaded machine may keep a thread from running for seconds.
    const DEADLINE: Duration = Duration::from_secs(30);

    /// Waits, at most [`DEADLINE`], until `condition` holds of the pool.
    async fn wait_until(
        hasher: &PasswordHasher,
        what: &str,
        condition: impl Fn(&PasswordHasher) -> bool,
    ) {
        let deadline = Instant::now() + DEADLINE;
        while !condition(hasher) {
            assert!(Instant::now() < deadline, "not {what} after {DEADLINE:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn wait_until_started(hasher: &PasswordHasher, n: usize) {
        wait_until(hasher, &format!("{n} jobs started"), |hasher| {
            hasher.pool.shared.started.load(Ordering::Relaxed) >= n
        })
        .await;
    }

    async fn wait_until_waiting(hasher: &PasswordHasher, n: usize) {
        wait_until(hasher, &format!("{n} jobs waiting"), |hasher| {
            hasher.waiting() >= n
        })
        .await;
    }

    /// A job of `source` that keeps its hashing thread until the returned
    /// gate is opened (a message) or dropped, so that what the test queues
    /// behind it waits however slow the machine is.
    fn hold_a_thread(
        hasher: &PasswordHasher,
        source: &str,
    ) -> (
        tokio::task::JoinHandle<AppResult<()>>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (gate, opened) = std::sync::mpsc::channel::<()>();
        let turn = hasher.admit(source).unwrap();
        let job = tokio::spawn(turn.run(move |_memory| {
            let _ = opened.recv_timeout(Duration::from_secs(120));
            Ok(())
        }));
        (job, gate)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once_with_retry_after() {
        let hasher = PasswordHasher::new(1, 4);
        // Four places, from four sources (one each): one running, three waiting.
        let (held, gate) = hold_a_thread(&hasher, "a");
        wait_until_started(&hasher, 1).await;
        let mut jobs = Vec::new();
        for source in ["b", "c", "d"] {
            jobs.extend(queue_up(&hasher, source, 1));
        }
        wait_until_waiting(&hasher, 3).await;
        // The only thread is held until the gate opens: a refusal that waited
        // for a place would not come before it.
        let err = tokio::time::timeout(DEADLINE, hasher.hash(&password("one more"), "f"))
            .await
            .expect("refused without waiting for the queue")
            .unwrap_err();
        assert!(
            matches!(
                err,
                AppError::Overloaded {
                    retry_after_secs: BUSY_RETRY_AFTER_SECS
                }
            ),
            "{err:?}"
        );
        drop(gate);
        held.await.unwrap().unwrap();
        for job in jobs {
            job.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn one_source_holds_at_most_a_quarter_of_the_queue() {
        let hasher = PasswordHasher::new(1, 8);
        let first = hasher.admit("flood").unwrap();
        let _second = hasher.admit("flood").unwrap();
        assert!(matches!(
            hasher.admit("flood"),
            Err(AppError::Overloaded { .. })
        ));
        // Another source still finds room, and a place given back is free again.
        hasher
            .hash(&password("someone else"), "other")
            .await
            .unwrap();
        drop(first);
        first_free(&hasher).await;
    }

    async fn first_free(hasher: &PasswordHasher) {
        hasher
            .hash(&password("flood again"), "flood")
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sources_take_turns() {
        let hasher = PasswordHasher::new(1, 40);
        let (held, gate) = hold_a_thread(&hasher, "warm");
        wait_until_started(&hasher, 1).await;
        let flood = queue_up(&hasher, "flood", 10);
        wait_until_waiting(&hasher, 10).await;
        let ours = queue_up(&hasher, "other", 1);
        wait_until_waiting(&hasher, 11).await;
        drop(gate);
        // Queued behind ten of the flood, the other source goes second.
        for job in ours {
            job.await.unwrap().unwrap();
        }
        held.await.unwrap().unwrap();
        for job in flood {
            job.await.unwrap().unwrap();
        }
        // The held one, one of the flood, then ours: not behind the flood.
        let order = hasher.pool.shared.start_order.lock().unwrap().clone();
        assert_eq!(order[..3], ["warm", "flood", "other"], "{order:?}");
        assert_eq!(order.len(), 12, "{order:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_left_is_skipped_without_hashing() {
        let hasher = PasswordHasher::new(1, 40);
        let (held, gate) = hold_a_thread(&hasher, "warm");
        wait_until_started(&hasher, 1).await;
        let gone = queue_up(&hasher, "gone", 5);
        wait_until_waiting(&hasher, 5).await;
        for job in gone {
            job.abort();
            assert!(job.await.unwrap_err().is_cancelled());
        }
        let ours = queue_up(&hasher, "other", 1);
        wait_until_waiting(&hasher, 6).await;
        drop(gate);
        for job in ours {
            job.await.unwrap().unwrap();
        }
        held.await.unwrap().unwrap();
        // The thread goes on skipping the rest, in turn.
        wait_until(&hasher, "done with the queue", |hasher| {
            hasher.waiting() == 0
        })
        .await;
        assert_eq!(
            hasher.pool.shared.started.load(Ordering::Relaxed),
            2,
            "only the held job and ours ran"
        );
        wait_until(&hasher, "every place given back", |hasher| {
            hasher.pool.shared.lock().held_total == 0
        })
        .await;
    }

    /// The pool's threads as the kernel sees them: name and nice value, once
    /// all `n` have started.
    #[cfg(target_os = "linux")]
    async fn started_threads(hasher: &PasswordHasher, n: usize) -> Vec<(String, i32)> {
        wait_until(hasher, &format!("{n} hashing threads started"), |hasher| {
            hasher.pool.shared.thread_ids.lock().unwrap().len() >= n
        })
        .await;
        let ids = hasher.pool.shared.thread_ids.lock().unwrap().clone();
        ids.into_iter()
            .map(hash_threads::testing::name_and_nice)
            .collect()
    }

    /// What the `n` threads of a pool should look like: `argon2-<i>`, the
    /// first at the caller's priority, the others lowered.
    #[cfg(target_os = "linux")]
    fn expected_threads(n: usize, normal: i32) -> Vec<(String, i32)> {
        (0..n)
            .map(|i| {
                let nice = if hash_threads::is_lowered(i) {
                    hash_threads::HASH_THREAD_NICE
                } else {
                    normal
                };
                (format!("argon2-{i}"), nice)
            })
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn by_default_one_thread_per_core_the_first_at_the_normal_priority_the_others_lowered() {
        let cores = std::thread::available_parallelism().unwrap().get();
        // The test's own thread (a request handler's, in the service).
        let me = hash_threads::testing::name_and_nice(hash_threads::current_thread_id());
        assert_ne!(me.1, hash_threads::HASH_THREAD_NICE, "{me:?}");
        let hasher = PasswordHasher::for_this_machine(8);
        let mut threads = started_threads(&hasher, cores).await;
        threads.sort();
        assert_eq!(threads, expected_threads(cores, me.1));
        // The caller keeps its priority, and hashes still run.
        let after = hash_threads::testing::name_and_nice(hash_threads::current_thread_id());
        assert_eq!(after, me);
        let pw = password("low priority");
        let hash = hasher.hash(&pw, "a").await.unwrap();
        assert!(hasher.verify(&pw, Some(&hash), "a").await.unwrap());
        assert_eq!(
            hasher.pool.shared.thread_ids.lock().unwrap().len(),
            cores,
            "no thread started later"
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn an_explicit_thread_count_keeps_one_thread_at_the_normal_priority() {
        let normal = hash_threads::testing::name_and_nice(hash_threads::current_thread_id()).1;
        let hasher = PasswordHasher::new(3, 8);
        let mut threads = started_threads(&hasher, 3).await;
        threads.sort();
        assert_eq!(threads, expected_threads(3, normal));
        assert!(
            threads
                .iter()
                .filter(|(_, nice)| *nice == hash_threads::HASH_THREAD_NICE)
                .count()
                == 2,
            "{threads:?}"
        );
        // One thread: it is the normal-priority one.
        let single = PasswordHasher::new(1, 8);
        assert_eq!(
            started_threads(&single, 1).await,
            vec![("argon2-0".to_owned(), normal)]
        );
    }

    #[tokio::test]
    async fn refusals_are_logged_once_per_interval_not_once_per_request() {
        let hasher = PasswordHasher::new(1, 4);
        let _held = hasher.admit("flood").unwrap();
        let (refused, logs) = crate::test_logs::logged_during(async {
            (0..50).filter(|_| hasher.admit("flood").is_err()).count()
        })
        .await;
        assert_eq!(refused, 50);
        let warnings: Vec<_> = logs.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{logs}");
        assert!(
            warnings[0].contains("password-hashing queue full"),
            "{logs}"
        );
    }
}
