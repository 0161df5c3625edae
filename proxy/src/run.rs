//! Wires the proxy together in order: metrics → proxy → last known good → provider → health
//! checks → listeners. `main` and the integration tests both start the proxy through [`start`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::cli::{Settings, Source};
use crate::health::HealthChecker;
use crate::metrics::Metrics;
use crate::provider::{self, Applier};
use crate::server::{self, ServerSettings};
use crate::state::ProxyState;
use crate::tls::acme::AcmeSettings;
use crate::tls::manager::CertManager;
use crate::tls::store::CertStore;
use crate::tls::wildcard;
use secrecy::ExposeSecret;
use tokio_rustls::TlsAcceptor;

/// A started proxy.
pub struct Running {
    pub http_addr: SocketAddr,
    pub https_addr: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
    pub proxy: Arc<ProxyState>,
    pub applier: Arc<Applier>,
    stop: CancellationToken,
    accept_loop: tokio::task::JoinHandle<()>,
    workers_done: CancellationToken,
    grace: std::time::Duration,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The routes file is unusable and no snapshot stands in (exit code 64).
    #[error(transparent)]
    File(#[from] crate::provider::file::FileError),
    /// `--config-url` or its token is unusable (exit code 64).
    #[error(transparent)]
    ConfigUrl(#[from] crate::provider::http::HttpProviderError),
    /// The wildcard certificate is unusable (exit code 64).
    #[error(transparent)]
    Wildcard(#[from] crate::tls::wildcard::WildcardError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// Another process listens there (a second wh-proxy, a `wh dev`, nginx…).
    #[error("cannot listen on {addr}: the address is in use by another process (a second wh-proxy or `wh dev` on the same port?)")]
    InUse { addr: SocketAddr },
}

impl StartError {
    /// The operator's configuration is at fault (exit code 64), not the host.
    pub fn is_config(&self) -> bool {
        matches!(self, StartError::File(_) | StartError::ConfigUrl(_) | StartError::Wildcard(_))
    }
}

/// Starts everything; returns once the listeners are bound.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    // Bind first (so port 0 resolves and a taken port fails fast); accept only after the
    // certificates are loaded.
    let http = bind(settings.http_addr)?;
    let http_addr = http
        .local_addr()
        .map_err(|source| StartError::Bind { addr: settings.http_addr, source })?;
    let https = match &settings.tls {
        Some(t) => Some(bind(t.https_addr)?),
        None => None,
    };
    let https_addr = match (&https, &settings.tls) {
        (Some(l), Some(t)) => {
            Some(l.local_addr().map_err(|source| StartError::Bind { addr: t.https_addr, source })?)
        }
        _ => None,
    };
    let admin = TcpListener::bind(settings.admin_addr)
        .await
        .map_err(|source| StartError::Bind { addr: settings.admin_addr, source })?;
    let admin_addr = admin
        .local_addr()
        .map_err(|source| StartError::Bind { addr: settings.admin_addr, source })?;

    let metrics = Arc::new(Metrics::default());
    let mut proxy = ProxyState::new(metrics, settings.trusted.clone(), settings.access_log);
    proxy.https_port = https_addr.map(|a| a.port());
    proxy.encoded = settings.encoded_chars;
    proxy.body_idle = settings.body_idle_timeout;
    let certs = settings.tls.as_ref().map(|t| {
        let store = Arc::new(CertStore::new(&settings.state_dir));
        let loaded = store.load_from_disk();
        tracing::info!(certificates = loaded, "certificates loaded from the state dir");
        let acme = AcmeSettings {
            directory: t.acme_directory.clone(),
            ca_bundle: t.acme_ca_bundle.clone(),
            email: t.acme_email.clone(),
            state_dir: settings.state_dir.clone(),
        };
        Arc::new(CertManager::new(acme, store, proxy.challenges.clone(), t.acme_concurrency))
    });
    if let (Some(manager), Some(t)) = (&certs, &settings.tls) {
        if let Some((cert, key)) = &t.wildcard {
            wildcard::load(&manager.store, cert, key)?;
        }
    }
    proxy.certs = certs.clone();
    let proxy = Arc::new(proxy);
    let mut applier = Applier::new(proxy.clone(), Some(settings.state_dir.clone()));
    applier.allow_mass_removal = settings.allow_mass_removal;
    applier.default_syntax = settings.default_rule_syntax;
    applier.entry_points = settings.entry_points.clone();
    applier.max_removal_fraction = settings.max_removal_fraction;
    let applier = Arc::new(applier);
    let stop = CancellationToken::new();

    // The last known good first, so we serve even if the provider is down.
    let had_snapshot = applier.load_snapshot();

    // Health checks and certificates follow every applied table.
    let mut updates = applier.updates.subscribe();
    let mut checker = HealthChecker::new(stop.clone());
    checker.reconcile(&updates.borrow_and_update());
    let follower = certs.clone();
    tokio::spawn(async move {
        while updates.changed().await.is_ok() {
            let table = updates.borrow_and_update().clone();
            checker.reconcile(&table);
            if let Some(m) = &follower {
                m.set_table(&table);
            }
        }
    });
    // With the control plane as the source, order outcomes are told to it.
    if let (Some(manager), Source::Http { url, token, .. }) = (&certs, &settings.source) {
        let p = provider::http::HttpProvider::new(
            url,
            token.as_ref().map(|t| t.expose_secret()),
            settings.poll_interval,
            false,
        )?;
        let (reports, queue) = crate::tls::reports::queue();
        manager.report_to(reports);
        tokio::spawn(provider::report::run(queue, p, stop.clone()));
    }
    if let (Some(manager), Some(t)) = (&certs, &settings.tls) {
        manager.set_table(&proxy.table.load());
        tokio::spawn(manager.clone().run(stop.clone()));
        if let Some((cert, key)) = &t.wildcard {
            tokio::spawn(wildcard::watch(manager.clone(), cert.clone(), key.clone(), stop.clone()));
        }
    }
    let tls_acceptor =
        certs.as_ref().map(|m| TlsAcceptor::from(crate::tls::server_config(m.store.clone())));

    match &settings.source {
        Source::File(path) => {
            if let Err(e) = provider::file::load(&applier, path) {
                if !had_snapshot {
                    return Err(StartError::File(e));
                }
                tracing::error!(error = %e, "routes file unusable; serving the last known good");
            }
            tokio::spawn(provider::file::watch(applier.clone(), path.clone(), stop.clone()));
        }
        Source::Http { url, token, watch } => {
            let p = provider::http::HttpProvider::new(
                url,
                token.as_ref().map(|t| t.expose_secret()),
                settings.poll_interval,
                *watch,
            )?;
            tokio::spawn(provider::http::run(applier.clone(), p, stop.clone()));
        }
    }

    let server_settings = ServerSettings {
        header_read_timeout: settings.header_timeout,
        max_header_bytes: settings.max_header_bytes,
        max_connections: settings.max_connections,
        idle_timeout: settings.idle_timeout,
    };
    // One limit for the whole process, whichever thread accepts.
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    // Thread per core: this runtime runs accept loop 0; every other thread gets its own
    // single-threaded runtime accepting on a duplicate of the same socket, so no request ever
    // hops threads. One socket, not one SO_REUSEPORT socket per thread: with SO_REUSEPORT a
    // second process on the same port would start silently and take half the connections.
    let threads = settings
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let workers_done = CancellationToken::new();
    let to_std =
        |l: TcpListener, addr| l.into_std().map_err(|source| StartError::Bind { addr, source });
    let http_std = to_std(http, http_addr)?;
    let https_std = match (https, https_addr) {
        (Some(l), Some(addr)) => Some(to_std(l, addr)?),
        _ => None,
    };
    for i in 1..threads {
        let dup = |l: &std::net::TcpListener, addr| {
            l.try_clone().map_err(|source| StartError::Bind { addr, source })
        };
        let listener = dup(&http_std, http_addr)?;
        let tls_listener = match (&https_std, https_addr) {
            (Some(l), Some(a)) => Some(dup(l, a)?),
            _ => None,
        };
        let acceptor = tls_acceptor.clone();
        let (proxy, settings, stop, permits, done) = (
            proxy.clone(),
            server_settings.clone(),
            stop.clone(),
            permits.clone(),
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
                    let (Ok(listener), tls_listener) = (
                        TcpListener::from_std(listener),
                        tls_listener.map(TcpListener::from_std).transpose(),
                    ) else {
                        return tracing::error!("worker cannot register its listener");
                    };
                    let tls_listener = tls_listener.ok().flatten();
                    let plain = server::serve(
                        listener,
                        proxy.clone(),
                        settings.clone(),
                        stop.clone(),
                        permits.clone(),
                        None,
                    );
                    let secure = async move {
                        if let (Some(l), Some(a)) = (tls_listener, acceptor) {
                            server::serve(l, proxy, settings, stop, permits, Some(a)).await;
                        }
                    };
                    tokio::join!(plain, secure);
                    // Keep driving this thread's connections until the drain is over.
                    done.cancelled().await;
                });
            })
            .map_err(|source| StartError::Bind { addr: http_addr, source })?;
    }
    let reregister = |l: std::net::TcpListener, addr| {
        TcpListener::from_std(l).map_err(|source| StartError::Bind { addr, source })
    };
    let http = reregister(http_std, http_addr)?;
    let tls_loop = match (https_std, https_addr, tls_acceptor) {
        (Some(l), Some(addr), Some(a)) => Some(tokio::spawn(server::serve(
            reregister(l, addr)?,
            proxy.clone(),
            server_settings.clone(),
            stop.clone(),
            permits.clone(),
            Some(a),
        ))),
        _ => None,
    };
    let plain = server::serve(http, proxy.clone(), server_settings, stop.clone(), permits, None);
    let accept_loop = tokio::spawn(async move {
        plain.await;
        if let Some(t) = tls_loop {
            let _ = t.await;
        }
    });
    tokio::spawn(crate::admin::serve(admin, proxy.clone(), stop.clone()));
    Ok(Running {
        http_addr,
        https_addr,
        admin_addr,
        proxy,
        applier,
        stop,
        accept_loop,
        workers_done,
        grace: settings.grace_period,
    })
}

/// The listening socket: SO_REUSEADDR (a restart need not wait for TIME_WAIT), never
/// SO_REUSEPORT, so a port taken by another process is an error, not a silent share.
fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    let err = |source| StartError::Bind { addr, source };
    let socket =
        if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.set_nodelay(true).map_err(err)?;
    socket.bind(addr).map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => StartError::InUse { addr },
        _ => StartError::Bind { addr, source },
    })?;
    socket.listen(4096).map_err(err)
}

impl Running {
    /// Stops accepting, asks every connection to close gracefully, then waits up to the grace
    /// period for in-flight requests and upgraded connections.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.accept_loop.await;
        let tracker = &self.proxy.tracker;
        tracker.close();
        tracing::info!(open_connections = tracker.len(), grace = ?self.grace, "draining");
        if tokio::time::timeout(self.grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                left = tracker.len(),
                "grace period over; closing the remaining connections"
            );
        }
        self.workers_done.cancel();
    }
}
