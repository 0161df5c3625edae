//! The gate between a provider and the live routing table.
//!
//! Every document goes through [`Applier::apply`]: identical bytes are skipped; a document that
//! does not parse changes nothing; one that would remove more than the allowed fraction of the
//! routes, or every route, is refused (unless the table is empty or mass removal is allowed),
//! because a half-written or wrong config from the control plane must not take every app
//! offline. Removing up to [`SMALL_REMOVAL`] routes is always allowed, even down to none: on a
//! platform with one or two apps, deleting them is a user's decision, not an outage. An
//! accepted document is compiled, swapped in, and written atomically (temp file, fsync, rename)
//! as the last known good, which [`Applier::load_snapshot`] reads at start so the proxy serves
//! before the control plane answers.
//!
//! Running providers apply through [`Applier::apply_blocking`], on a blocking thread: parsing,
//! compiling and above all writing the snapshot (an fsync) of a large configuration take from
//! milliseconds to hundreds of them, and the providers share a runtime thread with an accept
//! loop whose connections would stall meanwhile.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use crate::config::{Document, Format};

/// Routes any one update may remove whatever the fraction (so small tables can empty).
pub const SMALL_REMOVAL: usize = 2;
use crate::state::ProxyState;
use crate::table::{recompile, Table};

/// File name of the last-known-good snapshot inside the state dir.
pub const SNAPSHOT_FILE: &str = "last-known-good.json";

/// What happened to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Identical to the live one: nothing recompiled.
    Unchanged,
    /// Live as this generation.
    Applied { generation: u64, routes: usize, skipped: usize },
}

/// Why a document was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Parse(#[from] crate::config::dynamic::ParseError),
    #[error("refused: the new configuration would remove {removed} of {current} routes (allowed: {allowed}); set --allow-mass-removal to force")]
    MassRemoval { removed: usize, current: usize, allowed: usize },
    #[error("the configuration could not be applied: {0}")]
    Aborted(String),
}

/// Applies documents to a [`ProxyState`]'s table.
pub struct Applier {
    proxy: Arc<ProxyState>,
    state_dir: Option<PathBuf>,
    /// Largest fraction of routes one update may remove.
    pub max_removal_fraction: f64,
    pub allow_mass_removal: bool,
    /// The rule syntax of routers that do not name one.
    pub default_syntax: crate::config::rule::Syntax,
    /// The entry point names of the listeners.
    pub entry_points: crate::config::dynamic::EntryPointNames,
    last_hash: Mutex<Option<u64>>,
    hasher: foldhash::quality::FixedState,
    /// Fires with each newly applied table (health checks, TLS follow it).
    pub updates: tokio::sync::watch::Sender<Arc<Table>>,
}

impl Applier {
    pub fn new(proxy: Arc<ProxyState>, state_dir: Option<PathBuf>) -> Applier {
        let (updates, _) = tokio::sync::watch::channel(proxy.table.load_full());
        Applier {
            proxy,
            state_dir,
            max_removal_fraction: 0.5,
            allow_mass_removal: false,
            default_syntax: crate::config::rule::Syntax::V3,
            entry_points: Default::default(),
            last_hash: Mutex::new(None),
            hasher: foldhash::quality::FixedState::with_seed(0x5748_5052_4f58_5921),
            updates,
        }
    }

    /// [`Applier::apply`] on a blocking thread, off the runtime.
    pub async fn apply_blocking(
        self: &Arc<Self>,
        bytes: bytes::Bytes,
        format: Format,
        source: &'static str,
    ) -> Result<Outcome, ApplyError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.apply(&bytes, format, source))
            .await
            .unwrap_or_else(|e| Err(ApplyError::Aborted(e.to_string())))
    }

    /// Applies `bytes` from `source` (for logs).
    pub fn apply(&self, bytes: &[u8], format: Format, source: &str) -> Result<Outcome, ApplyError> {
        let hash = {
            let mut h = self.hasher.build_hasher();
            h.write(bytes);
            h.finish()
        };
        let mut last = self.last_hash.lock().unwrap_or_else(|e| e.into_inner());
        if *last == Some(hash) {
            return Ok(Outcome::Unchanged);
        }
        let doc = Document::parse(bytes, format).inspect_err(|e| {
            self.proxy.metrics.config_errors.fetch_add(1, Relaxed);
            tracing::warn!(source, error = %e, "configuration rejected; keeping the current one");
        })?;
        let outcome = self.apply_document(doc, source, true)?;
        *last = Some(hash);
        Ok(outcome)
    }

    /// Applies a parsed document; `guard` enables the mass-removal check.
    fn apply_document(
        &self,
        mut doc: Document,
        source: &str,
        guard: bool,
    ) -> Result<Outcome, ApplyError> {
        doc.default_syntax = self.default_syntax;
        doc.entry_points = self.entry_points.clone();
        let started = std::time::Instant::now();
        let current = self.proxy.table.load_full();
        if guard && !self.allow_mass_removal && !current.is_empty() {
            let old: HashSet<&str> = current.routes().iter().map(|r| &*r.name).collect();
            let new: HashSet<&str> = doc.router_names().collect();
            let removed = old.difference(&new).count();
            let fraction = if new.is_empty() {
                0
            } else {
                (old.len() as f64 * self.max_removal_fraction).floor() as usize
            };
            let allowed = fraction.max(SMALL_REMOVAL);
            if removed > allowed {
                self.proxy.metrics.config_refusals.fetch_add(1, Relaxed);
                let err = ApplyError::MassRemoval { removed, current: old.len(), allowed };
                tracing::error!(source, error = %err, "configuration refused");
                return Err(err);
            }
        }
        let generation = current.generation + 1;
        let doc = Arc::new(doc);
        let (metrics, health) = (&self.proxy.metrics, &self.proxy.health);
        let table = Arc::new(recompile(doc.clone(), generation, metrics, health, &current));
        let (routes, skipped) = (table.len(), table.warnings.len());
        let old = self.proxy.table.swap(table.clone());
        // Freeing a 10,000-route table takes milliseconds; do it off the provider's path. The
        // last request still holding it frees it instead if it outlives this.
        drop(current);
        std::thread::Builder::new().name("wh-proxy-drop".into()).spawn(move || drop(old)).ok();
        // Forget what no table uses any more; what only the old table still holds (requests in
        // flight, the thread freeing it) goes at a later apply.
        self.proxy.health.prune();
        self.proxy.metrics.prune_routes();
        let m = &self.proxy.metrics;
        m.config_generation.store(generation, Relaxed);
        m.config_applied_unix.store(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            Relaxed,
        );
        let swapped_ms = started.elapsed().as_secs_f64() * 1e3;
        self.updates.send_replace(table);
        if let Err(e) = self.persist(&doc) {
            tracing::error!(error = %e, "could not write the last-known-good snapshot");
        }
        let total_ms = started.elapsed().as_secs_f64() * 1e3;
        tracing::info!(
            source,
            generation,
            routes,
            skipped,
            swapped_ms,
            total_ms,
            "configuration applied"
        );
        Ok(Outcome::Applied { generation, routes, skipped })
    }

    /// Counts a provider's failed fetch (shown in metrics as a configuration error).
    pub fn count_fetch_error(&self) {
        self.proxy.metrics.config_errors.fetch_add(1, Relaxed);
    }

    /// Loads the last-known-good snapshot, if there is one; returns whether it was applied.
    pub fn load_snapshot(&self) -> bool {
        let Some(path) = self.snapshot_path() else { return false };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the snapshot");
                return false;
            }
        };
        match Document::parse(&bytes, Format::Json) {
            Ok(doc) => {
                let ok = self.apply_document(doc, "snapshot", false).is_ok();
                if ok {
                    // The snapshot is the normalised form; a provider's first fetch recompiles once.
                    tracing::info!(path = %path.display(), "serving the last known good configuration");
                }
                ok
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "snapshot unreadable; ignoring it");
                false
            }
        }
    }

    fn snapshot_path(&self) -> Option<PathBuf> {
        self.state_dir.as_ref().map(|d| d.join(SNAPSHOT_FILE))
    }

    fn persist(&self, doc: &Document) -> std::io::Result<()> {
        let Some(path) = self.snapshot_path() else { return Ok(()) };
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{SNAPSHOT_FILE}.tmp"));
        {
            // Buffered: serde_json writes a token at a time, which unbuffered was one write(2)
            // per token, 300 ms for 10,000 routers.
            let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
            serde_json::to_writer(&mut f, doc).map_err(std::io::Error::other)?;
            f.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()
    }
}
