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

    pub(super) fn waiting_for(self) -> &'static str {
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
pub(super) struct Activity(Arc<watch::Sender<Phase>>);

impl Activity {
    /// A new connection waits for its first request head.
    pub(super) fn new() -> Self {
        let (phase, _) = watch::channel(Phase::Head {
            since: Instant::now(),
        });
        Self(Arc::new(phase))
    }

    /// Bytes arrived: on an idle connection, the next head has begun.
    pub(super) fn received(&self) {
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
    pub(super) fn request_started(&self) -> InFlight {
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
    pub(super) fn timed_out(
        &self,
        limits: ConnectionLimits,
    ) -> impl Future<Output = Phase> + Send + 'static {
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
