//! The user store chosen by `DATABASE_URL`: opening it, running its
//! migrations, and the SQLite file's mode.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use crate::config::{Config, UserStoreConfig, sqlite_file};
use crate::fs_private::create_private_dir;
use crate::model::{AccountTokenRepository, ClientRepository, FactorRepository, UserRepository};
use crate::repository::{PgUserRepository, SqliteUserRepository, postgres_pool_options};

/// The user store chosen by `DATABASE_URL`.
pub(super) struct UserStore {
    pub(super) repo: Arc<dyn UserRepository>,
    /// The same store, keeping the single-use tokens of the account flows.
    pub(super) account_tokens: Arc<dyn AccountTokenRepository>,
    /// The same store, keeping the machine clients (issue 11).
    pub(super) clients: Arc<dyn ClientRepository>,
    /// The same store, keeping second factors (issue 27).
    pub(super) factors: Arc<dyn FactorRepository>,
    /// What the start-up line calls it.
    pub(super) description: String,
}

/// Opens the user store chosen by `DATABASE_URL` and runs its migrations.
pub(super) async fn open_user_store(config: &Config) -> anyhow::Result<UserStore> {
    match &config.user_store {
        UserStoreConfig::Postgres { url } => {
            let pool = postgres_pool_options(config.database_max_connections)
                .connect(url.expose())
                .await
                .context("DATABASE_URL: cannot connect to PostgreSQL")?;
            let users = PgUserRepository::new(pool);
            users
                .migrate()
                .await
                .context("cannot run the PostgreSQL migrations")?;
            users
                .normalise_emails()
                .await
                .context("cannot normalise stored emails")?;
            let users = Arc::new(users);
            Ok(UserStore {
                repo: users.clone(),
                account_tokens: users.clone(),
                clients: users.clone(),
                factors: users,
                description: "PostgreSQL".to_owned(),
            })
        }
        UserStoreConfig::Sqlite { url } => {
            let file = sqlite_file(url);
            if let Some(file) = file.as_deref() {
                create_private_file(file).context("DATABASE_URL")?;
            }
            let options: SqliteConnectOptions = url
                .parse()
                .context("DATABASE_URL: not a usable sqlite:// URL")?;
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5));
            // A file takes a few readers (SQLite serialises writers itself). An
            // in-memory database lives as long as its one connection: keep it
            // open for good.
            let pool_options = match file {
                Some(_) => SqlitePoolOptions::new().max_connections(4),
                None => SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None),
            };
            let pool = pool_options
                .acquire_timeout(Duration::from_secs(3))
                .connect_with(options)
                .await
                .context("DATABASE_URL: cannot open the SQLite database")?;
            let users = SqliteUserRepository::new(pool);
            users
                .migrate()
                .await
                .context("cannot run the SQLite migrations")?;
            users
                .normalise_emails()
                .await
                .context("cannot normalise stored emails")?;
            let description = match file {
                Some(file) => format!("SQLite {}", file.display()),
                None => "SQLite in memory".to_owned(),
            };
            let users = Arc::new(users);
            Ok(UserStore {
                repo: users.clone(),
                account_tokens: users.clone(),
                clients: users.clone(),
                factors: users,
                description,
            })
        }
    }
}

/// Creates a SQLite file owner-only if it does not exist yet: it holds
/// password hashes or refresh-token records (SQLite gives its -wal and -shm
/// files the same mode).
pub(super) fn create_private_file(file: &Path) -> anyhow::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    if !file.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .with_context(|| format!("cannot create {}", file.display()))?;
    }
    Ok(())
}
