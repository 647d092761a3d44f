//! Several replicas: two real `account` processes on one PostgreSQL database
//! and one Redis, sharing their keys (RSA key files and `REFRESH_SECRET`)
//! through configuration, as a deployment behind a load balancer does. A pair
//! minted by one replica rotates on the other, a sign-out on one is seen by
//! the other at once, concurrent rotations across both yield one successor,
//! and the limits are shared.
//!
//! `standalone.rs` runs them on one Redis server, `cluster.rs` on a local
//! Redis Cluster (`tests/common/redis_cluster.rs`: `redis-server` processes on
//! loopback ports), where sign-out must SCAN one master only and a master's
//! failover must be survived without a restart. Without a cluster-capable
//! `redis-server` the cluster tests print `SKIPPED …` and pass, unless
//! `REQUIRE_REAL_STORES=1`.
//!
//! The stores are the ones of `tests/common/stores.rs` (`TEST_DATABASE_URL`,
//! `TEST_REDIS_URL`): each test creates its own database, dropped afterwards,
//! and removes the Redis keys of the users (and sources) it created. When a
//! store is unreachable the tests print `SKIPPED …` and pass, unless
//! `REQUIRE_REAL_STORES=1`, which makes them fail.

mod cluster;
mod helpers;
#[path = "../common/process.rs"]
mod process;
#[path = "../common/redis_cluster.rs"]
mod redis_cluster;
mod scenarios;
mod standalone;
// Shared with the api tests and the benchmark; not every item is used here.
#[allow(dead_code)]
#[path = "../common/stores.rs"]
mod stores;
