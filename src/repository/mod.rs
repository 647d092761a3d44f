//! Repositories: the stores behind the repository traits of [`crate::model`].
//!
//! Users live in PostgreSQL (or an embedded SQLite file), the refresh-token
//! whitelist in Redis (or in process memory, written through to SQLite). Each
//! implementation turns its driver's errors into [`crate::error::AppError`]:
//! an unreachable store becomes 503, a unique violation 409, anything else 500.

mod email_pass;
mod memory_token;
mod pg_pool;
mod redis_token;
mod sql_user;
#[cfg(test)]
mod test_sessions;

pub use memory_token::{COMMIT_WAIT, DEFAULT_SWEEP_INTERVAL, MemoryTokenRepository};
pub use pg_pool::{PING_IF_IDLE_FOR, postgres_pool_options};
pub use redis_token::{RedisTokenRepository, redis_connection};
pub use sql_user::{PgUserRepository, SqliteUserRepository};
