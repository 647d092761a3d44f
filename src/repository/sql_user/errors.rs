//! Turning the driver's errors into the app's, and the stored form of times.

use crate::error::AppError;

/// Unix seconds as the token table stores them (BIGINT).
pub(super) fn stored_seconds(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Maps a driver error: unreachable or busy → 503, unique violation → 409, else 500.
pub(super) fn map_sqlx_error(err: sqlx::Error) -> AppError {
    match &err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            AppError::store_unavailable("database", &err)
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            AppError::Conflict("email already registered".into())
        }
        // A token for a user deleted meanwhile.
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            AppError::NotFound("user not found".into())
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

#[cfg(test)]
mod tests {
    use super::*;

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
