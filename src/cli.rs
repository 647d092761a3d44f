//! The `account` command line: serve (the default) or manage development keys.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::keys::{GeneratedKeyFiles, generate_keys};
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(name = "account", version, about = "JWT account service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Write a development RSA-2048 pair and refresh secret (owner-only files).
    Generate {
        /// Directory to write private.pem, public.pem and refresh.secret into.
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
}

/// Parses the command line and runs it.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Keys {
            command: KeysCommand::Generate { dir, force },
        } => {
            let files = GeneratedKeyFiles::in_dir(&dir);
            generate_keys(&files, force).map(|()| {
                println!(
                    "wrote {}, {} and {} (owner-only)",
                    files.private_key.display(),
                    files.public_key.display(),
                    files.refresh_secret.display()
                );
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    // A `.env` file is optional (the dotenvy convention); the environment wins.
    let _ = dotenvy::dotenv();
    let config = Config::from_env()?;
    let app = Application::build(config).await?;
    tracing::info!(address = %app.local_addr()?, "account service listening");
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}
