//! Users in an SQL database: PostgreSQL in production, SQLite when embedded,
//! with the single-use tokens of the account flows (`account_tokens`).
//!
//! Both speak the same SQL here (`$n` placeholders, `RETURNING`,
//! `ON CONFLICT … DO UPDATE`, `CURRENT_TIMESTAMP`), so one macro writes both
//! repositories.

use async_trait::async_trait;
use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::model::{
    AccountToken, AccountTokenRepository, ClientRepository, OAuthClient, TokenHolder, TokenPurpose,
    User, UserDetails, UserRepository,
};

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
    email_verified: bool,
    must_verify: bool,
    pending_email: Option<String>,
    /// Selected by the sign-in's lookup only.
    #[sqlx(default)]
    has_factor: bool,
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
            email_verified: row.email_verified,
            must_verify: row.must_verify,
            pending_email: row.pending_email,
            has_factor: row.has_factor,
        }
    }
}

/// A token's row as redeeming reads it.
#[derive(sqlx::FromRow)]
struct TokenRow {
    uid: Uuid,
    email: String,
    expires_at: i64,
}

impl TokenRow {
    /// Its holder, if the token had not expired at `now`.
    fn live_at(self, now: u64) -> Option<TokenHolder> {
        (u64::try_from(self.expires_at).unwrap_or(0) > now).then_some(TokenHolder {
            uid: self.uid,
            email: self.email,
        })
    }
}

/// A client's row (`oauth_clients`).
#[derive(sqlx::FromRow)]
struct ClientRow {
    client_id: String,
    name: String,
    secret_hash: Vec<u8>,
    scope: String,
    created_at: i64,
}

impl From<ClientRow> for OAuthClient {
    fn from(row: ClientRow) -> Self {
        Self {
            client_id: row.client_id,
            name: row.name,
            secret_hash: row.secret_hash,
            scope: row.scope,
            created_at: u64::try_from(row.created_at).unwrap_or(0),
        }
    }
}

/// The columns of [`ClientRow`].
macro_rules! client_columns {
    () => {
        "client_id, name, secret_hash, scope, created_at"
    };
}

mod errors;

use errors::{map_sqlx_error, stored_seconds};

/// The selected columns, as a macro so queries stay `&'static str` (sqlx
/// refuses dynamically built SQL unless it is explicitly audited).
macro_rules! user_columns {
    () => {
        "uid, email, password, name, image_url, website, email_verified, must_verify, \
         pending_email"
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

            /// Runs `sql`, an `UPDATE … RETURNING` of the user `$1` taking
            /// the email as `$2`, the name as `$3` and the website as `$4`.
            async fn write_details(
                &self,
                sql: &'static str,
                uid: Uuid,
                details: &UserDetails,
            ) -> AppResult<User> {
                sqlx::query_as::<_, UserRow>(sql)
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
                // With whether a second factor is confirmed: the sign-in gate
                // reads it from here, before the hash, rather than queue
                // behind other requests for a pool connection after it.
                let row = sqlx::query_as::<_, UserRow>(concat!(
                    "SELECT ",
                    user_columns!(),
                    ", EXISTS (SELECT 1 FROM mfa_factors f WHERE f.uid = users.uid \
                     AND f.confirmed_at IS NOT NULL) AS has_factor \
                     FROM users WHERE lower(email) = lower($1)"
                ))
                .bind(email)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(row.map(User::from))
            }

            async fn create(&self, user: &User) -> AppResult<()> {
                sqlx::query(
                    "INSERT INTO users \
                     (uid, email, password, name, image_url, website, email_verified, \
                     must_verify) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(user.uid)
                .bind(&user.email)
                .bind(&user.password_hash)
                .bind(&user.name)
                .bind(&user.image_url)
                .bind(&user.website)
                .bind(user.email_verified)
                .bind(user.must_verify)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(())
            }

            async fn update_details(&self, uid: Uuid, details: &UserDetails) -> AppResult<User> {
                // The right-hand sides read the row as it was: an address
                // other than the stored one is not verified.
                self.write_details(
                    concat!(
                        "UPDATE users SET email = $2, name = $3, website = $4, ",
                        "email_verified = (email_verified AND email = $2), ",
                        "updated_at = CURRENT_TIMESTAMP WHERE uid = $1 RETURNING ",
                        user_columns!()
                    ),
                    uid,
                    details,
                )
                .await
            }

            async fn update_details_pending(
                &self,
                uid: Uuid,
                details: &UserDetails,
            ) -> AppResult<User> {
                // The email stays; the new one waits for its link.
                self.write_details(
                    concat!(
                        "UPDATE users SET pending_email = $2, name = $3, website = $4, ",
                        "updated_at = CURRENT_TIMESTAMP WHERE uid = $1 RETURNING ",
                        user_columns!()
                    ),
                    uid,
                    details,
                )
                .await
            }

            async fn confirm_pending_email(&self, uid: Uuid, email: &str) -> AppResult<bool> {
                // The unique index on lower(email) decides whether another
                // account took the address meanwhile (`Conflict`).
                let done = sqlx::query(
                    "UPDATE users SET email = pending_email, pending_email = NULL, \
                     email_verified = TRUE, updated_at = CURRENT_TIMESTAMP \
                     WHERE uid = $1 AND pending_email = $2",
                )
                .bind(uid)
                .bind(email)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn update_password_hash(&self, uid: Uuid, password_hash: &str) -> AppResult<()> {
                // One transaction: the new hash and the end of the reset
                // links mailed before it, or neither. A link asked for
                // before the change must not set another password after it.
                let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
                let done = sqlx::query(
                    "UPDATE users SET password = $2, updated_at = CURRENT_TIMESTAMP WHERE uid = $1",
                )
                .bind(uid)
                .bind(password_hash)
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx_error)?;
                if done.rows_affected() == 0 {
                    return Err(AppError::NotFound("user not found".into()));
                }
                sqlx::query("DELETE FROM account_tokens WHERE uid = $1 AND purpose = $2")
                    .bind(uid)
                    .bind(TokenPurpose::Reset.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx_error)?;
                tx.commit().await.map_err(map_sqlx_error)
            }

            async fn mark_email_verified(&self, uid: Uuid, email: &str) -> AppResult<bool> {
                let done = sqlx::query(
                    "UPDATE users SET email_verified = TRUE, updated_at = CURRENT_TIMESTAMP \
                     WHERE uid = $1 AND email = $2",
                )
                .bind(uid)
                .bind(email)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn reset_password(
                &self,
                uid: Uuid,
                email: &str,
                password_hash: &str,
            ) -> AppResult<bool> {
                let done = sqlx::query(
                    "UPDATE users SET password = $3, email_verified = TRUE, \
                     updated_at = CURRENT_TIMESTAMP WHERE uid = $1 AND email = $2",
                )
                .bind(uid)
                .bind(email)
                .bind(password_hash)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(done.rows_affected() > 0)
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

        #[async_trait]
        impl AccountTokenRepository for $name {
            async fn store_token(&self, token: &AccountToken) -> AppResult<()> {
                // One statement: the user's older token of this purpose is
                // replaced, so only the newest link works.
                sqlx::query(
                    "INSERT INTO account_tokens \
                     (token_hash, uid, purpose, email, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (uid, purpose) DO UPDATE SET \
                     token_hash = excluded.token_hash, email = excluded.email, \
                     expires_at = excluded.expires_at, created_at = excluded.created_at",
                )
                .bind(&token.token_hash)
                .bind(token.uid)
                .bind(token.purpose.as_str())
                .bind(&token.email)
                .bind(stored_seconds(token.expires_at))
                .bind(stored_seconds(token.created_at))
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(())
            }

            async fn find_token(
                &self,
                token_hash: &[u8],
                purpose: TokenPurpose,
                now: u64,
            ) -> AppResult<Option<TokenHolder>> {
                let row = sqlx::query_as::<_, TokenRow>(
                    "SELECT uid, email, expires_at FROM account_tokens \
                     WHERE token_hash = $1 AND purpose = $2",
                )
                .bind(token_hash)
                .bind(purpose.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(row.and_then(|row| row.live_at(now)))
            }

            async fn take_token(
                &self,
                token_hash: &[u8],
                purpose: TokenPurpose,
                now: u64,
            ) -> AppResult<Option<TokenHolder>> {
                // One statement: of concurrent redemptions one deletes the
                // row and gets it, the others find nothing.
                let row = sqlx::query_as::<_, TokenRow>(
                    "DELETE FROM account_tokens WHERE token_hash = $1 AND purpose = $2 \
                     RETURNING uid, email, expires_at",
                )
                .bind(token_hash)
                .bind(purpose.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(row.and_then(|row| row.live_at(now)))
            }
        }

        #[async_trait]
        impl ClientRepository for $name {
            async fn create_client(&self, client: &OAuthClient) -> AppResult<()> {
                sqlx::query(
                    "INSERT INTO oauth_clients (client_id, name, secret_hash, scope, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&client.client_id)
                .bind(&client.name)
                .bind(&client.secret_hash)
                .bind(&client.scope)
                .bind(stored_seconds(client.created_at))
                .execute(&self.pool)
                .await
                .map_err(|err| match map_sqlx_error(err) {
                    AppError::Conflict(_) => AppError::Conflict("client id already taken".into()),
                    other => other,
                })?;
                Ok(())
            }

            async fn find_client(&self, client_id: &str) -> AppResult<Option<OAuthClient>> {
                sqlx::query_as::<_, ClientRow>(concat!(
                    "SELECT ",
                    client_columns!(),
                    " FROM oauth_clients WHERE client_id = $1"
                ))
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx_error)
                .map(|row| row.map(OAuthClient::from))
            }

            async fn list_clients(&self) -> AppResult<Vec<OAuthClient>> {
                sqlx::query_as::<_, ClientRow>(concat!(
                    "SELECT ",
                    client_columns!(),
                    " FROM oauth_clients ORDER BY created_at, client_id"
                ))
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx_error)
                .map(|rows| rows.into_iter().map(OAuthClient::from).collect())
            }

            async fn delete_client(&self, client_id: &str) -> AppResult<bool> {
                let done = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_sqlx_error)?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

mod factors;

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
mod factor_tests;
#[cfg(test)]
mod token_tests;

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
            email_verified: false,
            must_verify: false,
            pending_email: None,
            has_factor: false,
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

    #[tokio::test]
    async fn sqlite_store_keeps_must_verify_and_confirms_a_pending_email_only_while_free() {
        let repo = sqlite_repo().await;
        let ada = User {
            must_verify: true,
            email_verified: true,
            ..user("ada@example.com")
        };
        repo.create(&ada).await.unwrap();
        let found = repo.find_by_id(ada.uid).await.unwrap();
        assert!(found.must_verify);
        assert_eq!(found.pending_email, None);

        let details = UserDetails {
            email: Email::parse("ada@lovelace.example").unwrap(),
            name: "Ada".into(),
            website: Website::parse("").unwrap(),
        };
        let pending = repo
            .update_details_pending(ada.uid, &details)
            .await
            .unwrap();
        assert_eq!(
            (
                pending.email.as_str(),
                pending.pending_email.as_deref(),
                pending.email_verified,
                pending.name.as_str()
            ),
            ("ada@example.com", Some("ada@lovelace.example"), true, "Ada"),
            "the verified address stays until the new one is confirmed"
        );
        assert!(
            !repo
                .confirm_pending_email(ada.uid, "other@example.com")
                .await
                .unwrap(),
            "only the pending address"
        );
        // Another account takes the address meanwhile: the link fails.
        let bob = user("ADA@lovelace.example");
        repo.create(&bob).await.unwrap();
        assert!(matches!(
            repo.confirm_pending_email(ada.uid, "ada@lovelace.example")
                .await
                .unwrap_err(),
            AppError::Conflict(_)
        ));
        repo.delete(bob.uid).await.unwrap();
        assert!(
            repo.confirm_pending_email(ada.uid, "ada@lovelace.example")
                .await
                .unwrap()
        );
        let moved = repo.find_by_id(ada.uid).await.unwrap();
        assert_eq!(moved.email, "ada@lovelace.example");
        assert!(moved.email_verified);
        assert_eq!(moved.pending_email, None);
        assert!(
            !repo
                .confirm_pending_email(ada.uid, "ada@lovelace.example")
                .await
                .unwrap(),
            "once"
        );
    }
}
