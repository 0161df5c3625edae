//! Wires the proxy together in order: metrics → proxy → last known good → provider → health
//! checks → listeners. `main` and the integration tests both start the proxy through [`start`].

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::{Settings, Source};
use crate::forward::{ClientSettings, Proxy};
use crate::health::HealthChecker;
use crate::metrics::Metrics;
use crate::provider::{self, Applier};
use crate::server::{self, ServerSettings};

/// A started proxy.
pub struct Running {
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub proxy: Arc<Proxy>,
    pub applier: Arc<Applier>,
    stop: CancellationToken,
    graceful: Arc<GracefulShutdown>,
    accept_loop: tokio::task::JoinHandle<()>,
    grace: std::time::Duration,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable (exit code 64).
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Starts everything; returns once the listeners are bound.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let metrics = Arc::new(Metrics::default());
    let proxy = Arc::new(Proxy::new(
        metrics,
        settings.trusted.clone(),
        settings.access_log,
        &ClientSettings::default(),
    ));
    let mut applier = Applier::new(proxy.clone(), Some(settings.state_dir.clone()));
    applier.allow_mass_removal = settings.allow_mass_removal;
    applier.max_removal_fraction = settings.max_removal_fraction;
    let applier = Arc::new(applier);
    let stop = CancellationToken::new();

    // The last known good first, so we serve even if the provider is down.
    let had_snapshot = applier.load_snapshot();

    // Health checks follow every applied table.
    let mut updates = applier.updates.subscribe();
    let mut checker = HealthChecker::new(stop.clone());
    checker.reconcile(&updates.borrow_and_update());
    tokio::spawn(async move {
        while updates.changed().await.is_ok() {
            let table = updates.borrow_and_update().clone();
            checker.reconcile(&table);
        }
    });

    match &settings.source {
        Source::File(path) => {
            if let Err(e) = provider::file::load(&applier, path) {
                if !had_snapshot {
                    return Err(StartError::Config(e));
                }
                tracing::error!(error = %e, "routes file unusable; serving the last known good");
            }
            tokio::spawn(provider::file::watch(applier.clone(), path.clone(), stop.clone()));
        }
        Source::Http { url, token, watch } => {
            let p = provider::http::HttpProvider::new(
                url,
                token.as_ref().map(|t| t.expose()),
                settings.poll_interval,
                *watch,
            )
            .map_err(StartError::Config)?;
            tokio::spawn(provider::http::run(applier.clone(), p, stop.clone()));
        }
    }

    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })
    };
    let http = bind(settings.http_addr).await?;
    let admin = bind(settings.admin_addr).await?;
    let http_addr = http
        .local_addr()
        .map_err(|source| StartError::Bind { addr: settings.http_addr, source })?;
    let admin_addr = admin
        .local_addr()
        .map_err(|source| StartError::Bind { addr: settings.admin_addr, source })?;
    let graceful = Arc::new(GracefulShutdown::new());
    let server_settings = ServerSettings {
        header_read_timeout: settings.header_timeout,
        max_header_bytes: settings.max_header_bytes,
        max_connections: settings.max_connections,
        ..ServerSettings::default()
    };
    let accept_loop = tokio::spawn(server::serve(
        http,
        proxy.clone(),
        server_settings,
        stop.clone(),
        graceful.clone(),
    ));
    tokio::spawn(crate::admin::serve(admin, proxy.clone(), stop.clone()));
    Ok(Running {
        http_addr,
        admin_addr,
        proxy,
        applier,
        stop,
        graceful,
        accept_loop,
        grace: settings.grace_period,
    })
}

impl Running {
    /// Stops accepting, then waits up to the grace period for in-flight requests.
    pub async fn shutdown(self) {
        self.stop.cancel();
        // The accept loop holds the other reference to `graceful`; it ends at once on cancel.
        let _ = self.accept_loop.await;
        let Ok(graceful) = Arc::try_unwrap(self.graceful) else {
            return;
        };
        tracing::info!(open_connections = graceful.count(), grace = ?self.grace, "draining");
        if tokio::time::timeout(self.grace, graceful.shutdown()).await.is_err() {
            tracing::warn!("grace period over; closing the remaining connections");
        }
    }
}
