//! Serving an app on a listener, for both services: an accept loop over
//! hyper's HTTP/1.1 connections that bounds what a client can hold.
//!
//! - **At most `max_connections` connections.** At the cap the loop stops
//!   accepting: new connections wait in the kernel's listen backlog and are
//!   accepted as others close (idle ones time out, below). Start-up raises the
//!   open-files limit and refuses a cap that does not fit it
//!   ([`reserve_open_files`]); should `accept` fail anyway (`EMFILE`), the loop
//!   backs off (50 ms doubling to 1 s) and logs at most every 10 s.
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

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, header, request};
use axum::response::IntoResponse as _;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;

use super::{ApiError, ErrorKind};

/// Defaults of `HEADER_READ_TIMEOUT`, `KEEP_ALIVE_TIMEOUT` (seconds),
/// `BODY_READ_TIMEOUT` (seconds) and `MAX_CONNECTIONS`.
pub mod defaults {
    pub const HEADER_READ_TIMEOUT: u64 = 10;
    /// Above the 60 s idle timeout of common load balancers: they close first.
    pub const KEEP_ALIVE_TIMEOUT: u64 = 65;
    pub const BODY_READ_TIMEOUT: u64 = 10;
    pub const MAX_CONNECTIONS: usize = 1024;
}

/// Upper bounds of the same variables: beyond these a value is a mistake.
pub mod limits {
    /// Five minutes.
    pub const HEADER_READ_TIMEOUT: u64 = 300;
    /// One hour.
    pub const KEEP_ALIVE_TIMEOUT: u64 = 3_600;
    /// Five minutes.
    pub const BODY_READ_TIMEOUT: u64 = 300;
    /// Linux's default ceiling of open files per process (`fs.nr_open`).
    pub const MAX_CONNECTIONS: usize = 1 << 20;
}

/// Files a service keeps open besides its connections (standard streams, the
/// listener, the runtime's, SQLite's (the token store's writer too) and
/// Redis's, key files, outgoing JWKS fetches), with room to spare; a
/// PostgreSQL pool comes on top.
pub const RESERVED_FILES: u64 = 64;

/// How connections are bounded: `HEADER_READ_TIMEOUT`, `KEEP_ALIVE_TIMEOUT`,
/// `BODY_READ_TIMEOUT` and `MAX_CONNECTIONS`, the same variables in both
/// services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Until a request head is complete, from the connection's start or the
    /// first byte of the next request.
    pub header_read_timeout: Duration,
    /// Idle between two requests.
    pub keep_alive_timeout: Duration,
    /// Until the request body is complete, from its head.
    pub body_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(defaults::HEADER_READ_TIMEOUT),
            keep_alive_timeout: Duration::from_secs(defaults::KEEP_ALIVE_TIMEOUT),
            body_read_timeout: Duration::from_secs(defaults::BODY_READ_TIMEOUT),
            max_connections: defaults::MAX_CONNECTIONS,
        }
    }
}

impl ConnectionLimits {
    /// Reads the four variables through `var` (unset or blank: the default).
    /// An error names the variable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |name: &str, default: u64, max: u64, unit: &str| {
            whole_number(&var, name, default, max, unit)
        };
        let seconds = |name: &str, default: u64, max: u64| {
            number(name, default, max, " of seconds").map(Duration::from_secs)
        };
        Ok(Self {
            header_read_timeout: seconds(
                "HEADER_READ_TIMEOUT",
                defaults::HEADER_READ_TIMEOUT,
                limits::HEADER_READ_TIMEOUT,
            )?,
            keep_alive_timeout: seconds(
                "KEEP_ALIVE_TIMEOUT",
                defaults::KEEP_ALIVE_TIMEOUT,
                limits::KEEP_ALIVE_TIMEOUT,
            )?,
            body_read_timeout: seconds(
                "BODY_READ_TIMEOUT",
                defaults::BODY_READ_TIMEOUT,
                limits::BODY_READ_TIMEOUT,
            )?,
            max_connections: usize::try_from(number(
                "MAX_CONNECTIONS",
                defaults::MAX_CONNECTIONS as u64,
                limits::MAX_CONNECTIONS as u64,
                "",
            )?)
            .unwrap_or(limits::MAX_CONNECTIONS),
        })
    }
}

/// The variable `name` read through `var`: a whole number from 1 to `max`
/// (`unit` says of what, e.g. `" of seconds"`), `default` when unset or blank.
/// The error names the variable.
pub(crate) fn whole_number(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
    max: u64,
    unit: &str,
) -> Result<u64, String> {
    let Some(raw) = var(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            format!("{name}: expected a whole number{unit} between 1 and {max}, got {raw:?}")
        })
}

/// Raises the soft open-files limit (`RLIMIT_NOFILE`) to the hard one, and
/// checks that `max_connections` connections fit in it with `reserved` files
/// to spare. Returns the limit; the error names `MAX_CONNECTIONS`.
pub fn reserve_open_files(max_connections: usize, reserved: u64) -> Result<u64, String> {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .map_err(|e| format!("MAX_CONNECTIONS: cannot read the open-files limit: {e}"))?
        }
    };
    check_open_files(max_connections, reserved, limit)?;
    Ok(limit)
}

/// Whether `max_connections` plus `reserved` files fit in `limit`.
fn check_open_files(max_connections: usize, reserved: u64, limit: u64) -> Result<(), String> {
    let needed = (max_connections as u64).saturating_add(reserved);
    if needed > limit {
        return Err(format!(
            "MAX_CONNECTIONS: {max_connections} connections and the {reserved} other files \
             the service keeps open need {needed} open files, but the limit \
             (RLIMIT_NOFILE, raised to its hard limit) is {limit}: lower MAX_CONNECTIONS \
             or raise the hard limit (ulimit -Hn, systemd LimitNOFILE, docker --ulimit nofile)"
        ));
    }
    Ok(())
}

/// What [`serve`] needs besides the app.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub limits: ConnectionLimits,
    /// Bodies are read up to this size before the app is called; larger is 413.
    pub max_body_bytes: usize,
}

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
    let slots = Arc::new(Semaphore::new(settings.limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    // Off: its timer also runs while a kept-alive connection is idle (module docs).
    http.header_read_timeout(None);
    let mut backoff = AcceptBackoff::default();
    let mut shutdown = pin!(shutdown);
    tracing::debug!(address = %listener.local_addr()?, limits = ?settings.limits, "serving");
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => {
                slot.expect("the connection semaphore is never closed")
            }
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                backoff.reset();
                let connection = Connection {
                    app: app.clone(),
                    settings: Arc::clone(&settings),
                    remote,
                    slot,
                };
                connection.spawn(stream, &http, &graceful);
            }
            Err(e) => {
                drop(slot);
                backoff.wait(&e).await;
            }
        }
    }
    // Refuse new connections, then let hyper close the idle ones and finish
    // the others.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One accepted connection and what serving it needs.
struct Connection {
    app: Router,
    settings: Arc<ServeSettings>,
    remote: SocketAddr,
    /// Held until the connection is closed.
    slot: OwnedSemaphorePermit,
}

impl Connection {
    fn spawn(self, stream: TcpStream, http: &http1::Builder, graceful: &GracefulShutdown) {
        let activity = Activity::new();
        let timed_out = activity.timed_out(self.settings.limits.clone());
        let io = TokioIo::new(WatchedStream {
            stream,
            activity: activity.clone(),
        });
        let service = ConnectionService {
            app: self.app,
            settings: self.settings,
            remote: self.remote,
            activity,
        };
        let connection = graceful.watch(http.serve_connection(io, service));
        let (remote, slot) = (self.remote, self.slot);
        tokio::spawn(async move {
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
                }
                phase = timed_out => {
                    // Dropping the connection closes it.
                    tracing::debug!(%remote, waiting = phase.waiting_for(), "connection timed out");
                }
            }
            drop(slot);
        });
    }
}

/// What a connection is doing, as far as its deadlines are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head since `since`: the connection's start, or
    /// the first byte after the previous response.
    Head { since: Instant },
    /// Between two requests since `since`, nothing received.
    Idle { since: Instant },
    /// Requests being received, handled or answered: their own timeouts
    /// apply (the body's here, the handler's in the app).
    Busy { requests: usize },
}

impl Phase {
    fn deadline(self, limits: &ConnectionLimits) -> Option<Instant> {
        match self {
            Self::Head { since } => Some(since + limits.header_read_timeout),
            Self::Idle { since } => Some(since + limits.keep_alive_timeout),
            Self::Busy { .. } => None,
        }
    }

    fn waiting_for(self) -> &'static str {
        match self {
            Self::Head { .. } => "a request head",
            Self::Idle { .. } => "the next request",
            Self::Busy { .. } => "nothing",
        }
    }
}

/// A connection's [`Phase`], updated by its stream (bytes read), its service
/// (a request starts) and its responses (one ends); watched by
/// [`Activity::timed_out`].
#[derive(Clone)]
struct Activity(Arc<watch::Sender<Phase>>);

impl Activity {
    /// A new connection waits for its first request head.
    fn new() -> Self {
        let (phase, _) = watch::channel(Phase::Head {
            since: Instant::now(),
        });
        Self(Arc::new(phase))
    }

    /// Bytes arrived: on an idle connection, the next head has begun.
    fn received(&self) {
        self.0.send_if_modified(|phase| match phase {
            Phase::Idle { .. } => {
                *phase = Phase::Head {
                    since: Instant::now(),
                };
                true
            }
            Phase::Head { .. } | Phase::Busy { .. } => false,
        });
    }

    /// A request head is complete; the request lasts until the returned
    /// guard drops (with its response body).
    fn request_started(&self) -> InFlight {
        self.0.send_modify(|phase| {
            *phase = match *phase {
                Phase::Busy { requests } => Phase::Busy {
                    requests: requests + 1,
                },
                Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy { requests: 1 },
            }
        });
        InFlight(self.clone())
    }

    /// Completes with the phase whose deadline passed.
    fn timed_out(&self, limits: ConnectionLimits) -> impl Future<Output = Phase> + Send + 'static {
        let mut phases = self.0.subscribe();
        async move {
            loop {
                let phase = *phases.borrow_and_update();
                let changed = match phase.deadline(&limits) {
                    Some(deadline) => tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {
                            // Unless it changed at the very same time.
                            if *phases.borrow() == phase {
                                return phase;
                            }
                            Ok(())
                        }
                        changed = phases.changed() => changed,
                    },
                    None => phases.changed().await,
                };
                if changed.is_err() {
                    // Every sender is gone with the connection itself.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// A request in flight; its drop (when hyper drops the response body, after
/// writing it or with the connection) makes the connection idle again.
struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.0.send_modify(|phase| {
            *phase = match *phase {
                Phase::Busy { requests } if requests > 1 => Phase::Busy {
                    requests: requests - 1,
                },
                _ => Phase::Idle {
                    since: Instant::now(),
                },
            }
        });
    }
}

/// The TCP stream, telling the connection's [`Activity`] when bytes arrive.
struct WatchedStream {
    stream: TcpStream,
    activity: Activity,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.received();
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// What hyper calls for each request of a connection: receive the body,
/// then hand the request to the app.
struct ConnectionService {
    app: Router,
    settings: Arc<ServeSettings>,
    remote: SocketAddr,
    activity: Activity,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.request_started();
        let deadline = Instant::now() + self.settings.limits.body_read_timeout;
        req.extensions_mut().insert(ConnectInfo(self.remote));
        let app = self.app.clone();
        let settings = Arc::clone(&self.settings);
        Box::pin(async move {
            let response = match receive_body(req, settings.max_body_bytes, deadline).await {
                Ok(req) => match app.oneshot(req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
                Err(refused) => refused,
            };
            Ok(response.map(|body| ResponseBody {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// Reads the whole body by `deadline` and at most `max_bytes` of it; the
/// request with its body in memory, or the error response.
async fn receive_body(
    req: Request<Incoming>,
    max_bytes: usize,
    deadline: Instant,
) -> Result<Request<Body>, Response<Body>> {
    let (parts, mut incoming) = req.into_parts();
    if incoming.is_end_stream() {
        return Ok(Request::from_parts(parts, Body::empty()));
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut received = 0_usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, incoming.frame()).await {
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => {
                let error = ApiError::bad_request("could not read the request body")
                    .with_cause(e.to_string());
                return Err(refuse(&parts, error));
            }
            Err(_) => {
                let error = ApiError::new(
                    ErrorKind::RequestTimeout,
                    "the request body was not received in time",
                )
                .with_cause(format!("{received} bytes of the body received in time"));
                return Err(refuse(&parts, error));
            }
        };
        // Trailers are not used by our APIs.
        if let Ok(data) = frame.into_data() {
            received = received.saturating_add(data.len());
            if received > max_bytes {
                return Err(refuse(&parts, ApiError::payload_too_large()));
            }
            chunks.push(data);
        }
    }
    let body = match chunks.len() {
        0 => Body::empty(),
        1 => Body::from(chunks.swap_remove(0)),
        _ => Body::from(chunks.concat()),
    };
    Ok(Request::from_parts(parts, body))
}

/// A request refused before the app saw it (so outside its access log): one
/// log line, and the error with `Connection: close`, since the rest of the
/// body is not read.
fn refuse(parts: &request::Parts, error: ApiError) -> Response<Body> {
    tracing::info!(
        method = %parts.method,
        path = %parts.uri.path(),
        status = error.kind().status().as_u16(),
        kind = error.kind().as_str(),
        "request refused while reading its body"
    );
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The app's response body; its drop ends the request (see [`InFlight`]).
struct ResponseBody {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

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

    fn limits_of(pairs: &[(&str, &str)]) -> Result<ConnectionLimits, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ConnectionLimits::from_vars(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn connection_limits_have_defaults_and_bounds_and_errors_name_the_variable() {
        let limits = limits_of(&[]).unwrap();
        assert_eq!(limits, ConnectionLimits::default());
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.keep_alive_timeout, Duration::from_secs(65));
        assert_eq!(limits.body_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.max_connections, 1024);
        let limits = limits_of(&[
            ("HEADER_READ_TIMEOUT", "2"),
            ("KEEP_ALIVE_TIMEOUT", " 120 "),
            ("BODY_READ_TIMEOUT", "30"),
            ("MAX_CONNECTIONS", "64"),
        ])
        .unwrap();
        assert_eq!(
            limits,
            ConnectionLimits {
                header_read_timeout: Duration::from_secs(2),
                keep_alive_timeout: Duration::from_secs(120),
                body_read_timeout: Duration::from_secs(30),
                max_connections: 64,
            }
        );
        assert_eq!(
            limits_of(&[("MAX_CONNECTIONS", "  ")]).unwrap(),
            ConnectionLimits::default(),
            "blank is unset"
        );
        for (name, value) in [
            ("HEADER_READ_TIMEOUT", "0"),
            ("HEADER_READ_TIMEOUT", "301"),
            ("HEADER_READ_TIMEOUT", "1.5"),
            ("KEEP_ALIVE_TIMEOUT", "-1"),
            ("KEEP_ALIVE_TIMEOUT", "3601"),
            ("BODY_READ_TIMEOUT", "ten"),
            ("BODY_READ_TIMEOUT", "0"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONNECTIONS", "1048577"),
        ] {
            let err = limits_of(&[(name, value)]).unwrap_err();
            assert!(
                err.starts_with(&format!("{name}: ")),
                "{name}={value}: {err}"
            );
            assert!(err.contains(value.trim()), "{err}");
        }
    }

    #[test]
    fn the_connection_cap_must_fit_the_open_files_limit_with_room_to_spare() {
        assert!(check_open_files(1024, 64, 1088).is_ok());
        let err = check_open_files(1024, 64, 1087).unwrap_err();
        assert!(err.starts_with("MAX_CONNECTIONS: "), "{err}");
        assert!(err.contains("1088") && err.contains("1087"), "{err}");
        assert!(check_open_files(usize::MAX, u64::MAX, u64::MAX).is_ok());
        // What this process got: raised to its hard limit, and a cap of one
        // connection fits in any sane environment.
        let limit = reserve_open_files(1, RESERVED_FILES).unwrap();
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert_eq!(limit, soft);
        assert!(soft == hard || hard == rlimit::INFINITY, "{soft} {hard}");
        let err = reserve_open_files(limits::MAX_CONNECTIONS, u64::MAX / 2).unwrap_err();
        assert!(err.starts_with("MAX_CONNECTIONS: "), "{err}");
    }

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

    #[tokio::test(start_paused = true)]
    async fn a_connection_times_out_waiting_for_a_head_or_idle_but_never_while_busy() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(65),
            ..ConnectionLimits::default()
        };
        let start = Instant::now();
        // A new connection: the head timeout from its start, bytes or not.
        let activity = Activity::new();
        activity.received();
        let phase = activity.timed_out(limits.clone()).await;
        assert!(matches!(phase, Phase::Head { .. }), "{phase:?}");
        assert_eq!(start.elapsed(), Duration::from_secs(10));

        // Busy: no deadline; idle after the response: the keep-alive timeout.
        let activity = Activity::new();
        let request = activity.request_started();
        let timed_out = tokio::spawn(activity.timed_out(limits.clone()));
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!timed_out.is_finished());
        let idle_at = Instant::now();
        drop(request);
        let phase = timed_out.await.unwrap();
        assert!(matches!(phase, Phase::Idle { .. }), "{phase:?}");
        assert_eq!(idle_at.elapsed(), Duration::from_secs(65));

        // Idle, then the first byte of the next head: the head timeout again.
        let activity = Activity::new();
        drop(activity.request_started());
        let timed_out = tokio::spawn(activity.timed_out(limits));
        tokio::time::sleep(Duration::from_secs(30)).await;
        let head_at = Instant::now();
        activity.received();
        activity.received();
        let phase = timed_out.await.unwrap();
        assert!(matches!(phase, Phase::Head { .. }), "{phase:?}");
        assert_eq!(head_at.elapsed(), Duration::from_secs(10));
    }
}
