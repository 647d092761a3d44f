//! One Redis connection for both deployments: a single Redis (`REDIS_MODE`
//! `standalone`, the default) through the redis crate's `ConnectionManager`,
//! or Redis Cluster (`cluster`) through its cluster client, which follows
//! MOVED/ASK redirects, refreshes the slot map and reconnects by itself.
//! Both connect lazily: the process starts while Redis is down, its commands
//! fail (503 in the service) until Redis answers, then work again without a
//! restart. Shared by the account service's token store and by the token
//! cache (`account token`), so both read `REDIS_MODE` the same way.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Value};

/// How Redis is deployed: `REDIS_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisMode {
    /// One Redis at `REDIS_URL` (it may have replicas behind Sentinel or a
    /// managed failover; the service talks to one address).
    #[default]
    Standalone,
    /// Redis Cluster: `REDIS_URL` holds one or more comma-separated seed nodes.
    Cluster,
}

impl RedisMode {
    /// Reads `REDIS_MODE`'s value: unset or blank is `standalone`. The error
    /// names the variable.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self::Standalone),
            Some(v) if v.eq_ignore_ascii_case("standalone") => Ok(Self::Standalone),
            Some(v) if v.eq_ignore_ascii_case("cluster") => Ok(Self::Cluster),
            Some(v) => Err(format!(
                "REDIS_MODE: must be standalone or cluster, not {v:?}"
            )),
        }
    }

    /// `REDIS_MODE` from the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var("REDIS_MODE").ok().as_deref())
    }
}

impl fmt::Display for RedisMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Standalone => "standalone",
            Self::Cluster => "cluster",
        })
    }
}

/// The node URLs in `REDIS_URL`: exactly one in `standalone` mode, one or
/// more comma-separated seeds in `cluster` mode, each `redis://` (or
/// `rediss://`, which this build refuses: the redis crate is built without
/// TLS) and usable by the crate. Errors name the variable, never the URL (it may
/// hold a password).
pub fn node_urls(mode: RedisMode, url: &str) -> Result<Vec<String>, String> {
    let nodes: Vec<String> = url.split(',').map(|n| n.trim().to_owned()).collect();
    if mode == RedisMode::Standalone && nodes.len() > 1 {
        return Err(
            "REDIS_URL: holds several URLs; set REDIS_MODE=cluster to list Redis Cluster seed nodes"
                .to_owned(),
        );
    }
    for (i, node) in nodes.iter().enumerate() {
        let which = if nodes.len() > 1 {
            format!("node {} of REDIS_URL", i + 1)
        } else {
            "REDIS_URL".to_owned()
        };
        if node.is_empty() {
            return Err(format!("{which}: is empty"));
        }
        if !(node.starts_with("redis://") || node.starts_with("rediss://")) {
            return Err(format!("{which}: must be a redis:// or rediss:// URL"));
        }
        if let Err(err) = node.as_str().into_connection_info() {
            // The crate's message describes the problem, not the URL.
            return Err(format!(
                "{which}: not a usable Redis URL ({:?})",
                err.kind()
            ));
        }
    }
    Ok(nodes)
}

/// How long a connection attempt and a reply may take; how often a command
/// is retried (cluster: after a redirect, a CLUSTERDOWN/TRYAGAIN or a lost
/// connection) before its error is returned.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
    /// The whole of a command with its retries (cluster only; standalone
    /// retries once, within `response`).
    pub overall: Duration,
    pub retries: u32,
    pub max_retry_wait: Duration,
}

/// A Redis connection of either kind. Cheap to clone: clones share the
/// underlying connections. Run commands and scripts on it as on any
/// [`ConnectionLike`]; a command with keys goes to the node that owns them.
#[derive(Clone)]
pub enum RedisConn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// Connects lazily to `url` (checked with [`node_urls`]): nothing is
    /// reached until the first command. In cluster mode it starts the
    /// cluster client's background task, so call it inside a Tokio runtime.
    pub fn open(mode: RedisMode, url: &str, timeouts: Timeouts) -> Result<Self, String> {
        let nodes = node_urls(mode, url)?;
        match mode {
            RedisMode::Standalone => {
                let client = redis::Client::open(nodes[0].as_str())
                    .map_err(|e| format!("REDIS_URL: not a usable Redis URL ({:?})", e.kind()))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_response_timeout(Some(timeouts.response))
                    .set_number_of_retries(timeouts.retries.min(1) as usize)
                    .set_max_delay(timeouts.max_retry_wait);
                ConnectionManager::new_lazy_with_config(client, config)
                    .map(Self::Standalone)
                    .map_err(|e| format!("REDIS_URL: {:?}", e.kind()))
            }
            RedisMode::Cluster => {
                let client = ClusterClient::builder(nodes)
                    .connection_timeout(timeouts.connect)
                    .response_timeout(timeouts.response)
                    .overall_response_timeout(Some(timeouts.overall))
                    .retries(timeouts.retries)
                    .max_retry_wait(millis(timeouts.max_retry_wait))
                    .min_retry_wait(millis(timeouts.max_retry_wait / 10))
                    .build()
                    .map_err(|e| {
                        format!("REDIS_URL: not usable Redis Cluster seeds ({:?})", e.kind())
                    })?;
                // The pending connection connects in the background and again
                // from the seeds whenever it has no node left: the lazy
                // start the service needs.
                let config = ClusterConfig::new()
                    .set_connection_timeout(timeouts.connect)
                    .set_response_timeout(timeouts.response);
                Ok(Self::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
    }

    /// The token store's key scheme follows it.
    #[cfg(feature = "server")]
    pub fn mode(&self) -> RedisMode {
        match self {
            Self::Standalone(_) => RedisMode::Standalone,
            Self::Cluster(_) => RedisMode::Cluster,
        }
    }

    /// Runs `cmd` on the master that owns `key`'s hash slot (for a command
    /// whose keys are not among its arguments, such as SCAN); on a single
    /// Redis, simply runs it.
    #[cfg(feature = "server")]
    pub async fn query_on_master_of<T: redis::FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        key: &[u8],
    ) -> redis::RedisResult<T> {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        match self {
            Self::Standalone(conn) => cmd.query_async(conn).await,
            Self::Cluster(conn) => {
                let route = Route::with_key(key, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let value = conn.route_command(cmd.clone(), routing).await?;
                Ok(T::from_redis_value(value)?)
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_defaults_to_standalone_and_names_its_variable() {
        assert_eq!(RedisMode::parse(None), Ok(RedisMode::Standalone));
        assert_eq!(RedisMode::parse(Some(" ")), Ok(RedisMode::Standalone));
        assert_eq!(
            RedisMode::parse(Some("standalone")),
            Ok(RedisMode::Standalone)
        );
        assert_eq!(RedisMode::parse(Some("Cluster")), Ok(RedisMode::Cluster));
        let err = RedisMode::parse(Some("sentinel")).unwrap_err();
        assert!(err.starts_with("REDIS_MODE:"), "{err}");
    }

    #[test]
    fn cluster_seeds_are_comma_separated_and_each_checked() {
        assert_eq!(
            node_urls(
                RedisMode::Cluster,
                "redis://127.0.0.1:7000, redis://127.0.0.1:7001"
            ),
            Ok(vec![
                "redis://127.0.0.1:7000".to_owned(),
                "redis://127.0.0.1:7001".to_owned()
            ])
        );
        // The crate is built without TLS: a rediss:// node is refused at
        // start-up, by the variable's name, rather than on first use.
        let err = node_urls(RedisMode::Cluster, "redis://h:7000,rediss://h:7001").unwrap_err();
        assert!(err.starts_with("node 2 of REDIS_URL:"), "{err}");
        for bad in [
            "redis://a:1,",
            "redis://a:1,http://b:2",
            ",redis://a:1",
            "redis://a:1,redis://:pw@b:notaport",
        ] {
            let err = node_urls(RedisMode::Cluster, bad).unwrap_err();
            assert!(err.contains("REDIS_URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_single_redis_takes_exactly_one_url() {
        assert!(node_urls(RedisMode::Standalone, "redis://h:6379").is_ok());
        let err = node_urls(RedisMode::Standalone, "redis://a:1,redis://b:2").unwrap_err();
        assert!(err.contains("REDIS_MODE=cluster"), "{err}");
        let err = node_urls(RedisMode::Standalone, "http://h").unwrap_err();
        assert!(err.starts_with("REDIS_URL:"), "{err}");
    }

    #[test]
    fn errors_never_show_the_password() {
        for url in [
            "redis://:hunter2@a:1,redis://:hunter2@b:x",
            "redis://:hunter2@a:1,redis://:hunter2@b:2",
        ] {
            if let Err(err) = node_urls(RedisMode::Standalone, url) {
                assert!(!err.contains("hunter2"), "{err}");
            }
            if let Err(err) = node_urls(RedisMode::Cluster, url) {
                assert!(!err.contains("hunter2"), "{err}");
            }
        }
    }
}
