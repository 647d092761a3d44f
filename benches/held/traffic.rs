//! The held bench's traffic: the holders that keep connections half-open
//! and count how the server closed them, the probes, and the count of the
//! service's sockets.

use super::*;

/// A connection to `address` from the loopback address `source`, so that
/// the server sees another peer.
pub(super) async fn connect_from(
    address: SocketAddr,
    source: IpAddr,
) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((source, 0).into())?;
    socket.connect(address).await
}

/// How the held connections ended, counted as they end.
#[derive(Default)]
pub(super) struct Tally {
    connects: AtomicU64,
    connect_failed: AtomicU64,
    send_failed: AtomicU64,
    cut: AtomicU64,
    refused: AtomicU64,
    timed_out: AtomicU64,
}

#[derive(Default, Clone, Copy)]
pub(super) struct Counts {
    pub(super) connects: u64,
    pub(super) connect_failed: u64,
    pub(super) send_failed: u64,
    /// An end of stream before the head timeout: the server had read the
    /// half head (its bytes were not left unread), then gave the slot away.
    pub(super) cut: u64,
    /// A reset: the server closed it with its bytes unread (a close with
    /// unread data is a reset), past the per-address cap or with no slot.
    pub(super) refused: u64,
    /// An end of stream at the head timeout or later.
    pub(super) timed_out: u64,
}

impl Tally {
    pub(super) fn snapshot(&self) -> Counts {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        Counts {
            connects: get(&self.connects),
            connect_failed: get(&self.connect_failed),
            send_failed: get(&self.send_failed),
            cut: get(&self.cut),
            refused: get(&self.refused),
            timed_out: get(&self.timed_out),
        }
    }
}

impl Counts {
    pub(super) fn closed(&self) -> u64 {
        self.cut + self.refused + self.timed_out + self.send_failed
    }

    pub(super) fn since(&self, before: &Self) -> Self {
        Self {
            connects: self.connects - before.connects,
            connect_failed: self.connect_failed - before.connect_failed,
            send_failed: self.send_failed - before.send_failed,
            cut: self.cut - before.cut,
            refused: self.refused - before.refused,
            timed_out: self.timed_out - before.timed_out,
        }
    }
}

/// Keeps one connection from `source` half-open: sends half a head and,
/// once the server closes it, opens another 50 ms later. Runs until aborted.
///
/// How the server closed it tells whether it had read the half head: a
/// close with bytes unread is a reset; a close before they arrived is an end
/// of stream, and then the bytes arriving at the closed socket draw a reset,
/// which leaves an error on this socket (`SO_ERROR`, looked at once the 50 ms
/// have passed). An end of stream with no error after it: the server had
/// read the half head, and closed the connection either for a newcomer or at
/// the head timeout.
pub(super) async fn hold(address: SocketAddr, source: IpAddr, tally: Arc<Tally>) {
    let head_timeout = Duration::from_secs(defaults::HEADER_READ_TIMEOUT);
    let mut buf = [0_u8; 512];
    loop {
        let Ok(mut conn) = connect_from(address, source).await else {
            tally.connect_failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(REOPEN_AFTER).await;
            continue;
        };
        tally.connects.fetch_add(1, Ordering::Relaxed);
        let opened = Instant::now();
        if conn.write_all(HALF_A_HEAD).await.is_err() {
            tally.send_failed.fetch_add(1, Ordering::Relaxed);
            drop(conn);
            tokio::time::sleep(REOPEN_AFTER).await;
            continue;
        }
        let end_of_stream = loop {
            match conn.read(&mut buf).await {
                Ok(0) => break true,
                Ok(_) => {}
                Err(_) => break false,
            }
        };
        let lived = opened.elapsed();
        // Kept open meanwhile: a reset drawn by the half head still arrives.
        tokio::time::sleep(REOPEN_AFTER).await;
        let read_by_the_server = end_of_stream && matches!(conn.take_error(), Ok(None));
        drop(conn);
        let counter = if !read_by_the_server {
            &tally.refused
        } else if lived + Duration::from_millis(500) < head_timeout {
            &tally.cut
        } else {
            &tally.timed_out
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// `count` probes from [`PROBE_SOURCE`], one every `interval` (or as soon
/// as the previous one ended, when it took longer): each one's status, or
/// why it has none, and how long it took from the connection attempt.
pub(super) async fn probe_all(
    address: SocketAddr,
    count: usize,
    interval: Duration,
) -> Vec<(Result<u16, String>, Duration)> {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut results = Vec::with_capacity(count);
    for _ in 0..count {
        ticks.tick().await;
        let started = Instant::now();
        let result = tokio::time::timeout(PROBE_TIMEOUT, probe(address))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {PROBE_TIMEOUT:?}")));
        results.push((result, started.elapsed()));
    }
    results
}

/// `GET /healthz` on a new connection: the status of the response head.
pub(super) async fn probe(address: SocketAddr) -> Result<u16, String> {
    let mut conn = connect_from(address, loopback(PROBE_SOURCE))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    conn.write_all(PROBE)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0_u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) => return Err(format!("closed after {} bytes", head.len())),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not a status line: {:?}", line.lines().next()))
}

/// The most sockets a process held, sampled every 100 ms from
/// `/proc/<pid>/fd` by a thread of its own (Linux), until dropped.
pub(super) struct SocketCount {
    max: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl SocketCount {
    pub(super) fn watch(pid: u32) -> Self {
        let max = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (most, done) = (Arc::clone(&max), Arc::clone(&stop));
        std::thread::spawn(move || {
            let dir = format!("/proc/{pid}/fd");
            while !done.load(Ordering::Relaxed) {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    break;
                };
                let sockets = entries
                    .filter_map(Result::ok)
                    .filter(|entry| {
                        std::fs::read_link(entry.path())
                            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
                    })
                    .count();
                most.fetch_max(sockets, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self { max, stop }
    }

    pub(super) fn reset(&self) {
        self.max.store(0, Ordering::Relaxed);
    }

    pub(super) fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for SocketCount {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
