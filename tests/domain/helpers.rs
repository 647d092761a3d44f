//! Real processes: the `account` binary on embedded stores in a temp working
//! directory, and the `todo-service` binary verifying against its JWKS. Each
//! listens on a free port and is killed when its guard drops.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery";
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// A child process killed (and reaped) on drop; its output goes to `log`.
pub struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `program` in `dir` with exactly `env` (plus `PATH`) and waits
    /// until `GET <base>/healthz` answers 200.
    async fn start(
        name: &'static str,
        program: &str,
        dir: &Path,
        env: &[(&str, String)],
        base: &str,
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let child = Command::new(program)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let mut process = Self { name, child, log };
        process.wait_ready(base).await;
        process
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
        std::fs::read_to_string(&self.log).unwrap_or_default()
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
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let env = [
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", port.to_string()),
            ("RUST_LOG", "info".to_owned()),
        ];
        let process = Process::start(
            "account",
            env!("CARGO_BIN_EXE_account"),
            dir.path(),
            &env,
            &base,
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

    /// Kills the service (its files stay until this value drops).
    pub fn stop(&mut self) {
        self.process.take();
    }
}

/// The example domain service, verifying against `jwks_url`.
pub struct TodoService {
    pub base: String,
    _process: Process,
    _dir: TempDir,
}

impl TodoService {
    pub async fn start(jwks_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let env = [
            ("HOST", "127.0.0.1".to_owned()),
            ("TODO_PORT", port.to_string()),
            ("JWKS_URL", jwks_url.to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        let process = Process::start(
            "todo-service",
            env!("CARGO_BIN_EXE_todo-service"),
            dir.path(),
            &env,
            &base,
        )
        .await;
        Self {
            base,
            _process: process,
            _dir: dir,
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
