//! Two `account` processes (replicas A and B) on one test database and one
//! Redis, with one key set given to both by configuration; what a test needs
//! to drive them and to look into Redis.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use account::testing::{GeneratedKeyFiles, generate_keys};
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

use crate::process::Process;
use crate::redis_cluster::RedisCluster;
use crate::stores::{TestDatabase, stores_reachable, test_redis_url};

pub const PASSWORD: &str = "correct horse battery";

/// A limit no test reaches (the limits' counters of 127.0.0.1 are shared by
/// every test and run on the same Redis).
pub const NO_LIMIT: &str = "1000000000";

pub fn require_real_stores() -> bool {
    std::env::var("REQUIRE_REAL_STORES").is_ok_and(|v| v == "1" || v == "true")
}

/// Prints a line the test harness does not swallow.
pub fn notice(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

pub fn unique_email() -> String {
    format!("replica-{}@example.com", Uuid::new_v4().simple())
}

/// The claims of a JWT, unverified.
pub fn claims(token: &str) -> Value {
    jwt_part(token, 1)
}

/// The header of a JWT.
pub fn jwt_header(token: &str) -> Value {
    jwt_part(token, 0)
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("JWT part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// A pair from sign-up, sign-in or refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub id_token: String,
    pub refresh_token: String,
}

impl Tokens {
    pub fn from_body(body: &Value) -> Self {
        let field = |name: &str| {
            body["tokens"][name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in {body}"))
                .to_owned()
        };
        Self {
            id_token: field("idToken"),
            refresh_token: field("refreshToken"),
        }
    }

    /// The refresh token's `jti`: its whitelist entry is `<user prefix>:<jti>`.
    pub fn refresh_jti(&self) -> String {
        claims(&self.refresh_token)["jti"]
            .as_str()
            .expect("jti")
            .to_owned()
    }

    pub fn uid(&self) -> Uuid {
        claims(&self.id_token)["sub"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("sub, a UUID")
    }
}

/// Where the replicas' Redis is, and how to look into it.
pub struct RedisTarget {
    /// Variables both replicas get (`REDIS_URL`, and `REDIS_MODE` for a cluster).
    env: Vec<(&'static str, String)>,
    /// Whether a user's keys carry the hash tag `{<uid>}` (cluster mode).
    tagged: bool,
    /// The URL of the node that holds a key (the one server when standalone).
    node_of: Box<dyn Fn(&str) -> String + Send + Sync>,
}

impl RedisTarget {
    /// The Redis at `TEST_REDIS_URL`.
    pub fn standalone() -> Self {
        let url = test_redis_url();
        Self {
            env: vec![("REDIS_URL", url.clone())],
            tagged: false,
            node_of: Box::new(move |_| url.clone()),
        }
    }

    /// A Redis Cluster: both replicas get `REDIS_MODE=cluster` and every
    /// node as a seed; a user's keys are looked up on the master of their slot.
    pub fn cluster<C>(cluster: C) -> Self
    where
        C: std::ops::Deref<Target = RedisCluster> + Send + Sync + 'static,
    {
        Self {
            env: vec![
                ("REDIS_MODE", "cluster".into()),
                ("REDIS_URL", cluster.seed_url()),
            ],
            tagged: true,
            node_of: Box::new(move |key| cluster.node_url(cluster.master_for_key(key))),
        }
    }

    /// How every key of `uid` begins, up to its first `:`.
    pub fn user_prefix(&self, uid: Uuid) -> String {
        if self.tagged {
            format!("{{{uid}}}")
        } else {
            uid.to_string()
        }
    }

    /// A connection to the node that holds `key`.
    fn connection(&self, key: &str) -> redis::RedisResult<redis::Connection> {
        redis::Client::open((self.node_of)(key))?.get_connection()
    }

    /// Every key of `uid` (SCAN on the node holding them), sorted.
    pub fn user_keys(&self, uid: Uuid) -> Vec<String> {
        let prefix = self.user_prefix(uid);
        let mut conn = self
            .connection(&format!("{prefix}:sessions"))
            .expect("Redis connection");
        let mut keys: Vec<String> =
            redis::Commands::scan_match::<_, String>(&mut conn, format!("{prefix}:*"))
                .expect("SCAN")
                .collect::<Result<_, _>>()
                .expect("SCAN");
        keys.sort();
        keys
    }

    /// The `jti`s of the user's whitelist entries (`<prefix>:<jti>` keys).
    pub fn whitelisted_jtis(&self, uid: Uuid) -> Vec<String> {
        let prefix = format!("{}:", self.user_prefix(uid));
        self.user_keys(uid)
            .iter()
            .filter_map(|key| key.strip_prefix(&prefix))
            .filter(|rest| rest.parse::<Uuid>().is_ok())
            .map(str::to_owned)
            .collect()
    }

    /// Removes these users' keys and these single keys; nothing else.
    fn delete(&self, users: &[Uuid], keys: &[String]) -> redis::RedisResult<()> {
        for uid in users {
            let found = self.user_keys(*uid);
            if let Some(first) = found.first() {
                redis::cmd("DEL")
                    .arg(&found)
                    .query::<()>(&mut self.connection(first)?)?;
            }
        }
        for key in keys {
            redis::cmd("DEL")
                .arg(key)
                .query::<()>(&mut self.connection(key)?)?;
        }
        Ok(())
    }
}

/// Whether PostgreSQL and Redis answer: when not, the test is skipped with a
/// visible line, or fails under `REQUIRE_REAL_STORES=1`.
pub async fn stores_available(test: &str) -> bool {
    match stores_reachable().await {
        Ok(()) => true,
        Err(store) if require_real_stores() => {
            panic!("{store} is unreachable and REQUIRE_REAL_STORES=1")
        }
        Err(store) => {
            notice(&format!("SKIPPED {test}: {store} is unreachable"));
            false
        }
    }
}

/// A key set made once for a group of replicas: the RSA key files and a
/// refresh secret, handed to each by configuration.
pub struct SharedKeys {
    dir: TempDir,
    files: GeneratedKeyFiles,
    refresh_secret: String,
}

impl SharedKeys {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = GeneratedKeyFiles::in_dir(dir.path());
        generate_keys(&files, false).expect("generate keys");
        let refresh_secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        Self {
            dir,
            files,
            refresh_secret,
        }
    }

    /// `PRIV_KEY_FILE`, `PUB_KEY_FILE`, `PUBLISHED_KEYS_DIR` and `REFRESH_SECRET`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "PRIV_KEY_FILE",
                self.files.private_key.display().to_string(),
            ),
            ("PUB_KEY_FILE", self.files.public_key.display().to_string()),
            (
                "PUBLISHED_KEYS_DIR",
                self.dir.path().join("published").display().to_string(),
            ),
            ("REFRESH_SECRET", self.refresh_secret.clone()),
        ]
    }
}

/// Replicas A and B of the account service.
pub struct Replicas {
    /// Base URLs (`http://127.0.0.1:<port>`) of A and B.
    pub a: String,
    pub b: String,
    pub redis: RedisTarget,
    processes: Vec<Process>,
    /// The working directory of each replica (nothing is written there).
    pub dirs: Vec<TempDir>,
    env: Vec<(&'static str, String)>,
    users: Mutex<Vec<Uuid>>,
    keys: Mutex<Vec<String>>,
    _shared_keys: SharedKeys,
    _db: TestDatabase,
}

impl Replicas {
    /// A and B on a fresh test database and the standalone Redis, with the
    /// limits out of the way unless `vars` sets them; `None` (after a notice)
    /// when the stores are unreachable and not required.
    pub async fn standalone(test: &str, vars: &[(&'static str, &str)]) -> Option<Self> {
        if !stores_available(test).await {
            return None;
        }
        Some(Self::start(RedisTarget::standalone(), vars).await)
    }

    /// A and B on a fresh test database and a Redis Cluster; `None` (after a
    /// notice) when PostgreSQL is unreachable or `redis-server` has no cluster
    /// support, and neither is required.
    pub async fn cluster<C>(test: &str, cluster: C) -> Option<Self>
    where
        C: std::ops::Deref<Target = RedisCluster> + Send + Sync + 'static,
    {
        if !stores_available(test).await {
            return None;
        }
        Some(Self::start(RedisTarget::cluster(cluster), &[]).await)
    }

    /// A and B on a fresh test database and `redis`.
    pub async fn start(redis: RedisTarget, vars: &[(&'static str, &str)]) -> Self {
        let db = TestDatabase::create("account_replicas")
            .await
            .expect("create a test database");
        let shared_keys = SharedKeys::generate();
        let mut env: Vec<(&'static str, String)> = vec![
            ("HOST", "127.0.0.1".into()),
            ("PORT", "0".into()),
            ("RUST_LOG", "info".into()),
            ("DATABASE_URL", db.url.clone()),
            ("DATABASE_MAX_CONNECTIONS", "4".into()),
            // Not the 5 s default: a loaded test machine would answer 503 by
            // chance.
            ("HANDLER_TIMEOUT", "120".into()),
            ("SIGNIN_RATE_LIMIT", NO_LIMIT.into()),
            ("SIGNIN_IP_RATE_LIMIT", NO_LIMIT.into()),
            ("SIGNIN_EMAIL_RATE_LIMIT", NO_LIMIT.into()),
            ("SIGNUP_RATE_LIMIT", NO_LIMIT.into()),
        ];
        env.extend(redis.env.iter().cloned());
        env.extend(shared_keys.env());
        for (name, value) in vars {
            env.retain(|(n, _)| n != name);
            env.push((name, (*value).to_owned()));
        }
        let mut replicas = Self {
            a: String::new(),
            b: String::new(),
            redis,
            processes: Vec::new(),
            dirs: Vec::new(),
            env,
            users: Mutex::new(Vec::new()),
            keys: Mutex::new(Vec::new()),
            _shared_keys: shared_keys,
            _db: db,
        };
        // Both at once, as a deployment starts them: the migrations and the
        // start-up email pass run on one database from two processes.
        let (a, b) = tokio::join!(
            start_replica("replica-a", &replicas.env),
            start_replica("replica-b", &replicas.env)
        );
        for (process, dir, base) in [a, b] {
            replicas.processes.push(process);
            replicas.dirs.push(dir);
            if replicas.a.is_empty() {
                replicas.a = base;
            } else {
                replicas.b = base;
            }
        }
        replicas
    }

    /// The variables every replica starts with.
    pub fn env(&self) -> &[(&'static str, String)] {
        &self.env
    }

    /// Remembers a user so its Redis keys are removed at the end.
    pub fn track(&self, uid: Uuid) {
        self.users.lock().unwrap().push(uid);
    }

    /// Remembers a single key (a counter) to remove at the end.
    pub fn track_key(&self, key: String) {
        self.keys.lock().unwrap().push(key);
    }

    /// Signs a new user up on `base`; its first pair (the user is tracked).
    pub async fn sign_up(&self, base: &str, email: &str) -> Tokens {
        let response = http()
            .post(format!("{base}/api/account/signup"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .expect("sign-up request");
        assert_eq!(response.status(), StatusCode::CREATED, "sign-up");
        let tokens = Tokens::from_body(&response.json().await.expect("sign-up body"));
        self.track(tokens.uid());
        tokens
    }
}

/// Starts the `account` binary with `env` in a working directory of its own:
/// the process, that directory and its base URL.
async fn start_replica(
    name: &'static str,
    env: &[(&'static str, String)],
) -> (Process, TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (process, base) = Process::start(
        name,
        env!("CARGO_BIN_EXE_account"),
        dir.path(),
        env,
        "account service listening",
    )
    .await;
    (process, dir, base)
}

impl Drop for Replicas {
    fn drop(&mut self) {
        // Stop the replicas first: nothing writes the keys while they go.
        self.processes.clear();
        let users = std::mem::take(&mut *self.users.lock().unwrap());
        let keys = std::mem::take(&mut *self.keys.lock().unwrap());
        if users.is_empty() && keys.is_empty() {
            return;
        }
        let redis = &self.redis;
        let deleted = std::thread::scope(|s| s.spawn(|| redis.delete(&users, &keys)).join());
        if !matches!(deleted, Ok(Ok(()))) {
            notice("WARNING: could not remove the test's Redis keys");
        }
    }
}

pub async fn post_json(url: String, body: &Value) -> reqwest::Response {
    http().post(url).json(body).send().await.expect("request")
}

/// `POST {base}/api/account/tokens` with `refresh_token`.
pub async fn refresh(base: &str, refresh_token: &str) -> reqwest::Response {
    post_json(
        format!("{base}/api/account/tokens"),
        &json!({ "refreshToken": refresh_token }),
    )
    .await
}

/// `GET {base}/api/account/me` with `id_token`.
pub async fn me(base: &str, id_token: &str) -> reqwest::Response {
    http()
        .get(format!("{base}/api/account/me"))
        .bearer_auth(id_token)
        .send()
        .await
        .expect("/me request")
}

/// Runs the `account` binary with exactly `env` in `dir` until it exits
/// (60 s at most); its exit success and everything it printed.
pub fn run_to_exit(dir: &std::path::Path, env: &[(&str, String)]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_account"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the account binary");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("child status").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the account binary kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("child output");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}
