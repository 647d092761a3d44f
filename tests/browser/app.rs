//! The service under test: the real `account` binary (`tests/common/process.rs`)
//! in a temp working directory, on the embedded stores or on PostgreSQL +
//! Redis (a database of its own, dropped afterwards; only the Redis keys of
//! the users it signed up are removed), mailing through the test SMTP sink.
//! `PUBLIC_URL` stays unset: on 127.0.0.1 the service then uses
//! `http://localhost:<bound port>`, the origin the browser opens (WebAuthn
//! will need `localhost`, not an IP address) and the one the mailed links
//! start with.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

use crate::harness::{self, Tokens};
use crate::process::Process;
use crate::smtp_sink::{ReceivedMail, SmtpSink, link_in};
use crate::stores::{TestDatabase, delete_user_keys, stores_reachable, test_redis_url};

/// How long a test waits for a mail to reach the sink.
pub const MAIL_WAIT: Duration = Duration::from_secs(15);

/// Which stores the service runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite + the in-process token store: always available.
    Embedded,
    /// PostgreSQL + Redis: skipped (visibly) when unreachable, unless
    /// `REQUIRE_REAL_STORES=1`.
    Real,
}

/// A running `account` process and its mail.
pub struct App {
    /// `http://localhost:<port>`
    pub base: String,
    pub http: reqwest::Client,
    pub sink: SmtpSink,
    backend: Backend,
    /// Users signed up through [`App::sign_up`], whose Redis keys go on drop.
    users: Mutex<Vec<Uuid>>,
    process: Process,
    _database: Option<TestDatabase>,
    _dir: TempDir,
}

impl App {
    /// The service on `backend`, or `None` when the real stores are
    /// unreachable (a `SKIPPED` line naming `test`; a failure under
    /// `REQUIRE_REAL_STORES=1`).
    pub async fn start(backend: Backend, test: &str) -> Option<Self> {
        Self::start_with(backend, test, &[]).await
    }

    /// [`App::start`] with `extra` added to (or replacing) the environment
    /// the service starts with, e.g. `REDIRECT_URLS`.
    pub async fn start_with(
        backend: Backend,
        test: &str,
        extra: &[(&'static str, String)],
    ) -> Option<Self> {
        if backend == Backend::Real {
            let reachable = stores_reachable().await;
            let skipped = format!("{test} on PostgreSQL + Redis");
            if !harness::reachable_or_skip(&reachable, &skipped) {
                return None;
            }
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let account = env!("CARGO_BIN_EXE_account");
        let generated = Command::new(account)
            .args(["keys", "generate"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .output()
            .expect("run account keys generate");
        assert!(
            generated.status.success(),
            "account keys generate: {}",
            String::from_utf8_lossy(&generated.stderr)
        );
        let sink = SmtpSink::start().await;
        let mut env = harness::base_env();
        env.extend([
            ("RUST_LOG", "info".to_owned()),
            ("SMTP_URL", sink.url()),
            // One failed link token per scenario; on Redis the counters of
            // 127.0.0.1 are shared with every other test and run.
            ("LINK_TOKEN_RATE_LIMIT", harness::NO_LIMIT.to_owned()),
        ]);
        env.retain(|(name, _)| !extra.iter().any(|(extra, _)| extra == name));
        env.extend(extra.iter().cloned());
        let database = match backend {
            Backend::Real => {
                let database = TestDatabase::create("account_browser")
                    .await
                    .expect("create a test database");
                env.push(("DATABASE_URL", database.url.clone()));
                env.push(("REDIS_URL", test_redis_url()));
                Some(database)
            }
            Backend::Embedded => None,
        };
        let (process, base) = Process::start(
            "account",
            account,
            dir.path(),
            &env,
            "account service listening",
        )
        .await;
        // The origin of PUBLIC_URL's default, not the address it logged.
        let base = base.replacen("http://127.0.0.1:", "http://localhost:", 1);
        assert!(base.starts_with("http://localhost:"), "{base}");
        Some(Self {
            base,
            http: harness::http(),
            sink,
            backend,
            users: Mutex::new(Vec::new()),
            process,
            _database: database,
            _dir: dir,
        })
    }

    /// `<base><path>`
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the service logged so far.
    pub fn output(&self) -> String {
        self.process.output()
    }

    /// Signs up `email` through the API (`POST /api/account/signup`, 201
    /// with tokens).
    pub async fn sign_up(&self, email: &str, password: &str) -> Tokens {
        let response = harness::sign_up(&self.http, &self.base, email, password).await;
        assert_eq!(response.status(), StatusCode::CREATED, "sign-up");
        let body: Value = response.json().await.expect("sign-up body");
        let tokens = Tokens::from_body(&body);
        self.users.lock().unwrap().push(tokens.uid());
        tokens
    }

    /// `POST /api/account/signin`
    pub async fn sign_in(&self, email: &str, password: &str) -> reqwest::Response {
        let body = json!({"email": email, "password": password});
        harness::post_json(&self.http, harness::api_url(&self.base, "/signin"), &body).await
    }

    /// `POST /api/account/signin` from a program with `User-Agent:
    /// user_agent` (200); its tokens.
    pub async fn sign_in_as(&self, email: &str, password: &str, user_agent: &str) -> Tokens {
        let body = json!({"email": email, "password": password});
        let response = harness::send(
            self.http
                .post(harness::api_url(&self.base, "/signin"))
                .header(reqwest::header::USER_AGENT, user_agent)
                .json(&body),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "API sign-in of {email}");
        let body: Value = response.json().await.expect("sign-in body");
        let tokens = Tokens::from_body(&body);
        self.track(tokens.uid());
        tokens
    }

    /// A user signed up some other way (in the browser), whose Redis keys
    /// go on drop as those of [`App::sign_up`].
    pub fn track(&self, uid: Uuid) {
        let mut users = self.users.lock().unwrap();
        if !users.contains(&uid) {
            users.push(uid);
        }
    }

    /// The `sessions` of `GET /api/account/sessions` (200).
    pub async fn sessions(&self, id_token: &str) -> Vec<Value> {
        let response = harness::send(
            self.http
                .get(harness::api_url(&self.base, "/sessions"))
                .bearer_auth(id_token),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "GET /sessions");
        let body: Value = response.json().await.expect("GET /sessions body");
        body["sessions"].as_array().expect("sessions").clone()
    }

    /// `POST /api/account/tokens {refreshToken}`
    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        harness::refresh(&self.http, &self.base, refresh_token).await
    }

    /// The `user` of `GET /api/account/me` (200).
    pub async fn me(&self, id_token: &str) -> Value {
        let response = harness::me(&self.http, &self.base, id_token).await;
        assert_eq!(response.status(), StatusCode::OK, "GET /me");
        let body: Value = response.json().await.expect("GET /me body");
        body["user"].clone()
    }

    /// The `n`th verification mail (from 1) to `address`, waiting for it
    /// (security mails, such as a sign-in from a new device, are skipped).
    pub async fn nth_verification_to(&self, address: &str, n: usize) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + MAIL_WAIT;
        loop {
            let mails: Vec<ReceivedMail> = self
                .sink
                .mails()
                .into_iter()
                .filter(|m| m.is_to(address) && m.subject == "Verify your email address")
                .collect();
            if mails.len() >= n {
                return mails[n - 1].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "verification mail {n} to {address} never came: {:?}\n--- service log:\n{}",
                self.sink.mails(),
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The newest link to `page` (`/verify-email`, `/reset-password`) mailed
    /// to `address`, waiting for one.
    pub async fn mailed_link(&self, address: &str, page: &str) -> String {
        let prefix = format!("{}{page}?token=", self.base);
        let deadline = tokio::time::Instant::now() + MAIL_WAIT;
        loop {
            let found = self
                .sink
                .mails()
                .iter()
                .rev()
                .filter(|mail| mail.is_to(address))
                .find_map(|mail| link_in(&mail.body, &prefix));
            if let Some(link) = found {
                return link;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no link to {prefix}… mailed to {address} within {MAIL_WAIT:?}: {:?}\n\
                 --- service log:\n{}",
                self.sink.mails(),
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The link to `page` (`/verify-email`, `/reset-password`) in `mail`:
    /// `http://localhost:<port><page>?token=…`.
    pub fn link_in(&self, mail: &ReceivedMail, page: &str) -> String {
        let prefix = format!("{}{page}?token=", self.base);
        let link = link_in(&mail.body, &prefix)
            .unwrap_or_else(|| panic!("a link to {prefix}… in {:?}", mail.body));
        assert!(link.len() > prefix.len(), "a token in {link}");
        link
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let users = std::mem::take(&mut *self.users.lock().unwrap_or_else(|e| e.into_inner()));
        if self.backend == Backend::Real && !users.is_empty() {
            let _ = std::thread::spawn(move || delete_user_keys(&users)).join();
        }
    }
}

/// A unique address of the reserved `example.com`.
pub fn unique_email() -> String {
    format!("browser-{}@example.com", Uuid::new_v4().simple())
}
