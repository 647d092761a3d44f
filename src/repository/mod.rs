//! Repositories: the stores behind the repository traits of [`crate::model`].
//!
//! PostgreSQL holds users, Redis holds the refresh-token whitelist. Each
//! implementation turns its driver's errors into [`crate::error::AppError`]:
//! an unreachable store becomes 503, a unique violation 409, anything else 500.

mod pg_user;
mod redis_token;

pub use pg_user::PgUserRepository;
pub use redis_token::{RedisTokenRepository, redis_connection_manager};
