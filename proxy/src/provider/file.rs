//! The file provider: the standalone mode, with no control plane.
//!
//! The file is read at start, re-read when its modification time or size changes (checked every
//! second; cheap, and works on every filesystem, unlike inotify on some network mounts), and on
//! SIGHUP. A file that is missing or invalid keeps the current table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::config::Format;
use crate::provider::{Applier, ApplyError};

/// Why a configuration file was not applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Apply { path: PathBuf, source: ApplyError },
    /// The blocking load itself died (a panic): a bug here.
    #[error("loading the file failed: {0}")]
    Internal(String),
}

/// Loads `path` once.
pub fn load(applier: &Applier, path: &std::path::Path) -> Result<(), FileError> {
    let bytes =
        std::fs::read(path).map_err(|source| FileError::Read { path: path.into(), source })?;
    applier
        .apply(&bytes, Format::detect(&path.to_string_lossy()), "file")
        .map(|_| ())
        .map_err(|source| FileError::Apply { path: path.into(), source })
}

/// Watches `path` until `stop`.
pub async fn watch(applier: Arc<Applier>, path: PathBuf, stop: CancellationToken) {
    let stamp = |p: &PathBuf| {
        std::fs::metadata(p).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
    };
    // Start from "unknown" so a change made between the initial load and this task's first tick
    // is not missed; re-reading identical bytes costs one hash (the applier skips them).
    let mut seen = None;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let forced = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let now = stamp(&path);
        if forced || now != seen {
            seen = now;
            // Off the runtime, which also serves connections (see `Applier::apply_blocking`).
            let (a, p) = (applier.clone(), path.clone());
            let loaded = tokio::task::spawn_blocking(move || load(&a, &p))
                .await
                .unwrap_or_else(|e| Err(FileError::Internal(e.to_string())));
            if let Err(e) = loaded {
                tracing::warn!(error = %e, "file provider: keeping the current configuration");
            }
        }
    }
}
