//! The example domain service: `account::todo` behind the ID-token verifier.
//! Configured by `JWKS_URL`, `ID_TOKEN_ISSUER`, `ID_TOKEN_AUDIENCE`,
//! `JWKS_REFETCH_INTERVAL`, `HOST`, `TODO_PORT`, `HANDLER_TIMEOUT`,
//! `TODO_MAX_PER_USER`, `HEADER_READ_TIMEOUT`, `KEEP_ALIVE_TIMEOUT`,
//! `BODY_READ_TIMEOUT` and `MAX_CONNECTIONS` (see `account::todo`); logs
//! filtered by `RUST_LOG`. Built with the `todo-example` feature (on by
//! default).

use std::io::IsTerminal as _;
use std::process::ExitCode;

use account::todo::{TodoConfig, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
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
