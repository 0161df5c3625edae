//! The operator's wildcard certificate for `*.route.<domain>`: loaded at start, reloaded when
//! the files change. Hosts it covers are served with it and never ordered one by one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::manager::CertManager;
use super::store::{dns_names, parse, CertError, CertStore, Wildcard};

/// Why the wildcard pair was not loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WildcardError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("--wildcard-cert: {0}")]
    Cert(#[from] CertError),
    #[error("--wildcard-cert {}: no *.<domain> name in the certificate", .0.display())]
    NoWildcardName(PathBuf),
}

/// Loads the pair; the certificate must carry a `*.` name.
pub fn load(store: &CertStore, cert: &Path, key: &Path) -> Result<(), WildcardError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| WildcardError::Read { path: p.into(), source })
    };
    let parsed = parse(&read(cert)?, &read(key)?)?;
    let suffix = dns_names(&parsed.leaf_der)
        .into_iter()
        .find_map(|n| n.strip_prefix("*.").map(str::to_owned))
        .ok_or_else(|| WildcardError::NoWildcardName(cert.into()))?;
    tracing::info!(%suffix, not_after = parsed.not_after, "wildcard certificate loaded");
    store.set_wildcard(Some(Wildcard { suffix: suffix.into(), cert: parsed }));
    Ok(())
}

/// Reloads when either file changes (checked every 5 s); a bad pair keeps the current one.
pub async fn watch(
    manager: Arc<CertManager>,
    cert: PathBuf,
    key: PathBuf,
    stop: CancellationToken,
) {
    let stamp = |p: &Path| {
        std::fs::metadata(p).ok().and_then(|m| m.modified().ok()).unwrap_or(SystemTime::UNIX_EPOCH)
    };
    let mut seen = (stamp(&cert), stamp(&key));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        let now = (stamp(&cert), stamp(&key));
        if now != seen {
            seen = now;
            match load(&manager.store, &cert, &key) {
                Ok(()) => manager.poke(),
                Err(e) => {
                    tracing::error!(error = %e, "wildcard certificate not reloaded; keeping the current one")
                }
            }
        }
    }
}
