//! How many Argon2 threads the password hasher runs, and at what scheduling
//! priority.
//!
//! One thread per core, so that a flood of sign-ins hashes on every core.
//! The first thread keeps the process's normal priority; every other one is
//! lowered to the weakest priority of the normal scheduler (nice 19), so that
//! the Tokio workers serving requests (nice 0) take a core whenever they have
//! work: under CFS/EEVDF a nice-19 thread weighs 15 against a nice-0
//! thread's 1024, so next to a busy worker it gets about 1.5 % of that core,
//! and it runs at full speed when the workers are idle.
//!
//! Why not every thread: when request handling alone fills the cores (a
//! flood of requests refused cheaply, say 503 for a full hashing queue or 429
//! for a limit), threads that are all at nice 19 get next to nothing, and the
//! sign-ins already admitted wait until their requests time out. The one
//! thread at the normal priority competes on equal terms with the workers,
//! so sign-in keeps a fair share of the machine under any load.
//!
//! Why nice 19 rather than `SCHED_IDLE`: on Linux the nice value is a
//! per-thread attribute (`setpriority(PRIO_PROCESS, tid)`), set through
//! rustix's safe wrapper (this crate forbids `unsafe`, which a libc call
//! would need); `SCHED_IDLE` (weight 3) would need `sched_setscheduler`, for
//! which rustix has no wrapper, and gives the same order of precedence. Raising
//! a nice value needs no privilege, so it works in any container. Other
//! systems: the threads keep the normal priority (on macOS and the BSDs
//! `setpriority` would lower the whole process, not one thread).

/// The nice value of every hashing thread but the first (Linux).
pub const HASH_THREAD_NICE: i32 = 19;

/// Whether the `n`th hashing thread (from 0) is lowered to
/// [`HASH_THREAD_NICE`]: all but the first.
pub fn is_lowered(n: usize) -> bool {
    n > 0
}

/// The default number of hashing threads: one per core the process may use
/// (`available_parallelism`, which follows CPU affinity and a cgroup quota).
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Lowers the calling thread, and only it, to [`HASH_THREAD_NICE`].
#[cfg(target_os = "linux")]
pub fn lower_current_thread() -> std::io::Result<()> {
    use rustix::process::setpriority_process;
    use rustix::thread::gettid;
    setpriority_process(Some(gettid()), HASH_THREAD_NICE).map_err(std::io::Error::from)
}

/// Other systems: no per-thread nice value; the thread keeps its priority.
#[cfg(not(target_os = "linux"))]
pub fn lower_current_thread() -> std::io::Result<()> {
    Ok(())
}

/// The calling thread's id as the kernel names it under `/proc/self/task`.
#[cfg(all(test, target_os = "linux"))]
pub fn current_thread_id() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

#[cfg(all(test, target_os = "linux"))]
pub(crate) mod testing {
    /// A thread's name and nice value as the kernel reports them in
    /// `/proc/self/task/<tid>/stat` (the name in parentheses, the nice value
    /// the 19th field).
    pub fn name_and_nice(tid: i32) -> (String, i32) {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
            .expect("the thread is alive");
        let open = stat.find('(').expect("stat has the name in parentheses");
        let close = stat.rfind(')').expect("stat has the name in parentheses");
        let name = stat[open + 1..close].to_owned();
        // Fields after the name start with the 3rd (state); nice is the 19th.
        let nice = stat[close + 1..]
            .split_whitespace()
            .nth(19 - 3)
            .and_then(|n| n.parse().ok())
            .expect("stat has a nice field");
        (name, nice)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::testing::name_and_nice;
    use super::*;

    #[test]
    fn lowering_changes_the_calling_thread_only() {
        let me = current_thread_id();
        let (_, mine_before) = name_and_nice(me);
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            lower_current_thread().unwrap();
            tid_tx.send(current_thread_id()).unwrap();
            done_rx.recv().unwrap();
        });
        let tid = tid_rx.recv().unwrap();
        assert_eq!(name_and_nice(tid).1, HASH_THREAD_NICE);
        assert_eq!(
            name_and_nice(me).1,
            mine_before,
            "the calling thread keeps its priority"
        );
        done_tx.send(()).unwrap();
        other.join().unwrap();
    }
}
