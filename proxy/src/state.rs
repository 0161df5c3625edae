//! The state the request path shares across connections and threads, swapped or updated by
//! the configuration side: the routing table (an `ArcSwap`, replaced whole), metrics, server
//! health, pending HTTP-01 answers and the certificate manager.
//!
//! The config side ([`crate::provider`], [`crate::admin`], [`crate::run`]) depends on this
//! module, never on [`crate::forward`], which serves requests from it
//! ([`ProxyState::handle`]).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::headers::TrustedProxies;
use crate::metrics::Metrics;
use crate::service::HealthRegistry;
use crate::table::Table;
use crate::tls::challenges::Challenges;

/// Everything the request path needs, shared by all connections.
pub struct ProxyState {
    pub table: ArcSwap<Table>,
    pub metrics: Arc<Metrics>,
    pub health: HealthRegistry,
    pub trusted: TrustedProxies,
    pub access_log: bool,
    /// HTTP-01 answers of pending orders (always served from memory on the plain listener).
    pub challenges: Arc<Challenges>,
    /// Percent-encoded characters a path may carry ([`crate::target`]).
    pub encoded: crate::target::EncodedChars,
    /// Set when an HTTPS listener runs: requests for `tls` routers on plain HTTP are redirected
    /// there (308) instead of served.
    pub https_port: Option<u16>,
    /// The certificate manager, when HTTPS is on (for `/certs` and metrics).
    pub certs: Option<Arc<crate::tls::manager::CertManager>>,
    /// Every client connection and every tunnel of an upgraded one: the shutdown drain waits
    /// for them.
    pub tracker: tokio_util::task::TaskTracker,
    /// A request body that sends nothing for this long is cut (408).
    pub body_idle: std::time::Duration,
}

impl ProxyState {
    pub fn new(metrics: Arc<Metrics>, trusted: TrustedProxies, access_log: bool) -> ProxyState {
        ProxyState {
            table: ArcSwap::from_pointee(Table::default()),
            metrics,
            health: HealthRegistry::default(),
            trusted,
            access_log,
            challenges: Arc::new(Challenges::default()),
            encoded: crate::target::EncodedChars::default(),
            https_port: None,
            certs: None,
            tracker: tokio_util::task::TaskTracker::new(),
            body_idle: std::time::Duration::from_secs(60),
        }
    }
}
