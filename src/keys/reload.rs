//! Putting a re-read key ring in force while the service runs: on demand and on `SIGHUP`.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use super::{KeyPaths, SharedKeyRing};

/// Re-reads the key files and puts the new ring in force: after
/// `account keys rotate` / `retire`, without a restart and without losing a
/// request (requests in flight finish with the ring they started with).
#[derive(Clone)]
pub struct KeyReloader {
    paths: KeyPaths,
    ring: Arc<SharedKeyRing>,
}

impl KeyReloader {
    /// Reloads `ring` from the files of `paths`.
    pub(crate) fn new(paths: KeyPaths, ring: Arc<SharedKeyRing>) -> Self {
        Self { paths, ring }
    }

    /// Loads the ring from disk; on error the ring in force stays.
    /// Returns the published kids, the active one first.
    pub fn reload(&self) -> anyhow::Result<Vec<String>> {
        let ring = self.paths.load_ring()?;
        let kids = ring
            .jwks()
            .keys
            .into_iter()
            .filter_map(|jwk| jwk.kid)
            .collect();
        self.ring.replace(ring);
        Ok(kids)
    }

    /// Reloads on every `SIGHUP`, from a background task, for the life of the process.
    pub(crate) fn reload_on_sighup(&self) {
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: keys reload only on restart");
            return;
        };
        let reloader = self.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match reloader.reload() {
                    Ok(kids) => tracing::info!(?kids, "SIGHUP: key ring reloaded"),
                    Err(e) => tracing::error!(
                        error = %format!("{e:#}"),
                        "SIGHUP: keys not reloaded, the previous ring stays in force"
                    ),
                }
            }
        });
    }
}
