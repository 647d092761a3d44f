//! Which stores `DATABASE_URL` and `REDIS_URL` choose, and where the
//! embedded ones keep their files.

use std::path::PathBuf;

use anyhow::bail;

use super::{Secret, UserStoreConfig, defaults};

pub(super) fn parse_user_store(url: Option<String>) -> anyhow::Result<UserStoreConfig> {
    let url = url.unwrap_or_else(|| defaults::SQLITE_URL.to_owned());
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(UserStoreConfig::Postgres {
            url: Secret::new(url),
        });
    }
    if url.starts_with("sqlite:") {
        url.parse::<sqlx::sqlite::SqliteConnectOptions>()
            .map_err(|e| anyhow::anyhow!("DATABASE_URL: not a usable sqlite:// URL: {e}"))?;
        return Ok(UserStoreConfig::Sqlite { url });
    }
    bail!("DATABASE_URL: must be a postgres:// or sqlite:// URL")
}

/// The folder of the SQLite file, or `data/` with PostgreSQL.
pub(super) fn data_dir(user_store: &UserStoreConfig) -> PathBuf {
    match user_store {
        UserStoreConfig::Sqlite { url } => sqlite_file(url)
            .and_then(|file| file.parent().map(PathBuf::from))
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR)),
        UserStoreConfig::Postgres { .. } => PathBuf::from(defaults::DATA_DIR),
    }
}

/// The SQLite file of the in-process token store: the users file, or
/// `tokens.db` in the data directory with PostgreSQL.
pub(super) fn token_file(user_store: &UserStoreConfig) -> Option<PathBuf> {
    match user_store {
        UserStoreConfig::Sqlite { url } => sqlite_file(url),
        UserStoreConfig::Postgres { .. } => Some(data_dir(user_store).join("tokens.db")),
    }
}

/// Whether a SQLite URL names an in-memory database (`sqlite::memory:`,
/// `sqlite://…?mode=memory`).
fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The file of a SQLite URL (`None` for an in-memory database).
pub(crate) fn sqlite_file(url: &str) -> Option<PathBuf> {
    if is_sqlite_memory(url) {
        return None;
    }
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().ok()?;
    let file = options.get_filename();
    (!file.as_os_str().is_empty()).then(|| file.to_path_buf())
}
