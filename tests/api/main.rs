//! Integration tests: the real server on port 0, real PostgreSQL and Redis.

mod embedded;
mod errors;
mod helpers;
mod keys;
mod lifecycle;
mod outage;
mod profile;
mod tokens;
