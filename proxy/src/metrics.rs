//! Counters and histograms, lock-free on the request path, rendered as Prometheus text.
//!
//! Per-router metrics live in an `Arc<RouteMetrics>` that compiled routes point to; the
//! [`Metrics`] registry hands out the same `Arc` for the same router name across table swaps,
//! so counters stay monotonic. The registry's mutex is taken only at compile and scrape time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::FastMap;

/// Latency bucket upper bounds, in microseconds.
const BUCKETS_US: [u64; 12] =
    [250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000];

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, le) in BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Relaxed);
            let _ =
                writeln!(out, "{name}_bucket{{{labels}le=\"{}\"}} {cumulative}", *le as f64 / 1e6);
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{}}} {}",
            labels.trim_end_matches(','),
            self.sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{}}} {count}", labels.trim_end_matches(','));
    }
}

/// Metrics of one router (and its service).
#[derive(Debug, Default)]
pub struct RouteMetrics {
    pub service: Mutex<String>,
    /// Responses by status class: 1xx..5xx.
    pub by_class: [AtomicU64; 5],
    pub latency: Histogram,
    pub upstream_errors: AtomicU64,
}

impl RouteMetrics {
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Relaxed);
        self.latency.observe(elapsed);
    }
}

/// Process-wide metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<FastMap<Box<str>, Arc<RouteMetrics>>>,
    pub unrouted: AtomicU64,
    pub open_connections: AtomicI64,
    pub rejected_connections: AtomicU64,
    pub config_generation: AtomicU64,
    pub config_applied_unix: AtomicU64,
    pub config_refusals: AtomicU64,
    pub config_errors: AtomicU64,
}

impl Metrics {
    /// The metrics of router `name`, the same `Arc` every time.
    pub fn route(&self, name: &str, service: &str) -> Arc<RouteMetrics> {
        let mut map = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let m = map.entry(name.into()).or_default().clone();
        let mut svc = m.service.lock().unwrap_or_else(|e| e.into_inner());
        if *svc != service {
            service.clone_into(&mut svc);
        }
        drop(svc);
        m
    }

    /// Forgets the metrics of routers no table refers to any more (their series end), so a
    /// proxy that sees apps come and go for months does not grow with every name it ever saw.
    pub fn prune_routes(&self) {
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, m| Arc::strong_count(m) > 1);
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let routes: Vec<(Box<str>, Arc<RouteMetrics>)> = {
            let map = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        out.push_str("# TYPE wh_proxy_requests_total counter\n");
        for (name, m) in &routes {
            let svc = m.service.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for (i, c) in m.by_class.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "wh_proxy_requests_total{{router=\"{}\",service=\"{}\",code=\"{}xx\"}} {}",
                    escape(name),
                    escape(&svc),
                    i + 1,
                    c.load(Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "wh_proxy_requests_total{{router=\"\",service=\"\",code=\"4xx\"}} {}",
            self.unrouted.load(Relaxed)
        );
        out.push_str("# TYPE wh_proxy_request_duration_seconds histogram\n");
        for (name, m) in &routes {
            m.latency.render(
                &mut out,
                "wh_proxy_request_duration_seconds",
                &format!("router=\"{}\",", escape(name)),
            );
        }
        out.push_str("# TYPE wh_proxy_upstream_errors_total counter\n");
        for (name, m) in &routes {
            let _ = writeln!(
                out,
                "wh_proxy_upstream_errors_total{{router=\"{}\"}} {}",
                escape(name),
                m.upstream_errors.load(Relaxed)
            );
        }
        for (name, kind, v) in [
            (
                "wh_proxy_open_connections",
                "gauge",
                self.open_connections.load(Relaxed).max(0) as u64,
            ),
            (
                "wh_proxy_rejected_connections_total",
                "counter",
                self.rejected_connections.load(Relaxed),
            ),
            ("wh_proxy_config_generation", "gauge", self.config_generation.load(Relaxed)),
            (
                "wh_proxy_config_last_applied_timestamp_seconds",
                "gauge",
                self.config_applied_unix.load(Relaxed),
            ),
            ("wh_proxy_config_refusals_total", "counter", self.config_refusals.load(Relaxed)),
            ("wh_proxy_config_errors_total", "counter", self.config_errors.load(Relaxed)),
        ] {
            let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {v}");
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}
