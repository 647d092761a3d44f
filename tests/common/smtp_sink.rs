//! A test-only SMTP server on 127.0.0.1 that records every message it is
//! given: enough of SMTP for a mail client (greeting, EHLO/HELO, AUTH PLAIN,
//! MAIL FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP, QUIT), with
//! each body decoded to plain text (quoted-printable, base64, 7bit or 8bit:
//! whatever the client chose), and ways to misbehave for outage tests.
//!
//! ```ignore
//! let sink = SmtpSink::start().await;            // SMTP_URL = sink.url()
//! // … make the app send a mail …
//! let mail = sink.next_mail(Duration::from_secs(10)).await.expect("a mail");
//! let link = link_in(&mail.body, "http://localhost/verify").expect("a link");
//! ```
//!
//! Included with `#[path]`; not every item is used by every test binary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt as _, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _,
    BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The longest message the sink takes (larger ones get `552`).
const MAX_MESSAGE_BYTES: usize = 10 << 20;
/// The longest command line.
const MAX_LINE_BYTES: usize = 4096;

/// One message as the sink received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`), without angle brackets.
    pub from: String,
    /// The envelope recipients (`RCPT TO`), without angle brackets.
    pub to: Vec<String>,
    /// The `Subject` header, decoded (empty when missing).
    pub subject: String,
    /// The first text body, decoded from its transfer encoding, line ends as
    /// `\n` (an encoding may have added one at the end: compare trimmed).
    pub body: String,
    /// The message as sent (after dot-unstuffing), headers included.
    pub raw: String,
}

impl ReceivedMail {
    /// Whether `address` is among the recipients (case-insensitive).
    pub fn is_to(&self, address: &str) -> bool {
        self.to.iter().any(|to| to.eq_ignore_ascii_case(address))
    }

    /// The value of the first header called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        header_value(&self.raw, name)
    }
}

/// A running sink; stops (closing its connections) when dropped.
pub struct SmtpSink {
    port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    state: Mutex<State>,
    /// The number of messages received so far.
    received: watch::Sender<usize>,
}

#[derive(Default)]
struct State {
    mails: Vec<ReceivedMail>,
    /// How many of `mails` `next_mail` has returned.
    read: usize,
    /// Sessions accepted so far (refused and hung ones included).
    sessions: usize,
    /// The next this many sessions get `refusal` as their greeting and are closed.
    refuse: usize,
    refusal: String,
    /// New sessions are held open and never greeted.
    hang: bool,
    /// (user, password) of every successful `AUTH PLAIN`.
    logins: Vec<(String, String)>,
}

impl SmtpSink {
    /// A sink on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// A sink on `port` of 127.0.0.1 (e.g. one a client has been failing to
    /// reach, from [`free_port`]).
    pub async fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("SMTP sink: cannot listen on 127.0.0.1:{port}: {e}"));
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            received: watch::Sender::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Self { port, shared, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:<port>` (plain SMTP, no TLS), for `SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The oldest message not yet returned by `next_mail`, waiting up to
    /// `timeout` for one to arrive.
    pub async fn next_mail(&self, timeout: Duration) -> Option<ReceivedMail> {
        self.wait_until(timeout, |state| {
            let mail = state.mails.get(state.read).cloned()?;
            state.read += 1;
            Some(mail)
        })
        .await
    }

    /// Every message to `address` so far, once there is at least one
    /// (waiting up to `timeout`; empty if none came). Does not move
    /// `next_mail` on.
    pub async fn mails_to(&self, address: &str, timeout: Duration) -> Vec<ReceivedMail> {
        self.wait_for_mails_to(address, 1, timeout).await
    }

    /// Every message to `address` so far, once there are at least `count`
    /// (waiting up to `timeout`; fewer if they did not come).
    pub async fn wait_for_mails_to(
        &self,
        address: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<ReceivedMail> {
        let to = |state: &State| -> Vec<ReceivedMail> {
            let mails = state.mails.iter().filter(|m| m.is_to(address));
            mails.cloned().collect()
        };
        self.wait_until(timeout, |state| {
            Some(to(state)).filter(|m| m.len() >= count)
        })
        .await
        .unwrap_or_else(|| to(&self.shared.state.lock().unwrap()))
    }

    /// Every message received so far, in order.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.shared.state.lock().unwrap().mails.clone()
    }

    /// How many connections the sink has accepted (refused and hung ones too).
    pub fn sessions(&self) -> usize {
        self.shared.state.lock().unwrap().sessions
    }

    /// (user, password) of every successful `AUTH PLAIN`, in order.
    pub fn logins(&self) -> Vec<(String, String)> {
        self.shared.state.lock().unwrap().logins.clone()
    }

    /// The next `sessions` connections are greeted with `reply` (e.g.
    /// `421 4.3.2 try again later`, a temporary failure, or `554 5.3.2 no
    /// service`, a permanent one) and closed.
    pub fn refuse_sessions(&self, sessions: usize, reply: &str) {
        let mut state = self.shared.state.lock().unwrap();
        state.refuse = sessions;
        state.refusal = reply.to_owned();
    }

    /// While on, new connections are accepted and held open, never greeted
    /// (a mail server that hangs).
    pub fn hang(&self, on: bool) {
        self.shared.state.lock().unwrap().hang = on;
    }

    /// Runs `take` on the state until it returns `Some`, or `timeout` passes.
    async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut take: impl FnMut(&mut State) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut received = self.shared.received.subscribe();
        loop {
            if let Some(found) = take(&mut self.shared.state.lock().unwrap()) {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, received.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port of 127.0.0.1 with nothing listening on it (bound once, then freed):
/// connections to it are refused until something binds it (say
/// [`SmtpSink::start_on`]).
///
/// Taken from 7000–9999, below the kernel's ephemeral range (32768 and up
/// here) and the Redis Cluster tests' ports (10000 and up): a port the
/// kernel hands out for port 0 or for an outgoing connection could be taken
/// by another test between this call and the bind that follows it.
pub fn free_port() -> u16 {
    const LOW: u16 = 7_000;
    const SPAN: u16 = 3_000;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(7_919);
    let start = (seed % u32::from(SPAN)) as u16;
    (0..SPAN)
        .map(|offset| LOW + (start + offset) % SPAN)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port of 127.0.0.1 between 7000 and 9999")
}

/// The first URL in `body` that starts with `prefix`, up to the first
/// whitespace or `<>"'` (and without trailing sentence punctuation).
pub fn link_in(body: &str, prefix: &str) -> Option<String> {
    let start = body.find(prefix)?;
    let rest = &body[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\''))
        .unwrap_or(rest.len());
    let link = rest[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']']);
    Some(link.to_owned())
}

/// Accepts until the sink is dropped; connections end with it (the JoinSet
/// aborts them when this task is aborted).
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                sessions.spawn(session(stream, Arc::clone(&shared)));
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// One connection: refused, hung, or served.
async fn session(mut stream: TcpStream, shared: Arc<Shared>) {
    let (refusal, hang) = {
        let mut state = shared.state.lock().unwrap();
        state.sessions += 1;
        let refusal = (state.refuse > 0).then(|| state.refusal.clone());
        state.refuse = state.refuse.saturating_sub(1);
        (refusal, state.hang)
    };
    if let Some(reply) = refusal {
        let _ = stream.write_all(format!("{reply}\r\n").as_bytes()).await;
        let _ = stream.shutdown().await;
        return;
    }
    if hang {
        // Read (and drop) until the client gives up; never answer.
        let mut buf = Vec::new();
        let mut reader = BufReader::new(&mut stream);
        while matches!(reader.read_until(b'\n', &mut buf).await, Ok(n) if n > 0) {
            buf.clear();
        }
        return;
    }
    let _ = serve(stream, &shared).await;
}

/// The envelope being built by MAIL FROM and RCPT TO.
#[derive(Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

async fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    reply(&mut write, "220 smtp-sink ESMTP ready").await?;
    let mut envelope = Envelope::default();
    loop {
        let Some(line) = read_line(&mut reader, MAX_LINE_BYTES).await? else {
            return Ok(());
        };
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                envelope = Envelope::default();
                reply(
                    &mut write,
                    "250-smtp-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN\r\n250 SIZE 10485760",
                )
                .await?
            }
            "HELO" => {
                envelope = Envelope::default();
                reply(&mut write, "250 smtp-sink").await?
            }
            "AUTH" => {
                let (mechanism, initial) = argument.split_once(' ').unwrap_or((argument, ""));
                if !mechanism.eq_ignore_ascii_case("PLAIN") {
                    reply(&mut write, "504 5.5.4 only PLAIN").await?;
                    continue;
                }
                let response = if initial.is_empty() {
                    reply(&mut write, "334 ").await?;
                    let Some(line) = read_line(&mut reader, MAX_LINE_BYTES).await? else {
                        return Ok(());
                    };
                    String::from_utf8_lossy(&line).trim().to_owned()
                } else {
                    initial.trim().to_owned()
                };
                match decode_plain(&response) {
                    Some(login) => {
                        shared.state.lock().unwrap().logins.push(login);
                        reply(&mut write, "235 2.7.0 authenticated").await?
                    }
                    None => reply(&mut write, "501 5.5.2 cannot decode").await?,
                }
            }
            "MAIL" => match path_of(argument, "FROM:") {
                Some(from) => {
                    envelope = Envelope {
                        from: Some(from),
                        to: Vec::new(),
                    };
                    reply(&mut write, "250 2.1.0 OK").await?
                }
                None => reply(&mut write, "501 5.5.4 syntax: MAIL FROM:<address>").await?,
            },
            "RCPT" => match (&envelope.from, path_of(argument, "TO:")) {
                (None, _) => reply(&mut write, "503 5.5.1 MAIL first").await?,
                (Some(_), Some(to)) => {
                    envelope.to.push(to);
                    reply(&mut write, "250 2.1.5 OK").await?
                }
                (Some(_), None) => reply(&mut write, "501 5.5.4 syntax: RCPT TO:<address>").await?,
            },
            "DATA" => {
                if envelope.to.is_empty() {
                    reply(&mut write, "503 5.5.1 RCPT first").await?;
                    continue;
                }
                reply(&mut write, "354 end data with <CR><LF>.<CR><LF>").await?;
                let Some(data) = read_data(&mut reader).await? else {
                    return Ok(());
                };
                let Some(data) = data else {
                    envelope = Envelope::default();
                    reply(&mut write, "552 5.3.4 message too big").await?;
                    continue;
                };
                let envelope = std::mem::take(&mut envelope);
                let mail = received(envelope.from.unwrap_or_default(), envelope.to, &data);
                {
                    let mut state = shared.state.lock().unwrap();
                    state.mails.push(mail);
                    shared.received.send_replace(state.mails.len());
                }
                reply(&mut write, "250 2.0.0 OK queued").await?
            }
            "RSET" => {
                envelope = Envelope::default();
                reply(&mut write, "250 2.0.0 OK").await?
            }
            "NOOP" => reply(&mut write, "250 2.0.0 OK").await?,
            "QUIT" => {
                reply(&mut write, "221 2.0.0 bye").await?;
                return Ok(());
            }
            _ => reply(&mut write, "502 5.5.2 command not recognised").await?,
        }
    }
}

async fn reply(write: &mut (impl AsyncWrite + Unpin), text: &str) -> std::io::Result<()> {
    write.write_all(format!("{text}\r\n").as_bytes()).await?;
    write.flush().await
}

/// One line with its ending; `None` at the end of the stream. A line longer
/// than `max` is cut there (the rest comes as the next line).
async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(max as u64)
        .read_until(b'\n', &mut line)
        .await?;
    Ok((n > 0).then_some(line))
}

/// The message after DATA, up to the line holding only `.`, dot-unstuffed.
/// `None` at the end of the stream; `Some(None)` when it was too big (read
/// to its end all the same).
async fn read_data(
    reader: &mut (impl AsyncBufRead + Unpin),
) -> std::io::Result<Option<Option<Vec<u8>>>> {
    let mut data = Vec::new();
    let mut too_big = false;
    loop {
        let Some(line) = read_line(reader, MAX_LINE_BYTES * 4).await? else {
            return Ok(None);
        };
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some((!too_big).then_some(data)));
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + line.len() > MAX_MESSAGE_BYTES {
            too_big = true;
        } else {
            data.extend_from_slice(line);
        }
    }
}

/// `FROM:<a@b> SIZE=1` → `a@b` (`prefix` case-insensitive, spaces allowed after it).
fn path_of(argument: &str, prefix: &str) -> Option<String> {
    let head = argument.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = argument[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_owned())
}

/// The `AUTH PLAIN` response: base64 of `authzid \0 user \0 password`.
fn decode_plain(response: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split('\0');
    let (_authzid, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    Some((user.to_owned(), password.to_owned()))
}

/// Decodes the message (headers, transfer encodings) with `mail-parser`.
fn received(from: String, to: Vec<String>, data: &[u8]) -> ReceivedMail {
    let raw = String::from_utf8_lossy(data).into_owned();
    let parsed = mail_parser::MessageParser::default().parse(data);
    let subject = parsed
        .as_ref()
        .and_then(|m| m.subject())
        .unwrap_or_default()
        .to_owned();
    let body = parsed
        .as_ref()
        .and_then(|m| m.body_text(0))
        .map(|text| text.replace("\r\n", "\n"))
        .unwrap_or_default();
    ReceivedMail {
        from,
        to,
        subject,
        body,
        raw,
    }
}

/// A header's value from a raw message, unfolded (as sent: not decoded).
fn header_value(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        match &mut value {
            Some(v) if line.starts_with([' ', '\t']) => v.push_str(line),
            Some(_) => break,
            None => {
                if let Some((n, v)) = line.split_once(':')
                    && n.trim().eq_ignore_ascii_case(name)
                {
                    value = Some(v.trim().to_owned());
                }
            }
        }
    }
    value
}
