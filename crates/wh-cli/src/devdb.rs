//! The embedded Postgres of `wh dev`: a cluster made with the local PostgreSQL server binaries
//! (`/usr/lib/postgresql/<newest>/bin`, or `WH_PG_BIN`), kept between runs under the dev
//! directory, listening on 127.0.0.1 only at a port remembered with it. Run as root, the cluster
//! belongs to the `postgres` user (PostgreSQL refuses to run as root); when that user cannot
//! reach the dev directory, the cluster lives under `/var/tmp/wh-dev-<hash>` instead.

use std::path::{Path, PathBuf};

use wh_cmd::pgcluster::{self, PgError};

use crate::error::CliError;

/// A started cluster; [`Cluster::stop`] shuts it down (fast mode).
pub struct Cluster(pgcluster::Cluster);

impl From<PgError> for CliError {
    fn from(e: PgError) -> CliError {
        CliError::Local(e.to_string())
    }
}

impl Cluster {
    /// Creates the cluster under `dir` on first use, then starts it on `port` (a stale server
    /// from a run that was killed is stopped first). Returns the cluster and its database URL.
    pub fn start(dir: &Path, port: u16) -> Result<(Cluster, String), CliError> {
        let mut data = dir.join("pg").join("data");
        if pgcluster::is_root() && !pgcluster::reachable_by_postgres(dir) {
            let abs = std::fs::canonicalize(dir)?;
            let hash = &hex::encode(sha_of(abs.to_string_lossy().as_bytes()))[..12];
            data = PathBuf::from(format!("/var/tmp/wh-dev-{hash}/data"));
        }
        let cluster = pgcluster::Cluster::new(data)?;
        let parent = cluster.data().parent().unwrap_or(cluster.data()).to_owned();
        cluster.init(&parent)?;
        if cluster.is_running() {
            let _ = cluster.stop(true);
        }
        let log = parent.join("postgres.log");
        cluster
            .start(port, "-c unix_socket_directories='' -c max_connections=50", &log)
            .map_err(|e| CliError::Local(format!("{e} (log: {})", log.display())))?;
        Ok((Cluster(cluster), pgcluster::Cluster::url(port)))
    }

    /// Stops the server (fast: open connections are closed, nothing is lost).
    pub fn stop(&self) {
        if let Err(e) = self.0.stop(true) {
            eprintln!("wh dev: stopping the dev database: {e}");
        }
    }
}

fn sha_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
