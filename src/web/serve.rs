//! Serving an app on a listener, for both services: an accept loop over
//! hyper's HTTP/1.1 connections that bounds what a client can hold.
//!
//! - **At most `max_connections_per_ip` connections per peer address**
//!   (IPv6: per /64; the trusted proxies are exempt): past it a new
//!   connection from that address is closed at once.
//! - **At most `max_connections` connections.** The loop always accepts, so
//!   the listen backlog never fills; at the cap a new connection takes the
//!   slot of the connection that has waited longest for a complete request
//!   head, or else of the longest-idle kept-alive one, which is closed; never
//!   of one with a request in flight, nor of one not read yet (it may hold a
//!   whole head). With nothing to cut, the new connection waits up to a
//!   second for a slot, then is closed. So holding connections open gains
//!   an attacker nothing: the next client takes their place (`slots.rs`). Start-up raises the
//!   open-files limit and refuses a cap that does not fit it
//!   ([`reserve_open_files`]); should `accept` fail anyway (`EMFILE`), the loop
//!   backs off (50 ms doubling to 1 s) and logs at most every 10 s.
//! - **A request head of at most 16 KiB and 100 fields**
//!   ([`MAX_HEAD_BYTES`], [`MAX_HEAD_FIELDS`]): larger gets 431
//!   `REQUEST_HEADER_FIELDS_TOO_LARGE` in the JSON shape. hyper's own limits
//!   are set above those (64 KiB, 200 fields), so the service answers first;
//!   what hyper still refuses by itself, with an empty body (a head beyond
//!   its limits, an unparseable request line, conflicting `Content-Length`
//!   headers), is closed with its bare 400 or 431.
//! - **A request head within `header_read_timeout`**, counted from the
//!   connection's start and, on a kept-alive connection, from the first byte
//!   of the next request: a connection that sends nothing, half a head, or a
//!   head one line at a time is closed then.
//! - **Idle between requests at most `keep_alive_timeout`** (above the usual
//!   60 s of load balancers, so that they close first).
//! - **The body within `body_read_timeout`** of the head: it is read here,
//!   up to `max_body_bytes`, before the app sees the request, so the app's
//!   handler timeout counts the handling only. Too slow: 408
//!   `REQUEST_TIMEOUT`; too large: 413 `PAYLOAD_TOO_LARGE`; both in the JSON
//!   shape and with `Connection: close`.
//! - Handlers get the peer address as `ConnectInfo<SocketAddr>`.
//! - When `shutdown` completes the listener is closed, idle connections are
//!   closed, and requests in flight are finished (hyper-util's
//!   `GracefulShutdown`); the timeouts above bound how long that takes.
//!
//! Why the timeouts are kept here rather than by hyper's own
//! `http1::Builder::header_read_timeout` (hyper 1.12, `proto/h1/conn.rs`):
//! its timer starts whenever the connection starts waiting for a head
//! (`poll_read_head`), which is at the connection's first poll (so it does
//! cover a client that never sends a byte) and again right after each
//! response (`State::idle` sets `notify_read` so that the next read starts
//! it). An idle kept-alive connection would thus be closed after the header
//! timeout, 10 s, long before a load balancer's 60 s, which then races the
//! close with its next request (502s); and hyper has no idle timeout of its
//! own to replace it, nor any body timeout. So hyper's timer is off
//! (`header_read_timeout(None)`) and one watchdog per connection keeps all
//! three deadlines, from what the connection does: bytes read, requests
//! started, responses finished.

mod connection;
mod settings;
mod slots;
mod watchdog;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::Instant;

use connection::Connection;
pub use connection::{MAX_HEAD_BYTES, MAX_HEAD_FIELDS};
pub(crate) use settings::whole_number;
pub use settings::{
    CONNECTION_SETTINGS, ConnectionLimits, RESERVED_FILES, ServeSettings, defaults, limits,
    reserve_open_files,
};
use slots::Slots;
use watchdog::Activity;

/// Serves `app` on `listener` until `shutdown` completes, then finishes the
/// requests in flight (see the module's documentation). Errors only if the
/// listener's address cannot be read; accept errors are retried.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let settings = Arc::new(settings);
    let slots = Slots::new(&settings.limits);
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    // Off: its timer also runs while a kept-alive connection is idle (module docs).
    http.header_read_timeout(None);
    // Above the service's own limits, so that it answers 431 in its shape.
    http.max_buf_size(HYPER_MAX_HEAD_BYTES);
    http.max_headers(HYPER_MAX_HEAD_FIELDS);
    let mut backoff = AcceptBackoff::default();
    let mut shutdown = pin!(shutdown);
    tracing::debug!(address = %listener.local_addr()?, limits = ?settings.limits, "serving");
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                backoff.reset();
                let activity = Activity::new();
                match slots.admit_within(remote.ip(), &activity).await {
                    Ok(slot) => {
                        let connection = Connection {
                            app: app.clone(),
                            settings: Arc::clone(&settings),
                            remote,
                            slot,
                            activity,
                        };
                        connection.spawn(stream, &http, &graceful);
                    }
                    Err(refused) => {
                        // Dropping the stream closes it.
                        tracing::debug!(%remote, reason = refused.reason(), "connection refused");
                    }
                }
            }
            Err(e) => backoff.wait(&e).await,
        }
    }
    // Refuse new connections, then let hyper close the idle ones and finish
    // the others.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// hyper's read buffer, which must hold a whole request head: 4 × [`MAX_HEAD_BYTES`].
const HYPER_MAX_HEAD_BYTES: usize = 64 * 1024;

/// The header fields hyper parses: 2 × [`MAX_HEAD_FIELDS`].
const HYPER_MAX_HEAD_FIELDS: usize = 200;

/// Failed `accept`s: the peer's (reset before it was accepted) are skipped;
/// the others (`EMFILE`, `ENFILE`, `ENOBUFS`: the process or machine is out
/// of something) wait, 50 ms doubling to 1 s until an accept succeeds, and are
/// logged at most every 10 s, with how many there were.
struct AcceptBackoff {
    delay: Duration,
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(10);

    fn reset(&mut self) {
        self.delay = Self::FIRST;
    }

    /// How long to wait after `error` (zero for the peer's errors); logs
    /// when due.
    fn next_delay(&mut self, error: &io::Error) -> Duration {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::Interrupted
        ) {
            return Duration::ZERO;
        }
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= Self::LOG_EVERY)
        {
            tracing::error!(
                error = %error,
                errors = self.unlogged,
                retry_in_ms = self.delay.as_millis() as u64,
                "cannot accept connections (out of open files? see MAX_CONNECTIONS)"
            );
            self.last_logged = Some(now);
            self.unlogged = 0;
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(Self::MAX);
        delay
    }

    async fn wait(&mut self, error: &io::Error) {
        let delay = self.next_delay(error);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            delay: Self::FIRST,
            last_logged: None,
            unlogged: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off_unless_the_peer_caused_them() {
        let mut backoff = AcceptBackoff::default();
        let emfile = io::Error::from_raw_os_error(24);
        let delays: Vec<u128> = (0..7)
            .map(|_| backoff.next_delay(&emfile).as_millis())
            .collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1000, 1000]);
        // Logged once, the others counted for the next line.
        assert_eq!(backoff.unlogged, 6);
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(backoff.next_delay(&reset), Duration::ZERO);
        backoff.reset();
        tokio::time::advance(AcceptBackoff::LOG_EVERY).await;
        assert_eq!(backoff.next_delay(&emfile), Duration::from_millis(50));
        assert_eq!(backoff.unlogged, 0, "logged again after LOG_EVERY");
    }
}
