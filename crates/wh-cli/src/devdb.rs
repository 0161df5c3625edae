//! The embedded Postgres of `wh dev`: a cluster made with the local PostgreSQL server binaries
//! (`/usr/lib/postgresql/<newest>/bin`, or `WH_PG_BIN`), kept between runs under the dev
//! directory, listening on 127.0.0.1 only at a port remembered with it. Run as root, the cluster
//! belongs to the `postgres` user (PostgreSQL refuses to run as root); when that user cannot
//! reach the dev directory, the cluster lives under `/var/tmp/wh-dev-<hash>` instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::CliError;

/// A started cluster; [`Cluster::stop`] shuts it down (fast mode).
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .is_some_and(|u| u == "0")
    })
}

/// The directory holding `initdb` and `pg_ctl`.
fn bin_dir() -> Result<PathBuf, CliError> {
    if let Some(b) = std::env::var_os("WH_PG_BIN") {
        return Ok(PathBuf::from(b));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).ok_or_else(|| {
        CliError::Local(
            "no PostgreSQL server binaries found (apt-get install postgresql), or set DATABASE_URL"
                .into(),
        )
    })
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, mut c: Command, what: &str) -> Result<String, CliError> {
        let out = c.output().map_err(|e| CliError::Local(format!("{what}: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(CliError::Local(format!(
                "{what} failed: {}{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            )))
        }
    }

    /// Creates the cluster under `dir` on first use, then starts it on `port` (a stale server
    /// from a run that was killed is stopped first). Returns the cluster and its database URL.
    pub fn start(dir: &Path, port: u16) -> Result<(Cluster, String), CliError> {
        let as_postgres = is_root();
        let bin = bin_dir()?;
        let mut data = dir.join("pg").join("data");
        if as_postgres && !reachable_by_postgres(dir) {
            let abs = std::fs::canonicalize(dir)?;
            let hash = &hex::encode(sha_of(abs.to_string_lossy().as_bytes()))[..12];
            data = PathBuf::from(format!("/var/tmp/wh-dev-{hash}/data"));
        }
        let cluster = Cluster { bin, data, as_postgres };
        if !cluster.data.join("PG_VERSION").is_file() {
            std::fs::create_dir_all(&cluster.data)?;
            if as_postgres {
                let _ = Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(cluster.data.parent().unwrap_or(&cluster.data))
                    .status();
            }
            let mut init = cluster.command("initdb");
            init.arg("-D").arg(&cluster.data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]);
            cluster.run(init, "initdb")?;
        }
        let mut status = cluster.command("pg_ctl");
        status.arg("status").arg("-D").arg(&cluster.data).stdout(Stdio::null());
        if status.status().is_ok_and(|s| s.success()) {
            cluster.stop();
        }
        let log = cluster.data.parent().unwrap_or(&cluster.data).join("postgres.log");
        let mut start = cluster.command("pg_ctl");
        start
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&cluster.data)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(format!(
                "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=50"
            ))
            .stdout(Stdio::null());
        cluster
            .run(start, "starting the dev database")
            .map_err(|e| CliError::Local(format!("{e} (log: {})", log.display())))?;
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        Ok((cluster, url))
    }

    /// Stops the server (fast: open connections are closed, nothing is lost).
    pub fn stop(&self) {
        let mut c = self.command("pg_ctl");
        c.args(["stop", "-m", "fast", "-w", "-D"]).arg(&self.data).stdout(Stdio::null());
        let _ = self.run(c, "stopping the dev database");
    }
}

/// Whether the `postgres` user can enter and write `dir`.
fn reachable_by_postgres(dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn sha_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
