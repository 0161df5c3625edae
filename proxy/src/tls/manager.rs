//! Which hosts need certificates, and getting them without upsetting the CA.
//!
//! Hosts come from the routing table (exact hosts of routers with `tls`); nothing else is ever
//! ordered. A host needs an order when it has no certificate, or when less than a third of its
//! certificate's lifetime is left, or when the CA's renewal information (ARI, RFC 9773) says the
//! renewal window has opened. Orders run with bounded concurrency, each in its own task, so one
//! host's failure never delays another's.
//!
//! Failures back off per host: 1 minute doubling to 24 hours (at least an hour after
//! `rateLimited`). A budget keeps us inside Let's Encrypt's limits: at most 300 new orders per
//! account per 3 hours and 5 failed validations per host per hour. Backoff and budget are
//! persisted in `<state>/acme/hosts.json`, so a restart does not retry early. Hosts that left the
//! table are never renewed; their files are deleted once the certificate has expired, and
//! their backoff state is forgotten once it no longer defers anything (so memory follows the
//! table, and a host that leaves and comes back within its backoff still waits).
//!
//! Nothing here blocks the runtime that accepts connections: the state file is serialised
//! under the lock but written and fsynced on the blocking pool, newest snapshot last; ARI
//! look-ups run concurrently (at most [`ARI_CONCURRENCY`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OnceCell, Semaphore};
use tokio_util::sync::CancellationToken;

use super::acme::{AcmeClient, AcmeSettings, OrderError};
use super::challenges::Challenges;
use super::clock::Clock;
use super::store::{covers, CertStore};
use crate::table::Table;

const BACKOFF_START: i64 = 60;
const BACKOFF_MAX: i64 = 24 * 3600;
const RATE_LIMITED_MIN: i64 = 3600;
/// Let's Encrypt: 300 new orders per account per 3 hours; we keep a margin.
const ORDER_BUDGET: usize = 250;
const ORDER_WINDOW: i64 = 3 * 3600;
/// Let's Encrypt: 5 failed validations per hostname per hour.
const FAILED_VALIDATION_BUDGET: usize = 5;
const FAILED_VALIDATION_WINDOW: i64 = 3600;
/// ARI look-ups in flight at once.
pub const ARI_CONCURRENCY: usize = 8;

/// Per-host order state, persisted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostState {
    pub failures: u32,
    /// No order before this (Unix seconds).
    pub next_attempt: i64,
    pub last_error: Option<String>,
    /// Unix seconds of failed validations (last hour is what counts).
    #[serde(default)]
    pub failed_validations: Vec<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    hosts: BTreeMap<String, HostState>,
    /// Unix seconds of new orders (last 3 hours is what counts).
    orders: Vec<i64>,
}

/// A serialised [`Persisted`], numbered in the order it was taken.
struct Snapshot {
    number: u64,
    bytes: Vec<u8>,
}

fn save_blocking(path: &std::path::Path, written: &Mutex<u64>, snapshot: Snapshot) {
    let mut last = written.lock().unwrap_or_else(|e| e.into_inner());
    if snapshot.number <= *last {
        return;
    }
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        super::store::write_private(path, &snapshot.bytes)
    };
    match write() {
        Ok(()) => *last = snapshot.number,
        Err(e) => tracing::error!(error = %e, "cannot persist ACME backoff state"),
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct TlsMetrics {
    pub orders_ok: AtomicU64,
    pub orders_failed: AtomicU64,
    pub orders_deferred_by_budget: AtomicU64,
    pub renewals: AtomicU64,
}

/// The certificate manager.
pub struct CertManager {
    pub store: Arc<CertStore>,
    pub challenges: Arc<Challenges>,
    pub clock: Arc<Clock>,
    pub metrics: TlsMetrics,
    settings: AcmeSettings,
    acme: OnceCell<AcmeClient>,
    state: Mutex<Persisted>,
    /// Snapshots of `state` taken so far, and the newest one written (see [`Snapshot`]).
    snapshots: AtomicU64,
    written: Arc<Mutex<u64>>,
    wanted: Mutex<Arc<BTreeSet<String>>>,
    ordering: Mutex<HashSet<String>>,
    /// ARI: host → (renew from, ask again after), Unix seconds.
    ari: Mutex<BTreeMap<String, (i64, i64)>>,
    permits: Arc<Semaphore>,
    poke: Notify,
    /// Where order outcomes are told (the control plane), when anywhere.
    reports: std::sync::OnceLock<super::reports::Reports>,
}

impl CertManager {
    pub fn new(
        settings: AcmeSettings,
        store: Arc<CertStore>,
        challenges: Arc<Challenges>,
        concurrency: usize,
    ) -> CertManager {
        let path = settings.state_dir.join("acme").join("hosts.json");
        let state = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        CertManager {
            store,
            challenges,
            clock: Arc::new(Clock::default()),
            metrics: TlsMetrics::default(),
            settings,
            acme: OnceCell::new(),
            state: Mutex::new(state),
            snapshots: AtomicU64::new(0),
            written: Arc::new(Mutex::new(0)),
            wanted: Mutex::new(Arc::new(BTreeSet::new())),
            ordering: Mutex::new(HashSet::new()),
            ari: Mutex::new(BTreeMap::new()),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            poke: Notify::new(),
            reports: std::sync::OnceLock::new(),
        }
    }

    /// The hosts of `table` that should have certificates.
    pub fn set_table(&self, table: &Table) {
        let hosts: BTreeSet<String> = table.tls_hosts().map(str::to_owned).collect();
        *self.wanted.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(hosts);
        self.poke.notify_one();
    }

    /// Tells every order's outcome to `reports` from now on.
    pub fn report_to(&self, reports: super::reports::Reports) {
        let _ = self.reports.set(reports);
    }

    /// Re-evaluates now (tests, after moving the clock).
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Runs until `stop`: reconciles on every table change and every 30 s.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            self.reconcile().await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.poke.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    }

    async fn reconcile(self: &Arc<Self>) {
        use futures_util::StreamExt as _;
        let now = self.clock.now();
        let wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let wildcard = self.store.wildcard_suffix();
        // Which hosts are due: no certificate, a third of its lifetime left, or (asked of the
        // CA, several hosts at a time) inside the ARI renewal window.
        let mut due = Vec::new();
        let mut ask_ari = Vec::new();
        for host in wanted.iter() {
            if wildcard.as_deref().is_some_and(|s| covers(s, host))
                || self.ordering.lock().unwrap_or_else(|e| e.into_inner()).contains(host)
            {
                continue;
            }
            match self.store.get(host) {
                None => due.push((host.clone(), false)),
                Some(cert) => {
                    let third = (cert.not_after - cert.not_before) / 3;
                    if now >= cert.not_after - third {
                        due.push((host.clone(), true));
                    } else {
                        ask_ari.push((host.clone(), cert));
                    }
                }
            }
        }
        let by_ari: Vec<(String, bool)> = futures_util::stream::iter(ask_ari)
            .map(|(host, cert): (String, _)| async move {
                let renew = self.ari_due(&host, &cert.leaf_der, now).await;
                (host, renew)
            })
            .buffer_unordered(ARI_CONCURRENCY)
            .collect()
            .await;
        due.extend(by_ari.into_iter().filter(|(_, renew)| *renew).map(|(h, _)| (h, true)));
        for (host, renewal) in due {
            if !self.may_order(&host, now) {
                continue;
            }
            self.ordering.lock().unwrap_or_else(|e| e.into_inner()).insert(host.clone());
            let me = self.clone();
            tokio::spawn(async move {
                let Ok(_permit) = me.permits.clone().acquire_owned().await else { return };
                me.order(&host, renewal).await;
                me.ordering.lock().unwrap_or_else(|e| e.into_inner()).remove(&host);
            });
        }
        // Certificates of hosts that left the table: kept until they expire, then deleted.
        for (host, cert) in self.store.hosts() {
            if cert.not_after < now && !wanted.contains(&*host) {
                tracing::info!(%host, "removing the expired certificate of a host no longer routed");
                self.store.remove(&host);
            }
        }
        // State of hosts that left: forgotten once it defers nothing.
        let snapshot = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let before = st.hosts.len();
            st.hosts.retain(|host, h| {
                h.failed_validations.retain(|t| now - t < FAILED_VALIDATION_WINDOW);
                wanted.contains(host) || h.next_attempt > now || !h.failed_validations.is_empty()
            });
            (st.hosts.len() != before).then(|| self.snapshot(&st))
        };
        self.ari.lock().unwrap_or_else(|e| e.into_inner()).retain(|host, _| wanted.contains(host));
        if let Some(snapshot) = snapshot {
            self.save(snapshot).await;
        }
    }

    /// Backoff and budget check; records why an order is deferred.
    fn may_order(&self, host: &str, now: i64) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.orders.retain(|t| now - t < ORDER_WINDOW);
        let over_budget = st.orders.len() >= ORDER_BUDGET;
        let (waiting, failed) = match st.hosts.get_mut(host) {
            Some(h) => {
                h.failed_validations.retain(|t| now - t < FAILED_VALIDATION_WINDOW);
                (h.next_attempt > now, h.failed_validations.len())
            }
            None => (false, 0),
        };
        if waiting {
            return false;
        }
        if over_budget || failed >= FAILED_VALIDATION_BUDGET {
            self.metrics.orders_deferred_by_budget.fetch_add(1, Relaxed);
            return false;
        }
        true
    }

    async fn order(&self, host: &str, renewal: bool) {
        let started = self.clock.now();
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.orders.push(started);
        }
        let result = match self
            .acme
            .get_or_try_init(|| AcmeClient::connect(&self.settings, self.challenges.clone()))
            .await
        {
            Ok(acme) => acme.issue(host).await,
            Err(e) => Err(OrderError {
                message: e.to_string(),
                rate_limited: false,
                validation_failed: false,
            }),
        };
        let now = self.clock.now();
        let installed = result.and_then(|(chain, key)| {
            self.store.install(host, &chain, &key).map_err(|e| OrderError {
                message: e.to_string(),
                rate_limited: false,
                validation_failed: false,
            })
        });
        let snapshot = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let h = st.hosts.entry(host.to_owned()).or_default();
            match &installed {
                Ok(cert) => {
                    st.hosts.remove(host);
                    self.metrics.orders_ok.fetch_add(1, Relaxed);
                    if renewal {
                        self.metrics.renewals.fetch_add(1, Relaxed);
                    }
                    tracing::info!(%host, not_after = cert.not_after, renewal, "certificate obtained");
                }
                Err(e) => {
                    h.failures += 1;
                    let mut backoff = (BACKOFF_START << (h.failures - 1).min(16)).min(BACKOFF_MAX);
                    if e.rate_limited {
                        backoff = backoff.max(RATE_LIMITED_MIN);
                    }
                    if e.validation_failed {
                        h.failed_validations.push(now);
                    }
                    h.next_attempt = now + backoff;
                    h.last_error = Some(e.message.clone());
                    self.metrics.orders_failed.fetch_add(1, Relaxed);
                    tracing::warn!(%host, error = %e.message, retry_in_secs = backoff, "certificate order failed");
                }
            }
            self.ari.lock().unwrap_or_else(|e| e.into_inner()).remove(host);
            self.snapshot(&st)
        };
        if let Some(reports) = self.reports.get() {
            use wh_wsproto::proxy::{CertificateOutcome, CertificateReport, MAX_ERROR};
            let outcome = match &installed {
                Ok(cert) => CertificateOutcome::Issued { not_after: cert.not_after },
                Err(e) => CertificateOutcome::Failed {
                    error: e.message.chars().take(MAX_ERROR).collect(),
                },
            };
            reports.send(CertificateReport { host: host.to_owned(), outcome });
        }
        self.save(snapshot).await;
    }

    /// Asks the CA's renewal information (cached until its Retry-After) whether to renew now.
    async fn ari_due(&self, host: &str, leaf_der: &[u8], now: i64) -> bool {
        let cached = self.ari.lock().unwrap_or_else(|e| e.into_inner()).get(host).copied();
        if let Some((renew_from, ask_after)) = cached {
            if now < ask_after {
                return now >= renew_from;
            }
        }
        let Some(acme) = self.acme.get() else { return false };
        let der = rustls::pki_types::CertificateDer::from(leaf_der.to_vec());
        let Ok(id) = instant_acme::CertificateIdentifier::try_from(&der) else { return false };
        match acme.renewal_info(&id).await {
            Some((start, retry_after)) => {
                let ask_after = now + retry_after.as_secs().clamp(3600, 86_400) as i64;
                self.ari
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(host.to_owned(), (start, ask_after));
                now >= start
            }
            None => {
                // Not offered (or failed): do not ask again for a day.
                self.ari
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(host.to_owned(), (i64::MAX, now + 86_400));
                false
            }
        }
    }

    /// The state, serialised (under the lock: cheap, no I/O).
    fn snapshot(&self, st: &Persisted) -> Snapshot {
        Snapshot {
            number: self.snapshots.fetch_add(1, Relaxed) + 1,
            bytes: serde_json::to_vec(st).unwrap_or_default(),
        }
    }

    /// Writes and fsyncs `snapshot` on the blocking pool; an older snapshot never overwrites a
    /// newer one.
    async fn save(&self, snapshot: Snapshot) {
        let path = self.settings.state_dir.join("acme").join("hosts.json");
        let written = self.written.clone();
        let _ = tokio::task::spawn_blocking(move || save_blocking(&path, &written, snapshot)).await;
    }

    /// How many hosts have order state (backoff, failed validations).
    pub fn tracked_hosts(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).hosts.len()
    }

    /// `/certs`: every wanted or stored host with expiry, state and last error.
    pub fn report(&self) -> serde_json::Value {
        let now = self.clock.now();
        let wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let ordering = self.ordering.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut hosts: Vec<String> = wanted.iter().cloned().collect();
        hosts.extend(self.store.hosts().into_iter().map(|(h, _)| h.to_string()));
        hosts.sort();
        hosts.dedup();
        let wildcard = self.store.wildcard_suffix();
        let list: Vec<_> = hosts
            .iter()
            .map(|host| {
                let cert = self.store.get(host);
                let h = st.hosts.get(host);
                let by_wildcard = wildcard.as_deref().is_some_and(|s| covers(s, host));
                let state = if ordering.contains(host) {
                    "ordering".to_owned()
                } else if by_wildcard {
                    "wildcard".to_owned()
                } else if h.is_some_and(|h| h.next_attempt > now) {
                    "backoff".to_owned()
                } else if cert.as_ref().is_some_and(|c| c.not_after > now) {
                    "valid".to_owned()
                } else if cert.is_some() {
                    "expired".to_owned()
                } else {
                    "pending".to_owned()
                };
                serde_json::json!({
                    "host": host,
                    "routed": wanted.contains(host),
                    "state": state,
                    "not_after": cert.as_ref().map(|c| c.not_after).or(if by_wildcard { self.store.wildcard_not_after() } else { None }),
                    "backoff_until": h.filter(|h| h.next_attempt > now).map(|h| h.next_attempt),
                    "failures": h.map_or(0, |h| h.failures),
                    "last_error": h.and_then(|h| h.last_error.clone()),
                })
            })
            .collect();
        serde_json::json!({ "hosts": list })
    }

    /// The certificate metrics, for a scrape ([`crate::metrics::render`]).
    pub fn collector(self: &Arc<Self>) -> Box<dyn prometheus_client::collector::Collector> {
        Box::new(CertCollector(self.clone()))
    }

    /// Per-host state (tests and `/certs`).
    pub fn host_state(&self, host: &str) -> Option<HostState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).hosts.get(host).cloned()
    }
}

/// A [`CertManager`]'s counters and gauges as a scrape sees them.
struct CertCollector(Arc<CertManager>);

impl std::fmt::Debug for CertCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertCollector")
    }
}

impl prometheus_client::collector::Collector for CertCollector {
    fn encode(&self, mut e: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        let me = &self.0;
        let now = me.clock.now();
        let earliest = me
            .store
            .hosts()
            .iter()
            .map(|(_, c)| c.not_after)
            .chain(me.store.wildcard_not_after())
            .min();
        let in_backoff = me
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .hosts
            .values()
            .filter(|h| h.next_attempt > now)
            .count() as i64;
        let m = &me.metrics;
        let mut orders = e.encode_descriptor(
            "wh_proxy_acme_orders",
            "ACME orders by outcome.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (outcome, n) in [
            ("success", &m.orders_ok),
            ("failure", &m.orders_failed),
            ("deferred_by_budget", &m.orders_deferred_by_budget),
        ] {
            let labels = [("outcome", outcome)];
            ConstCounter::new(n.load(Relaxed)).encode(orders.encode_family(&labels)?)?;
        }
        crate::metrics::counter(
            &mut e,
            "wh_proxy_acme_renewals",
            "Certificates renewed.",
            m.renewals.load(Relaxed),
        )?;
        crate::metrics::gauge(
            &mut e,
            "wh_proxy_acme_hosts_in_backoff",
            "Hosts waiting before their next order attempt.",
            in_backoff,
        )?;
        if let Some(t) = earliest {
            let days = (t - now) as f64 / 86_400.0;
            crate::metrics::gauge(
                &mut e,
                "wh_proxy_cert_earliest_expiry_days",
                "Days until the first certificate served expires.",
                days,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager() -> (CertManager, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let settings = AcmeSettings {
            directory: "http://127.0.0.1:9/dir".into(),
            ca_bundle: None,
            email: None,
            state_dir: dir.path().into(),
        };
        let store = Arc::new(CertStore::new(dir.path()));
        (CertManager::new(settings, store, Arc::new(Challenges::default()), 4), dir)
    }

    #[test]
    fn failed_validations_and_the_order_budget_defer_orders() {
        let (m, _dir) = manager();
        let now = m.clock.now();
        assert!(m.may_order("a.test", now));
        m.state.lock().unwrap().hosts.entry("a.test".into()).or_default().failed_validations =
            vec![now - 10; FAILED_VALIDATION_BUDGET];
        assert!(!m.may_order("a.test", now), "5 failed validations in the last hour must defer");
        assert!(
            m.may_order("a.test", now + FAILED_VALIDATION_WINDOW),
            "an hour later the host may try again"
        );
        assert!(m.may_order("b.test", now));
        m.state.lock().unwrap().orders = vec![now - 60; ORDER_BUDGET];
        assert!(!m.may_order("b.test", now), "the account-wide order budget must defer");
        assert!(m.may_order("b.test", now + ORDER_WINDOW));
        assert!(m.metrics.orders_deferred_by_budget.load(Relaxed) >= 2);
    }

    /// Issue 13, item 13: the state of every host ever checked was kept forever (and each
    /// check created an entry).
    #[tokio::test]
    async fn the_state_of_hosts_that_left_is_pruned_once_it_defers_nothing() {
        let (m, dir) = manager();
        let m = Arc::new(m);
        let now = m.clock.now();
        let later =
            |secs| HostState { failures: 1, next_attempt: now + secs, ..HostState::default() };
        {
            let mut st = m.state.lock().unwrap();
            st.hosts.insert("routed.test".into(), later(100));
            st.hosts.insert("left-waiting.test".into(), later(100));
            st.hosts.insert("left-done.test".into(), later(-1));
        }
        *m.wanted.lock().unwrap() = Arc::new(BTreeSet::from(["routed.test".to_owned()]));
        m.reconcile().await;
        let mut kept: Vec<String> = m.state.lock().unwrap().hosts.keys().cloned().collect();
        kept.sort();
        assert_eq!(
            kept,
            ["left-waiting.test", "routed.test"],
            "a departed host whose backoff is over stayed"
        );
        let file = std::fs::read_to_string(dir.path().join("acme/hosts.json")).unwrap();
        assert!(!file.contains("left-done.test"), "{file}");
        // Its backoff over, the departed host goes too; a check alone adds nothing.
        m.clock.advance(Duration::from_secs(200));
        assert!(m.may_order("never-failed.test", m.clock.now()));
        *m.wanted.lock().unwrap() = Arc::new(BTreeSet::new());
        m.reconcile().await;
        assert_eq!(m.tracked_hosts(), 0);
    }

    #[test]
    fn backoff_is_respected_and_survives_a_restart() {
        let (m, dir) = manager();
        let now = m.clock.now();
        {
            let mut st = m.state.lock().unwrap();
            st.hosts.insert(
                "c.test".into(),
                HostState { failures: 3, next_attempt: now + 240, ..HostState::default() },
            );
            let snapshot = m.snapshot(&st);
            save_blocking(&dir.path().join("acme/hosts.json"), &m.written, snapshot);
        }
        assert!(!m.may_order("c.test", now));
        let settings = AcmeSettings {
            directory: "x".into(),
            ca_bundle: None,
            email: None,
            state_dir: dir.path().into(),
        };
        let again = CertManager::new(
            settings,
            Arc::new(CertStore::new(dir.path())),
            Arc::new(Challenges::default()),
            1,
        );
        assert!(!again.may_order("c.test", now), "backoff forgotten across a restart");
        assert!(again.may_order("c.test", now + 241));
    }
}
