//! Users in PostgreSQL.

use async_trait::async_trait;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::model::{User, UserDetails, UserRepository};

/// The embedded PostgreSQL migrations (`migrations/postgres`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// [`UserRepository`] on a PostgreSQL pool.
pub struct PgUserRepository {
    pool: PgPool,
}

impl PgUserRepository {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }
}

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

/// The selected columns, as a macro so queries stay `&'static str` (sqlx
/// refuses dynamically built SQL unless it is explicitly audited).
macro_rules! user_columns {
    () => {
        "uid, email, password, name, image_url, website"
    };
}

/// Maps a driver error: unreachable → 503, unique violation → 409, else 500.
pub(crate) fn map_sqlx_error(err: sqlx::Error) -> AppError {
    match &err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            AppError::store_unavailable("database", &err)
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            AppError::Conflict("email already registered".into())
        }
        // Class 08 (connection exception), 57P0x (server shutting down), 53 (resources).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("57P") || c.starts_with("53")
            }) =>
        {
            AppError::store_unavailable("database", &err)
        }
        _ => AppError::Internal(anyhow::Error::new(err).context("database query failed")),
    }
}

#[async_trait]
impl UserRepository for PgUserRepository {
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
            "UPDATE users SET email = $2, name = $3, website = $4, updated_at = now() ",
            "WHERE uid = $1 RETURNING ",
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

    async fn ping(&self) -> AppResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }
}
