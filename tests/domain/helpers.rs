//! Real processes: the `account` binary on embedded stores in a temp working
//! directory, and the `todo-service` binary verifying against its JWKS. Each
//! binds port 0 and tells the port it got in its "listening" log line; each
//! is killed when its guard drops.

use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

use crate::process::Process;
use crate::stores::{TestDatabase, stores_reachable};

/// A test database of its own on the real PostgreSQL (dropped with the
/// guard), or `None` when the stores are unreachable and the test may skip
/// (it prints SKIPPED); under `REQUIRE_REAL_STORES=1` it fails instead.
pub async fn postgres_or_skip(prefix: &str) -> Option<TestDatabase> {
    if let Err(store) = stores_reachable().await {
        assert!(
            std::env::var("REQUIRE_REAL_STORES").as_deref() != Ok("1"),
            "{store} is unreachable and REQUIRE_REAL_STORES=1"
        );
        eprintln!("SKIPPED: {store} is unreachable");
        return None;
    }
    Some(
        TestDatabase::create(prefix)
            .await
            .expect("create a test database"),
    )
}

pub const PASSWORD: &str = "correct horse battery";

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// The account service, on embedded stores, with keys generated in its
/// working directory on first start.
pub struct AccountService {
    pub base: String,
    process: Option<Process>,
    dir: TempDir,
    /// Variables besides the defaults (e.g. `DATABASE_URL`).
    env: Vec<(&'static str, String)>,
}

impl AccountService {
    pub async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    /// Users in the PostgreSQL database at `database_url`, refresh tokens in
    /// process (kept in `data/tokens.db` of its working directory), keys
    /// generated beforehand with `account keys generate`.
    pub async fn start_on_postgres(database_url: &str) -> Self {
        Self::start_with(vec![("DATABASE_URL", database_url.to_owned())]).await
    }

    async fn start_with(env: Vec<(&'static str, String)>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        if !env.is_empty() {
            let status = Command::new(env!("CARGO_BIN_EXE_account"))
                .args(["keys", "generate"])
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .stdout(Stdio::null())
                .status()
                .expect("run account keys generate");
            assert!(status.success(), "account keys generate: {status}");
        }
        let (process, base) = Self::launch(dir.path(), &env).await;
        Self {
            base,
            process: Some(process),
            dir,
            env,
        }
    }

    /// The binary with the stores of `dir` (its working directory).
    async fn launch(dir: &std::path::Path, extra: &[(&'static str, String)]) -> (Process, String) {
        let mut env = vec![
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
            ("RUST_LOG", "info".to_owned()),
            // Not the 5 s default: a loaded test machine would answer 503 by
            // chance.
            ("HANDLER_TIMEOUT", "120".to_owned()),
        ];
        env.extend(extra.iter().cloned());
        Process::start(
            "account",
            env!("CARGO_BIN_EXE_account"),
            dir,
            &env,
            "account service listening",
        )
        .await
    }

    /// A file of the service's working directory.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Kills the service with SIGKILL (a crash: no shutdown code runs) and
    /// starts it again on the same files; `base` is its new address.
    pub async fn crash_and_restart(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
        let (process, base) = Self::launch(self.dir.path(), &self.env).await;
        self.process = Some(process);
        self.base = base;
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

    /// What the service printed so far (its log).
    pub fn output(&self) -> String {
        self.process
            .as_ref()
            .map(Process::output)
            .unwrap_or_default()
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

    /// The service's process id.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("the service runs").pid()
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
            ("HANDLER_TIMEOUT", "120".to_owned()),
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
        self.process.wait_for_log(message).await
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
