//! `wh dev`: the whole platform on this machine, in one process. An embedded Postgres (kept
//! under the dev directory between runs, or `DATABASE_URL`), the control plane on
//! `127.0.0.1:8081`, a worker with the local Podman on loopback, and wh-proxy on
//! `127.0.0.1:8080` routing `http://<slug>.localhost:8080`. The first run creates an admin user
//! and signs this machine's `wh` in; secrets live in `<dir>/state.json` (0600) so sealed env vars
//! and sign-ins survive restarts. Ctrl-C stops everything and the database cleanly.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use wh_control_plane::config::{secret_bytes, Config};
use wh_control_plane::{auth, server, workers};

use crate::credentials::{self, Credentials};
use crate::devdb::Cluster;
use crate::error::CliError;

/// `wh dev` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Where the dev database, secrets and proxy state live.
    #[arg(long, env = "WH_DEV_DIR", default_value = ".wh-dev")]
    pub dir: PathBuf,
    /// The proxy: apps answer at http://<slug>.localhost:<port>.
    #[arg(long, env = "WH_DEV_PROXY_ADDR", default_value = "127.0.0.1:8080")]
    pub proxy_addr: SocketAddr,
    /// The control plane's API.
    #[arg(long, env = "WH_DEV_API_ADDR", default_value = "127.0.0.1:8081")]
    pub api_addr: SocketAddr,
    /// Git providers to connect (the control plane's WH_GITHUB_CLIENT_ID, …); the public URL
    /// defaults to the API's address.
    #[command(flatten)]
    pub git: wh_control_plane::config::GitProviderArgs,
}

/// What survives between runs (mode 0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    master_key: String,
    jwt_secret: String,
    proxy_token: String,
    admin_email: String,
    admin_password: String,
    db_port: u16,
    #[serde(default)]
    cli_token: Option<String>,
    #[serde(default)]
    worker_key: Option<String>,
}

fn free_port() -> Result<u16, CliError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl State {
    fn load_or_create(dir: &Path) -> Result<State, CliError> {
        let path = dir.join("state.json");
        if let Ok(bytes) = std::fs::read(&path) {
            return serde_json::from_slice(&bytes)
                .map_err(|e| CliError::Local(format!("{}: {e}", path.display())));
        }
        use base64::Engine;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source is available");
        let state = State {
            master_key: base64::engine::general_purpose::STANDARD.encode(key),
            jwt_secret: wh_control_plane::auth::random_hex(32),
            proxy_token: wh_control_plane::auth::random_hex(24),
            admin_email: "admin@wisehosting.localhost".into(),
            admin_password: wh_control_plane::auth::random_hex(12),
            db_port: free_port()?,
            cli_token: None,
            worker_key: None,
        };
        state.save(dir)?;
        Ok(state)
    }

    fn save(&self, dir: &Path) -> Result<(), CliError> {
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = dir.join(".state.json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(serde_json::to_string_pretty(self).expect("serialisable").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(tmp, dir.join("state.json"))?;
        Ok(())
    }
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> Result<(), CliError> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let mut state = State::load_or_create(&dir)?;

    // The database: DATABASE_URL, or the embedded cluster (a new port if ours is taken).
    let (cluster, database_url) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => (None, url),
        _ => {
            if std::net::TcpListener::bind(("127.0.0.1", state.db_port)).is_err() {
                state.db_port = free_port()?;
                state.save(&dir)?;
            }
            let (c, url) = Cluster::start(&dir, state.db_port)?;
            (Some(c), url)
        }
    };
    let stop = CancellationToken::new();
    let result = serve(&args, &dir, &mut state, &database_url, started, stop.clone()).await;
    stop.cancel();
    if let Some(c) = cluster {
        c.stop();
    }
    result
}

async fn serve(
    args: &DevArgs,
    dir: &Path,
    state: &mut State,
    database_url: &str,
    started: Instant,
    stop: CancellationToken,
) -> Result<(), CliError> {
    let mut git = args.git.clone();
    git.public_url = git.public_url.or_else(|| Some(format!("http://{}", args.api_addr)));
    let (git_providers, public_url) = git.resolve().map_err(|e| CliError::Usage(e.to_string()))?;
    let config = Config {
        git_providers,
        public_url,
        listen: args.api_addr,
        internal_listen: None,
        // `/metrics` of the dev control plane: not needed on a laptop.
        admin_listen: None,
        database_url: database_url.into(),
        jwt_secret: secret_bytes(&state.jwt_secret),
        jwt_ttl: Duration::from_secs(900),
        proxy_token: secret_bytes(&state.proxy_token),
        route_domain: "localhost".into(),
        route_tls: false,
        route_port: Some(args.proxy_addr.port()),
        proxy_addresses: Vec::new(),
        // Custom-domain checks ask WH_DNS_SERVERS (ip:port,…) or the public resolvers.
        dns: dns_settings()?,
        master_key: wh_control_plane::secrets::MasterKey::from_base64(&state.master_key)
            .map_err(|e| CliError::Local(e.to_string()))?,
        cookie_secure: false,
        allow_private_repos: true,
        // On a laptop, webhooks to a receiver on this machine (http://127.0.0.1:…) are the
        // point; every other private range stays refused.
        outbound_allow: wh_control_plane::outbound::guard::parse_cidrs("127.0.0.0/8,::1/128")
            .expect("literal CIDRs"),
        outbound_allow_http: true,
        outbound_dns: Vec::new(),
        http: wh_control_plane::httpserve::HttpLimits {
            drain: Duration::from_secs(5),
            ..Default::default()
        },
    };
    let cp = server::start(config, Duration::from_secs(30), stop.clone())
        .await
        .map_err(|e| CliError::Local(format!("control plane: {e}")))?;
    let pool = cp.pool.clone();
    let api_url = format!("http://{}", cp.public_addr);

    // The admin user, and this machine's `wh` signed in as them.
    let db = |e: sqlx::Error| CliError::Local(format!("database: {e}"));
    let admin: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(&state.admin_email)
        .fetch_optional(&pool)
        .await
        .map_err(db)?;
    let admin = match admin {
        Some(id) => id,
        None => {
            auth::create_user(&pool, &state.admin_email, &state.admin_password, true)
                .await
                .map_err(|e| CliError::Local(format!("creating the admin user: {e}")))?
                .id
        }
    };
    let token_ok = match &state.cli_token {
        Some(t) => crate::client::Api::new(&api_url, Some(t.clone()))?
            .json("GET", "/api/v1/me", None)
            .await
            .is_ok(),
        None => false,
    };
    if !token_ok {
        state.cli_token = Some(auth::create_api_token(&pool, admin, "wh dev").await.map_err(db)?);
        state.save(dir)?;
    }
    let credentials = credentials::save(&Credentials {
        api_url: api_url.clone(),
        token: state.cli_token.clone().unwrap_or_default(),
    })?;

    // The worker, with this machine's Podman.
    let worker_note = match start_worker(&pool, state, dir, &api_url, stop.clone()).await {
        Ok(()) => "connected (local Podman)".to_owned(),
        Err(e) => format!("not started: {e}; deploys wait until a worker connects"),
    };

    // The proxy, following the control plane.
    let proxy_args = wh_proxy::cli::Args {
        grace_period: Some("5s".into()),
        ..wh_proxy::cli::Args::following(
            format!("{api_url}/v1/traefik/proxy-config"),
            &state.proxy_token,
            dir.join("proxy"),
            args.proxy_addr,
        )
    };
    let settings = wh_proxy::cli::Settings::from_args(proxy_args)
        .map_err(|e| CliError::Local(e.to_string()))?;
    let proxy =
        wh_proxy::run::start(settings).await.map_err(|e| CliError::Local(format!("proxy: {e}")))?;

    let ready = started.elapsed();
    println!("WiseHosting is running (ready in {:.1} s)", ready.as_secs_f64());
    println!("  dashboard {api_url}/  (sign in as the admin below)");
    println!("  apps     http://<app>.localhost:{}", proxy.http_addr.port());
    println!("  API      {api_url}/api/v1");
    println!("  admin    {} / {}", state.admin_email, state.admin_password);
    println!("  worker   {worker_note}");
    println!("  wh CLI   signed in ({})", credentials.display());
    println!("  data     {}", dir.display());
    println!();
    println!("Deploy the example:  wh deploy --path examples/hello");
    println!("Ctrl-C stops everything.");
    let _ = std::io::stdout().flush();

    tokio::select! {
        _ = wh_cmd::wait_for_signal() => {}
        _ = stop.cancelled() => {}
    }
    println!("stopping…");
    stop.cancel();
    proxy.shutdown().await;
    cp.wait().await.map_err(|e| CliError::Local(e.to_string()))?;
    Ok(())
}

fn dns_settings() -> Result<wh_control_plane::domains::DnsSettings, CliError> {
    let mut dns = wh_control_plane::domains::DnsSettings::default();
    if let Ok(list) = std::env::var("WH_DNS_SERVERS") {
        dns.servers = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|e| CliError::Usage(format!("WH_DNS_SERVERS: {e}")))?;
    }
    Ok(dns)
}

/// Why `wh dev` runs without its worker (it says so and goes on: deploys wait for one).
#[derive(Debug, thiserror::Error)]
enum WorkerNotStarted {
    #[error("{0}")]
    Podman(#[from] wh_worker::runtime::RuntimeError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Local(#[from] CliError),
    #[error("{0}")]
    Base(#[from] crate::devbase::DevBaseError),
    #[error("WH_CONTAINER_LABELS: {0}")]
    Labels(wh_worker::worker::LabelError),
    #[error("{0}")]
    Endpoint(#[from] wh_http::client::ConfigError),
}

/// Registers (or re-keys) the dev worker and runs it until `stop`.
async fn start_worker(
    pool: &sqlx::PgPool,
    state: &mut State,
    dir: &Path,
    api_url: &str,
    stop: CancellationToken,
) -> Result<(), WorkerNotStarted> {
    use wh_worker::{agent, frameworks, runtime, transport, worker};
    let podman = runtime::Podman { settings: runtime::PodmanSettings::probe().await? };
    let known = match &state.worker_key {
        Some(k) => workers::find_by_key(pool, k).await?.is_some(),
        None => false,
    };
    if !known {
        let key = match workers::rotate_key(pool, "dev").await? {
            Some(k) => k,
            None => workers::create(pool, "dev", "127.0.0.1").await?.1,
        };
        state.worker_key = Some(key);
        state.save(dir)?;
    }
    let static_site = crate::devbase::static_base().await?;
    // Operator labels on everything the worker creates, as wh-worker's --label. By default
    // `wh.dev=<this directory's id>`: the worker then manages only this `wh dev`'s containers,
    // never another's or a test suite's on the same Podman.
    let configured = std::env::var("WH_CONTAINER_LABELS").unwrap_or_default();
    let mut labels = worker::parse_labels(configured.split(',').filter(|l| !l.is_empty()))
        .map_err(WorkerNotStarted::Labels)?;
    if labels.is_empty() {
        use sha2::Digest;
        let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        let id = hex::encode(sha2::Sha256::digest(abs.to_string_lossy().as_bytes()));
        labels.push(("wh.dev".to_owned(), id[..12].to_owned()));
    }
    let settings = worker::WorkerSettings {
        agent: agent::AgentSettings {
            publish_ip: "127.0.0.1".into(),
            base_images: frameworks::BaseImages { static_site, ..Default::default() },
            health_timeout: Duration::from_secs(30),
            extra_labels: labels,
            // Local development: repositories on this machine or the LAN are fine.
            repos: wh_worker::git::RepoPolicy { allow_private: true },
            ..Default::default()
        },
        ..Default::default()
    };
    let endpoint = transport::Endpoint::parse(api_url, None)?;
    let key = state.worker_key.clone().unwrap_or_default();
    tokio::spawn(async move {
        if let Err(e) = worker::run(endpoint, key, podman, settings, stop).await {
            eprintln!("wh dev: worker stopped: {e}");
        }
    });
    Ok(())
}
