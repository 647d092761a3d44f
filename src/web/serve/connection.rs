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
use tokio::time::Instant;
use tower::ServiceExt as _;

use super::ServeSettings;
use super::slots::Slot;
use super::watchdog::{Activity, InFlight, WatchedStream};
use crate::web::{ApiError, ErrorKind};

/// The largest request head the app sees (request line and header fields,
/// with their line ends); larger gets 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The most header fields a request may have; more gets 431.
pub const MAX_HEAD_FIELDS: usize = 100;

/// One accepted connection and what serving it needs.
pub(super) struct Connection {
    pub(super) app: Router,
    pub(super) settings: Arc<ServeSettings>,
    pub(super) remote: SocketAddr,
    /// Held until the connection is closed.
    pub(super) slot: Slot,
    /// Its deadlines, and its phase as the slots see it.
    pub(super) activity: Activity,
}

impl Connection {
    pub(super) fn spawn(
        self,
        stream: TcpStream,
        http: &http1::Builder,
        graceful: &GracefulShutdown,
    ) {
        let activity = self.activity;
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
        let (in_flight, cut) = self.activity.request_started();
        let deadline = Instant::now() + self.settings.limits.body_read_timeout;
        req.extensions_mut().insert(ConnectInfo(self.remote));
        let app = self.app.clone();
        let settings = Arc::clone(&self.settings);
        Box::pin(async move {
            let mut response = match check_head(req) {
                Err(refused) => refused,
                Ok(req) => match receive_body(req, settings.max_body_bytes, deadline).await {
                    Ok(req) => match app.oneshot(req).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                    Err(refused) => refused,
                },
            };
            if cut {
                // Its slot went to another connection: this is its last answer.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| ResponseBody {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// The request, unless its head is over [`MAX_HEAD_BYTES`] or
/// [`MAX_HEAD_FIELDS`]: then the 431 to answer.
#[allow(clippy::result_large_err)]
fn check_head(req: Request<Incoming>) -> Result<Request<Incoming>, Response<Body>> {
    let fields = req.headers().len();
    let bytes = head_bytes(&req);
    if fields <= MAX_HEAD_FIELDS && bytes <= MAX_HEAD_BYTES {
        return Ok(req);
    }
    let error = ApiError::new(
        ErrorKind::RequestHeaderFieldsTooLarge,
        format!(
            "the request head is too large: at most {MAX_HEAD_BYTES} bytes and \
             {MAX_HEAD_FIELDS} header fields"
        ),
    )
    .with_cause(format!("{bytes} bytes, {fields} fields"));
    let (parts, _) = req.into_parts();
    Err(refuse(&parts, error, "request refused for its head"))
}

/// The size of a request's head as it was sent: the request line and each
/// field with its line end, and the empty line.
fn head_bytes<B>(req: &Request<B>) -> usize {
    let target = req
        .uri()
        .path_and_query()
        .map_or(req.uri().to_string().len(), |p| p.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + fields + 2
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
                return Err(refuse(&parts, error, BODY_REFUSED));
            }
            Err(_) => {
                let error = ApiError::new(
                    ErrorKind::RequestTimeout,
                    "the request body was not received in time",
                )
                .with_cause(format!("{received} bytes of the body received in time"));
                return Err(refuse(&parts, error, BODY_REFUSED));
            }
        };
        // Trailers are not used by our APIs.
        if let Ok(data) = frame.into_data() {
            received = received.saturating_add(data.len());
            if received > max_bytes {
                return Err(refuse(&parts, ApiError::payload_too_large(), BODY_REFUSED));
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

const BODY_REFUSED: &str = "request refused while reading its body";

/// A request refused before the app saw it (so outside its access log): one
/// log line, and the error with the headers every response of ours has and
/// `Connection: close`, since the rest of the request is not read.
fn refuse(parts: &request::Parts, error: ApiError, what: &'static str) -> Response<Body> {
    tracing::info!(
        method = %parts.method,
        path = %parts.uri.path(),
        status = error.kind().status().as_u16(),
        kind = error.kind().as_str(),
        "{what}"
    );
    let mut response = error.into_response();
    let headers = response.headers_mut();
    crate::web::set_security_headers(headers);
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
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
