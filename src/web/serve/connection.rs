//! One accepted connection: its task, watched by the connection's deadlines,
//! and the service hyper calls for each request (the body read in time and
//! within its size before the app sees the request).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

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
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tower::ServiceExt as _;

use super::ServeSettings;
use super::watchdog::{Activity, InFlight, WatchedStream};
use crate::web::{ApiError, ErrorKind};

/// One accepted connection and what serving it needs.
pub(super) struct Connection {
    pub(super) app: Router,
    pub(super) settings: Arc<ServeSettings>,
    pub(super) remote: SocketAddr,
    /// Held until the connection is closed.
    pub(super) slot: OwnedSemaphorePermit,
}

impl Connection {
    pub(super) fn spawn(
        self,
        stream: TcpStream,
        http: &http1::Builder,
        graceful: &GracefulShutdown,
    ) {
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
