//! The signal that stops a server gracefully: SIGINT (Ctrl-C) or SIGTERM.

use tokio::signal::unix::{SignalKind, signal};

/// Completes on SIGINT or SIGTERM; servers then stop accepting connections
/// and finish the requests in flight.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, finishing in-flight requests");
}
