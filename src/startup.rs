//! Wiring: builds pools, clients, services and the router in one place, so the
//! binary and the tests start exactly the same app.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;

use crate::config::{Config, default_is_local_only};
use crate::handler::{AppState, HttpSettings, PageOptions, TrustedProxies, router};
use crate::keys::{DataKey, SharedKeyRing};
use crate::mail::{DRAIN_TIMEOUT, MailDrain, Mailer, mailer_from_config};
use crate::model::{ClientService, RateLimitRepository, RateLimitService, TokenRepository};
use crate::repository::MemoryTokenRepository;
use crate::secret::Secret;
use crate::service::mfa::passkey::Passkeys;
use crate::service::{
    AccountServiceImpl, AccountTokenServiceImpl, ClientServiceImpl, ClientTokenConfig, FlowConfig,
    Mfa, MfaConfig, PasswordHasher, ProfileCache, RateLimitServiceImpl, TokenConfig,
    TokenServiceImpl, UserAdmin, UserServiceImpl,
};
use crate::web::serve::{RESERVED_FILES, ServeSettings, reserve_open_files, serve};

use crate::keys::KeyReloader;

mod token_store;
mod user_store;

use token_store::{StoreLock, open_token_store};
use user_store::{UserStore, open_user_store};

/// A built app bound to its listener, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    serve: ServeSettings,
    /// The in-process token store (`None` with Redis), for inspection.
    memory_tokens: Option<MemoryTokenRepository>,
    key_reloader: KeyReloader,
    /// The SMTP sender, drained on shutdown (`None`: mails go to the log).
    mail_drain: Option<MailDrain>,
    /// The in-process token store's file, this process's while it serves.
    token_lock: Option<StoreLock>,
}

impl Application {
    /// Loads keys (generating development keys first when both stores are
    /// embedded), opens the user store and runs its migrations, prepares the
    /// token store (Redis lazily, so start-up does not need it), and binds.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        check_open_files(&config)?;
        let keys = load_keys(&config)?;
        let key_reloader = KeyReloader::new(config.keys.clone(), Arc::clone(&keys.ring));
        key_reloader.reload_on_sighup();

        let users = open_user_store(&config).await?;
        let tokens = open_token_store(&config).await?;
        let mail = mailer_from_config(&config)?;
        log_start(
            &config,
            &users.description,
            &tokens.description,
            &keys.origin,
            &mail.description,
        );

        // Bound first: the mails' links start at the address people reach,
        // which follows the port bound when `PUBLIC_URL` is unset.
        let listener = bind(&config).await?;
        let bound = listener.local_addr()?;
        let flows = config.pages.flows(&config.host, bound);
        if default_is_local_only(&config.pages, bound) {
            tracing::warn!(
                public_url = %config.pages.public_url(&config.host, bound),
                "PUBLIC_URL is unset while the service listens on every interface: mail \
                 links name localhost, which only this machine reaches, and the browser \
                 sign-in answers only pages opened at localhost; set PUBLIC_URL to the \
                 address people use"
            );
        }
        if !config.pages.serve_pages
            && (config.pages.verify_email_url.is_none()
                || config.pages.reset_password_url.is_none()
                || (config.pages.security_mail && config.pages.account_url.is_none()))
        {
            tracing::warn!(
                verify_email_url = %flows.verify_email_url,
                reset_password_url = %flows.reset_password_url,
                account_url = %flows.account_url,
                "PAGES=off while VERIFY_EMAIL_URL, RESET_PASSWORD_URL or ACCOUNT_URL is \
                 unset: mail links lead to pages this service does not serve; set them to \
                 your own pages"
            );
        }
        let state = services(
            &config,
            users,
            tokens.repo,
            tokens.limits,
            keys,
            Mailing {
                mailer: mail.mailer,
                flows,
            },
            (
                MfaConfig {
                    issuer: config
                        .mfa
                        .issuer(&config.pages.public_url(&config.host, bound)),
                    pending_ttl: config.mfa.pending_ttl,
                    reauth_max_age: config.mfa.reauth_max_age,
                    ceremony_ttl: config.webauthn.ceremony_ttl,
                },
                passkeys(&config, &config.pages.public_url(&config.host, bound)),
            ),
        )?;
        let public_url = config.pages.public_url(&config.host, bound);
        let router = router(state, &http_settings(&config, public_url));
        Ok(Self {
            listener,
            router,
            serve: ServeSettings {
                limits: config.connections.clone(),
                max_body_bytes: config.max_body_bytes,
            },
            memory_tokens: tokens.memory,
            key_reloader,
            mail_drain: mail.drain,
            token_lock: tokens.lock,
        })
    }

    /// Re-reads the key ring on demand (what `SIGHUP` does).
    pub fn key_reloader(&self) -> KeyReloader {
        self.key_reloader.clone()
    }

    /// The in-process token store, when `REDIS_URL` is unset (for inspection).
    pub fn memory_token_store(&self) -> Option<MemoryTokenRepository> {
        self.memory_tokens.clone()
    }

    /// The address actually bound (useful with `PORT=0`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until SIGINT or SIGTERM, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(crate::web::shutdown_signal()).await
    }

    /// Serves until `signal` completes, then finishes in-flight requests
    /// and gives pending mails up to [`DRAIN_TIMEOUT`] to go out. (The
    /// in-process token store needs nothing: every answered change is
    /// already committed.)
    /// Connections are bounded as `crate::web::serve` says; handlers get the
    /// peer address, which sessions record.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let _token_lock = self.token_lock;
        serve(self.listener, self.router, self.serve, signal).await?;
        if let Some(mail) = self.mail_drain {
            mail.drain(DRAIN_TIMEOUT).await;
        }
        Ok(())
    }
}

/// The keys this instance signs and verifies with.
struct LoadedKeys {
    /// Shared with the [`KeyReloader`], which replaces the ring on `SIGHUP`.
    ring: Arc<SharedKeyRing>,
    /// Where the keys came from, for the start-up line.
    origin: String,
    refresh_secret: Secret,
    /// Encrypts authenticator secrets; `None`: enrolment is off.
    data_key: Option<Arc<DataKey>>,
}

/// Reads the key files, generating the missing development keys first when
/// both stores are embedded (replicas sharing external stores must share their
/// keys too, so they never generate their own).
fn load_keys(config: &Config) -> anyhow::Result<LoadedKeys> {
    let origin = if config.is_embedded() {
        config.keys.generate_missing()?
    } else {
        config.keys.origin()
    };
    let keys = config.keys.load()?;
    if keys.data_key.is_none() {
        tracing::warn!(
            data_key_file = %config.keys.data_key_file.display(),
            "no data key (DATA_KEY, or the file DATA_KEY_FILE): enrolling an authenticator \
             answers 503 until one is set; `account keys generate` writes one"
        );
    }
    Ok(LoadedKeys {
        ring: Arc::new(SharedKeyRing::new(keys.ring)),
        origin,
        refresh_secret: keys.refresh_secret,
        data_key: keys.data_key.map(Arc::new),
    })
}

/// The machine clients in the user store chosen by `DATABASE_URL` (its
/// migrations run first), for the `account clients` commands: registering,
/// listing and removing, never signing.
pub(crate) async fn client_registry(config: &Config) -> anyhow::Result<Arc<dyn ClientService>> {
    let users = open_user_store(config).await?;
    Ok(Arc::new(ClientServiceImpl::registry(users.clients)))
}

/// An operator's access to the stores of `config` (`account users …`),
/// with the service's mailer; the in-process token store is this process's
/// while the returned [`Operator`] lives (an error if a service holds it).
pub(crate) async fn operator(config: &Config) -> anyhow::Result<Operator> {
    // Only a store a service has made: a command run from another directory
    // must not act on a fresh empty file of its own.
    if let crate::config::TokenStoreConfig::InProcess { file, .. } = &config.token_store {
        match file {
            Some(file) if !file.exists() => anyhow::bail!(
                "no in-process token store at {} (run this where the service runs, with its \
                 DATABASE_URL)",
                file.display()
            ),
            Some(_) => {}
            None => anyhow::bail!(
                "DATABASE_URL names an in-memory database: its users live only in the \
                 running service"
            ),
        }
    }
    let users = open_user_store(config).await?;
    let tokens = open_token_store(config).await?;
    let mail = mailer_from_config(config)?;
    // Links as the service makes them when PUBLIC_URL is unset: its port on
    // localhost, or its HOST.
    let bound = config
        .bind_address()
        .parse()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], config.port)));
    let admin = UserAdmin::new(
        users.repo,
        users.factors,
        tokens.repo,
        mail.mailer,
        config.pages.flows(&config.host, bound),
    );
    Ok(Operator {
        admin,
        stores: format!(
            "users in {}, sessions {}",
            users.description, tokens.description
        ),
        mail_drain: mail.drain,
        mail: mail.description,
        _token_lock: tokens.lock,
    })
}

/// What [`operator`] opened.
pub(crate) struct Operator {
    pub(crate) admin: UserAdmin,
    /// Which stores it opened, as the start-up line names them.
    pub(crate) stores: String,
    /// Drained before the command exits, so its mail leaves.
    pub(crate) mail_drain: Option<MailDrain>,
    /// Where mail goes, as the start-up line says it.
    pub(crate) mail: String,
    _token_lock: Option<StoreLock>,
}

/// The start-up line: which stores and keys this instance uses, and where
/// mail goes.
fn log_start(config: &Config, user_store: &str, token_store: &str, key_origin: &str, mail: &str) {
    if config.is_embedded() {
        tracing::info!(
            users = %user_store, refresh_tokens = %token_store, keys = %key_origin, mail = %mail,
            "embedded stores: for a single instance (several replicas need PostgreSQL and Redis)"
        );
    } else {
        tracing::info!(users = %user_store, refresh_tokens = %token_store, keys = %key_origin, mail = %mail, "stores");
    }
}

/// What the account flows mail, and where their links point.
struct Mailing {
    mailer: Arc<dyn Mailer>,
    flows: FlowConfig,
}

/// The use cases behind the handlers, over the user and token services.
fn services(
    config: &Config,
    users: UserStore,
    tokens: Arc<dyn TokenRepository>,
    limits: Arc<dyn RateLimitRepository>,
    keys: LoadedKeys,
    mailing: Mailing,
    (mfa, passkeys): (MfaConfig, Result<Arc<Passkeys>, String>),
) -> anyhow::Result<AppState> {
    let LoadedKeys {
        ring,
        refresh_secret,
        data_key,
        ..
    } = keys;
    let Mailing { mailer, flows } = mailing;
    let user_service = UserServiceImpl::new(
        users.repo,
        match config.hash_threads {
            Some(threads) => PasswordHasher::new(threads, config.hash_queue_limit),
            None => PasswordHasher::for_this_machine(config.hash_queue_limit),
        },
    );
    let account_tokens = AccountTokenServiceImpl::new(
        users.account_tokens,
        flows.verify_token_ttl,
        flows.reset_token_ttl,
    );
    let limits: Arc<dyn RateLimitService> = Arc::new(RateLimitServiceImpl::new(
        limits,
        config.rate_limits.clone(),
    ));
    let clients = ClientServiceImpl::new(
        users.clients,
        ring.clone(),
        ClientTokenConfig {
            issuer: config.id_token_issuer.clone(),
            audience: config.id_token_audience.clone(),
            ttl: config.client_token_ttl,
        },
        Arc::clone(&limits),
    );
    let token_service = TokenServiceImpl::new(
        tokens,
        ring,
        &refresh_secret,
        TokenConfig {
            issuer: config.id_token_issuer.clone(),
            audience: config.id_token_audience.clone(),
            id_token_ttl: config.id_token_ttl,
            refresh_token_ttl: config.refresh_token_ttl,
            refresh_reuse_grace: config.refresh_reuse_grace,
            max_sessions: config.max_sessions_per_user,
            session_max_age: config.session_max_age,
            mfa_token_ttl: config.mfa.token_ttl,
        },
    )?;
    Ok(AppState {
        account: Arc::new(AccountServiceImpl::new(
            // `GET /me` reads through a short-lived cache; decisions read the store.
            Arc::new(ProfileCache::new(Arc::new(user_service))),
            Arc::new(token_service),
            Arc::clone(&limits),
            Arc::new(account_tokens),
            mailer,
            flows,
            Mfa {
                factors: users.factors,
                data_key,
                passkeys,
                config: mfa,
            },
        )),
        clients: Arc::new(clients),
    })
}

/// The passkey ceremonies of the relying party `config` and `public_url`
/// make, or why passkeys are off (said once at start-up).
fn passkeys(config: &Config, public_url: &str) -> Result<Arc<Passkeys>, String> {
    let built = config
        .webauthn
        .relying_party(public_url, &config.pages.title)
        .and_then(|rp| {
            let passkeys = Passkeys::new(&rp)?;
            tracing::info!(rp_id = %rp.id, origins = ?rp.origins.iter().map(url::Url::as_str).collect::<Vec<_>>(), "passkeys");
            Ok(passkeys)
        });
    if let Err(why) = &built {
        tracing::warn!(%why, "passkeys are off");
    }
    built.map(Arc::new)
}

/// The HTTP part of the configuration.
fn http_settings(config: &Config, public_url: String) -> HttpSettings {
    HttpSettings {
        base_path: config.api_base_path.clone(),
        handler_timeout: config.handler_timeout,
        max_body_bytes: config.max_body_bytes,
        trusted_proxies: TrustedProxies::new(config.connections.trusted_proxies.clone()),
        pages: config.pages.serve_pages,
        page_options: PageOptions {
            public_url,
            title: config.pages.title.clone(),
            redirect_urls: config.pages.redirect_urls.clone(),
        },
    }
}

/// Raises the open-files limit and checks that `MAX_CONNECTIONS` fits in it
/// besides the PostgreSQL pool and the service's other files.
fn check_open_files(config: &Config) -> anyhow::Result<()> {
    let reserved = RESERVED_FILES + u64::from(config.database_max_connections);
    let limit = reserve_open_files(config.connections.max_connections, reserved)
        .map_err(anyhow::Error::msg)?;
    tracing::debug!(
        max_connections = config.connections.max_connections,
        open_files_limit = limit,
        "connections"
    );
    Ok(())
}

/// Binds `HOST:PORT`.
async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    let address = config.bind_address();
    crate::web::listen(&address)
        .await
        .with_context(|| format!("HOST/PORT: cannot listen on {address}"))
}
