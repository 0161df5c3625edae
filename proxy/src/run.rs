//! Wires the proxy together in order: metrics → proxy → last known good → provider → health
//! checks → listeners. `main` and the integration tests both start the proxy through [`start`].

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::cli::{Settings, Source};
use crate::forward::Proxy;
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
    workers_done: CancellationToken,
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
    let proxy = Arc::new(Proxy::new(metrics, settings.trusted.clone(), settings.access_log));
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

    let http = bind_reuseport(settings.http_addr)?;
    let admin = TcpListener::bind(settings.admin_addr)
        .await
        .map_err(|source| StartError::Bind { addr: settings.admin_addr, source })?;
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
    // Thread per core: this runtime runs accept loop 0; every other thread gets its own
    // single-threaded runtime and its own SO_REUSEPORT socket on the same address, so the kernel
    // spreads connections and no request ever hops threads.
    let threads = settings
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let workers_done = CancellationToken::new();
    for i in 1..threads {
        let listener = bind_reuseport(http_addr)?;
        let (proxy, settings, stop, graceful, done) = (
            proxy.clone(),
            server_settings.clone(),
            stop.clone(),
            graceful.clone(),
            workers_done.clone(),
        );
        std::thread::Builder::new()
            .name(format!("wh-proxy-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return tracing::error!(error = %e, "worker runtime failed to start"),
                };
                rt.block_on(async move {
                    server::serve(listener, proxy, settings, stop, graceful).await;
                    // Keep driving this thread's connections until the drain is over.
                    done.cancelled().await;
                });
            })
            .map_err(|source| StartError::Bind { addr: http_addr, source })?;
    }
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
        workers_done,
        grace: settings.grace_period,
    })
}

/// A listening socket with SO_REUSEPORT, so each worker thread can have its own.
fn bind_reuseport(addr: SocketAddr) -> Result<TcpListener, StartError> {
    let err = |source| StartError::Bind { addr, source };
    let socket =
        if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.set_reuseport(true).map_err(err)?;
    socket.set_nodelay(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(4096).map_err(err)
}

impl Running {
    /// Stops accepting, then waits up to the grace period for in-flight requests.
    pub async fn shutdown(self) {
        self.stop.cancel();
        // Every accept loop holds a reference to `graceful` and drops it on cancel.
        let _ = self.accept_loop.await;
        let mut graceful = self.graceful;
        let graceful = loop {
            match Arc::try_unwrap(graceful) {
                Ok(g) => break g,
                Err(still_shared) => graceful = still_shared,
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        tracing::info!(open_connections = graceful.count(), grace = ?self.grace, "draining");
        if tokio::time::timeout(self.grace, graceful.shutdown()).await.is_err() {
            tracing::warn!("grace period over; closing the remaining connections");
        }
        self.workers_done.cancel();
    }
}
