//! HTTP/1.1 by hand over TCP, for what an HTTP client will not do on purpose:
//! connect and send nothing, send half a request head, stall in the middle of
//! a body, hold a kept-alive connection idle. Enough of the protocol to read
//! the server's answers (a `Content-Length` body, or one up to the close).

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Opens a connection to `base` (`http://host:port`).
pub async fn connect(base: &str) -> TcpStream {
    let address = base.trim_start_matches("http://").trim_end_matches('/');
    TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"))
}

/// Opens a connection to `base` from the loopback address `source` (any of
/// 127.0.0.0/8 on Linux), so that the server sees another peer.
pub async fn connect_from(base: &str, source: std::net::IpAddr) -> std::io::Result<TcpStream> {
    let address: std::net::SocketAddr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("an address ip:port");
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((source, 0).into())?;
    socket.connect(address).await
}

/// Writes `bytes` (the server may have closed already: that error is returned).
pub async fn send(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// `GET path` with `Host`, keeping the connection alive.
pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

/// Reads and drops whatever arrives until the server closes the connection
/// (end of stream or a reset), for at most `within` after `since`. How long
/// after `since` the connection was closed, or `None` if still open then.
pub async fn closed_within(
    stream: &mut (impl AsyncRead + Unpin),
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    let mut buf = [0_u8; 4096];
    loop {
        match tokio::time::timeout_at((since + within).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not a JSON body ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Reads one response within `within`; panics if none arrives in time or the
/// connection closes before a whole one did.
pub async fn read_response(stream: &mut (impl AsyncRead + Unpin), within: Duration) -> RawResponse {
    tokio::time::timeout(within, read_one(stream))
        .await
        .unwrap_or_else(|_| panic!("no response within {within:?}"))
}

async fn read_one(stream: &mut (impl AsyncRead + Unpin)) -> RawResponse {
    let mut data = Vec::new();
    let mut buf = [0_u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut buf).await.expect("read a response");
        assert!(
            n > 0,
            "closed before a whole response head: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(data[..head_end].to_vec()).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = data[head_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map(|(_, value)| value.parse::<usize>().expect("a Content-Length"));
    assert!(
        !headers
            .iter()
            .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked")),
        "chunked responses are not read here: {head:?}"
    );
    // Interim (1xx) responses, 204 and 304 never have a body (RFC 9112 6.3).
    let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
    match length {
        _ if bodiless => body.clear(),
        Some(length) => {
            while body.len() < length {
                let n = stream.read(&mut buf).await.expect("read a response body");
                assert!(n > 0, "closed in the middle of a response body");
                body.extend_from_slice(&buf[..n]);
            }
            body.truncate(length);
        }
        None => loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&buf[..n]),
            }
        },
    }
    RawResponse {
        status,
        headers,
        body,
    }
}

/// Sends `head` on a new connection and reads the answer.
async fn answer_to(base: &str, head: &str) -> RawResponse {
    let mut conn = connect(base).await;
    send(&mut conn, head.as_bytes()).await.unwrap();
    read_response(&mut conn, Duration::from_secs(10)).await
}

/// A 431 in the error shape, with the headers every response has, closing
/// the connection.
fn assert_head_too_large(response: &RawResponse) {
    assert_eq!(response.status, 431, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("connection"), Some("close"));
    let body = response.json();
    assert_eq!(
        body["error"]["type"], "REQUEST_HEADER_FIELDS_TOO_LARGE",
        "{body}"
    );
}

/// 17 KiB of header fields in one, and 101 fields: both refused by the
/// service, in its shape; 16 KiB and 100 fields pass.
pub async fn heads_over_16_kib_or_100_fields_get_431(base: &str) {
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    assert_head_too_large(&answer_to(base, &big).await);
    let many: String = (0..100).map(|i| format!("X-Field-{i}: v\r\n")).collect();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: test\r\n{many}\r\n");
    assert_head_too_large(&answer_to(base, &head).await);

    let fits = format!(
        "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(15 * 1024)
    );
    assert_eq!(answer_to(base, &fits).await.status, 200);
    let many: String = (0..99).map(|i| format!("X-Field-{i}: v\r\n")).collect();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: test\r\n{many}\r\n");
    assert_eq!(answer_to(base, &head).await.status, 200);
}
