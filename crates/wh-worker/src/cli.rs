//! The `wh-worker` command: settings → logging → Podman probe → [`worker::run`] until
//! SIGTERM. `main.rs` calls [`main`]; so does the end-to-end tests' copy of the binary.

use std::process::ExitCode;
use std::time::Duration;

use crate::transport::Endpoint;
use crate::{agent, runtime, worker};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use wh_cmd::EX_USAGE;

/// wh-worker: WiseHosting's worker agent.
#[derive(Parser)]
#[command(name = "wh-worker", version, about)]
struct Args {
    /// Control plane base URL, e.g. http://10.50.0.1:8081 (the mesh address).
    #[arg(long, env = "WH_CONTROL_PLANE_URL")]
    control_plane_url: String,
    /// This worker's API key (from `wh-control-plane workers create`).
    #[arg(long, env = "WH_WORKER_KEY", hide_env_values = true)]
    key: Option<String>,
    /// File holding the API key.
    #[arg(long, env = "WH_WORKER_KEY_FILE")]
    key_file: Option<std::path::PathBuf>,
    /// PEM roots to trust for an https control plane (default: the system store).
    #[arg(long, env = "WH_CA_BUNDLE")]
    ca_bundle: Option<std::path::PathBuf>,
    /// Address container ports are published on (this worker's mesh address).
    #[arg(long, env = "WH_PUBLISH_IP", default_value = "127.0.0.1")]
    publish_ip: String,
    /// Extra labels on every image and container this worker creates, `key=value`, repeatable.
    #[arg(long = "label", env = "WH_CONTAINER_LABELS", value_delimiter = ',')]
    labels: Vec<String>,
    /// Newest images kept per app running here (older unused ones are removed; 0 keeps only
    /// the images in use).
    #[arg(long, env = "WH_KEEP_IMAGES", default_value_t = 2)]
    keep_images: usize,
    /// Seconds between container resource samples.
    #[arg(long, env = "WH_STATS_SECS", default_value_t = 10)]
    stats_secs: u64,
    /// Seconds between heartbeats.
    #[arg(long, env = "WH_HEARTBEAT_SECS", default_value_t = 10)]
    heartbeat_secs: u64,
    /// Clone from hosts on private, loopback and mesh addresses, and from local paths
    /// (development and tests; never on a production worker).
    #[arg(long, env = "WH_ALLOW_PRIVATE_REPOS")]
    allow_private_repos: bool,
}

/// Runs the worker until SIGTERM; the process's exit code.
pub fn main() -> ExitCode {
    let args: Args = match wh_cmd::parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    wh_cmd::init_logging("WH_LOG", "info");
    let key = match (args.key, &args.key_file) {
        (Some(k), _) if !k.is_empty() => k,
        (_, Some(path)) => match std::fs::read_to_string(path) {
            Ok(k) => k.trim().to_owned(),
            Err(e) => {
                eprintln!("wh-worker: WH_WORKER_KEY_FILE {}: {e}", path.display());
                return ExitCode::from(EX_USAGE);
            }
        },
        _ => {
            eprintln!("wh-worker: WH_WORKER_KEY (or WH_WORKER_KEY_FILE) is not set");
            return ExitCode::from(EX_USAGE);
        }
    };
    let read_roots = |path: &std::path::Path| -> Result<rustls::RootCertStore, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        wh_http::client::roots_from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    };
    let roots = match args.ca_bundle.as_deref().map(read_roots).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wh-worker: WH_CA_BUNDLE: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let endpoint = match Endpoint::parse(&args.control_plane_url, roots) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("wh-worker: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let extra_labels = match worker::parse_labels(args.labels.iter().map(String::as_str)) {
        Ok(labels) => labels,
        Err(e) => {
            eprintln!("wh-worker: --label: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wh-worker: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let podman = match runtime::PodmanSettings::probe().await {
            Ok(settings) => runtime::Podman { settings },
            Err(e) => {
                eprintln!("wh-worker: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(runtime = ?podman.settings.runtime, disk_quota = %podman.settings.disk_quota, init = podman.settings.init, "podman probed");
        let stop = CancellationToken::new();
        let signal_stop = stop.clone();
        tokio::spawn(async move {
            wh_cmd::wait_for_signal().await;
            signal_stop.cancel();
        });
        let settings = worker::WorkerSettings {
            heartbeat: Duration::from_secs(args.heartbeat_secs.max(1)),
            stats_every: Duration::from_secs(args.stats_secs.max(1)),
            agent: agent::AgentSettings {
                publish_ip: args.publish_ip.clone(),
                extra_labels,
                images: crate::images::ImagePolicy {
                    keep: args.keep_images,
                    ..Default::default()
                },
                repos: crate::git::RepoPolicy { allow_private: args.allow_private_repos },
                ..agent::AgentSettings::default()
            },
        };
        match worker::run(endpoint, key, podman, settings, stop).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wh-worker: {e}");
                ExitCode::from(77) // EX_NOPERM: the key was refused
            }
        }
    })
}
