//! Chromium driven over WebDriver: a `chromedriver` process of our own on a
//! free port of 127.0.0.1 (its process group killed when [`Browser`] drops,
//! so no Chromium outlives a failed test), a headless Chromium session with a
//! profile in a temp dir, and its browser log (console messages, CSP
//! violations) read through chromedriver's `POST /session/{id}/se/log`.
//! Nothing is downloaded: the distribution's `chromium` and
//! `chromium-driver` packages, or a skip.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::harness::notice;

/// The Chromium of the distribution (Debian's `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Its WebDriver server (Debian's `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long chromedriver may take to answer `GET /status`.
const DRIVER_READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a page may take to show what a test waits for.
pub const PAGE_WAIT: Duration = Duration::from_secs(15);

/// `REQUIRE_BROWSER=1` (CI): a missing Chromium or chromedriver fails the run.
pub fn require_browser() -> bool {
    std::env::var("REQUIRE_BROWSER").is_ok_and(|v| v == "1" || v == "true")
}

/// Whether Chromium and chromedriver are installed. When not, `test` is
/// skipped with a visible `SKIPPED …` line, or fails under
/// `REQUIRE_BROWSER=1`.
pub fn browser_or_skip(test: &str) -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(" and ");
    assert!(
        !require_browser(),
        "{missing} not found and REQUIRE_BROWSER=1 (apt-get install chromium chromium-driver)"
    );
    notice(&format!(
        "SKIPPED {test}: {missing} not found (apt-get install chromium chromium-driver)"
    ));
    false
}

/// One entry of the browser log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub level: String,
    /// `console-api`, `javascript`, `network`, `security`, …
    pub source: String,
    pub message: String,
}

impl LogEntry {
    /// A console error (`SEVERE`: failed loads, uncaught exceptions,
    /// `console.error`) or anything about the Content Security Policy.
    pub fn is_problem(&self) -> bool {
        self.level.eq_ignore_ascii_case("SEVERE")
            || self
                .message
                .to_ascii_lowercase()
                .contains("content security policy")
    }

    /// Whether this is Chromium's line for a request to a URL containing
    /// `path` that was answered `status` ("… - Failed to load resource: the
    /// server responded with a status of 400 (Bad Request)").
    fn is_failed_request(&self, path: &str, status: u16) -> bool {
        self.source == "network"
            && self.message.contains(path)
            && self
                .message
                .contains(&format!("responded with a status of {status} "))
            && !self
                .message
                .to_ascii_lowercase()
                .contains("content security policy")
    }
}

/// A headless Chromium session and the chromedriver that runs it.
pub struct Browser {
    pub client: Client,
    /// `http://127.0.0.1:<port>` of chromedriver.
    pub(crate) driver_url: String,
    pub(crate) session_id: String,
    /// Every browser-log entry read so far (chromedriver hands each out once).
    log: Vec<LogEntry>,
    /// Requests a scenario makes fail on purpose: (path, status). Chromium
    /// logs every 4xx/5xx answer to `fetch` as a console error.
    expected_failures: Vec<(String, u16)>,
    pub(crate) http: reqwest::Client,
    // Dropped after the fields above: the driver's process group is killed,
    // then the profile removed.
    _driver: Driver,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Self {
        let driver = Driver::start().await;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", driver.profile.path().display()),
                    "--window-size=1024,768",
                    "--no-first-run",
                    "--no-default-browser-check",
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        // chromedriver is plain HTTP on loopback: no TLS connector. (fantoccini's
        // rustls one would need a process-wide rustls provider chosen, and this
        // build's rustls has two: ring for lettre, aws-lc-rs for hyper-rustls.)
        // hyper-util's `client-legacy` comes with fantoccini.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no Chromium session from chromedriver: {e}\n{}",
                    driver.log_tail()
                )
            });
        let session_id = client
            .session_id()
            .await
            .expect("the session id")
            .expect("a session");
        Self {
            client,
            driver_url: driver.url.clone(),
            session_id,
            log: Vec::new(),
            expected_failures: Vec::new(),
            http: crate::harness::http(),
            _driver: driver,
        }
    }

    /// Opens `url` and waits for the page to load.
    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The address bar.
    pub async fn current_url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("the current URL")
            .to_string()
    }

    /// The visible text of the first element matching `css`, waiting for
    /// it to exist.
    pub async fn text(&self, css: &str) -> String {
        self.element(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of {css}: {e}"))
    }

    /// The first element matching `css`, waiting for it to exist.
    pub async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} within {PAGE_WAIT:?}: {e}"))
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Types `text` into the element matching `css` (as keystrokes).
    pub async fn type_into(&self, css: &str, text: &str) {
        self.element(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("cannot type into {css}: {e}"));
    }

    /// Waits until the text of `css` contains `expected` (ignoring case);
    /// returns that text. Panics with the last text seen and the browser
    /// log when it does not within [`PAGE_WAIT`].
    pub async fn wait_for_text(&mut self, css: &str, expected: &str) -> String {
        let deadline = Instant::now() + PAGE_WAIT;
        let wanted = expected.to_lowercase();
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if text.to_lowercase().contains(&wanted) {
                    return text;
                }
                last = text;
            }
            if Instant::now() >= deadline {
                let log = self.read_log().await.to_vec();
                panic!(
                    "{css} did not contain {expected:?} within {PAGE_WAIT:?}; it says {last:?} \
                     (at {}); browser log: {log:#?}",
                    self.current_url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element matching `css` shows some text; returns it.
    pub async fn wait_for_any_text(&mut self, css: &str) -> String {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
                && !text.trim().is_empty()
            {
                return text;
            }
            if Instant::now() >= deadline {
                let log = self.read_log().await.to_vec();
                panic!("{css} showed no text within {PAGE_WAIT:?}; browser log: {log:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Empties the input matching `css`.
    pub async fn clear(&self, css: &str) {
        self.element(css)
            .await
            .clear()
            .await
            .unwrap_or_else(|e| panic!("cannot clear {css}: {e}"));
    }

    /// Whether the element matching `css` is shown (not `hidden`, not
    /// `display: none`).
    pub async fn is_displayed(&self, css: &str) -> bool {
        self.element(css)
            .await
            .is_displayed()
            .await
            .unwrap_or_else(|e| panic!("whether {css} is shown: {e}"))
    }

    /// Waits until the address bar satisfies `ok`; returns it.
    pub async fn wait_for_url(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            let url = self.current_url().await;
            if ok(&url) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "the address bar is {url:?}, not {what}, after {PAGE_WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every browser-log entry so far: console messages of every page this
    /// session showed, failed loads, CSP violations.
    pub async fn read_log(&mut self) -> &[LogEntry] {
        let response = self
            .http
            .post(format!(
                "{}/session/{}/se/log",
                self.driver_url, self.session_id
            ))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("chromedriver answers se/log");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON se/log answer");
        assert!(status.is_success(), "se/log answered {status}: {body}");
        let entries = body["value"].as_array().expect("se/log: a list of entries");
        self.log.extend(entries.iter().map(|entry| LogEntry {
            level: entry["level"].as_str().unwrap_or_default().to_owned(),
            source: entry["source"].as_str().unwrap_or_default().to_owned(),
            message: entry["message"].as_str().unwrap_or_default().to_owned(),
        }));
        &self.log
    }

    /// The next requests to a URL containing `path` answered `status` are
    /// meant to fail (a used link's token): Chromium's console error for
    /// them is not a problem. Nothing else of the kind is let through.
    pub fn expect_failed_request(&mut self, path: &str, status: u16) {
        self.expected_failures.push((path.to_owned(), status));
    }

    /// Asserts that no page of this session logged a console error or a CSP
    /// violation so far (besides the failed requests announced with
    /// [`Self::expect_failed_request`]).
    pub async fn assert_clean_console(&mut self) {
        self.read_log().await;
        let problems: Vec<LogEntry> = self
            .log
            .iter()
            .filter(|entry| entry.is_problem())
            .filter(|entry| {
                !self
                    .expected_failures
                    .iter()
                    .any(|(path, status)| entry.is_failed_request(path, *status))
            })
            .cloned()
            .collect();
        let hint = if problems.iter().any(|p| p.message.contains("/favicon.ico")) {
            "\n(a page that names no icon makes Chromium ask for /favicon.ico: \
             give the pages a <link rel=\"icon\"> the service serves, or serve /favicon.ico)"
        } else {
            ""
        };
        assert!(
            problems.is_empty(),
            "console errors or CSP violations: {problems:#?}{hint}"
        );
    }

    /// Saves what the window shows to `docs/screenshots/<name>.png`, only
    /// under `UPDATE_SCREENSHOTS=1` (never in CI: the pictures of the docs
    /// change only when someone means them to).
    pub async fn screenshot(&self, name: &str) {
        if !std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1" || v == "true") {
            return;
        }
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).expect("docs/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        notice(&format!("screenshot: {}", path.display()));
    }

    /// Adds a virtual authenticator to this session (WebAuthn's WebDriver
    /// extension, `POST /session/{id}/webauthn/authenticator`): a platform
    /// authenticator with resident keys that verifies its user at once, so
    /// the pages' passkey ceremonies need no person. Its id.
    pub async fn add_virtual_authenticator(&self) -> String {
        let options = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        });
        let id = self
            .webauthn(axum::http::Method::POST, "authenticator", Some(options))
            .await;
        id.as_str()
            .unwrap_or_else(|| panic!("an authenticator id, not {id}"))
            .to_owned()
    }

    /// Whether the virtual authenticator `id` verifies its user from now on
    /// (`POST …/authenticator/{id}/uv`): when not, a ceremony that requires
    /// user verification fails.
    pub async fn set_user_verified(&self, id: &str, verified: bool) {
        let path = format!("authenticator/{id}/uv");
        let body = json!({ "isUserVerified": verified });
        self.webauthn(axum::http::Method::POST, &path, Some(body))
            .await;
    }

    /// The credentials the virtual authenticator `id` holds (`GET
    /// /session/{id}/webauthn/authenticator/{id}/credentials`).
    pub async fn virtual_credentials(&self, id: &str) -> Vec<Value> {
        let path = format!("authenticator/{id}/credentials");
        let listed = self.webauthn(axum::http::Method::GET, &path, None).await;
        listed
            .as_array()
            .unwrap_or_else(|| panic!("a list of credentials, not {listed}"))
            .clone()
    }

    /// `method /session/{id}/webauthn/<path>` through fantoccini's hook for
    /// commands it has no method of (its `WebDriverCommand::WebAuthn*`
    /// would panic): the answer's `value`.
    async fn webauthn(&self, method: axum::http::Method, path: &str, body: Option<Value>) -> Value {
        let command = WebAuthnCommand {
            method,
            path: format!("webauthn/{path}"),
            body,
        };
        let what = format!("{command:?}");
        self.client
            .issue_cmd(command)
            .await
            .unwrap_or_else(|e| panic!("chromedriver refused {what}: {e}"))
    }

    /// Asserts a clean console, then ends the session (Chromium quits).
    pub async fn finish(mut self) {
        self.assert_clean_console().await;
        let _ = self.client.clone().close().await;
    }
}

/// A command of WebAuthn's WebDriver extension: `method
/// /session/{id}/<path>` with `body` as JSON.
#[derive(Debug)]
struct WebAuthnCommand {
    method: axum::http::Method,
    path: String,
    body: Option<Value>,
}

impl fantoccini::wd::WebDriverCompatibleCommand for WebAuthnCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a WebDriver session");
        base_url.join(&format!("session/{session}/{}", self.path))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(Value::to_string),
        )
    }
}

/// The chromedriver process, in a process group of its own (Chromium and
/// its helpers are its children): the whole group is killed on drop.
struct Driver {
    child: Child,
    url: String,
    /// Chromium's profile and chromedriver's log.
    profile: tempfile::TempDir,
    log_dir: tempfile::TempDir,
}

impl Driver {
    /// chromedriver on a free port, answering `GET /status` with `ready`.
    /// A port taken between choosing and binding it: tries another.
    async fn start() -> Self {
        let mut last_failure = String::new();
        for _ in 0..3 {
            match Self::try_start().await {
                Ok(driver) => return driver,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("chromedriver did not start: {last_failure}");
    }

    async fn try_start() -> Result<Self, String> {
        let port = crate::smtp_sink::free_port();
        let profile = tempfile::tempdir().expect("temp dir");
        let log_dir = tempfile::tempdir().expect("temp dir");
        let log_path = log_dir.path().join("chromedriver.log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_path.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {CHROMEDRIVER}: {e}"))?;
        let mut driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile,
            log_dir,
        };
        let http = crate::harness::http();
        let deadline = Instant::now() + DRIVER_READY_WITHIN;
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                return Err(format!("exited with {status}\n{}", driver.log_tail()));
            }
            if let Ok(response) = http.get(format!("{}/status", driver.url)).send().await
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == json!(true)
            {
                return Ok(driver);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not ready within {DRIVER_READY_WITHIN:?}\n{}",
                    driver.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of chromedriver's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_dir.path().join("chromedriver.log"))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("--- chromedriver log (end):\n{tail}")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`).
        if let Some(pid) = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
