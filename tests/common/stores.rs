//! The real PostgreSQL and Redis that tests and benchmarks share with each
//! other and with later runs: where they are, whether they answer, a database
//! of one's own that is dropped afterwards, and removal of only the Redis keys
//! of the users one created. Included with `#[path]` by `tests/api` and the
//! benches.

use std::time::Duration;

use sqlx::Connection as _;
use uuid::Uuid;

/// `TEST_DATABASE_URL`: used only to create and drop databases.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `TEST_REDIS_URL`
pub fn test_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `Ok` when both stores answer, else which one does not.
pub async fn stores_reachable() -> Result<(), String> {
    let pg = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::PgConnection::connect(&admin_database_url()),
    )
    .await;
    match pg {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
        _ => {
            return Err(format!(
                "PostgreSQL at TEST_DATABASE_URL={}",
                admin_database_url()
            ));
        }
    }
    let redis = async {
        let client = redis::Client::open(test_redis_url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(5), redis).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(format!("Redis at TEST_REDIS_URL={}", test_redis_url())),
    }
}

/// A uniquely named database, dropped (`WITH (FORCE)`) when this is dropped,
/// also when the test fails.
pub struct TestDatabase {
    name: String,
    pub url: String,
}

impl TestDatabase {
    /// Creates `<prefix>_<uuid>`.
    pub async fn create(prefix: &str) -> Result<Self, sqlx::Error> {
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_database_url()).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&mut admin)
            .await?;
        let _ = admin.close().await;
        let url = with_database(&admin_database_url(), &name);
        Ok(Self { name, url })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime: do the async work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_database_url()).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                )))
                .execute(&mut admin)
                .await?;
                Ok::<_, sqlx::Error>(())
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("WARNING: could not drop database {}", self.name);
        }
    }
}

/// `postgres://host/admin_db?x` → `postgres://host/<name>?x`
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

/// Removes the `<uid>:*` keys of these users (found with SCAN), and nothing
/// else; returns how many. Blocking: call it from a thread or a `Drop`.
pub fn delete_user_keys(users: &[Uuid]) -> redis::RedisResult<usize> {
    let mut conn = redis::Client::open(test_redis_url())?.get_connection()?;
    let mut removed = 0;
    for uid in users {
        let keys: Vec<String> =
            redis::Commands::scan_match::<_, String>(&mut conn, format!("{uid}:*"))?
                .collect::<Result<_, _>>()?;
        if !keys.is_empty() {
            removed += redis::cmd("DEL").arg(keys).query::<usize>(&mut conn)?;
        }
    }
    Ok(removed)
}
