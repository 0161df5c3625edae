//! Counters and histograms, lock-free on the request path (atomics), exposed in the
//! OpenMetrics text format by `prometheus-client` at scrape time ([`render`]).
//!
//! Per-router metrics live in an `Arc<RouteMetrics>` that compiled routes point to; the
//! [`Metrics`] registry hands out the same `Arc` for the same router name across table swaps,
//! so counters stay monotonic. The registry's mutex is taken only at compile and scrape time.
//! Other parts add their own families through a [`Collector`] (the certificate manager's).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::util::FastMap;

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition of `collectors`, in order.
pub fn render(collectors: Vec<Box<dyn Collector>>) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    for c in collectors {
        registry.register_collector(c);
    }
    let mut out = String::with_capacity(4096);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// A counter without labels.
pub fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

/// A gauge without labels.
pub fn gauge<N>(e: &mut DescriptorEncoder, name: &str, help: &str, v: N) -> std::fmt::Result
where
    ConstGauge<N>: EncodeMetric,
{
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

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

    /// Per-bucket counts, `+Inf` last, as the encoder wants them.
    fn buckets(&self) -> Vec<(f64, u64)> {
        let mut out: Vec<(f64, u64)> = BUCKETS_US
            .iter()
            .zip(&self.buckets)
            .map(|(le, n)| (*le as f64 / 1e6, n.load(Relaxed)))
            .collect();
        let counted: u64 = out.iter().map(|(_, n)| n).sum();
        out.push((f64::MAX, self.count.load(Relaxed).saturating_sub(counted)));
        out
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

    /// The exposition of these metrics (and the certificate manager's, when given).
    pub fn render(self: &Arc<Self>, more: Option<Box<dyn Collector>>) -> String {
        let mut collectors: Vec<Box<dyn Collector>> =
            vec![Box::new(MetricsCollector(self.clone()))];
        collectors.extend(more);
        render(collectors)
    }
}

/// [`Metrics`] as a scrape sees them.
#[derive(Debug)]
struct MetricsCollector(Arc<Metrics>);

impl Collector for MetricsCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let m = &self.0;
        let routes: Vec<(Box<str>, String, Arc<RouteMetrics>)> = {
            let map = m.routes.lock().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .map(|(k, v)| {
                    let svc = v.service.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    (escape(k).into(), escape(&svc), v.clone())
                })
                .collect()
        };
        const CODES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        let mut family = e.encode_descriptor(
            "wh_proxy_requests",
            "Responses by router, service and status class (router \"\" for unrouted requests).",
            None,
            MetricType::Counter,
        )?;
        for (name, svc, r) in &routes {
            for (code, n) in CODES.iter().zip(&r.by_class) {
                let labels = [("router", &**name), ("service", svc.as_str()), ("code", *code)];
                ConstCounter::new(n.load(Relaxed)).encode(family.encode_family(&labels)?)?;
            }
        }
        let unrouted = [("router", ""), ("service", ""), ("code", "4xx")];
        ConstCounter::new(m.unrouted.load(Relaxed)).encode(family.encode_family(&unrouted)?)?;
        let mut family = e.encode_descriptor(
            "wh_proxy_request_duration_seconds",
            "Time to the response's head, by router.",
            None,
            MetricType::Histogram,
        )?;
        for (name, _, r) in &routes {
            let h = &r.latency;
            let labels = [("router", &**name)];
            family.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                h.sum_us.load(Relaxed) as f64 / 1e6,
                h.count.load(Relaxed),
                &h.buckets(),
                None,
            )?;
        }
        let mut family = e.encode_descriptor(
            "wh_proxy_upstream_errors",
            "Requests an upstream failed (unreachable, reset, timed out), by router.",
            None,
            MetricType::Counter,
        )?;
        for (name, _, r) in &routes {
            let labels = [("router", &**name)];
            ConstCounter::new(r.upstream_errors.load(Relaxed))
                .encode(family.encode_family(&labels)?)?;
        }
        let open = m.open_connections.load(Relaxed).max(0);
        gauge(&mut e, "wh_proxy_open_connections", "Client connections open.", open)?;
        counter(
            &mut e,
            "wh_proxy_rejected_connections",
            "Client connections refused at the connection limit.",
            m.rejected_connections.load(Relaxed),
        )?;
        let generation = m.config_generation.load(Relaxed) as i64;
        gauge(&mut e, "wh_proxy_config_generation", "The routing table's generation.", generation)?;
        gauge(
            &mut e,
            "wh_proxy_config_last_applied_timestamp_seconds",
            "When the routing table last changed (Unix time).",
            m.config_applied_unix.load(Relaxed) as i64,
        )?;
        counter(
            &mut e,
            "wh_proxy_config_refusals",
            "Configurations refused by the mass-removal guard.",
            m.config_refusals.load(Relaxed),
        )?;
        counter(
            &mut e,
            "wh_proxy_config_errors",
            "Configurations that could not be parsed or applied.",
            m.config_errors.load(Relaxed),
        )
    }
}

/// A label value as the exposition needs it (the encoder writes values as given).
fn escape(s: &str) -> String {
    s.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_is_openmetrics_with_escaped_labels_and_cumulative_buckets() {
        let m = Arc::new(Metrics::default());
        let r = m.route("a\"b", "svc");
        r.record(200, Duration::from_micros(300));
        r.record(503, Duration::from_secs(9));
        m.open_connections.store(3, Relaxed);
        let text = m.render(None);
        for line in [
            "# TYPE wh_proxy_requests counter",
            r#"wh_proxy_requests_total{router="a\"b",service="svc",code="2xx"} 1"#,
            r#"wh_proxy_requests_total{router="a\"b",service="svc",code="5xx"} 1"#,
            r#"wh_proxy_requests_total{router="",service="",code="4xx"} 0"#,
            "# TYPE wh_proxy_request_duration_seconds histogram",
            r#"wh_proxy_request_duration_seconds_bucket{le="0.00025",router="a\"b"} 0"#,
            r#"wh_proxy_request_duration_seconds_bucket{le="0.0005",router="a\"b"} 1"#,
            r#"wh_proxy_request_duration_seconds_bucket{le="5.0",router="a\"b"} 1"#,
            r#"wh_proxy_request_duration_seconds_bucket{le="+Inf",router="a\"b"} 2"#,
            r#"wh_proxy_request_duration_seconds_count{router="a\"b"} 2"#,
            "wh_proxy_open_connections 3",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
