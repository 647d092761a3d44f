//! Real processes: the `account` binary on embedded stores in a temp working
//! directory, and the `todo-service` binary verifying against its JWKS. Each
//! binds port 0 and tells the port it got in its "listening" log line; each
//! is killed when its guard drops.

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery";
const READY_WITHIN: Duration = Duration::from_secs(60);

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

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
    async fn start(
        name: &'static str,
        program: &str,
        dir: &Path,
        env: &[(&str, String)],
        listening: &'static str,
    ) -> (Self, String) {
        let mut child = Command::new(program)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
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
        let client = http();
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
    fn wait_output(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && (matches!(self.child.try_wait(), Ok(None))
                || !self.drains.iter().all(JoinHandle::is_finished))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.output()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
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

/// The account service, on embedded stores, with keys generated in its
/// working directory on first start.
pub struct AccountService {
    pub base: String,
    process: Option<Process>,
    dir: TempDir,
}

impl AccountService {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = [
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        let (process, base) = Process::start(
            "account",
            env!("CARGO_BIN_EXE_account"),
            dir.path(),
            &env,
            "account service listening",
        )
        .await;
        Self {
            base,
            process: Some(process),
            dir,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.base)
    }

    /// Signs up a new user; returns its ID token.
    pub async fn sign_up(&self) -> String {
        let email = format!("user-{}@example.com", Uuid::new_v4());
        let response = http()
            .post(format!("{}/api/account/signup", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .expect("sign-up request");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("sign-up body");
        body["tokens"]["idToken"]
            .as_str()
            .expect("an idToken")
            .to_owned()
    }

    /// The private key the service generated on first start.
    pub fn private_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("keys/private.pem")).expect("keys/private.pem")
    }

    /// The public key the service generated on first start (PEM).
    pub fn public_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("keys/public.pem")).expect("keys/public.pem")
    }

    /// Runs the `account` binary with `args` in the service's directory (so
    /// on its embedded stores), as an operator would; its exit success and
    /// standard output.
    pub fn command(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_account"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run the account binary");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    /// Registers a client with `account clients add NAME --scope SCOPE`;
    /// its id and secret.
    pub fn add_client(&self, name: &str, scope: &str) -> (String, String) {
        let (ok, out) = self.command(&["clients", "add", name, "--scope", scope]);
        assert!(ok, "clients add failed: {out}");
        let field = |name: &str| {
            out.lines()
                .find_map(|line| line.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {out:?}"))
                .trim()
                .to_owned()
        };
        (field("client_id:"), field("client_secret:"))
    }

    /// An access token for the client, from `POST /oauth/token`.
    pub async fn client_token(&self, id: &str, secret: &str) -> String {
        let response = http()
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("token body");
        body["access_token"]
            .as_str()
            .expect("an access_token")
            .to_owned()
    }

    /// Kills the service (its files stay until this value drops).
    pub fn stop(&mut self) {
        self.process.take();
    }
}

/// The example domain service, verifying against `jwks_url`.
pub struct TodoService {
    pub base: String,
    process: Process,
    _dir: TempDir,
}

impl TodoService {
    pub async fn start(jwks_url: &str) -> Self {
        Self::start_with(jwks_url, &[]).await
    }

    /// [`Self::start`] with more environment variables (e.g. `HANDLER_TIMEOUT`).
    pub async fn start_with(jwks_url: &str, vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env = vec![
            ("HOST", "127.0.0.1".to_owned()),
            ("TODO_PORT", "0".to_owned()),
            ("JWKS_URL", jwks_url.to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        env.extend(
            vars.iter()
                .map(|(name, value)| (*name, (*value).to_owned())),
        );
        let (process, base) = Process::start(
            "todo-service",
            env!("CARGO_BIN_EXE_todo-service"),
            dir.path(),
            &env,
            "todo service listening",
        )
        .await;
        Self {
            base,
            process,
            _dir: dir,
        }
    }

    /// Waits (60 s at most) until the service has logged a line containing
    /// `message`; returns everything it printed so far.
    pub async fn wait_for_log(&self, message: &str) -> String {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let output = self.process.output();
            if output.contains(message) {
                return output;
            }
            assert!(
                Instant::now() < deadline,
                "todo-service did not log {message:?} within {READY_WITHIN:?}:\n{output}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The claims of a token, read without verification (to forge variants).
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64.decode(payload).expect("base64url")).expect("JSON claims")
}

/// The `kid` of a token's header.
pub fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a JWT header")
        .kid
        .expect("a kid")
}

/// A token signed RS256 with `private_pem` under `kid`.
pub fn sign(private_pem: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem).expect("RSA private key");
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// `header.payload.` with `alg: none`.
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let header = B64.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
    format!("{header}.{}.", B64.encode(claims.to_string()))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}
