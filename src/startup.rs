//! Wiring: builds pools, clients, services and the router in one place, so the
//! binary and the tests start exactly the same app.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::handler::{AppState, HttpSettings, router};
use crate::repository::{PgUserRepository, RedisTokenRepository, redis_connection_manager};
use crate::service::{PasswordHasher, TokenConfig, TokenServiceImpl, UserServiceImpl};

/// A built app bound to its listener, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Loads keys, connects the stores (PostgreSQL at once, running migrations;
    /// Redis lazily, so start-up does not need it), and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let keys = config.keys.load()?;

        let pool = PgPoolOptions::new()
            .max_connections(config.database_max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect(config.database_url.expose())
            .await
            .context("DATABASE_URL: cannot connect to PostgreSQL")?;
        let users = PgUserRepository::new(pool);
        users
            .migrate()
            .await
            .context("cannot run the database migrations")?;

        let redis = redis_connection_manager(config.redis_url.expose())
            .context("REDIS_URL: not a usable Redis URL")?;
        let tokens = RedisTokenRepository::new(redis);

        let state = AppState {
            user_service: Arc::new(UserServiceImpl::new(
                Arc::new(users),
                PasswordHasher::for_this_machine(),
            )),
            token_service: Arc::new(TokenServiceImpl::new(
                Arc::new(tokens),
                keys,
                TokenConfig {
                    issuer: config.id_token_issuer.clone(),
                    audience: config.id_token_audience.clone(),
                    id_token_ttl: config.id_token_ttl,
                    refresh_token_ttl: config.refresh_token_ttl,
                },
            )?),
        };
        let router = router(
            state,
            &HttpSettings {
                base_path: config.api_base_path.clone(),
                handler_timeout: config.handler_timeout,
                max_body_bytes: config.max_body_bytes,
            },
        );

        let address = config.bind_address();
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("HOST/PORT: cannot listen on {address}"))?;
        Ok(Self { listener, router })
    }

    /// The address actually bound (useful with `PORT=0`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until SIGINT or SIGTERM, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal` completes, then finishes in-flight requests.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(signal)
            .await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, finishing in-flight requests");
}
