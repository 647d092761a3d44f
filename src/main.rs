use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    account::telemetry::init();
    account::cli::run().await
}
