//! Where the machine's CPU went during a leg (Linux): the CPU time of every
//! process from `/proc/<pid>/stat` at the start and at the end, summed by who
//! it is: the account service, PostgreSQL, Redis, this process (the load
//! generator), everything else.

use std::collections::HashMap;
use std::time::Instant;

/// The unit of the times in `/proc/<pid>/stat` (`USER_HZ`): 100 per second on
/// every Linux ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// Whose CPU time it is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Owner {
    Account,
    Postgres,
    Redis,
    Generator,
    Other,
}

impl Owner {
    pub const ALL: [Owner; 5] = [
        Owner::Account,
        Owner::Postgres,
        Owner::Redis,
        Owner::Generator,
        Owner::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Owner::Account => "account service",
            Owner::Postgres => "PostgreSQL",
            Owner::Redis => "Redis",
            Owner::Generator => "load generator",
            Owner::Other => "other processes",
        }
    }
}

/// CPU ticks (user + system) of every process at one moment, and of the
/// account service's hashing threads (named `argon2-<n>`).
pub struct Snapshot {
    at: Instant,
    ticks: HashMap<u32, (Owner, u64)>,
    hashing: HashMap<u32, u64>,
}

/// CPU seconds per owner between two snapshots, and the wall time between;
/// `hashing` is the part of the account service's spent in its hashing
/// threads.
pub struct Usage {
    pub seconds: HashMap<Owner, f64>,
    pub hashing: f64,
    pub wall: f64,
}

impl Usage {
    pub fn of(&self, owner: Owner) -> f64 {
        self.seconds.get(&owner).copied().unwrap_or(0.0)
    }

    pub fn total(&self) -> f64 {
        self.seconds.values().sum()
    }
}

impl Snapshot {
    /// Every process now; `account` is the account service's pid.
    pub fn take(account: u32) -> Self {
        let me = std::process::id();
        let mut ticks = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                let Some((comm, used)) = process_ticks(pid) else {
                    continue;
                };
                let owner = if pid == account {
                    Owner::Account
                } else if pid == me {
                    Owner::Generator
                } else if comm == "postgres" {
                    Owner::Postgres
                } else if comm.starts_with("redis-server") {
                    Owner::Redis
                } else {
                    Owner::Other
                };
                ticks.insert(pid, (owner, used));
            }
        }
        Self {
            at: Instant::now(),
            ticks,
            hashing: hashing_threads(account),
        }
    }

    /// What each owner used from `self` to `later` (a process that started
    /// in between counts from zero; one that ended is not counted).
    pub fn until(&self, later: &Snapshot) -> Usage {
        let mut seconds: HashMap<Owner, f64> = HashMap::new();
        for (pid, (owner, used)) in &later.ticks {
            let before = self.ticks.get(pid).map_or(0, |(_, t)| *t);
            *seconds.entry(*owner).or_default() +=
                used.saturating_sub(before) as f64 / TICKS_PER_SECOND;
        }
        let hashing = later
            .hashing
            .iter()
            .map(|(tid, used)| used.saturating_sub(self.hashing.get(tid).copied().unwrap_or(0)))
            .sum::<u64>() as f64
            / TICKS_PER_SECOND;
        Usage {
            seconds,
            hashing,
            wall: later.at.duration_since(self.at).as_secs_f64(),
        }
    }
}

/// The ticks of each of the account service's hashing threads.
fn hashing_threads(account: u32) -> HashMap<u32, u64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{account}/task")) else {
        return HashMap::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid: u32 = task.file_name().to_str()?.parse().ok()?;
            let (comm, used) = stat_ticks(&format!("/proc/{account}/task/{tid}/stat"))?;
            comm.starts_with("argon2-").then_some((tid, used))
        })
        .collect()
}

/// The name and the user + system ticks of `pid` (fields 14 and 15 of
/// `/proc/<pid>/stat`, after the parenthesised name, which may hold spaces).
fn process_ticks(pid: u32) -> Option<(String, u64)> {
    stat_ticks(&format!("/proc/{pid}/stat"))
}

/// The name and the user + system ticks in a `stat` file of `/proc`.
fn stat_ticks(path: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((comm, utime + stime))
}
