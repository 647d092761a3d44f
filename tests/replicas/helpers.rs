//! Two `account` processes (replicas A and B) on one test database and one
//! Redis, with one key set given to both by configuration; what a test needs
//! to drive them and to look into Redis.

use std::sync::Mutex;

use account::testing::{GeneratedKeyFiles, generate_keys};
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use uuid::Uuid;

#[path = "../common/harness.rs"]
mod harness;

pub use harness::{PASSWORD, Tokens, claims, header as jwt_header, http, notice};

use crate::process::{self, Process};
use crate::redis_cluster::RedisCluster;
use crate::stores::{TestDatabase, stores_reachable, test_redis_url};

pub fn unique_email() -> String {
    format!("replica-{}@example.com", Uuid::new_v4().simple())
}

impl Tokens {
    /// [`Tokens::jti`], by the name these tests give it.
    pub fn refresh_jti(&self) -> String {
        self.jti()
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
    harness::reachable_or_skip(&stores_reachable().await, test)
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
        let mut env = harness::base_env();
        env.extend([
            ("RUST_LOG", "info".into()),
            ("DATABASE_URL", db.url.clone()),
        ]);
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
        let response = harness::sign_up(&http(), base, email, PASSWORD).await;
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
    harness::post_json(&http(), url, body).await
}

/// `POST {base}/api/account/tokens` with `refresh_token`.
pub async fn refresh(base: &str, refresh_token: &str) -> reqwest::Response {
    harness::refresh(&http(), base, refresh_token).await
}

/// `GET {base}/api/account/me` with `id_token`.
pub async fn me(base: &str, id_token: &str) -> reqwest::Response {
    harness::me(&http(), base, id_token).await
}

/// Runs the `account` binary with exactly `env` in `dir` until it exits
/// (60 s at most); its exit success and everything it printed.
pub fn run_to_exit(dir: &std::path::Path, env: &[(&str, String)]) -> (bool, String) {
    process::run_to_exit(env!("CARGO_BIN_EXE_account"), dir, env)
}
