//! Services: their upstream servers, load balancing and passive health.
//!
//! A server's health ([`ServerHealth`]) outlives table swaps: the [`HealthRegistry`] hands out the
//! same `Arc` for the same URL, so a server ejected a moment ago stays ejected in the new table
//! and active-check results carry over. Picking a server is an atomic increment over a weighted
//! schedule precomputed at compile time; nothing on the request path locks.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Scheme;
use http::HeaderValue;

use crate::util::{monotonic_ms, FastMap};

/// Default wait for an upstream's response headers.
pub const DEFAULT_RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// First passive ejection; doubles per consecutive failure up to [`MAX_EJECTION`].
const BASE_EJECTION: Duration = Duration::from_secs(1);
const MAX_EJECTION: Duration = Duration::from_secs(30);

/// Health of one upstream server, shared across table generations.
#[derive(Debug, Default)]
pub struct ServerHealth {
    /// Passive: ejected until this many ms after process start (0: not ejected).
    ejected_until_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    /// Active: the last health check failed.
    pub(crate) active_down: AtomicBool,
}

impl ServerHealth {
    pub fn is_available(&self, now: u64) -> bool {
        !self.active_down.load(Relaxed) && self.ejected_until_ms.load(Relaxed) <= now
    }

    /// A connection to the server failed: eject it for a backoff window.
    pub fn record_failure(&self) {
        let n = self.consecutive_failures.fetch_add(1, Relaxed).min(16);
        let window = BASE_EJECTION.saturating_mul(1 << n).min(MAX_EJECTION);
        self.ejected_until_ms.store(monotonic_ms() + window.as_millis() as u64, Relaxed);
    }

    /// The server answered: clear the backoff.
    pub fn record_success(&self) {
        if self.consecutive_failures.load(Relaxed) != 0 {
            self.consecutive_failures.store(0, Relaxed);
            self.ejected_until_ms.store(0, Relaxed);
        }
    }
}

/// Hands out one [`ServerHealth`] per server URL across table generations.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    map: Mutex<FastMap<Box<str>, Arc<ServerHealth>>>,
}

/// The registry, locked once for a whole compile.
pub struct HealthBatch<'a>(std::sync::MutexGuard<'a, FastMap<Box<str>, Arc<ServerHealth>>>);

impl HealthBatch<'_> {
    pub fn get(&mut self, url: &str) -> Arc<ServerHealth> {
        if let Some(h) = self.0.get(url) {
            return h.clone();
        }
        self.0.entry(url.into()).or_default().clone()
    }
}

impl HealthRegistry {
    pub fn get(&self, url: &str) -> Arc<ServerHealth> {
        self.batch().get(url)
    }

    /// Locks the registry for many lookups (compile time only, never on the request path).
    pub fn batch(&self) -> HealthBatch<'_> {
        HealthBatch(self.map.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Forgets servers no table refers to any more.
    pub fn prune(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, h| Arc::strong_count(h) > 1);
    }
}

/// One upstream server.
#[derive(Debug)]
pub struct Upstream {
    pub url: Box<str>,
    /// Where connections go, parsed once here.
    pub target: crate::upstream::Target,
    /// `Host` value sent when the service does not pass the client's host through.
    pub host_header: HeaderValue,
    pub health: Arc<ServerHealth>,
}

impl Upstream {
    /// Parses an upstream URL (`http://10.50.0.12:31001`); only http is supported.
    pub fn parse(url: &str, health: Arc<ServerHealth>) -> Result<Upstream, ServerUrlError> {
        let bad = |why| ServerUrlError { url: url.into(), why };
        let uri: http::Uri = url.parse().map_err(|_| bad(ServerUrlProblem::Syntax))?;
        let scheme = uri.scheme().cloned().ok_or(bad(ServerUrlProblem::NoScheme))?;
        if scheme != Scheme::HTTP {
            return Err(bad(ServerUrlProblem::NotHttp));
        }
        let authority = uri.authority().cloned().ok_or(bad(ServerUrlProblem::NoHost))?;
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(bad(ServerUrlProblem::Path));
        }
        let host_header =
            HeaderValue::from_str(authority.as_str()).map_err(|_| bad(ServerUrlProblem::Syntax))?;
        let target = crate::upstream::Target::parse(&authority);
        Ok(Upstream { url: url.into(), target, host_header, health })
    }
}

/// A server URL that cannot be forwarded to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server url `{url}`: {why}")]
pub struct ServerUrlError {
    pub url: String,
    pub why: ServerUrlProblem,
}

/// What is wrong with a server URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerUrlProblem {
    #[error("not a valid URL")]
    Syntax,
    #[error("no scheme")]
    NoScheme,
    #[error("only http:// upstreams are supported")]
    NotHttp,
    #[error("no host")]
    NoHost,
    #[error("a path is not supported")]
    Path,
}

/// Active health-check settings of a service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthCheckSpec {
    pub path: Box<str>,
    pub interval: Duration,
    pub timeout: Duration,
}

/// A compiled service.
#[derive(Debug)]
pub struct Service {
    pub name: Box<str>,
    pub servers: Box<[Upstream]>,
    /// Weighted round-robin order: indexes into `servers`.
    schedule: Box<[u16]>,
    next: AtomicUsize,
    pub pass_host_header: bool,
    pub response_header_timeout: Duration,
    pub health_check: Option<HealthCheckSpec>,
}

impl Service {
    pub fn new(
        name: &str,
        servers: Vec<(Upstream, u32)>,
        pass_host_header: bool,
        response_header_timeout: Duration,
        health_check: Option<HealthCheckSpec>,
    ) -> Service {
        let schedule = interleave(&servers.iter().map(|(_, w)| *w).collect::<Vec<_>>());
        Service {
            name: name.into(),
            servers: servers.into_iter().map(|(u, _)| u).collect(),
            schedule,
            next: AtomicUsize::new(0),
            pass_host_header,
            response_header_timeout,
            health_check,
        }
    }

    /// The next available server in weighted round-robin order, skipping ejected and
    /// actively-down ones, and `exclude` (a server that just failed this request).
    pub fn pick(&self, exclude: Option<usize>) -> Option<usize> {
        let n = self.schedule.len();
        if n == 0 {
            return None;
        }
        let now = monotonic_ms();
        let start = self.next.fetch_add(1, Relaxed);
        (0..n)
            .map(|i| self.schedule[(start + i) % n] as usize)
            .find(|&s| Some(s) != exclude && self.servers[s].health.is_available(now))
    }
}

/// Smooth weighted round-robin (as nginx) unrolled into a fixed schedule: weights 5,1,1 give
/// a,a,b,a,c,a,a rather than a,a,a,a,a,b,c. Weights are capped so the schedule stays small.
fn interleave(weights: &[u32]) -> Box<[u16]> {
    if weights.len() <= 1 {
        return vec![0; weights.len()].into_boxed_slice();
    }
    let weights: Vec<i64> = weights.iter().map(|&w| i64::from(w.clamp(1, 100))).collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&weights) {
            *c += w;
        }
        let (best, _) =
            current.iter().enumerate().max_by_key(|(i, c)| (**c, -(*i as i64))).unwrap_or((0, &0));
        current[best] -= total;
        out.push(best as u16);
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(weights: &[u32]) -> Service {
        let reg = HealthRegistry::default();
        let servers = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let url = format!("http://127.0.0.{}:80", i + 1);
                (Upstream::parse(&url, reg.get(&url)).unwrap(), w)
            })
            .collect();
        Service::new("s", servers, true, DEFAULT_RESPONSE_HEADER_TIMEOUT, None)
    }

    #[test]
    fn weighted_round_robin_is_smooth_and_proportional() {
        assert_eq!(&*interleave(&[5, 1, 1]), &[0, 0, 1, 0, 2, 0, 0]);
        let s = svc(&[3, 1]);
        let picks: Vec<_> = (0..8).map(|_| s.pick(None).unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 6);
    }

    #[test]
    fn ejected_servers_are_skipped_until_their_window_ends() {
        let s = svc(&[1, 1]);
        s.servers[0].health.record_failure();
        assert!((0..10).all(|_| s.pick(None) == Some(1)));
        s.servers[1].health.record_failure();
        assert_eq!(s.pick(None), None);
        s.servers[0].health.record_success();
        assert_eq!(s.pick(None), Some(0));
        assert_eq!(s.pick(Some(0)), None);
    }

    #[test]
    fn bad_upstream_urls_are_rejected() {
        let h = Arc::new(ServerHealth::default());
        assert!(Upstream::parse("https://x:1", h.clone()).is_err());
        assert!(Upstream::parse("10.0.0.1:80", h.clone()).is_err());
        assert!(Upstream::parse("http://x:1/path", h.clone()).is_err());
        assert!(Upstream::parse("http://x:1", h).is_ok());
    }
}
