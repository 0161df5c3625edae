//! A throwaway PostgreSQL for tests, with the workspace's migrations, and a fresh database per test.
//!
//! Without `DATABASE_URL`, the first test in a process starts a private cluster
//! ([`wh_cmd::pgcluster`], as `wh dev` does: the local server binaries, as the `postgres` user
//! when the tests run as root) on a free loopback port with a private socket directory,
//! durability switched off for speed. A [`reaper`](crate::reaper) stops it and deletes
//! its files when the test process exits, so no postmaster outlives the suite.
//!
//! With `DATABASE_URL` set, that server is used instead (the role needs `CREATEDB`).
//!
//! Either way, `migrations/` is applied once into a template database named after a hash of the
//! migration files, and [`fresh_db`] hands each test its own database cloned from that template.
//! Nothing holds a connection pool across tests, because every `#[tokio::test]` has its own runtime.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};
use tokio::sync::OnceCell;

use wh_cmd::pgcluster;

use crate::reaper::{self, sh_quote};
use crate::{net, Error, Result};

/// A database of its own for one test, created from the migrated template.
pub struct TestDatabase {
    /// Connection URL of this database.
    pub url: String,
    /// Its name.
    pub name: String,
    /// A pool on it (at most 10 connections).
    pub pool: PgPool,
}

/// The server every database of this process lives on.
struct Server {
    /// URL of an administrative database on it (without a trailing database name change).
    admin: PgConnectOptions,
    template: String,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Path of the workspace's `migrations/` directory.
pub fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")
}

/// A fresh, migrated database for the calling test.
pub async fn fresh_db() -> Result<TestDatabase> {
    let server = SERVER.get_or_try_init(init_server).await?;
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        unique_suffix()
    );
    let mut admin = server.admin.connect().await?;
    admin
        .execute(format!(r#"CREATE DATABASE "{name}" TEMPLATE "{}""#, server.template).as_str())
        .await?;
    admin.close().await?;
    let opts = server.admin.clone().database(&name);
    let url = opts.to_url_lossy().to_string();
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await?;
    Ok(TestDatabase { url, name, pool })
}

/// Options to reach the administrative database of this process's server (starting it if needed).
pub async fn server_options() -> Result<PgConnectOptions> {
    Ok(SERVER.get_or_try_init(init_server).await?.admin.clone())
}

fn unique_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

async fn init_server() -> Result<Server> {
    let admin: PgConnectOptions = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url.parse()?,
        _ => tokio::task::spawn_blocking(start_cluster)
            .await
            .map_err(|e| Error::Other(format!("cluster start panicked: {e}")))??,
    };
    let admin = admin.disable_statement_logging();
    let template = ensure_template(&admin).await?;
    Ok(Server { admin, template })
}

/// Creates the migrated template database unless one for these exact migrations exists.
async fn ensure_template(admin: &PgConnectOptions) -> Result<String> {
    let hash = migrations_hash()?;
    let template = format!("wh_template_{hash:016x}");
    let mut conn = connect_with_retry(admin).await?;
    // Serialise template creation across test processes sharing one DATABASE_URL server.
    conn.execute(format!("SELECT pg_advisory_lock({})", hash as i64).as_str()).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let building = format!("{template}_building");
        conn.execute(format!(r#"DROP DATABASE IF EXISTS "{building}""#).as_str()).await?;
        conn.execute(format!(r#"CREATE DATABASE "{building}""#).as_str()).await?;
        {
            let mut t = admin.clone().database(&building).connect().await?;
            let migrator = sqlx::migrate::Migrator::new(migrations_dir()).await?;
            migrator.run(&mut t).await?;
            t.close().await?;
        }
        conn.execute(format!(r#"ALTER DATABASE "{building}" RENAME TO "{template}""#).as_str())
            .await?;
    }
    conn.execute(format!("SELECT pg_advisory_unlock({})", hash as i64).as_str()).await?;
    conn.close().await?;
    Ok(template)
}

async fn connect_with_retry(opts: &PgConnectOptions) -> Result<PgConnection> {
    let mut last = None;
    for _ in 0..50 {
        match opts.connect().await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.map(Error::Db).unwrap_or_else(|| Error::NotReady("postgres".into())))
}

/// FNV-1a over the names and contents of the migration files, so a changed migration gets a new
/// template instead of a stale one.
fn migrations_hash() -> Result<u64> {
    let mut files: Vec<_> = std::fs::read_dir(migrations_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for b in name.bytes().chain(std::fs::read(&f)?) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(h & 0x7fff_ffff_ffff_ffff)
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
pub fn bin_dir() -> Result<PathBuf> {
    pgcluster::bin_dir().map_err(pg_error)
}

fn pg_error(e: pgcluster::PgError) -> Error {
    match e {
        pgcluster::PgError::NoBinaries => Error::Missing {
            program: "initdb".into(),
            hint: "install PostgreSQL server binaries (Debian: apt-get install postgresql)".into(),
        },
        other => Error::Other(other.to_string()),
    }
}

fn start_cluster() -> Result<PgConnectOptions> {
    let base = tempfile::Builder::new()
        .prefix(&format!("wh-testkit-pg-{}-", crate::run_tag()))
        .tempdir()?
        .keep();
    let sock = base.join("sock");
    std::fs::create_dir_all(&sock)?;
    let cluster = pgcluster::Cluster::new(base.join("data")).map_err(pg_error)?;
    // Registered before anything starts, so even a failed start leaves nothing behind.
    reaper::after_exit(&format!(
        "{} >/dev/null 2>&1; rm -rf {}",
        cluster.stop_now_shell(),
        sh_quote(&base.to_string_lossy()),
    ))?;
    cluster.init(&base).map_err(pg_error)?;
    let log = base.join("server.log");
    let mut last = None;
    for _ in 0..5 {
        let port = net::free_port();
        let options = format!(
            "-k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=300 -c shared_buffers=64MB",
            sock.display()
        );
        match cluster.start(port, &options, &log) {
            Ok(()) => {
                return Ok(PgConnectOptions::new()
                    .host("127.0.0.1")
                    .port(port)
                    .username("postgres")
                    .database("postgres"))
            }
            Err(e) => last = Some(e),
        }
    }
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    Err(Error::Other(format!("postgres did not start: {last:?}\n{log}")))
}

/// Drops a test database (optional: the throwaway cluster disappears anyway; useful against a
/// long-lived `DATABASE_URL` server).
pub async fn drop_db(db: TestDatabase) -> Result<()> {
    db.pool.close().await;
    let server = SERVER.get().ok_or_else(|| Error::Other("no server".into()))?;
    let mut admin = server.admin.connect().await?;
    admin
        .execute(format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, db.name).as_str())
        .await?;
    admin.close().await?;
    Ok(())
}
