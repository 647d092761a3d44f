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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::oneshot;

use super::argon_memory::{ArgonMemory, RELEASE_WHEN_IDLE_FOR};
use super::hash_threads;
use crate::error::{AppError, AppResult};
use crate::model::Password;

/// A hash verified when the user does not exist, so an unknown email costs the
/// same time as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut memory = ArgonMemory::default();
    hash_with(uuid::Uuid::new_v4().as_bytes(), &mut memory).expect("argon2 hashes a 16-byte input")
});

/// How long a caller refused by a full queue is told to wait.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// How often, at most, refusals are logged.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

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
        self.pool.shared.memory_held.load(Ordering::Relaxed)
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

/// A source's place in the queue, from admission until its job has run (or
/// was skipped, or the turn was dropped unused).
struct Slot {
    shared: Arc<Shared>,
    source: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.held_total -= 1;
        if let Some(held) = queue.held.get_mut(&self.source) {
            *held -= 1;
            if *held == 0 {
                queue.held.remove(&self.source);
            }
        }
    }
}

/// The last clone of a [`PasswordHasher`] stops its threads; jobs still
/// waiting are dropped, so their callers get an error instead of waiting.
struct PoolHandle {
    shared: Arc<Shared>,
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        let waiting: Vec<_> = {
            let mut queue = self.shared.lock();
            queue.closed = true;
            queue.turns.clear();
            queue.waiting = 0;
            queue.by_source.drain().flat_map(|(_, jobs)| jobs).collect()
        };
        for wakeup in &self.shared.wakeups {
            wakeup.notify_all();
        }
        drop(waiting);
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// One per hashing thread, which waits on its own: a new job wakes the
    /// thread [`Queue::pick_idle`] chooses.
    wakeups: Vec<Condvar>,
    /// Most places held at once (waiting or being hashed).
    limit: usize,
    /// Most places one source may hold.
    per_source: usize,
    /// How long a thread keeps its Argon2 memory without a job.
    release_after: Duration,
    /// Jobs taken and run (skipped ones not counted).
    started: AtomicUsize,
    /// Bytes of Argon2 memory the threads hold, all together.
    memory_held: AtomicUsize,
    /// When a refusal was last logged, and how many since.
    refusals: Mutex<(Option<Instant>, u64)>,
    /// The kernel's ids of the hashing threads, as each has started (for tests).
    #[cfg(all(test, target_os = "linux"))]
    thread_ids: Mutex<Vec<i32>>,
}

/// Places held by source, waiting jobs by source, and the order in which
/// sources take turns.
#[derive(Default)]
struct Queue {
    held: HashMap<String, usize>,
    held_total: usize,
    by_source: HashMap<String, VecDeque<Box<dyn Task>>>,
    /// Each source with waiting jobs, once; the front one goes next.
    turns: VecDeque<String>,
    waiting: usize,
    closed: bool,
    /// The threads waiting for a job, in the order they began to wait.
    idle: Vec<Idle>,
    /// Threads picked for a job that have not woken yet.
    wakes_pending: usize,
}

/// A hashing thread waiting for a job.
struct Idle {
    thread: usize,
    holds_memory: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Jobs run outside the lock; a panic cannot leave the queue half-changed.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A warning that requests are being refused, at most every
    /// [`REFUSAL_LOG_INTERVAL`], with how many were refused since the last.
    fn warn_full(&self) {
        let mut refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        refusals.1 += 1;
        if refusals
            .0
            .is_none_or(|last| last.elapsed() >= REFUSAL_LOG_INTERVAL)
        {
            let held = self.lock().held_total;
            tracing::warn!(
                refused = refusals.1,
                held,
                limit = self.limit,
                "password-hashing queue full: sign-ins and sign-ups answered 503 \
                 (a source's share is a quarter of HASH_QUEUE_LIMIT)"
            );
            *refusals = (Some(Instant::now()), 0);
        }
    }

    /// Takes a place for `source` if the queue and its share have room.
    fn hold(&self, source: &str) -> bool {
        let mut queue = self.lock();
        let mine = queue.held.get(source).copied().unwrap_or(0);
        if queue.held_total >= self.limit || mine >= self.per_source {
            return false;
        }
        *queue.held.entry(source.to_owned()).or_default() += 1;
        queue.held_total += 1;
        true
    }

    fn submit(&self, task: Box<dyn Task>) {
        let mut queue = self.lock();
        if queue.closed {
            // Dropped outside the lock: its caller learns the pool stopped.
            drop(queue);
            drop(task);
            return;
        }
        let source = task.source().to_owned();
        let jobs = queue.by_source.entry(source.clone()).or_default();
        jobs.push_back(task);
        if jobs.len() == 1 {
            queue.turns.push_back(source);
        }
        queue.waiting += 1;
        let wake = queue.pick_idle();
        drop(queue);
        if let Some(thread) = wake {
            self.wakeups[thread].notify_one();
        }
    }

    /// Removes the waiting jobs whose callers have gone; the caller drops
    /// them (their places are given back) once the lock is released.
    fn take_abandoned(&self) -> Vec<Box<dyn Task>> {
        let mut queue = self.lock();
        let mut gone = Vec::new();
        for jobs in queue.by_source.values_mut() {
            let (keep, leave): (VecDeque<_>, VecDeque<_>) =
                jobs.drain(..).partition(|job| !job.abandoned());
            *jobs = keep;
            gone.extend(leave);
        }
        queue.by_source.retain(|_, jobs| !jobs.is_empty());
        let Queue {
            by_source, turns, ..
        } = &mut *queue;
        turns.retain(|source| by_source.contains_key(source));
        queue.waiting -= gone.len();
        gone
    }

    /// Hashing thread `n`: takes the next source's oldest job, runs it with
    /// the thread's own Argon2 memory, until the pool is dropped. The memory
    /// is given back after `release_after` without a job.
    fn work(&self, n: usize) {
        let mut memory = ArgonMemory::default();
        let mut answer = None;
        while let Some(task) = self.next_or_release(n, &mut memory, answer.take()) {
            if task.abandoned() {
                // Dropped here, outside the lock: its place is given back.
                continue;
            }
            self.started.fetch_add(1, Ordering::Relaxed);
            let before = memory.held_bytes();
            answer = Some(task.run(&mut memory));
            self.count_held(before, memory.held_bytes());
        }
    }

    /// Hands `answer` (of the job thread `n` has just run) to its caller,
    /// then waits for the next job; `None` once the pool is closed.
    ///
    /// The answer is handed over under the queue's lock, and the thread goes
    /// on to take a job or to list itself idle without releasing it: a caller
    /// that sends its next request only after its answer finds this thread
    /// idle, holding its memory, so one request at a time keeps one block.
    ///
    /// A thread takes a waiting job when it was picked to ([`Queue::pick_idle`]),
    /// or when more jobs wait than picked threads are on their way: a thread
    /// that was not picked (one that has just finished a job, given its memory
    /// back, or woken spuriously) never takes a job meant for another.
    ///
    /// While `memory` is held, waits at most `release_after` at a time, and
    /// releases it (outside the lock) when that passed without a job.
    fn next_or_release(
        &self,
        n: usize,
        memory: &mut ArgonMemory,
        mut answer: Option<Answer>,
    ) -> Option<Box<dyn Task>> {
        let mut picked = false;
        loop {
            let mut queue = self.lock();
            if let Some(answer) = answer.take() {
                answer();
            }
            loop {
                if queue.closed {
                    return None;
                }
                if (picked || queue.waiting > queue.wakes_pending)
                    && let Some(task) = queue.next_task()
                {
                    return Some(task);
                }
                let holds_memory = memory.held_bytes() > 0;
                queue.idle.push(Idle {
                    thread: n,
                    holds_memory,
                });
                let timed_out = if holds_memory {
                    let (again, waited) = self.wakeups[n]
                        .wait_timeout(queue, self.release_after)
                        .unwrap_or_else(|e| e.into_inner());
                    queue = again;
                    waited.timed_out()
                } else {
                    queue = self.wakeups[n]
                        .wait(queue)
                        .unwrap_or_else(|e| e.into_inner());
                    false
                };
                // Still listed unless a job picked this thread.
                let listed = queue.idle.len();
                queue.idle.retain(|idle| idle.thread != n);
                picked = queue.idle.len() == listed;
                if picked {
                    queue.wakes_pending -= 1;
                } else if timed_out && queue.waiting == 0 {
                    break;
                }
            }
            drop(queue);
            let before = memory.held_bytes();
            memory.release();
            self.count_held(before, 0);
        }
    }

    fn count_held(&self, before: usize, after: usize) {
        if after > before {
            self.memory_held
                .fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.memory_held
                .fetch_sub(before - after, Ordering::Relaxed);
        }
    }
}

impl Queue {
    /// Takes the waiting thread a new job wakes: the last one to finish a
    /// job among those still holding Argon2 memory, so that light load keeps
    /// reusing one thread's memory while the others give theirs back; else
    /// the first thread (the one at the normal priority). The picked thread
    /// leaves the idle list and counts as on its way until it wakes.
    fn pick_idle(&mut self) -> Option<usize> {
        let at = self
            .idle
            .iter()
            .rposition(|idle| idle.holds_memory)
            .or_else(|| (0..self.idle.len()).min_by_key(|&at| self.idle[at].thread))?;
        self.wakes_pending += 1;
        Some(self.idle.remove(at).thread)
    }

    /// The oldest job of the source whose turn it is; that source goes to the
    /// back of the line if it has more.
    fn next_task(&mut self) -> Option<Box<dyn Task>> {
        let source = self.turns.pop_front()?;
        let jobs = self.by_source.get_mut(&source)?;
        let task = jobs.pop_front();
        if jobs.is_empty() {
            self.by_source.remove(&source);
        } else {
            self.turns.push_back(source);
        }
        self.waiting -= usize::from(task.is_some());
        task
    }
}

/// A queued hash or verification and where its answer goes.
trait Task: Send {
    /// Whose it is.
    fn source(&self) -> &str;
    /// Whether its caller has gone away.
    fn abandoned(&self) -> bool;
    /// Runs the work and gives its place back; returns the answer, for the
    /// thread to hand over ([`Shared::next_or_release`]).
    fn run(self: Box<Self>, memory: &mut ArgonMemory) -> Answer;
}

/// A job's answer, not yet handed to its caller.
type Answer = Box<dyn FnOnce() + Send>;

struct Job<T, F> {
    answer: oneshot::Sender<AppResult<T>>,
    work: F,
    /// Given back when the job has run or is dropped.
    _slot: Slot,
}

impl<T, F> Task for Job<T, F>
where
    F: FnOnce(&mut ArgonMemory) -> AppResult<T> + Send,
    T: Send + 'static,
{
    fn source(&self) -> &str {
        &self._slot.source
    }

    fn abandoned(&self) -> bool {
        self.answer.is_closed()
    }

    fn run(self: Box<Self>, memory: &mut ArgonMemory) -> Answer {
        let Job {
            answer,
            work,
            _slot,
        } = *self;
        let result = work(memory);
        // The place is given back once the work has run, before the answer:
        // a caller's next request never finds its own last place still held.
        drop(_slot);
        // The caller may have left meanwhile; then nobody reads the answer.
        Box::new(move || drop(answer.send(result)))
    }
}

/// What one hashing thread does for each hash, without the pool and its
/// queue: Argon2id with the service's parameters, in memory allocated on the
/// first hash and reused. The benchmark runs one per core to measure the
/// machine's Argon2 rate that sign-in is compared with.
#[derive(Default)]
pub struct ThreadHasher {
    memory: ArgonMemory,
}

impl ThreadHasher {
    /// One hash of `password` with a fresh salt, as a sign-up stores it (a
    /// sign-in's verification recomputes the same hash).
    pub fn hash(&mut self, password: &[u8]) -> Result<String, argon2::Error> {
        hash_with(password, &mut self.memory)
    }
}

/// Argon2id with the default parameters and a fresh 16-byte salt, in `memory`
/// (allocated once to the parameters' size, then reused).
fn hash_with(password: &[u8], memory: &mut ArgonMemory) -> Result<String, argon2::Error> {
    let params = Params::default();
    let salt = argon2::password_hash::generate_salt();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon2.hash_password_into_with_memory(
        password,
        &salt,
        &mut out,
        memory.blocks(params.block_count()),
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|_| argon2::Error::OutputTooLong)?,
        salt: Some(Salt::new(&salt).map_err(|_| argon2::Error::SaltTooShort)?),
        hash: Some(Output::new(&out).map_err(|_| argon2::Error::OutputTooShort)?),
    };
    Ok(phc.to_string())
}

/// Recomputes the hash of `password` with the algorithm, parameters and salt
/// of the PHC string `stored` and compares in constant time.
fn verify_with(
    password: &[u8],
    stored: &str,
    memory: &mut ArgonMemory,
) -> Result<bool, argon2::password_hash::Error> {
    use argon2::password_hash::Error;
    let stored = PasswordHash::new(stored)?;
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Err(Error::EncodingInvalid);
    };
    let algorithm = Algorithm::try_from(stored.algorithm.as_str())?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(&stored)?;
    let block_count = params.block_count();
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        &mut out,
        memory.blocks(block_count),
    )?;
    // `Output`'s equality is constant-time.
    Ok(&Output::new(&out)? == expected)
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

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
        let started = hasher.pool.shared.started.load(Ordering::Relaxed);
        // The held one, one of the flood, ours, and perhaps the flood's next.
        assert!(
            (3..=4).contains(&started),
            "{started} jobs started before ours finished"
        );
        held.await.unwrap().unwrap();
        for job in flood {
            job.await.unwrap().unwrap();
        }
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
