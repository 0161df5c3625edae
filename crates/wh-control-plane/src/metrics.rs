//! The control plane's metrics, served on the admin listener (`/metrics`, OpenMetrics text by
//! `prometheus-client`), never on the public one.
//!
//! Counted as they happen: API requests by route template, method and status ([`Metrics::request`],
//! from the request middleware), how long runnable jobs waited to be claimed, and how late the
//! scheduler's periodic sweep ran (its loop lag). Read at scrape time: worker connections and
//! rejected envelopes by kind (from the hub), jobs by state and deployments by state (one
//! query each).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::hub::Hub;

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One API request's labels. `route` is the route's template (`/api/v1/apps/{slug}`), or
/// `unmatched`: never the raw path, so a client cannot grow the series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// A git webhook delivery's labels: both from fixed sets, never from the request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct GitHookLabels {
    pub provider: &'static str,
    pub outcome: &'static str,
}

/// The metrics counted as things happen.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    git_hooks: Family<GitHookLabels, Counter>,
    claim_wait: Histogram,
    /// Microseconds the last periodic sweep started after it was due.
    sweep_lag_us: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let buckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
        Metrics {
            requests: Family::default(),
            git_hooks: Family::default(),
            claim_wait: Histogram::new(buckets),
            sweep_lag_us: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts an API request.
    pub fn request(&self, route: &str, method: &str, status: u16) {
        let labels = RequestLabels { route: route.to_owned(), method: method.to_owned(), status };
        self.requests.get_or_create(&labels).inc();
    }

    /// A git webhook delivery from `provider` ended as `outcome`.
    pub fn git_hook(&self, provider: &'static str, outcome: &'static str) {
        self.git_hooks.get_or_create(&GitHookLabels { provider, outcome }).inc();
    }

    /// A job was claimed `waited` after it became runnable.
    pub fn claimed(&self, waited: Duration) {
        self.claim_wait.observe(waited.as_secs_f64());
    }

    /// The periodic sweep started `lag` after it was due.
    pub fn sweep_lag(&self, lag: Duration) {
        self.sweep_lag_us.store(lag.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    /// The exposition: these metrics, the hub's state, and the database counts `db`.
    pub fn render(&self, hub: &Hub, db: &DbCounts) -> String {
        let mut registry = Registry::default();
        registry.register(
            "wh_cp_http_requests",
            "API requests by route template, method and status.",
            self.requests.clone(),
        );
        registry.register(
            "wh_cp_git_hook_deliveries",
            "Git webhook deliveries by provider and outcome (queued, ignored, pong, bad_signature, replayed, unknown_hook, too_large, bad_payload, error).",
            self.git_hooks.clone(),
        );
        registry.register(
            "wh_cp_job_claim_wait_seconds",
            "How long a runnable job waited before a worker was chosen for it.",
            self.claim_wait.clone(),
        );
        registry.register_collector(Box::new(Scraped {
            connections: hub.connected().len() as i64,
            rejections: hub.rejections().into_iter().collect(),
            jobs: db.jobs.clone(),
            deployments: db.deployments.clone(),
            sweep_lag: self.sweep_lag_us.load(Relaxed) as f64 / 1e6,
        }));
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Counts read from the database for one scrape.
#[derive(Debug, Clone, Default)]
pub struct DbCounts {
    /// Jobs by state.
    pub jobs: Vec<(String, i64)>,
    /// Deployments by state.
    pub deployments: Vec<(String, i64)>,
}

impl DbCounts {
    /// Two grouped counts (a scrape every few seconds costs two index-friendly queries).
    pub async fn read(pool: &sqlx::PgPool) -> Result<DbCounts, sqlx::Error> {
        let jobs =
            sqlx::query_as("SELECT state::text, count(*) FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(pool)
                .await?;
        let deployments = sqlx::query_as(
            "SELECT state::text, count(*) FROM deployments GROUP BY state ORDER BY state",
        )
        .fetch_all(pool)
        .await?;
        Ok(DbCounts { jobs, deployments })
    }
}

/// What a scrape reads at its moment.
#[derive(Debug)]
struct Scraped {
    connections: i64,
    rejections: Vec<(String, u64)>,
    jobs: Vec<(String, i64)>,
    deployments: Vec<(String, i64)>,
    sweep_lag: f64,
}

impl Collector for Scraped {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let g = ConstGauge::new(self.connections);
        g.encode(e.encode_descriptor(
            "wh_cp_hub_connections",
            "Workers connected to this control plane.",
            None,
            g.metric_type(),
        )?)?;
        let mut family = e.encode_descriptor(
            "wh_cp_hub_rejections",
            "Envelopes and reports refused, by kind (bad_mac, replay, not_yours, …).",
            None,
            MetricType::Counter,
        )?;
        for (kind, n) in &self.rejections {
            ConstCounter::new(*n).encode(family.encode_family(&[("kind", kind.as_str())])?)?;
        }
        for (name, help, rows) in [
            ("wh_cp_jobs", "Jobs by state (queue depth: pending).", &self.jobs),
            ("wh_cp_deployments", "Deployments by state.", &self.deployments),
        ] {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (state, n) in rows {
                ConstGauge::new(*n).encode(family.encode_family(&[("state", state.as_str())])?)?;
            }
        }
        let g = ConstGauge::new(self.sweep_lag);
        g.encode(e.encode_descriptor(
            "wh_cp_scheduler_lag_seconds",
            "How late the scheduler's last periodic sweep started.",
            None,
            g.metric_type(),
        )?)
    }
}
