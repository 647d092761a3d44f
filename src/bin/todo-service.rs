//! The example domain service: `account::todo` behind the ID-token verifier.
//! Configured by environment variables only: `todo-service --help` lists
//! them (the table is `account::todo::settings`). Built with the
//! `todo-example` feature (on by default).

use std::io::IsTerminal as _;
use std::process::ExitCode;

use account::settings::help;
use account::todo::{TodoConfig, run, settings};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// The example domain service: a todo list per user, behind the account
/// service's ID tokens.
#[derive(Debug, Parser)]
#[command(name = "todo-service", version, after_help = help(&settings()))]
struct Cli {}

#[tokio::main]
async fn main() -> ExitCode {
    Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match TodoConfig::from_env() {
        Ok(config) => run(config).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
