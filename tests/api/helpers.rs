//! Starts the real app on port 0 on one of two backends: embedded (SQLite file
//! in a temp dir + in-process token store), or the real PostgreSQL and Redis
//! with a uniquely named database per test. Cleans up after itself even when
//! the test fails: the database is dropped and the Redis keys of the users the
//! test created are removed (never anything else).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use account::config::Config;
use account::startup::Application;
use account::testing::{GeneratedKeyFiles, generate_keys};
use serde_json::{Value, json};
use sqlx::Connection as _;
use uuid::Uuid;

#[path = "../common/harness.rs"]
mod harness;

pub use crate::stores::{TestDatabase, delete_user_keys, stores_reachable, test_redis_url};
use harness::send;
pub use harness::{PASSWORD, Tokens, claims, header, notice, require_real_stores};

/// Whether PostgreSQL and Redis answer. Unreachable stores skip the test with a
/// visible line, or fail it under `REQUIRE_REAL_STORES=1` (CI).
async fn real_stores_available(test: &str) -> bool {
    static REACHABLE: tokio::sync::OnceCell<Result<(), String>> =
        tokio::sync::OnceCell::const_new();
    let reachable = REACHABLE.get_or_init(stores_reachable).await;
    harness::reachable_or_skip(reachable, &format!("{test} on PostgreSQL + Redis"))
}

/// Development keys generated once per test run.
pub fn key_files() -> &'static GeneratedKeyFiles {
    static KEYS: OnceLock<GeneratedKeyFiles> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir: PathBuf = tempfile::tempdir().expect("temp dir").keep();
        let files = GeneratedKeyFiles::in_dir(&dir);
        generate_keys(&files, false).expect("generate test keys");
        files
    })
}

pub fn private_key_pem() -> Vec<u8> {
    std::fs::read(&key_files().private_key).unwrap()
}

pub fn public_key_pem() -> Vec<u8> {
    std::fs::read(&key_files().public_key).unwrap()
}

/// Which stores an app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite + in-process token store: always available.
    Embedded,
    /// PostgreSQL + Redis: skipped (visibly) when unreachable, unless required.
    Real,
}

/// Writes one `#[tokio::test]` per backend for each scenario `async fn name(backend: Backend)`.
/// `on_every_backend!(multi_thread: a, b)` runs them (the app's server
/// included) on a two-worker runtime, for races that need real parallelism.
#[macro_export]
macro_rules! on_every_backend {
    (multi_thread: $($scenario:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::helpers::Backend::Embedded).await
                }
            )*
        }
        mod postgres_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::helpers::Backend::Real).await
                }
            )*
        }
    };
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario($crate::helpers::Backend::Embedded).await
                }
            )*
        }
        mod postgres_redis {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario($crate::helpers::Backend::Real).await
                }
            )*
        }
    };
}

/// Where the users of a test app live.
pub enum TestStore {
    Postgres(TestDatabase),
    /// The SQLite file's folder (removed on drop) and its URL.
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
}

/// A running app and what a test needs to drive and inspect it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    /// Always `Some` (taken only by [`TestApp::restart`]).
    store: Option<TestStore>,
    config: Config,
    redis: Option<redis::aio::MultiplexedConnection>,
    memory: Option<account::testing::MemoryTokenRepository>,
    key_reloader: account::testing::KeyReloader,
    users: Mutex<Vec<Uuid>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The variables every test app starts with ([`harness::base_env`]) and the
/// test keys.
fn base_env() -> HashMap<String, String> {
    let keys = key_files();
    let mut env = harness::base_env();
    env.extend([
        ("PRIV_KEY_FILE", keys.private_key.display().to_string()),
        ("PUB_KEY_FILE", keys.public_key.display().to_string()),
        (
            "REFRESH_SECRET_FILE",
            keys.refresh_secret.display().to_string(),
        ),
        ("DATA_KEY_FILE", keys.data_key.display().to_string()),
    ]);
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The name of the function this is used in, without its module path: the
/// enclosing test's (or scenario's) own name.
macro_rules! function_name {
    () => {{
        fn f() {}
        $crate::helpers::function_name_from_path(::std::any::type_name_of_val(&f))
    }};
}
pub(crate) use function_name;

/// `api::errors::name::{{closure}}::f` (from [`function_name!`]) → `name`.
pub fn function_name_from_path(path: &'static str) -> &'static str {
    let mut path = path.strip_suffix("::f").unwrap_or(path);
    while let Some(outer) = path.strip_suffix("::{{closure}}") {
        path = outer;
    }
    path.rsplit("::").next().unwrap_or(path)
}

/// `spawn_app!(backend)` or `spawn_app!(backend, &[("VAR", "value"), ...])`:
/// starts an app for the enclosing test, or returns from the test when the
/// backend is skipped (unreachable real stores; a failure instead under
/// `REQUIRE_REAL_STORES=1`). The skip notice names the test by its own name.
macro_rules! spawn_app {
    ($backend:expr $(,)?) => {
        $crate::helpers::spawn_app!($backend, &[])
    };
    ($backend:expr, $vars:expr $(,)?) => {
        match $crate::helpers::try_spawn_app($backend, $crate::helpers::function_name!(), $vars)
            .await
        {
            ::std::option::Option::Some(app) => app,
            ::std::option::Option::None => return,
        }
    };
}
pub(crate) use spawn_app;

/// What [`spawn_app!`] expands to: the app, or `None` when `backend` is skipped
/// (with a notice naming `test`).
pub async fn try_spawn_app(backend: Backend, test: &str, vars: &[(&str, &str)]) -> Option<TestApp> {
    if backend == Backend::Real && !real_stores_available(test).await {
        return None;
    }
    Some(build(backend, vars).await)
}

/// An embedded app (never skipped, so it needs no test name) with extra
/// environment variables, for helpers that build apps outside a test function.
pub async fn spawn_embedded_app(vars: &[(&str, &str)]) -> TestApp {
    build(Backend::Embedded, vars).await
}

/// Starts an app with extra environment variables (e.g. `HANDLER_TIMEOUT`);
/// the real stores are known to be reachable.
async fn build(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
    let mut env = base_env();
    let store = match backend {
        Backend::Real => {
            let db = TestDatabase::create("account_test")
                .await
                .expect("create a test database");
            env.insert("DATABASE_URL".into(), db.url.clone());
            env.insert("REDIS_URL".into(), test_redis_url());
            TestStore::Postgres(db)
        }
        Backend::Embedded => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/account.db", dir.path().display());
            env.insert("DATABASE_URL".into(), url.clone());
            TestStore::Sqlite { _dir: dir, url }
        }
    };
    for (k, v) in vars {
        env.insert((*k).into(), (*v).into());
    }
    let config = Config::from_vars(env).expect("test config");
    start(backend, store, config).await
}

/// Builds and serves the app in the background.
async fn start(backend: Backend, store: TestStore, config: Config) -> TestApp {
    let app = Application::build(config.clone()).await.expect("build app");
    let address = format!("http://{}", app.local_addr().unwrap());
    let memory = app.memory_token_store();
    let key_reloader = app.key_reloader();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let redis = match backend {
        Backend::Real => Some(
            redis::Client::open(test_redis_url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .expect("redis connection"),
        ),
        Backend::Embedded => None,
    };
    TestApp {
        address,
        client: reqwest::Client::new(),
        backend,
        store: Some(store),
        config,
        redis,
        memory,
        key_reloader,
        users: Mutex::new(Vec::new()),
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    /// The configuration the app was built from (its stores included).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stops the server gracefully (as SIGTERM would) and starts it again with
    /// the same configuration and stores.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    /// [`Self::restart`] with the configuration `edit` changed (the same
    /// stores), e.g. another `EMAIL_CONFIRMATION` mode.
    pub async fn restart_editing(mut self, edit: impl FnOnce(&mut Config)) -> TestApp {
        edit(&mut self.config);
        self.restart().await
    }

    /// [`Self::restart`], running `between` while the server is stopped (to
    /// edit its files, e.g. leave an earlier version's token-store snapshot).
    pub async fn restart_with(self, between: impl FnOnce(&Config)) -> TestApp {
        self.restart_after(|config| {
            between(&config);
            std::future::ready(())
        })
        .await
    }

    /// [`Self::restart_with`] for work that awaits (e.g. an `account`
    /// command on the stopped service's stores).
    pub async fn restart_after<F: std::future::Future<Output = ()>>(
        mut self,
        between: impl FnOnce(Config) -> F,
    ) -> TestApp {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        between(self.config.clone()).await;
        let users = std::mem::take(&mut *self.users.lock().unwrap());
        let store = self.store.take().expect("store");
        let app = start(self.backend, store, self.config.clone()).await;
        *app.users.lock().unwrap() = users;
        app
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        // Remove the whitelist entries of the users this test created, and only those.
        let users = std::mem::take(&mut *self.users.lock().unwrap());
        if users.is_empty() || self.backend != Backend::Real {
            return;
        }
        let _ = std::thread::spawn(move || delete_user_keys(&users)).join();
    }
}

/// Now, in Unix seconds (the unit of token claims and session timestamps).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An ID token with these claims, signed with the test key under `kid`.
pub fn sign_id_token(claims: &Value, kid: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&private_key_pem()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A refresh token with these claims, signed with the test refresh secret.
pub fn sign_refresh_token(claims: &Value) -> String {
    let secret = std::fs::read_to_string(&key_files().refresh_secret).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
    )
    .unwrap()
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", Uuid::new_v4().simple())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        harness::api_url(&self.address, path)
    }

    /// Remembers a user so its Redis keys are removed when the test ends.
    pub fn track(&self, uid: Uuid) {
        self.users.lock().unwrap().push(uid);
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        harness::post_json(&self.client, self.url(path), body).await
    }

    /// `POST /{path}` with the bearer ID token.
    async fn post_bearer(&self, path: &str, id_token: &str) -> reqwest::Response {
        send(self.client.post(self.url(path)).bearer_auth(id_token)).await
    }

    pub async fn signup_response(&self, email: &str, password: &str) -> reqwest::Response {
        harness::sign_up(&self.client, &self.address, email, password).await
    }

    /// Signs up a new user and returns its tokens; the user is tracked.
    pub async fn signup(&self, email: &str) -> (Uuid, Tokens) {
        let response = self.signup_response(email, PASSWORD).await;
        assert_eq!(response.status(), 201, "sign-up of {email}");
        let tokens = Tokens::from_body(&response.json().await.unwrap());
        let uid = tokens.uid();
        self.track(uid);
        (uid, tokens)
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        harness::refresh(&self.client, &self.address, refresh_token).await
    }

    pub async fn me(&self, id_token: &str) -> reqwest::Response {
        harness::me(&self.client, &self.address, id_token).await
    }

    pub async fn signout(&self, id_token: &str) -> reqwest::Response {
        self.post_bearer("/signout", id_token).await
    }

    /// `POST /signin` with a `User-Agent` header.
    pub async fn signin_response(
        &self,
        email: &str,
        password: &str,
        user_agent: &str,
    ) -> reqwest::Response {
        send(
            self.client
                .post(self.url("/signin"))
                .header("user-agent", user_agent)
                .json(&json!({"email": email, "password": password})),
        )
        .await
    }

    /// Signs in with [`PASSWORD`] (a new session) and returns its tokens.
    pub async fn signin(&self, email: &str) -> Tokens {
        let response = self.signin_response(email, PASSWORD, "").await;
        assert_eq!(response.status(), 200, "sign-in of {email}");
        Tokens::from_body(&response.json().await.unwrap())
    }

    /// `POST /tokens` with a `User-Agent` header.
    pub async fn refresh_as(&self, refresh_token: &str, user_agent: &str) -> reqwest::Response {
        send(
            self.client
                .post(self.url("/tokens"))
                .header("user-agent", user_agent)
                .json(&json!({"refreshToken": refresh_token})),
        )
        .await
    }

    /// `n` refreshes with one token at once, each on a task of its own (in
    /// parallel on a multi-thread runtime); the responses in request order.
    pub async fn refresh_concurrently(
        &self,
        refresh_token: &str,
        n: usize,
    ) -> Vec<reqwest::Response> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let request = self
                    .client
                    .post(self.url("/tokens"))
                    .json(&json!({"refreshToken": refresh_token}));
                tokio::spawn(send(request))
            })
            .collect();
        let mut responses = Vec::with_capacity(n);
        for task in tasks {
            responses.push(task.await.expect("request task"));
        }
        responses
    }

    /// Refreshes and expects a new pair.
    pub async fn refreshed(&self, refresh_token: &str) -> Tokens {
        let response = self.refresh(refresh_token).await;
        assert_eq!(response.status(), 200, "refresh");
        Tokens::from_body(&response.json().await.unwrap())
    }

    /// `POST /signout?scope=<scope>`
    pub async fn signout_scope(&self, id_token: &str, scope: &str) -> reqwest::Response {
        self.post_bearer(&format!("/signout?scope={scope}"), id_token)
            .await
    }

    pub async fn sessions_response(&self, id_token: &str) -> reqwest::Response {
        send(self.client.get(self.url("/sessions")).bearer_auth(id_token)).await
    }

    /// `GET /sessions`: the `sessions` array of a 200.
    pub async fn sessions(&self, id_token: &str) -> Vec<Value> {
        let response = self.sessions_response(id_token).await;
        assert_eq!(response.status(), 200, "GET /sessions");
        let body: Value = response.json().await.unwrap();
        body["sessions"].as_array().expect("sessions array").clone()
    }

    /// `DELETE /sessions/{id}`
    pub async fn end_session(&self, id_token: &str, id: &str) -> reqwest::Response {
        let url = self.url(&format!("/sessions/{id}"));
        send(self.client.delete(url).bearer_auth(id_token)).await
    }

    /// `PUT /password`
    pub async fn change_password(
        &self,
        id_token: &str,
        current: &str,
        new: &str,
    ) -> reqwest::Response {
        send(
            self.client
                .put(self.url("/password"))
                .bearer_auth(id_token)
                .json(&json!({"currentPassword": current, "newPassword": new})),
        )
        .await
    }

    /// `PUT /details`
    pub async fn put_details(&self, id_token: &str, body: &Value) -> reqwest::Response {
        send(
            self.client
                .put(self.url("/details"))
                .bearer_auth(id_token)
                .json(body),
        )
        .await
    }

    /// The whitelist entries `<uid>:<jti>` of a user, sorted (not its
    /// session index or grace successors: see [`Self::user_keys`]).
    pub async fn refresh_keys(&self, uid: Uuid) -> Vec<String> {
        let prefix = format!("{uid}:");
        self.user_keys(uid)
            .await
            .into_iter()
            .filter(|key| {
                key.strip_prefix(&prefix)
                    .is_some_and(|jti| jti.parse::<Uuid>().is_ok())
            })
            .collect()
    }

    /// Every live key `<uid>:*` of a user (in Redis found with SCAN), sorted:
    /// whitelist entries, the session index `<uid>:sessions` and grace
    /// successors `<uid>:grace:<jti>`.
    pub async fn user_keys(&self, uid: Uuid) -> Vec<String> {
        self.live_keys(&format!("{uid}:")).await
    }

    /// Every live key starting with `pattern` (in Redis found with SCAN), sorted.
    pub async fn live_keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = match (&self.redis, &self.memory) {
            (Some(redis), _) => {
                let mut conn = redis.clone();
                let mut keys = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{pattern}*"))
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    keys.extend(batch);
                    if next == 0 {
                        break keys;
                    }
                    cursor = next;
                }
            }
            (None, Some(memory)) => memory
                .live_entries(pattern)
                .into_iter()
                .map(|e| e.0)
                .collect(),
            (None, None) => panic!("no token store to inspect"),
        };
        keys.sort();
        keys
    }

    /// Seconds to live of a whitelist entry (-2 if it does not exist, as Redis says).
    pub async fn ttl(&self, key: &str) -> i64 {
        match (&self.redis, &self.memory) {
            (Some(redis), _) => {
                let mut conn = redis.clone();
                redis::cmd("TTL")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .unwrap()
            }
            (None, Some(memory)) => memory
                .live_entries(key)
                .into_iter()
                .find(|(k, _)| k == key)
                .map_or(-2, |(_, ttl)| ttl.as_secs_f64().round() as i64),
            (None, None) => panic!("no token store to inspect"),
        }
    }

    /// The value of a Redis string key (real backend only; `None` if absent).
    pub async fn redis_get(&self, key: &str) -> Option<Vec<u8>> {
        let mut conn = self.redis.clone().expect("real backend");
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    /// The session index `<uid>:sessions` in Redis, sid → its JSON entry
    /// (real backend only; empty if absent).
    pub async fn redis_session_index(&self, uid: Uuid) -> HashMap<String, Value> {
        let mut conn = self.redis.clone().expect("real backend");
        let raw: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("{uid}:sessions"))
            .query_async(&mut conn)
            .await
            .unwrap();
        raw.into_iter()
            .map(|(sid, entry)| (sid, serde_json::from_str(&entry).expect("JSON index entry")))
            .collect()
    }

    /// A connection to the real Redis (real backend only).
    pub fn redis(&self) -> Option<redis::aio::MultiplexedConnection> {
        self.redis.clone()
    }

    /// Removes one whitelist entry behind the service's back.
    pub async fn delete_refresh_key(&self, key: &str) {
        match (&self.redis, &self.memory) {
            (Some(redis), _) => {
                let mut conn = redis.clone();
                redis::cmd("DEL")
                    .arg(key)
                    .query_async::<()>(&mut conn)
                    .await
                    .unwrap();
            }
            (None, Some(memory)) => {
                memory.remove(key);
            }
            (None, None) => panic!("no token store to inspect"),
        }
    }

    /// The stored password hash of the user with this (lowercase) email.
    pub async fn stored_password_hash(&self, email: &str) -> String {
        self.query_by_email(
            "SELECT password FROM users WHERE lower(email) = lower($1)",
            email,
        )
        .await
    }

    /// How many users have this email, in any letter case.
    pub async fn count_users_with_email(&self, email: &str) -> i64 {
        self.query_by_email(
            "SELECT count(*) FROM users WHERE lower(email) = lower($1)",
            email,
        )
        .await
    }

    /// Inserts a user row behind the service's back, as rows from before a
    /// rule change are: `email` as given, `created_at` an SQL timestamp
    /// (`2020-01-01 00:00:00`, UTC). The user is tracked.
    pub async fn insert_user_row(
        &self,
        uid: Uuid,
        email: &str,
        password_hash: &str,
        created_at: &str,
    ) {
        match self.store() {
            TestStore::Postgres(db) => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query(
                    "INSERT INTO users (uid, email, password, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4::timestamptz, $4::timestamptz)",
                )
                .bind(uid)
                .bind(email)
                .bind(password_hash)
                .bind(format!("{created_at}+00"))
                .execute(&mut conn)
                .await
                .unwrap();
            }
            TestStore::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query(
                    "INSERT INTO users (uid, email, password, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4)",
                )
                .bind(uid)
                .bind(email)
                .bind(password_hash)
                .bind(created_at)
                .execute(&mut conn)
                .await
                .unwrap();
            }
        }
        self.track(uid);
    }

    /// The email stored for a user, exactly as stored (`None`: no such user).
    pub async fn stored_email(&self, uid: Uuid) -> Option<String> {
        let sql = "SELECT email FROM users WHERE uid = $1";
        match self.store() {
            TestStore::Postgres(db) => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query_scalar(sql)
                    .bind(uid)
                    .fetch_optional(&mut conn)
                    .await
                    .unwrap()
            }
            TestStore::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql)
                    .bind(uid)
                    .fetch_optional(&mut conn)
                    .await
                    .unwrap()
            }
        }
    }

    /// One value from the user store, by a query with the email as `$1`.
    async fn query_by_email<T>(&self, sql: &'static str, email: &str) -> T
    where
        T: Send
            + Unpin
            + for<'r> sqlx::Decode<'r, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>
            + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>,
    {
        match self.store() {
            TestStore::Postgres(db) => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query_scalar(sql)
                    .bind(email)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }
            TestStore::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql)
                    .bind(email)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }
        }
    }

    /// Re-reads the key files, as `SIGHUP` does.
    pub fn reload_keys(&self) -> anyhow::Result<Vec<String>> {
        self.key_reloader.reload()
    }

    /// The key files of this app.
    pub fn key_paths(&self) -> &account::testing::KeyPaths {
        &self.config.keys
    }

    fn store(&self) -> &TestStore {
        self.store.as_ref().expect("store")
    }

    /// The PostgreSQL database of a real-backend app.
    pub fn postgres_url(&self) -> &str {
        match self.store() {
            TestStore::Postgres(db) => &db.url,
            TestStore::Sqlite { .. } => panic!("not a PostgreSQL app"),
        }
    }
}

// ---------------------------------------------------------------- mail

/// `PUBLIC_URL` of the apps that mail links: every link starts with it.
pub const PUBLIC_URL: &str = "http://app.test";
/// How long a test waits for a mail to reach the sink.
pub const MAIL_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The token of the link to `page` (`/verify-email`, `/reset-password`)
/// under [`PUBLIC_URL`] in `mail`.
pub fn token_in(mail: &crate::smtp_sink::ReceivedMail, page: &str) -> String {
    let prefix = format!("{PUBLIC_URL}{page}?token=");
    let link = crate::smtp_sink::link_in(&mail.body, &prefix)
        .unwrap_or_else(|| panic!("a link to {prefix}… in {:?}", mail.body));
    let token = link[prefix.len()..].to_owned();
    assert_eq!(token.len(), 43, "32 bytes in base64url: {link}");
    token
}

/// The `n`th mail (from 1) to `address`, waiting for it.
pub async fn nth_mail_to(
    sink: &crate::smtp_sink::SmtpSink,
    address: &str,
    n: usize,
) -> crate::smtp_sink::ReceivedMail {
    let mails = sink.wait_for_mails_to(address, n, MAIL_WAIT).await;
    assert!(
        mails.len() >= n,
        "mail {n} to {address} never came: {mails:?}"
    );
    mails[n - 1].clone()
}

impl TestApp {
    /// `POST /verify-email {token}`
    pub async fn verify_email(&self, token: &str) -> reqwest::Response {
        self.post_json("/verify-email", &json!({"token": token}))
            .await
    }

    /// `POST /verify-email/resend` with the bearer ID token.
    pub async fn resend_verification(&self, id_token: &str) -> reqwest::Response {
        self.post_bearer("/verify-email/resend", id_token).await
    }

    /// `POST /password-reset {email}`
    pub async fn request_reset(&self, email: &str) -> reqwest::Response {
        self.post_json("/password-reset", &json!({"email": email}))
            .await
    }

    /// `POST /password-reset/confirm {token, newPassword}`
    pub async fn confirm_reset(&self, token: &str, new_password: &str) -> reqwest::Response {
        self.post_json(
            "/password-reset/confirm",
            &json!({"token": token, "newPassword": new_password}),
        )
        .await
    }

    /// `GET /me`: the `user` of a 200.
    pub async fn me_user(&self, id_token: &str) -> Value {
        let response = self.me(id_token).await;
        assert_eq!(response.status(), 200, "GET /me");
        let body: Value = response.json().await.unwrap();
        body["user"].clone()
    }
}

/// Asserts a 400 whose only field error names `token`.
pub async fn assert_invalid_token(response: reqwest::Response) {
    let body = assert_error(response, 400, "BAD_REQUEST").await;
    assert_eq!(
        body["error"]["invalidArgs"],
        json!([{"field": "token", "message": "the token is invalid, used or expired"}]),
        "{body}"
    );
}

/// Asserts the error shape and returns the body.
pub async fn assert_error(response: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["type"], kind, "error type in {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
    body
}

mod tests {
    use super::function_name_from_path;

    #[test]
    fn function_name_is_the_enclosing_functions_own() {
        assert_eq!(
            function_name!(),
            "function_name_is_the_enclosing_functions_own"
        );
    }

    #[tokio::test]
    async fn function_name_is_the_enclosing_async_functions_own() {
        let in_a_closure = || function_name!();
        let in_an_async_block = async { function_name!() }.await;
        assert_eq!(
            [function_name!(), in_a_closure(), in_an_async_block],
            ["function_name_is_the_enclosing_async_functions_own"; 3]
        );
    }

    #[test]
    fn function_name_from_path_drops_the_module_path_and_suffixes() {
        assert_eq!(function_name_from_path("api::errors::name::f"), "name");
        assert_eq!(
            function_name_from_path("api::errors::name::{{closure}}::{{closure}}::f"),
            "name"
        );
        assert_eq!(function_name_from_path("name"), "name");
    }
}
