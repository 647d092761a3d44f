//! A local Redis Cluster for tests: `redis-server` processes on loopback
//! ports, joined with `redis-cli --cluster create`, no Docker.
//!
//! ```ignore
//! let Some(cluster) = redis_cluster::shared("my_test") else { return }; // SKIP line printed
//! let url = cluster.seed_url();              // "redis://127.0.0.1:p1,redis://127.0.0.1:p2,…"
//! let port = cluster.master_for_key("{uid}"); // the master serving that key's slot
//! let scans = cluster.command_calls(port, "scan");
//! ```
//!
//! - [`available`] tells whether `redis-server` (≥ 7, cluster support) and
//!   `redis-cli --cluster` are installed; [`require`] turns "no" into a visible
//!   `SKIPPED` line, or a panic under `REQUIRE_REAL_STORES=1` (CI).
//! - [`shared`] is one three-master cluster per test binary, started on first
//!   use (about 1–3 s) and reused: tests on it must only touch keys of their
//!   own (a fresh uid) and never kill its nodes.
//! - [`RedisCluster::start`] starts a cluster of one's own (e.g. with a replica
//!   per master, for a failover: [`RedisCluster::kill_master`],
//!   [`RedisCluster::wait_for_failover`], [`RedisCluster::restart`]), killed
//!   when dropped.
//!   [`ClusterPorts::pick`] + [`RedisCluster::start_on`] let a test learn the
//!   ports first and start the cluster later (a service started while the
//!   cluster is down).
//!
//! Every node runs under a tiny shell watchdog that SIGKILLs it when the test
//! process is gone, so even the shared cluster (a static, never dropped) does
//! not outlive its test binary. Nodes log to files in the cluster's temp dir
//! (shown by [`RedisCluster::logs`] on failures).
#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long a cluster may take to form, or a failover to complete.
pub const CLUSTER_READY_WITHIN: Duration = Duration::from_secs(30);

/// `REQUIRE_REAL_STORES=1` (CI): a missing cluster-capable Redis fails the run.
pub fn require_real_stores() -> bool {
    std::env::var("REQUIRE_REAL_STORES").is_ok_and(|v| v == "1" || v == "true")
}

/// `Ok` when `redis-server` (version 7 or later, built with cluster support)
/// and `redis-cli` with `--cluster` are on the PATH, else why not. Checked
/// once per process.
pub fn available() -> Result<(), String> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    AVAILABLE.get_or_init(check_binaries).clone()
}

fn check_binaries() -> Result<(), String> {
    let version = Command::new("redis-server")
        .arg("--version")
        .output()
        .map_err(|e| format!("redis-server is not installed ({e})"))?;
    let text = String::from_utf8_lossy(&version.stdout).into_owned();
    // "Redis server v=7.0.15 sha=… "
    let major = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| format!("cannot read the redis-server version from {text:?}"))?;
    if major < 7 {
        return Err(format!(
            "redis-server {major}.x is too old for these tests (7 or later)"
        ));
    }
    let help = Command::new("redis-cli")
        .args(["--cluster", "help"])
        .output()
        .map_err(|e| format!("redis-cli is not installed ({e})"))?;
    let help =
        String::from_utf8_lossy(&help.stdout).into_owned() + &String::from_utf8_lossy(&help.stderr);
    if !help.contains("create") {
        return Err("redis-cli has no --cluster create".to_owned());
    }
    Ok(())
}

/// `true` when a cluster can be started; otherwise prints a visible
/// `SKIPPED <test>` line and returns `false`, or panics under
/// `REQUIRE_REAL_STORES=1`.
pub fn require(test: &str) -> bool {
    match available() {
        Ok(()) => true,
        Err(why) if require_real_stores() => {
            panic!("{test}: Redis Cluster tests need {why}, and REQUIRE_REAL_STORES=1")
        }
        Err(why) => {
            let _ = writeln!(std::io::stderr(), "SKIPPED {test} on Redis Cluster: {why}");
            false
        }
    }
}

/// The cluster shared by the tests of this binary: three masters, no
/// replicas, started on first use. `None` (after a `SKIPPED` line) when
/// [`require`] says no. A cluster that cannot start is a failure.
pub fn shared(test: &str) -> Option<&'static RedisCluster> {
    static SHARED: OnceLock<Mutex<Option<&'static RedisCluster>>> = OnceLock::new();
    if !require(test) {
        return None;
    }
    let slot = SHARED.get_or_init(|| Mutex::new(None));
    let mut guard = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cluster) = *guard {
        return Some(cluster);
    }
    let cluster = RedisCluster::start(3, 0).unwrap_or_else(|e| panic!("{test}: {e}"));
    let cluster: &'static RedisCluster = Box::leak(Box::new(cluster));
    *guard = Some(cluster);
    Some(cluster)
}

/// A node's role, as it reports it now (`INFO replication`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Replica,
}

/// Free loopback ports for a cluster: each port and its cluster bus port
/// (port + 10000) free when picked, below the ephemeral range.
#[derive(Debug, Clone)]
pub struct ClusterPorts {
    pub masters: usize,
    pub replicas_per_master: usize,
    pub ports: Vec<u16>,
}

impl ClusterPorts {
    pub fn pick(masters: usize, replicas_per_master: usize) -> Self {
        let count = masters * (1 + replicas_per_master);
        let (low, high) = candidate_range();
        let span = u64::from(high - low);
        let mut ports: Vec<u16> = Vec::with_capacity(count);
        // Start at a pseudo-random point so parallel test binaries rarely try
        // the same ports.
        let seed = u64::from(std::process::id()) * 7919
            + std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::from(d.subsec_nanos()))
                .unwrap_or(0);
        let mut candidate = low + (seed % span) as u16;
        let mut tried = 0;
        while ports.len() < count {
            tried += 1;
            assert!(
                tried < 2 * span,
                "no free loopback ports for a Redis Cluster"
            );
            candidate = if candidate + 1 >= high {
                low
            } else {
                candidate + 1
            };
            let clashes = ports
                .iter()
                .any(|&p| p == candidate || p + 10_000 == candidate || p == candidate + 10_000);
            if !clashes && free(candidate) && free(candidate + 10_000) {
                ports.push(candidate);
            }
        }
        Self {
            masters,
            replicas_per_master,
            ports,
        }
    }

    /// The `REDIS_URL` of these ports, comma-separated (every node a seed).
    pub fn seed_url(&self) -> String {
        seed_url(&self.ports)
    }
}

/// Where ports are picked: below the kernel's ephemeral range (with their
/// bus ports), so that no outgoing connection or port-0 listener of a
/// parallel test takes one between the pick and the start; all below 55536.
fn candidate_range() -> (u16, u16) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok());
    match ephemeral_start {
        Some(start) if start >= 21_000 => (10_000, start - 10_000),
        _ => (20_000, 55_535),
    }
}

fn free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn seed_url(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

struct Node {
    port: u16,
    /// The redis-server's own pid (its watchdog shell is another process).
    pid: u32,
}

/// A running cluster; every node is SIGKILLed when it drops.
pub struct RedisCluster {
    dir: tempfile::TempDir,
    ports: ClusterPorts,
    nodes: Mutex<Vec<Node>>,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas_per_master` replicas each on
    /// free ports and waits until every node says `cluster_state:ok` (and
    /// every replica is in sync).
    /// Another process may take a picked port before the node binds it:
    /// then the cluster is started again on other ports (three tries).
    pub fn start(masters: usize, replicas_per_master: usize) -> Result<Self, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::start_on(ClusterPorts::pick(masters, replicas_per_master)) {
                Ok(cluster) => return Ok(cluster),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    /// Starts a cluster on ports picked earlier (see [`ClusterPorts::pick`]).
    pub fn start_on(ports: ClusterPorts) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let cluster = Self {
            dir,
            ports,
            nodes: Mutex::new(Vec::new()),
        };
        for &port in &cluster.ports.ports {
            let pid = spawn_node(cluster.dir.path(), port)?;
            cluster.nodes().push(Node { port, pid });
        }
        for &port in &cluster.ports.ports {
            wait_until(Duration::from_secs(10), || ping(port))
                .map_err(|_| format!("node {port} did not answer PING\n{}", cluster.logs()))?;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &cluster.ports.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .arg("--cluster-replicas")
            .arg(cluster.ports.replicas_per_master.to_string())
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("redis-cli --cluster create: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                cluster.logs()
            ));
        }
        cluster.wait_until_ok()?;
        Ok(cluster)
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, Vec<Node>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until every live node reports `cluster_state:ok`, agrees on who
    /// serves every slot, and every replica's link to its master is up.
    pub fn wait_until_ok(&self) -> Result<(), String> {
        wait_until(CLUSTER_READY_WITHIN, || {
            let ports = self.live_ports();
            let all_ok = ports.iter().all(|&p| {
                cluster_info(p).contains("cluster_state:ok")
                    && replication_ok(&info(p, "replication"))
            });
            let masters: Vec<u16> = (0..3).map(|i| self.master_for_slot(i * 5461)).collect();
            all_ok && masters.iter().all(|m| *m != 0)
        })
        .map_err(|_| format!("the cluster did not become ok\n{}", self.logs()))
    }

    /// Every node's port, killed ones included.
    pub fn ports(&self) -> Vec<u16> {
        self.ports.ports.clone()
    }

    /// The ports of the nodes still running.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes().iter().map(|n| n.port).collect()
    }

    /// `REDIS_URL` for `REDIS_MODE=cluster`: every node, comma-separated.
    pub fn seed_url(&self) -> String {
        self.ports.seed_url()
    }

    /// The URL of one node (for a plain connection to it).
    pub fn node_url(&self, port: u16) -> String {
        format!("redis://127.0.0.1:{port}")
    }

    /// The node's role as it reports it now.
    pub fn role(&self, port: u16) -> Role {
        if info(port, "replication").contains("role:master") {
            Role::Master
        } else {
            Role::Replica
        }
    }

    /// The live masters' ports.
    pub fn masters(&self) -> Vec<u16> {
        self.live_ports()
            .into_iter()
            .filter(|&p| self.role(p) == Role::Master)
            .collect()
    }

    /// The port of the master serving `slot`, as the live nodes' `CLUSTER
    /// SLOTS` says (0 if none answers or none serves it).
    pub fn master_for_slot(&self, slot: u16) -> u16 {
        for port in self.live_ports() {
            let Ok(mut conn) = connect(port) else {
                continue;
            };
            let Ok(ranges) = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query::<redis::Value>(&mut conn)
            else {
                continue;
            };
            if let Some(master) = master_in_slots(&ranges, slot) {
                return master;
            }
        }
        0
    }

    /// The port of the master serving `key`'s slot (hash tags honoured).
    pub fn master_for_key(&self, key: &str) -> u16 {
        self.master_for_slot(slot_of(key))
    }

    /// SIGKILLs the node on `port` (no shutdown, no save): a crash.
    pub fn kill(&self, port: u16) {
        let mut nodes = self.nodes();
        if let Some(i) = nodes.iter().position(|n| n.port == port) {
            let node = nodes.remove(i);
            sigkill(node.pid);
        }
    }

    /// Starts the killed node on `port` again, from its own `nodes.conf`: it
    /// rejoins the cluster (a master that was failed over comes back as a
    /// replica of its successor). Waits until the cluster is ok.
    pub fn restart(&self, port: u16) -> Result<(), String> {
        assert!(
            !self.live_ports().contains(&port),
            "node {port} is still running"
        );
        let pid = spawn_node(self.dir.path(), port)?;
        self.nodes().push(Node { port, pid });
        wait_until(Duration::from_secs(10), || ping(port))
            .map_err(|_| format!("node {port} did not answer PING\n{}", self.logs()))?;
        self.wait_until_ok()
    }

    /// Kills the master on `port` (see [`kill`](Self::kill)).
    pub fn kill_master(&self, port: u16) {
        assert_eq!(self.role(port), Role::Master, "{port} is not a master");
        self.kill(port);
    }

    /// Waits until a live node other than `old_master` serves `slot` as
    /// master and the cluster is ok again; returns its port.
    pub fn wait_for_failover(&self, slot: u16, old_master: u16) -> Result<u16, String> {
        let mut new_master = 0;
        wait_until(CLUSTER_READY_WITHIN, || {
            new_master = self.master_for_slot(slot);
            new_master != 0
                && new_master != old_master
                && self
                    .live_ports()
                    .iter()
                    .all(|&p| cluster_info(p).contains("cluster_state:ok"))
        })
        .map_err(|_| {
            format!(
                "no failover of slot {slot} from {old_master}\n{}",
                self.logs()
            )
        })?;
        Ok(new_master)
    }

    /// How many times `command` (lower case, e.g. `"scan"`) ran on the node
    /// since it started or [`reset_stats`](Self::reset_stats): `calls=` of
    /// `cmdstat_<command>` in `INFO commandstats`.
    pub fn command_calls(&self, port: u16, command: &str) -> u64 {
        commandstats(port).get(command).copied().unwrap_or(0)
    }

    /// `CONFIG RESETSTAT` on every live node.
    pub fn reset_stats(&self) {
        for port in self.live_ports() {
            if let Ok(mut conn) = connect(port) {
                let _ = redis::cmd("CONFIG").arg("RESETSTAT").query::<()>(&mut conn);
            }
        }
    }

    /// `DBSIZE` of the node.
    pub fn key_count(&self, port: u16) -> u64 {
        connect(port)
            .and_then(|mut c| redis::cmd("DBSIZE").query::<u64>(&mut c))
            .unwrap_or(0)
    }

    /// The tail of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for port in &self.ports.ports {
            let path = log_path(self.dir.path(), *port);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- redis-server :{port} ({})\n", path.display()));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in self.nodes().drain(..) {
            sigkill(node.pid);
        }
    }
}

/// `commandstats` of a node: command (lower case) → calls.
pub fn commandstats(port: u16) -> HashMap<String, u64> {
    info(port, "commandstats")
        .lines()
        .filter_map(|line| {
            // cmdstat_scan:calls=3,usec=…
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// The cluster slot of `key` (CRC16 of the hash tag, or of the key).
pub fn slot_of(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16_xmodem(hashed) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn log_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("redis-{port}.log"))
}

/// Starts one node in `dir/<port>/` under a watchdog shell; returns the
/// redis-server's pid.
fn spawn_node(dir: &Path, port: u16) -> Result<u32, String> {
    let node_dir = dir.join(port.to_string());
    std::fs::create_dir_all(&node_dir).map_err(|e| format!("{}: {e}", node_dir.display()))?;
    // The shell starts the server, prints its pid, then kills it as soon as
    // the test process is gone (or ends when the server does).
    let script = r#"redis-server "$@" >/dev/null 2>&1 &
pid=$!
echo "$pid"
while kill -0 "$WATCH" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 0.3; done
kill -9 "$pid" 2>/dev/null
exit 0"#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-config-file", "nodes.conf"])
        .args(["--cluster-node-timeout", "1000"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--protected-mode", "no"])
        .arg("--dir")
        .arg(&node_dir)
        .arg("--logfile")
        .arg(log_path(dir, port))
        .env("WATCH", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start redis-server: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("redis-server :{port}: {e}"))?;
    // The watchdog is reaped by a thread of its own when it ends.
    std::thread::spawn(move || child.wait());
    line.trim()
        .parse()
        .map_err(|_| format!("redis-server :{port}: no pid from its watchdog ({line:?})"))
}

fn sigkill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))?
        .get_connection_with_timeout(Duration::from_secs(1))
}

fn ping(port: u16) -> bool {
    connect(port)
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

/// `INFO <section>` of a node ("" if it does not answer).
fn info(port: u16, section: &str) -> String {
    connect(port)
        .and_then(|mut c| redis::cmd("INFO").arg(section).query::<String>(&mut c))
        .unwrap_or_default()
}

/// `CLUSTER INFO` of a node ("" if it does not answer).
fn cluster_info(port: u16) -> String {
    connect(port)
        .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
        .unwrap_or_default()
}

/// A master, or a replica whose link is up and not syncing.
fn replication_ok(info: &str) -> bool {
    info.contains("role:master")
        || (info.contains("master_link_status:up") && info.contains("master_sync_in_progress:0"))
}

/// The master port of the range holding `slot` in a `CLUSTER SLOTS` reply:
/// `[[start, end, [ip, port, id], replicas…], …]`.
fn master_in_slots(reply: &redis::Value, slot: u16) -> Option<u16> {
    let redis::Value::Array(ranges) = reply else {
        return None;
    };
    for range in ranges {
        let redis::Value::Array(parts) = range else {
            continue;
        };
        let (Some(redis::Value::Int(start)), Some(redis::Value::Int(end))) =
            (parts.first(), parts.get(1))
        else {
            continue;
        };
        if (*start..=*end).contains(&i64::from(slot))
            && let Some(redis::Value::Array(master)) = parts.get(2)
            && let Some(redis::Value::Int(port)) = master.get(1)
        {
            return u16::try_from(*port).ok();
        }
    }
    None
}

fn wait_until(within: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + within;
    loop {
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
