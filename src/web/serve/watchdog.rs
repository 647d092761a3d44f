//! A connection's deadlines: what it is doing ([`Phase`]), kept up to date
//! by its stream, its requests and their responses ([`Activity`]), and the
//! watchdog that says when the deadline of the current phase has passed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::ConnectionLimits;

/// What a connection is doing, as far as its deadlines are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for a request head since `since`: the connection's start, or
    /// the first byte after the previous response. `read`: the connection
    /// has been read at least once since (a connection not yet read may
    /// hold a whole head in its socket buffer).
    Head { since: Instant, read: bool },
    /// Between two requests since `since`, nothing received.
    Idle { since: Instant },
    /// Requests being received, handled or answered: their own timeouts
    /// apply (the body's here, the handler's in the app).
    Busy { requests: usize },
    /// Its slot was given to a new connection while it waited for a head or
    /// idled: it is closed at once, unless a request head completed first
    /// (then that request is served, with `Connection: close`).
    Cut,
}

impl Phase {
    fn deadline(self, limits: &ConnectionLimits) -> Option<Instant> {
        match self {
            Self::Head { since, .. } => Some(since + limits.header_read_timeout),
            Self::Idle { since } => Some(since + limits.keep_alive_timeout),
            Self::Busy { .. } => None,
            // Handled before any deadline: the watchdog returns at once.
            Self::Cut => None,
        }
    }

    pub(super) fn waiting_for(self) -> &'static str {
        match self {
            Self::Head { .. } => "a request head",
            Self::Idle { .. } => "the next request",
            Self::Busy { .. } => "nothing",
            Self::Cut => "nothing: its slot went to a new connection",
        }
    }
}

/// A connection's [`Phase`], updated by its stream (bytes read), its service
/// (a request starts) and its responses (one ends); watched by
/// [`Activity::timed_out`].
#[derive(Clone)]
pub(super) struct Activity(Arc<watch::Sender<Phase>>);

impl Activity {
    /// A new connection waits for its first request head.
    pub(super) fn new() -> Self {
        let (phase, _) = watch::channel(Phase::Head {
            since: Instant::now(),
            read: false,
        });
        Self(Arc::new(phase))
    }

    /// The stream was read (`bytes`: and something arrived): on an idle
    /// connection, bytes begin the next head; a new connection is now known
    /// to have been read.
    pub(super) fn read(&self, bytes: bool) {
        // Most reads change nothing: skip the write lock then.
        let changes = match *self.0.borrow() {
            Phase::Idle { .. } => bytes,
            Phase::Head { read, .. } => !read,
            Phase::Busy { .. } | Phase::Cut => false,
        };
        if !changes {
            return;
        }
        self.0.send_if_modified(|phase| match phase {
            Phase::Idle { .. } if bytes => {
                *phase = Phase::Head {
                    since: Instant::now(),
                    read: true,
                };
                true
            }
            Phase::Head { read, .. } if !*read => {
                *read = true;
                true
            }
            Phase::Head { .. } | Phase::Idle { .. } | Phase::Busy { .. } | Phase::Cut => false,
        });
    }

    /// What the connection is doing now.
    pub(super) fn phase(&self) -> Phase {
        *self.0.borrow()
    }

    /// Cuts the connection if it is still in the phase `seen` (waiting for
    /// a head or idle, never busy): atomically with [`Activity::request_started`],
    /// so a request whose head completed first is never cut.
    pub(super) fn try_cut(&self, seen: Phase) -> bool {
        if matches!(seen, Phase::Busy { .. } | Phase::Cut) {
            return false;
        }
        self.0.send_if_modified(|phase| {
            if *phase == seen {
                *phase = Phase::Cut;
                true
            } else {
                false
            }
        })
    }

    /// A request head is complete; the request lasts until the returned
    /// guard drops (with its response body). `true` with it when the
    /// connection was cut just before: the response closes the connection.
    pub(super) fn request_started(&self) -> (InFlight, bool) {
        let mut cut = false;
        self.0.send_modify(|phase| {
            *phase = match *phase {
                Phase::Busy { requests } => Phase::Busy {
                    requests: requests + 1,
                },
                Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy { requests: 1 },
                Phase::Cut => {
                    cut = true;
                    Phase::Busy { requests: 1 }
                }
            }
        });
        (InFlight(self.clone()), cut)
    }

    /// Completes with the phase whose deadline passed.
    pub(super) fn timed_out(
        &self,
        limits: ConnectionLimits,
    ) -> impl Future<Output = Phase> + Send + 'static {
        let mut phases = self.0.subscribe();
        async move {
            loop {
                let phase = *phases.borrow_and_update();
                if phase == Phase::Cut {
                    return phase;
                }
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
pub(super) struct InFlight(Activity);

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
pub(super) struct WatchedStream {
    pub(super) stream: TcpStream,
    pub(super) activity: Activity,
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
        let bytes = matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before;
        this.activity.read(bytes);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
        activity.read(true);
        let phase = activity.timed_out(limits.clone()).await;
        assert!(matches!(phase, Phase::Head { .. }), "{phase:?}");
        assert_eq!(start.elapsed(), Duration::from_secs(10));

        // Busy: no deadline; idle after the response: the keep-alive timeout.
        let activity = Activity::new();
        let request = activity.request_started().0;
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
        drop(activity.request_started().0);
        let timed_out = tokio::spawn(activity.timed_out(limits));
        tokio::time::sleep(Duration::from_secs(30)).await;
        let head_at = Instant::now();
        activity.read(true);
        activity.read(true);
        let phase = timed_out.await.unwrap();
        assert!(matches!(phase, Phase::Head { .. }), "{phase:?}");
        assert_eq!(head_at.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_closes_a_waiting_connection_at_once_but_never_a_busy_one() {
        let limits = ConnectionLimits::default();
        // Waiting for a head: cut, and the watchdog returns at once.
        let activity = Activity::new();
        activity.read(false);
        assert!(matches!(activity.phase(), Phase::Head { read: true, .. }));
        let timed_out = tokio::spawn(activity.timed_out(limits.clone()));
        assert!(activity.try_cut(activity.phase()));
        assert_eq!(timed_out.await.unwrap(), Phase::Cut);
        assert!(!activity.try_cut(activity.phase()), "cut once");

        // Busy: never cut; the phase seen before the request started is stale.
        let activity = Activity::new();
        let seen = activity.phase();
        let (request, cut) = activity.request_started();
        assert!(!cut);
        assert!(!activity.try_cut(seen));
        assert!(!activity.try_cut(activity.phase()));
        drop(request);
        assert!(matches!(activity.phase(), Phase::Idle { .. }));
        assert!(activity.try_cut(activity.phase()), "idle again: cut");

        // A head that completed just after the cut is served, and says so.
        let activity = Activity::new();
        assert!(activity.try_cut(activity.phase()));
        let (request, cut) = activity.request_started();
        assert!(cut, "the response must close the connection");
        let timed_out = tokio::spawn(activity.timed_out(limits));
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!timed_out.is_finished(), "a request in flight is never cut");
        drop(request);
    }
}
