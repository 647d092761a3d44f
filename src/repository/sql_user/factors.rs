//! [`FactorRepository`] on the user store: `mfa_factors` and
//! `recovery_codes` (migrations `*_mfa_factors.sql`), written once for both
//! databases like the rest of this module.

use async_trait::async_trait;
use uuid::Uuid;

use super::{PgUserRepository, SqliteUserRepository, map_sqlx_error, stored_seconds};
use crate::error::{AppError, AppResult};
use crate::model::{Factor, FactorKind, FactorRepository};

/// A factor's row.
#[derive(sqlx::FromRow)]
struct FactorRow {
    id: Uuid,
    uid: Uuid,
    kind: String,
    name: Option<String>,
    secret: Vec<u8>,
    created_at: i64,
    confirmed_at: Option<i64>,
    last_used_at: Option<i64>,
    last_step: Option<i64>,
    credential: Option<String>,
    credential_id: Option<String>,
}

fn seconds(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

impl TryFrom<FactorRow> for Factor {
    type Error = AppError;

    fn try_from(row: FactorRow) -> AppResult<Self> {
        let kind = FactorKind::parse(&row.kind).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("unknown factor kind {:?}", row.kind))
        })?;
        Ok(Self {
            id: row.id,
            uid: row.uid,
            kind,
            name: row.name,
            secret: row.secret,
            created_at: seconds(row.created_at),
            confirmed_at: row.confirmed_at.map(seconds),
            last_used_at: row.last_used_at.map(seconds),
            last_step: row.last_step.map(seconds),
            credential: row.credential,
            credential_id: row.credential_id,
        })
    }
}

macro_rules! factor_columns {
    () => {
        "id, uid, kind, name, secret, created_at, confirmed_at, last_used_at, last_step, \
         credential, credential_id"
    };
}

macro_rules! sql_factor_repository {
    ($name:ident) => {
        #[async_trait]
        impl FactorRepository for $name {
            async fn create_factor(&self, factor: &Factor) -> AppResult<()> {
                sqlx::query(
                    "INSERT INTO mfa_factors \
                     (id, uid, kind, name, secret, created_at, confirmed_at, last_used_at, \
                     last_step, credential, credential_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(factor.id)
                .bind(factor.uid)
                .bind(factor.kind.as_str())
                .bind(factor.name.as_deref())
                .bind(&factor.secret)
                .bind(stored_seconds(factor.created_at))
                .bind(factor.confirmed_at.map(stored_seconds))
                .bind(factor.last_used_at.map(stored_seconds))
                .bind(factor.last_step.map(stored_seconds))
                .bind(factor.credential.as_deref())
                .bind(factor.credential_id.as_deref())
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(())
            }

            async fn factors(&self, uid: Uuid) -> AppResult<Vec<Factor>> {
                sqlx::query_as::<_, FactorRow>(concat!(
                    "SELECT ",
                    factor_columns!(),
                    " FROM mfa_factors WHERE uid = $1 ORDER BY created_at, id"
                ))
                .bind(uid)
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx_error)?
                .into_iter()
                .map(Factor::try_from)
                .collect()
            }

            async fn has_factor(&self, uid: Uuid) -> AppResult<bool> {
                let found: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM mfa_factors WHERE uid = $1 AND confirmed_at IS NOT NULL \
                     LIMIT 1",
                )
                .bind(uid)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(found.is_some())
            }

            async fn confirm_factor(
                &self,
                uid: Uuid,
                id: Uuid,
                created_after: u64,
                step: u64,
                now: u64,
            ) -> AppResult<bool> {
                let done = sqlx::query(
                    "UPDATE mfa_factors SET confirmed_at = $4, last_used_at = $4, \
                     last_step = $5 WHERE uid = $1 AND id = $2 AND confirmed_at IS NULL \
                     AND created_at >= $3",
                )
                .bind(uid)
                .bind(id)
                .bind(stored_seconds(created_after))
                .bind(stored_seconds(now))
                .bind(stored_seconds(step))
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(done.rows_affected() == 1)
            }

            async fn use_step(&self, uid: Uuid, id: Uuid, step: u64, now: u64) -> AppResult<bool> {
                let done = sqlx::query(
                    "UPDATE mfa_factors SET last_step = $3, last_used_at = $4 \
                     WHERE uid = $1 AND id = $2 AND confirmed_at IS NOT NULL \
                     AND (last_step IS NULL OR last_step < $3)",
                )
                .bind(uid)
                .bind(id)
                .bind(stored_seconds(step))
                .bind(stored_seconds(now))
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(done.rows_affected() == 1)
            }

            async fn rename_factor(
                &self,
                uid: Uuid,
                id: Uuid,
                name: Option<String>,
            ) -> AppResult<bool> {
                let done = sqlx::query(
                    "UPDATE mfa_factors SET name = $3 \
                     WHERE uid = $1 AND id = $2 AND confirmed_at IS NOT NULL",
                )
                .bind(uid)
                .bind(id)
                .bind(name)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_factor(&self, uid: Uuid, id: Uuid) -> AppResult<bool> {
                let done = sqlx::query("DELETE FROM mfa_factors WHERE uid = $1 AND id = $2")
                    .bind(uid)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_sqlx_error)?;
                Ok(done.rows_affected() == 1)
            }

            async fn sweep_pending(&self, uid: Uuid, before: u64) -> AppResult<()> {
                sqlx::query(
                    "DELETE FROM mfa_factors WHERE uid = $1 AND confirmed_at IS NULL \
                     AND created_at < $2",
                )
                .bind(uid)
                .bind(stored_seconds(before))
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(())
            }

            async fn replace_recovery_codes(
                &self,
                uid: Uuid,
                digests: &[String],
                now: u64,
            ) -> AppResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
                sqlx::query("DELETE FROM recovery_codes WHERE uid = $1")
                    .bind(uid)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx_error)?;
                for digest in digests {
                    sqlx::query(
                        "INSERT INTO recovery_codes (uid, digest, created_at) VALUES ($1, $2, $3)",
                    )
                    .bind(uid)
                    .bind(digest)
                    .bind(stored_seconds(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx_error)?;
                }
                tx.commit().await.map_err(map_sqlx_error)
            }

            async fn find_passkey(&self, credential_id: &str) -> AppResult<Option<Factor>> {
                sqlx::query_as::<_, FactorRow>(concat!(
                    "SELECT ",
                    factor_columns!(),
                    " FROM mfa_factors WHERE credential_id = $1 AND kind = 'webauthn' \
                     AND confirmed_at IS NOT NULL"
                ))
                .bind(credential_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx_error)?
                .map(Factor::try_from)
                .transpose()
            }

            async fn update_passkey(
                &self,
                uid: Uuid,
                id: Uuid,
                previous: &str,
                credential: &str,
                now: u64,
            ) -> AppResult<bool> {
                let done = sqlx::query(
                    "UPDATE mfa_factors SET credential = $3, last_used_at = $4 \
                     WHERE uid = $1 AND id = $2 AND kind = 'webauthn' \
                     AND confirmed_at IS NOT NULL AND credential = $5",
                )
                .bind(uid)
                .bind(id)
                .bind(credential)
                .bind(stored_seconds(now))
                .bind(previous)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(done.rows_affected() == 1)
            }

            async fn remove_all_factors(&self, uid: Uuid) -> AppResult<(u64, u64)> {
                let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
                let confirmed: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM mfa_factors \
                     WHERE uid = $1 AND confirmed_at IS NOT NULL",
                )
                .bind(uid)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_sqlx_error)?;
                sqlx::query("DELETE FROM mfa_factors WHERE uid = $1")
                    .bind(uid)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx_error)?;
                let codes = sqlx::query("DELETE FROM recovery_codes WHERE uid = $1")
                    .bind(uid)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx_error)?
                    .rows_affected();
                tx.commit().await.map_err(map_sqlx_error)?;
                Ok((u64::try_from(confirmed).unwrap_or(0), codes))
            }

            async fn redeem_recovery_code(&self, uid: Uuid, digest: &str) -> AppResult<bool> {
                let redeemed: Option<String> = sqlx::query_scalar(
                    "DELETE FROM recovery_codes WHERE uid = $1 AND digest = $2 RETURNING digest",
                )
                .bind(uid)
                .bind(digest)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
                Ok(redeemed.is_some())
            }

            async fn recovery_codes_left(&self, uid: Uuid) -> AppResult<u64> {
                let left: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE uid = $1")
                        .bind(uid)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(map_sqlx_error)?;
                Ok(seconds(left))
            }
        }
    };
}

sql_factor_repository!(PgUserRepository);
sql_factor_repository!(SqliteUserRepository);
