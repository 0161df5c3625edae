//! A PostgreSQL cluster run from the local server binaries: `wh dev`'s embedded database and the
//! test kit's throwaway one are both this.
//!
//! The binaries are `WH_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`, else
//! `initdb` on `PATH`. Run as root, every server command runs as the `postgres` user through
//! `runuser` (PostgreSQL refuses to run as root), and the cluster's directory is given to it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a cluster could not be made, started or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    #[error("no PostgreSQL server binaries found (apt-get install postgresql, or set WH_PG_BIN)")]
    NoBinaries,
    #[error("{what}: {source}")]
    Spawn { what: String, source: std::io::Error },
    #[error("{what} failed: {output}")]
    Failed { what: String, output: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// True when this process runs as root (uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .is_some_and(|u| u == "0")
    })
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
pub fn bin_dir() -> Result<PathBuf, PgError> {
    if let Some(b) = std::env::var_os("WH_PG_BIN").filter(|b| !b.is_empty()) {
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
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").ok_or(PgError::NoBinaries)?;
    std::env::split_paths(&path).find(|d| d.join("initdb").is_file()).ok_or(PgError::NoBinaries)
}

/// A cluster in a data directory.
#[derive(Debug, Clone)]
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
}

impl Cluster {
    /// The cluster in `data` (made by [`Cluster::init`]), run with the local binaries.
    pub fn new(data: PathBuf) -> Result<Cluster, PgError> {
        Ok(Cluster { bin: bin_dir()?, data, as_postgres: is_root() })
    }

    /// The data directory.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// `program` of the server binaries, as the `postgres` user when we are root.
    pub fn command(&self, program: &str) -> Command {
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

    /// The shell command that stops this cluster at once (for a cleanup that runs after the
    /// process that started it is gone).
    pub fn stop_now_shell(&self) -> String {
        let quote = |s: &Path| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
        let pg_ctl = quote(&self.bin.join("pg_ctl"));
        let runner =
            if self.as_postgres { format!("runuser -u postgres -- {pg_ctl}") } else { pg_ctl };
        format!("{runner} -D {} stop -m immediate -w", quote(&self.data))
    }

    fn run(&self, mut c: Command, what: &str) -> Result<String, PgError> {
        let out = c.output().map_err(|source| PgError::Spawn { what: what.into(), source })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(PgError::Failed {
                what: what.into(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    String::from_utf8_lossy(&out.stdout).trim()
                ),
            })
        }
    }

    /// Creates the cluster unless its data directory holds one: superuser `postgres`, trust
    /// authentication (it listens on loopback only), UTF-8. `owned_dir` (the data directory or a
    /// parent) is given to the `postgres` user first when it runs the server.
    pub fn init(&self, owned_dir: &Path) -> Result<(), PgError> {
        if self.data.join("PG_VERSION").is_file() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.data)?;
        if self.as_postgres {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(owned_dir);
            self.run(chown, "giving the cluster's directory to postgres")?;
        }
        let mut init = self.command("initdb");
        init.arg("-D").arg(&self.data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]);
        self.run(init, "initdb").map(drop)
    }

    /// Whether a server runs on this data directory.
    pub fn is_running(&self) -> bool {
        let mut status = self.command("pg_ctl");
        status.arg("status").arg("-D").arg(&self.data).stdout(Stdio::null());
        status.status().is_ok_and(|s| s.success())
    }

    /// Starts the server on 127.0.0.1:`port` with these further server options (`-c name=value`
    /// …), logging to `log`; waits until it accepts connections (at most 60 s).
    pub fn start(&self, port: u16, options: &str, log: &Path) -> Result<(), PgError> {
        let mut start = self.command("pg_ctl");
        start
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&self.data)
            .arg("-l")
            .arg(log)
            .arg("-o")
            .arg(format!("-p {port} -c listen_addresses=127.0.0.1 {options}"))
            .stdout(Stdio::null());
        self.run(start, "starting postgres").map(drop)
    }

    /// Stops the server: `fast` closes open connections (nothing is lost), otherwise at once.
    pub fn stop(&self, fast: bool) -> Result<(), PgError> {
        let mut c = self.command("pg_ctl");
        let mode = if fast { "fast" } else { "immediate" };
        c.args(["stop", "-m", mode, "-w", "-D"]).arg(&self.data).stdout(Stdio::null());
        self.run(c, "stopping postgres").map(drop)
    }

    /// The URL of database `postgres` on 127.0.0.1:`port` as the `postgres` superuser.
    pub fn url(port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }
}

/// Whether the `postgres` user can enter `dir` (when root runs the cluster for it).
pub fn reachable_by_postgres(dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_command_quotes_its_paths() {
        let c = Cluster {
            bin: "/usr/lib/postgresql/15/bin".into(),
            data: "/tmp/it's here".into(),
            as_postgres: true,
        };
        assert_eq!(
            c.stop_now_shell(),
            "runuser -u postgres -- '/usr/lib/postgresql/15/bin/pg_ctl' -D '/tmp/it'\\''s here' \
             stop -m immediate -w"
        );
    }
}
