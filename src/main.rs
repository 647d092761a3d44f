use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    // A `.env` file is optional (the dotenvy convention); the environment wins.
    // Read first, so that its RUST_LOG applies too.
    let _ = dotenvy::dotenv();
    account::telemetry::init();
    account::cli::run().await
}
