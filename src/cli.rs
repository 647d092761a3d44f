//! The `account` command line: serve (the default), manage development keys,
//! manage machine clients, act on an account (`users.rs`), or print an OAuth2
//! client's token.

mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, key_paths_from_env, settings};
use crate::keys::{
    GeneratedKeyFiles, generate_keys, list_keys, retire_key, rotate_keys, stage_next_key,
};
use crate::settings::Setting;
use crate::startup::{Application, client_registry};
use crate::token_cache::RedisMode;
pub use users::users_mfa_reset;
use users::{UsersCommand, users};

#[derive(Debug, Parser)]
#[command(
    name = "account",
    version,
    about = "JWT account service",
    after_help = "With no command it serves; `account serve --help` lists every setting."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    #[command(after_help = format!(
        "{}A .env file in the working directory is read too.",
        settings::help(&settings::service())
    ))]
    Serve,
    /// Manage signing keys.
    #[command(after_help = settings::help(settings::KEY_FILES))]
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage machine clients of the client-credentials grant
    /// (`POST /oauth/token`), in the user store of DATABASE_URL (the
    /// service's settings: `account serve --help`).
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Act on one account, in the user store of DATABASE_URL and the token
    /// store of REDIS_URL (the service's settings: `account serve --help`).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Print a bearer token of an OAuth2 client (client-credentials grant),
    /// through the token cache: shared in Redis when REDIS_URL is set (Redis
    /// Cluster seed nodes with REDIS_MODE=cluster). The secret is read from
    /// CLIENT_SECRET, never from the command line.
    #[command(after_help = settings::help(TOKEN_SETTINGS))]
    Token(TokenArgs),
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Register a client; prints its client_id and client_secret (the secret
    /// only this once: only its hash is stored).
    Add {
        /// A name for people (what the client is).
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// The scopes it may ask for, space-separated (e.g. "todos:read").
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        scope: String,
    },
    /// List the registered clients: id, name, scopes.
    List,
    /// Remove a client: it gets no new token (tokens already issued live out
    /// their lifetime, CLIENT_TOKEN_EXP).
    Remove {
        /// The client's id (`cl_…`).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The token endpoint, e.g. http://127.0.0.1:8080/oauth/token.
    #[arg(long)]
    token_url: String,
    /// The client's id (another issuer's ids may begin with `-`).
    #[arg(long, allow_hyphen_values = true)]
    client_id: String,
    /// The scope to ask for.
    #[arg(long, allow_hyphen_values = true)]
    scope: Option<String>,
    /// The Redis key of the cached token (default:
    /// oauth-token:<client id>:<hex SHA-256 of the URL and scope>).
    #[arg(long, allow_hyphen_values = true)]
    cache_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Write a development RSA-2048 pair and refresh secret (owner-only files)
    /// to PRIV_KEY_FILE, PUB_KEY_FILE and REFRESH_SECRET_FILE (or into --dir).
    Generate {
        /// Directory to write private.pem, public.pem and refresh.secret into,
        /// instead of the configured paths.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
    /// List the key ring: the active key, the staged next key, published keys.
    List,
    /// Generate the next key and publish it without signing with it yet.
    Stage,
    /// Make a new key active (the staged one, if any); the previous key stays
    /// published until retired. Then send SIGHUP to running services.
    Rotate,
    /// Stop publishing a key: tokens it signed are refused after the reload.
    Retire {
        /// The key id (`kid`) to retire. Key ids are base64url thumbprints,
        /// so one in 64 begins with `-`: it is taken as the kid, not an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

/// Parses the command line and runs it.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Keys { command } => keys(command),
        Command::Clients { command } => clients(command).await,
        Command::Users { command } => users(command).await,
        Command::Token(args) => token(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

const RELOAD_HINT: &str =
    "running services pick this up on SIGHUP (`kill -HUP <pid>`) or a restart";

fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate { dir, force } => {
            let files = match dir {
                Some(dir) => GeneratedKeyFiles::in_dir(&dir),
                None => {
                    let paths = key_paths_from_env();
                    GeneratedKeyFiles {
                        private_key: paths.private_key,
                        public_key: paths.public_key,
                        refresh_secret: paths.refresh_secret_file,
                        data_key: paths.data_key_file,
                    }
                }
            };
            let data_key = if generate_keys(&files, force)? {
                format!("and {}", files.data_key.display())
            } else {
                format!("(kept the existing data key {})", files.data_key.display())
            };
            println!(
                "wrote {}, {}, {} {data_key} (owner-only)",
                files.private_key.display(),
                files.public_key.display(),
                files.refresh_secret.display()
            );
        }
        KeysCommand::List => {
            for key in list_keys(&key_paths_from_env())? {
                println!("{}  {}", key.kid, key.status);
            }
        }
        KeysCommand::Stage => {
            let kid = stage_next_key(&key_paths_from_env())?;
            println!("staged and published next key {kid}; `account keys rotate` makes it active");
            println!("{RELOAD_HINT}");
        }
        KeysCommand::Rotate => {
            let rotation = rotate_keys(&key_paths_from_env())?;
            println!(
                "active key is now {}; {} stays published until `account keys retire {}`",
                rotation.active_kid, rotation.previous_kid, rotation.previous_kid
            );
            println!("{RELOAD_HINT}");
        }
        KeysCommand::Retire { kid } => {
            retire_key(&key_paths_from_env(), &kid)?;
            println!("{kid} is no longer published; tokens it signed are refused after the reload");
            println!("{RELOAD_HINT}");
        }
    }
    Ok(())
}

async fn clients(command: ClientsCommand) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let output = match command {
        ClientsCommand::Add { name, scope } => clients_add(&config, &name, &scope).await?,
        ClientsCommand::List => clients_list(&config).await?,
        ClientsCommand::Remove { client_id } => clients_remove(&config, &client_id).await?,
    };
    print!("{output}");
    Ok(())
}

/// `account clients add NAME --scope SCOPE`: registers a client in the user
/// store of `config`; the text it prints, `client_id: …` and
/// `client_secret: …` on lines of their own.
pub async fn clients_add(config: &Config, name: &str, scope: &str) -> anyhow::Result<String> {
    let credentials = client_registry(config).await?.register(name, scope).await?;
    Ok(format!(
        "client_id: {}\nclient_secret: {}\nscope: {}\n\
         the secret is shown only this once: only its hash is stored\n",
        credentials.client_id,
        credentials.client_secret.expose(),
        credentials.scope,
    ))
}

/// `account clients list`: one line per client, `<id>  <name>  <scope>`.
pub async fn clients_list(config: &Config) -> anyhow::Result<String> {
    let clients = client_registry(config).await?.list().await?;
    Ok(clients
        .iter()
        .map(|c| format!("{}  {}  {}\n", c.client_id, c.name, c.scope))
        .collect())
}

/// `account clients remove CLIENT_ID`; an unknown id is an error.
pub async fn clients_remove(config: &Config, client_id: &str) -> anyhow::Result<String> {
    if client_registry(config).await?.remove(client_id).await? {
        Ok(format!(
            "removed {client_id}; its tokens already issued expire within CLIENT_TOKEN_EXP\n"
        ))
    } else {
        anyhow::bail!("no client {client_id}")
    }
}

/// Prints the bare token on stdout.
async fn token(args: TokenArgs) -> anyhow::Result<()> {
    use crate::token_cache::TokenCache;

    let env = TokenEnv::from_vars(|name| std::env::var(name).ok())?;
    let mut builder = TokenCache::builder(args.token_url, args.client_id, env.secret);
    if let Some(scope) = args.scope {
        builder = builder.scope(scope);
    }
    if let Some(key) = args.cache_key {
        builder = builder.cache_key(key);
    }
    if let Some((url, mode)) = env.redis {
        builder = builder.redis_url(url).redis_mode(mode);
    }
    let token = builder.build()?.token().await?;
    println!("{}", token.secret());
    Ok(())
}

/// The variables `account token` reads, declared once.
pub const TOKEN_SETTINGS: &[Setting] = &[
    Setting {
        name: "CLIENT_SECRET",
        default: || "required".into(),
        help: || "the client's secret (never on the command line)".into(),
    },
    Setting {
        name: "REDIS_URL",
        default: || "unset: the token is cached in this process only".into(),
        help: || {
            "Redis shared by every caller, where the token is cached (cluster: comma-separated seeds)".into()
        },
    },
    Setting {
        name: "REDIS_MODE",
        default: || "standalone".into(),
        help: || "standalone or cluster".into(),
    },
];

/// What `account token` reads from the environment.
struct TokenEnv {
    secret: String,
    redis: Option<(String, RedisMode)>,
}

impl TokenEnv {
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let secret = var("CLIENT_SECRET")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| anyhow::anyhow!("CLIENT_SECRET: must be set to the client's secret"))?;
        let url = var("REDIS_URL").filter(|u| !u.trim().is_empty());
        let mode = RedisMode::parse(var("REDIS_MODE").as_deref()).map_err(anyhow::Error::msg)?;
        Ok(Self {
            secret,
            redis: url.map(|url| (url, mode)),
        })
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let app = Application::build(config).await?;
    tracing::info!(address = %app.local_addr()?, "account service listening");
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("account").chain(args.iter().copied()))
    }

    /// A base64url RFC 7638 thumbprint that begins with `-` (one in 64 do),
    /// and one whose second character would read as a short flag of `-D`.
    const HYPHEN_KIDS: [&str; 2] = [
        "-D3s0vQ2nN5QF1bWc3KxWb8dOqKqK3m6uUuXh8y5t9c",
        "--h9mV0x1lYQ_2x7mM4o5a0kR8zZb1T3wq6e2cYfA1Q",
    ];

    #[test]
    fn keys_retire_takes_a_kid_that_begins_with_a_hyphen() {
        for kid in HYPHEN_KIDS {
            match parse(&["keys", "retire", kid]).unwrap().command {
                Some(Command::Keys {
                    command: KeysCommand::Retire { kid: parsed },
                }) => assert_eq!(parsed, kid),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn users_mfa_reset_takes_one_address() {
        match parse(&["users", "mfa-reset", "ada@example.com"])
            .unwrap()
            .command
        {
            Some(Command::Users {
                command: UsersCommand::MfaReset { email },
            }) => assert_eq!(email, "ada@example.com"),
            other => panic!("{other:?}"),
        }
        assert!(
            parse(&["users", "mfa-reset"]).is_err(),
            "an address is needed"
        );
        let help = parse(&["users", "mfa-reset", "--help"])
            .unwrap_err()
            .to_string();
        assert!(help.contains("stop the service"), "{help}");
    }

    #[test]
    fn client_commands_take_generated_values_that_begin_with_a_hyphen() {
        match parse(&["clients", "remove", "-x_abc"]).unwrap().command {
            Some(Command::Clients {
                command: ClientsCommand::Remove { client_id },
            }) => assert_eq!(client_id, "-x_abc"),
            other => panic!("{other:?}"),
        }
        match parse(&["clients", "add", "-name", "--scope", "-s"])
            .unwrap()
            .command
        {
            Some(Command::Clients {
                command: ClientsCommand::Add { name, scope },
            }) => assert_eq!((name.as_str(), scope.as_str()), ("-name", "-s")),
            other => panic!("{other:?}"),
        }
        let token = [
            "token",
            "--token-url",
            "http://127.0.0.1:8080/oauth/token",
            "--client-id",
            "-Ab3",
            "--scope",
            "-read",
            "--cache-key",
            "-key",
        ];
        match parse(&token).unwrap().command {
            Some(Command::Token(args)) => {
                assert_eq!(args.client_id, "-Ab3");
                assert_eq!(args.scope.as_deref(), Some("-read"));
                assert_eq!(args.cache_key.as_deref(), Some("-key"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serve_help_lists_every_setting_with_its_default() {
        let err = parse(&["serve", "--help"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DisplayHelp);
        let help = err.to_string();
        assert!(help.contains("Usage: account serve"), "{help}");
        for setting in settings::service() {
            let line = format!("  {}  [default: {}]", setting.name, setting.default_text());
            assert!(help.contains(&line), "{line:?} in {help}");
            assert!(help.contains(&setting.help_text()), "{}", setting.name);
        }
        let top = parse(&["--help"]).unwrap_err().to_string();
        assert!(top.contains("account serve --help"), "{top}");
    }

    #[test]
    fn keys_and_token_help_list_the_settings_they_read() {
        for (args, table) in [
            (&["keys", "--help"][..], settings::KEY_FILES),
            (&["token", "--help"], TOKEN_SETTINGS),
        ] {
            let help = parse(args).unwrap_err().to_string();
            for setting in table {
                let line = format!("  {}  [default: {}]", setting.name, setting.default_text());
                assert!(help.contains(&line), "{line:?} in {help}");
            }
        }
    }

    #[test]
    fn account_token_reads_exactly_the_settings_of_its_table() {
        use crate::settings::check;
        check::declared_once(TOKEN_SETTINGS);
        let env = check::Recording::new(&[("CLIENT_SECRET", "s"), ("REDIS_URL", "redis://r")]);
        let read = TokenEnv::from_vars(|name| env.var(name)).unwrap();
        assert_eq!(env.read(), check::names(TOKEN_SETTINGS));
        assert_eq!(
            read.redis,
            Some(("redis://r".into(), RedisMode::Standalone))
        );
        check::page_names_exactly("The token command", TOKEN_SETTINGS);
        let missing = check::Recording::new(&[("REDIS_MODE", "ring")]);
        let err = TokenEnv::from_vars(|name| missing.var(name)).err().unwrap();
        assert!(err.to_string().starts_with("CLIENT_SECRET"), "{err}");
        let bad_mode = check::Recording::new(&[("CLIENT_SECRET", "s"), ("REDIS_MODE", "ring")]);
        let err = TokenEnv::from_vars(|name| bad_mode.var(name))
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("REDIS_MODE"), "{err}");
    }

    #[test]
    fn help_still_works_where_values_may_begin_with_a_hyphen() {
        for args in [
            &["keys", "retire", "--help"][..],
            &["keys", "retire", "-h"],
            &["clients", "remove", "--help"],
            &["clients", "add", "--help"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::DisplayHelp, "{args:?}");
        }
        let err = parse(&["keys", "retire"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    }
}
