//! Users in an SQL database: PostgreSQL in production, SQLite when embedded.
//!
//! Both speak the same SQL here (`$n` placeholders, `RETURNING`,
//! `CURRENT_TIMESTAMP`), so one macro writes both repositories.

use async_trait::async_trait;
use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::model::{User, UserDetails, UserRepository};

/// The PostgreSQL migrations (`migrations/postgres`), embedded in the binary.
pub static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
/// The SQLite migrations (`migrations/sqlite`), embedded in the binary.
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(sqlx::FromRow)]
struct UserRow {
    uid: Uuid,
    email: String,
    password: String,
    name: String,
    image_url: String,
    website: String,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            uid: row.uid,
            email: row.email,
            password_hash: row.password,
            name: row.name,
            image_url: row.image_url,
            website: row.website,
        }
    }
}

/// Maps a driver error: unreachable or busy → 503, unique violation → 409, else 500.
fn map_sqlx_error(err: sqlx::Error) -> AppError {
    match &err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            AppError::store_unavailable("database", &err)
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            AppError::Conflict("email already registered".into())
        }
        sqlx::Error::Database(db) if is_transient(db.as_ref()) => {
            AppError::store_unavailable("database", &err)
        }
        _ => AppError::Internal(anyhow::Error::new(err).context("database query failed")),
    }
}

/// Whether a database error means "try again later" rather than a bug.
fn is_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else { return false };
    if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        pg_code_is_transient(&code)
    } else {
        sqlite_code_is_transient(&code)
    }
}

/// SQLSTATE class 08 (connection), 57P0x (shutting down), 53 (resources).
fn pg_code_is_transient(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")
}

/// SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
fn sqlite_code_is_transient(code: &str) -> bool {
    code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
}

/// The selected columns, as a macro so queries stay `&'static str` (sqlx
/// refuses dynamically built SQL unless it is explicitly audited).
macro_rules! user_columns {
    () => {
        "uid, email, password, name, image_url, website"
    };
}

/// Writes a [`UserRepository`] over a sqlx pool type.
macro_rules! sql_user_repository {
    ($(#[$doc:meta])* $name:ident, $pool:ty, $migrator:path) => {
        $(#[$doc])*
        pub struct $name {
            /// Also used by the start-up pass of `email_pass`.
            pub(super) pool: $pool,
        }

        impl $name {
            pub fn new(pool: $pool) -> Self {
                Self { pool }
            }

            /// Applies pending migrations.
            pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
                $migrator.run(&self.pool).await
            }
        }

        #[async_trait]
        impl UserRepository for $name {
            async fn find_by_id(&self, uid: Uuid) -> AppResult<User> {
                sqlx::query_as::<_, UserRow>(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE uid = $1"
                ))
                .bind(uid)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx_error)?
                .map(User::from)
                .ok_or_else(|| AppError::NotFound("user not found".into()))
            }

            async fn find_by_email(&self, email: &str) -> AppResult<Option<User>> {
                let row = sqlx::query_as::<_, UserRow>(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE lower(email) = lower($1)"
                ))
                .bind(email)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(row.map(User::from))
            }

            async fn create(&self, user: &User) -> AppResult<()> {
                sqlx::query(
                    "INSERT INTO users (uid, email, password, name, image_url, website) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(user.uid)
                .bind(&user.email)
                .bind(&user.password_hash)
                .bind(&user.name)
                .bind(&user.image_url)
                .bind(&user.website)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(())
            }

            async fn update_details(&self, uid: Uuid, details: &UserDetails) -> AppResult<User> {
                sqlx::query_as::<_, UserRow>(concat!(
                    "UPDATE users SET email = $2, name = $3, website = $4, ",
                    "updated_at = CURRENT_TIMESTAMP WHERE uid = $1 RETURNING ",
                    user_columns!()
                ))
                .bind(uid)
                .bind(details.email.as_str())
                .bind(&details.name)
                .bind(details.website.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx_error)?
                .map(User::from)
                .ok_or_else(|| AppError::NotFound("user not found".into()))
            }

            async fn update_password_hash(&self, uid: Uuid, password_hash: &str) -> AppResult<()> {
                let done = sqlx::query(
                    "UPDATE users SET password = $2, updated_at = CURRENT_TIMESTAMP WHERE uid = $1",
                )
                .bind(uid)
                .bind(password_hash)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                if done.rows_affected() == 0 {
                    return Err(AppError::NotFound("user not found".into()));
                }
                Ok(())
            }

            async fn delete(&self, uid: Uuid) -> AppResult<()> {
                sqlx::query("DELETE FROM users WHERE uid = $1")
                    .bind(uid)
                    .execute(&self.pool)
                    .await
                    .map_err(map_sqlx_error)?;
                Ok(())
            }

            async fn ping(&self) -> AppResult<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(map_sqlx_error)?;
                Ok(())
            }
        }
    };
}

sql_user_repository!(
    /// [`UserRepository`] on a PostgreSQL pool.
    PgUserRepository,
    PgPool,
    PG_MIGRATOR
);

sql_user_repository!(
    /// [`UserRepository`] on an embedded SQLite file.
    SqliteUserRepository,
    SqlitePool,
    SQLITE_MIGRATOR
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Email, Website};

    async fn sqlite_repo() -> SqliteUserRepository {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let repo = SqliteUserRepository::new(pool);
        repo.migrate().await.unwrap();
        repo
    }

    fn user(email: &str) -> User {
        User {
            uid: Uuid::new_v4(),
            email: email.into(),
            password_hash: "$argon2id$x".into(),
            name: String::new(),
            image_url: String::new(),
            website: String::new(),
        }
    }

    #[tokio::test]
    async fn sqlite_store_round_trips_a_user_and_finds_it_in_any_case() {
        let repo = sqlite_repo().await;
        let ada = user("ada@example.com");
        repo.create(&ada).await.unwrap();
        assert_eq!(repo.find_by_id(ada.uid).await.unwrap(), ada);
        assert!(matches!(
            repo.find_by_id(Uuid::new_v4()).await.unwrap_err(),
            AppError::NotFound(_)
        ));
        assert_eq!(
            repo.find_by_email("ADA@example.com").await.unwrap(),
            Some(ada.clone())
        );
        assert_eq!(repo.find_by_email("bob@example.com").await.unwrap(), None);
        repo.delete(ada.uid).await.unwrap();
        assert_eq!(repo.find_by_email("ada@example.com").await.unwrap(), None);
        repo.delete(ada.uid).await.unwrap();
        assert!(matches!(
            repo.find_by_id(Uuid::new_v4()).await.unwrap_err(),
            AppError::NotFound(_)
        ));
    }

    #[tokio::test]
    async fn sqlite_store_refuses_a_second_email_differing_only_in_case() {
        let repo = sqlite_repo().await;
        repo.create(&user("ada@example.com")).await.unwrap();
        let err = repo.create(&user("ADA@example.com")).await.unwrap_err();
        assert!(matches!(err, AppError::Conflict(_)), "{err:?}");
    }

    #[tokio::test]
    async fn sqlite_store_updates_details_and_refuses_a_taken_email() {
        let repo = sqlite_repo().await;
        let ada = user("ada@example.com");
        repo.create(&ada).await.unwrap();
        repo.create(&user("bob@example.com")).await.unwrap();
        let details = UserDetails {
            email: Email::parse("ada@lovelace.example").unwrap(),
            name: "Ada".into(),
            website: Website::parse("https://ada.example").unwrap(),
        };
        let updated = repo.update_details(ada.uid, &details).await.unwrap();
        assert_eq!(
            (
                updated.email.as_str(),
                updated.name.as_str(),
                updated.website.as_str()
            ),
            ("ada@lovelace.example", "Ada", "https://ada.example")
        );
        let taken = UserDetails {
            email: Email::parse("BOB@example.com").unwrap(),
            ..details
        };
        assert!(matches!(
            repo.update_details(ada.uid, &taken).await.unwrap_err(),
            AppError::Conflict(_)
        ));
    }

    #[test]
    fn transient_codes_are_told_apart_from_bugs() {
        assert!(pg_code_is_transient("08006"));
        assert!(pg_code_is_transient("57P01"));
        assert!(!pg_code_is_transient("42601"), "syntax error");
        assert!(sqlite_code_is_transient("5"));
        assert!(sqlite_code_is_transient("517"), "SQLITE_BUSY_SNAPSHOT");
        assert!(!sqlite_code_is_transient("2067"), "unique constraint");
    }
}
