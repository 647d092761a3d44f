//! How the service pools its PostgreSQL connections.
//!
//! sqlx's default pings a connection (a `Sync`, one round trip) every time it
//! leaves the idle queue, on top of the ping it sends when the connection
//! returns to the queue, which cannot be turned off. Under load that made
//! three round trips of every one-query request: ping, query, ping. Here a
//! connection is pinged on acquire only when it has been idle for
//! [`PING_IF_IDLE_FOR`] or longer: one used more recently passed the
//! on-release ping that moments ago, so the common case is the query and the
//! release ping. What this gives up: when the server drops connections that
//! were in use within the last second (a PostgreSQL restart or failover under
//! load), a request that takes such a connection fails once with 503 and the
//! connection is discarded; the pool opens new ones by itself. Connections
//! idle for longer are checked and replaced before use, as before.

use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgPoolOptions;

/// How long a pooled connection may sit idle and still be handed out without
/// a ping.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// How long a request waits for a pooled connection before it answers 503.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The pool options of the service's PostgreSQL user store: at most
/// `max_connections`, [`ACQUIRE_TIMEOUT`], pinged on acquire only after
/// [`PING_IF_IDLE_FOR`] of idleness.
pub fn postgres_pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}
