//! The hashing pool's machinery behind [`super::password::PasswordHasher`]:
//! the queue of jobs by source and the turns they take, the places callers
//! hold, the hashing threads' loop (hand-off of answers, picking which idle
//! thread a job wakes, giving Argon2 memory back when idle) and the jobs.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::argon_memory::ArgonMemory;
use crate::error::AppResult;

/// How often, at most, refusals are logged.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A source's place in the queue, from admission until its job has run (or
/// was skipped, or the turn was dropped unused).
pub(super) struct Slot {
    pub(super) shared: Arc<Shared>,
    pub(super) source: String,
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
pub(super) struct PoolHandle {
    pub(super) shared: Arc<Shared>,
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

pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    /// One per hashing thread, which waits on its own: a new job wakes the
    /// thread [`Queue::pick_idle`] chooses.
    pub(super) wakeups: Vec<Condvar>,
    /// Most places held at once (waiting or being hashed).
    pub(super) limit: usize,
    /// Most places one source may hold.
    pub(super) per_source: usize,
    /// How long a thread keeps its Argon2 memory without a job.
    pub(super) release_after: Duration,
    /// Jobs taken and run (skipped ones not counted).
    pub(super) started: AtomicUsize,
    /// Bytes of Argon2 memory the threads hold, all together.
    pub(super) memory_held: AtomicUsize,
    /// When a refusal was last logged, and how many since.
    pub(super) refusals: Mutex<(Option<Instant>, u64)>,
    /// The kernel's ids of the hashing threads, as each has started (for tests).
    #[cfg(all(test, target_os = "linux"))]
    pub(super) thread_ids: Mutex<Vec<i32>>,
    /// The source of each job run, in the order they started (for tests:
    /// an order, unlike a count read later, does not depend on timing).
    #[cfg(test)]
    pub(super) start_order: Mutex<Vec<String>>,
}

/// Places held by source, waiting jobs by source, and the order in which
/// sources take turns.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) held: HashMap<String, usize>,
    pub(super) held_total: usize,
    pub(super) by_source: HashMap<String, VecDeque<Box<dyn Task>>>,
    /// Each source with waiting jobs, once; the front one goes next.
    pub(super) turns: VecDeque<String>,
    pub(super) waiting: usize,
    pub(super) closed: bool,
    /// The threads waiting for a job, in the order they began to wait.
    pub(super) idle: Vec<Idle>,
    /// Threads picked for a job that have not woken yet.
    pub(super) wakes_pending: usize,
}

/// A hashing thread waiting for a job.
pub(super) struct Idle {
    pub(super) thread: usize,
    pub(super) holds_memory: bool,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Queue> {
        // Jobs run outside the lock; a panic cannot leave the queue half-changed.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A warning that requests are being refused, at most every
    /// [`REFUSAL_LOG_INTERVAL`], with how many were refused since the last.
    pub(super) fn warn_full(&self) {
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
    pub(super) fn hold(&self, source: &str) -> bool {
        let mut queue = self.lock();
        let mine = queue.held.get(source).copied().unwrap_or(0);
        if queue.held_total >= self.limit || mine >= self.per_source {
            return false;
        }
        *queue.held.entry(source.to_owned()).or_default() += 1;
        queue.held_total += 1;
        true
    }

    pub(super) fn submit(&self, task: Box<dyn Task>) {
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
    pub(super) fn take_abandoned(&self) -> Vec<Box<dyn Task>> {
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
    pub(super) fn work(&self, n: usize) {
        let mut memory = ArgonMemory::default();
        let mut answer = None;
        while let Some(task) = self.next_or_release(n, &mut memory, answer.take()) {
            if task.abandoned() {
                // Dropped here, outside the lock: its place is given back.
                continue;
            }
            self.started.fetch_add(1, Ordering::Relaxed);
            #[cfg(test)]
            self.start_order
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(task.source().to_owned());
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
    pub(super) fn next_or_release(
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

    pub(super) fn count_held(&self, before: usize, after: usize) {
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
    pub(super) fn pick_idle(&mut self) -> Option<usize> {
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
    pub(super) fn next_task(&mut self) -> Option<Box<dyn Task>> {
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
pub(super) trait Task: Send {
    /// Whose it is.
    fn source(&self) -> &str;
    /// Whether its caller has gone away.
    fn abandoned(&self) -> bool;
    /// Runs the work and gives its place back; returns the answer, for the
    /// thread to hand over ([`Shared::next_or_release`]).
    fn run(self: Box<Self>, memory: &mut ArgonMemory) -> Answer;
}

/// A job's answer, not yet handed to its caller.
pub(super) type Answer = Box<dyn FnOnce() + Send>;

pub(super) struct Job<T, F> {
    pub(super) answer: oneshot::Sender<AppResult<T>>,
    pub(super) work: F,
    /// Given back when the job has run or is dropped.
    pub(super) _slot: Slot,
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
