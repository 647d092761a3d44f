//! Real processes for end-to-end tests: a binary of this crate started with
//! exactly the environment a test gives, in a working directory of its own,
//! its output collected, killed with SIGKILL (and reaped) when its guard
//! drops. Each binds port 0 and tells the port it got in its "listening" log
//! line.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::sync::oneshot;

/// How long a process may take to listen and answer `/healthz`, or to log
/// what a test waits for.
pub const READY_WITHIN: Duration = Duration::from_secs(60);

/// What a child printed, both streams interleaved by line.
type Output = Arc<Mutex<String>>;

/// A child process killed (and reaped) on drop. Its stdout and stderr are
/// read to the end by threads of their own, so it never blocks on a full
/// pipe.
pub struct Process {
    name: &'static str,
    child: Child,
    output: Output,
    drains: [JoinHandle<()>; 2],
}

impl Process {
    /// Starts `program` in `dir` with exactly `env` (plus `PATH`), waits for
    /// the line where it logs `<listening> address=<ip:port>` on stderr, then
    /// until `GET /healthz` answers 200. Returns the process and its base URL.
    pub async fn start(
        name: &'static str,
        program: &str,
        dir: &Path,
        env: &[(&str, String)],
        listening: &'static str,
    ) -> (Self, String) {
        let mut child = command(program, dir, env)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let output = Output::default();
        let (address_tx, address_rx) = oneshot::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let drains = [
            drain(stdout, output.clone(), None),
            drain(stderr, output.clone(), Some((listening, address_tx))),
        ];
        let mut process = Self {
            name,
            child,
            output,
            drains,
        };
        let address = match tokio::time::timeout(READY_WITHIN, address_rx).await {
            Ok(Ok(address)) => address,
            Ok(Err(_)) => panic!(
                "{name} closed stderr without logging {listening:?}:\n{}",
                process.wait_output()
            ),
            Err(_) => panic!(
                "{name} did not log {listening:?} within {READY_WITHIN:?}:\n{}",
                process.output()
            ),
        };
        let base = format!("http://{address}");
        process.wait_ready(&base).await;
        (process, base)
    }

    async fn wait_ready(&mut self, base: &str) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("{} exited with {status}:\n{}", self.name, self.output());
            }
            if let Ok(response) = client.get(format!("{base}/healthz")).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within {READY_WITHIN:?}:\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the process printed so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Everything the process printed, once it exited and both streams
    /// were read to the end (or what there is after 10 s).
    pub fn wait_output(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && (matches!(self.child.try_wait(), Ok(None))
                || !self.drains.iter().all(JoinHandle::is_finished))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.output()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL (no shutdown hook runs: a crash, an
    /// OOM kill) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (60 s at most) until the process has logged a line containing
    /// `message`; returns everything it printed so far.
    pub async fn wait_for_log(&self, message: &str) -> String {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let output = self.output();
            if output.contains(message) {
                return output;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log {message:?} within {READY_WITHIN:?}:\n{output}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `program` in `dir` with exactly `env` (plus `PATH`), no input, its
/// output piped.
fn command(program: &str, dir: &Path, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `program` in `dir` with exactly `env` (plus `PATH`) until it exits
/// (60 s at most, else it is killed and this panics); its exit
/// success and everything it printed (stdout, then stderr).
pub fn run_to_exit(program: &str, dir: &Path, env: &[(&str, String)]) -> (bool, String) {
    let mut child = command(program, dir, env)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("child status").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("child output");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// Reads `stream` line by line until it closes, appending to `output`. With
/// `listening`, sends the address of the first line containing that message
/// and `address=`.
fn drain(
    stream: impl Read + Send + 'static,
    output: Output,
    mut listening: Option<(&'static str, oneshot::Sender<SocketAddr>)>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        // Until EOF or a read error: the child exited or was killed.
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line);
            output
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_str(&text);
            if let Some((message, _)) = &listening
                && text.contains(message)
                && let Some(address) = listening_address(&text)
                && let Some((_, sender)) = listening.take()
            {
                let _ = sender.send(address);
            }
            line.clear();
        }
    })
}

/// The `address=<ip:port>` field of a log line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("address=")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A field of `/proc/<pid>/status` counted in KiB (`VmRSS`, `VmHWM`), while
/// the process lives (Linux).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
