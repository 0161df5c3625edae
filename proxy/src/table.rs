//! The compiled, immutable routing table and its lookup.
//!
//! A [`Table`] is built once per configuration by [`compile`] (or [`recompile`], which reuses
//! the unchanged routes of the previous table) and published with `ArcSwap`; a request holds the
//! `Arc` it started with, so a swap never changes a request mid-flight.
//! Lookup order within a table: routers indexed by exact host (hash map), then routers whose
//! `HostRegexp` reduces to "one or more labels + a literal suffix" (hash map by suffix), then other
//! host regexps, then routers without a host condition. Each bucket is sorted by priority
//! (highest first, then by name), and the best match across buckets wins, as in Traefik.
//! Lookup allocates nothing: the host arrives lower-cased in a stack buffer.
//!
//! - [`matcher`]: a compiled rule and its evaluation.
//! - [`compile`]: document → table, with per-router warnings; incremental after the first.

pub mod compile;
pub mod matcher;

use crate::util::FastMap;
use std::sync::Arc;

use crate::config::Document;
use crate::metrics::RouteMetrics;
use crate::middleware::Middleware;
use crate::service::Service;
use matcher::Matcher;

pub use compile::{compile, recompile};

/// One router, compiled.
#[derive(Debug)]
pub struct Route {
    pub name: Box<str>,
    pub priority: i64,
    pub rule: Box<str>,
    pub(crate) matcher: Matcher,
    pub service: Arc<Service>,
    pub middlewares: Box<[Arc<Middleware>]>,
    /// The router asked for TLS (`tls: {}` or a certResolver).
    pub tls: bool,
    pub entry_points: Box<[Box<str>]>,
    /// Served on the plain listener, on the TLS one (from `entryPoints`; none named: both).
    pub on_plain: bool,
    pub on_tls: bool,
    pub metrics: Arc<RouteMetrics>,
    /// Which hosts the rule can match: the buckets it goes in, kept for the next compile.
    pub(crate) hosts: matcher::HostSet,
}

/// The routes of one bucket, by priority. Almost every host has exactly one router, so that
/// case needs no allocation of its own.
#[derive(Debug, Clone)]
pub(crate) enum Bucket {
    One([Arc<Route>; 1]),
    Many(Vec<Arc<Route>>),
}

impl Bucket {
    pub(crate) fn as_slice(&self) -> &[Arc<Route>] {
        match self {
            Bucket::One(one) => one,
            Bucket::Many(many) => many,
        }
    }

    pub(crate) fn push(&mut self, route: Arc<Route>) {
        match self {
            Bucket::One([first]) => *self = Bucket::Many(vec![first.clone(), route]),
            Bucket::Many(v) => v.push(route),
        }
    }
}

/// The routing table for one configuration generation.
#[derive(Debug, Default)]
pub struct Table {
    pub generation: u64,
    /// Every route, in router-name order (the document's order).
    pub(crate) routes: Box<[Arc<Route>]>,
    pub(crate) exact: FastMap<Box<str>, Bucket>,
    pub(crate) suffix: FastMap<Box<str>, Bucket>,
    pub(crate) wildcard: Box<[Arc<Route>]>,
    pub(crate) generic: Box<[Arc<Route>]>,
    /// The document this table was compiled from (for `/routes` and the snapshot).
    pub document: Arc<Document>,
    /// Routers that were skipped, each with its reason.
    pub warnings: Box<[String]>,
}

impl Table {
    /// The route for a request to `host` (lower-case, no port) and `path`, if any.
    pub fn lookup<'t>(&'t self, host: &str, path: &str) -> Option<&'t Route> {
        self.lookup_request(&matcher::Request::simple(host, path))
    }

    /// The best route for `req`: its host picks the buckets, its rule decides.
    pub fn lookup_request<'t>(&'t self, req: &matcher::Request<'_>) -> Option<&'t Route> {
        let host = req.host.strip_suffix('.').unwrap_or(req.host);
        let mut best: Option<&'t Route> = None;
        let mut consider = |bucket: &'t [Arc<Route>]| {
            for r in bucket {
                if best.is_some_and(|b| b.priority >= r.priority) {
                    return; // sorted by priority: nothing later in this bucket can win
                }
                let served = if req.tls {
                    r.on_tls
                } else {
                    r.on_plain
                        || (r.on_tls && (req.only_listener || (req.redirect_to_tls && r.tls)))
                };
                if served && r.matcher.eval(req) {
                    best = Some(&**r);
                    return;
                }
            }
        };
        if let Some(bucket) = self.exact.get(host) {
            consider(bucket.as_slice());
        }
        if !self.suffix.is_empty() {
            let mut rest = host;
            while let Some(dot) = rest.find('.') {
                rest = &rest[dot + 1..];
                if let Some(bucket) = self.suffix.get(rest) {
                    consider(bucket.as_slice());
                }
            }
        }
        consider(&self.wildcard);
        consider(&self.generic);
        best
    }

    /// All routes, in router-name order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when no route is loaded.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every exact host any route answers for.
    pub fn exact_hosts(&self) -> impl Iterator<Item = &str> {
        self.exact.keys().map(|k| &**k)
    }

    /// Exact hosts of routers with `tls`: the only names certificates are ever ordered for.
    pub fn tls_hosts(&self) -> impl Iterator<Item = &str> {
        self.exact
            .iter()
            .filter(|(_, bucket)| bucket.as_slice().iter().any(|r| r.tls))
            .map(|(host, _)| &**host)
    }
}

/// Normalises a Host header value for lookup into `buf`: strips the port, lower-cases ASCII.
/// Returns `None` for hosts longer than the buffer or not valid as a host name.
pub fn normalize_host<'b>(raw: &[u8], buf: &'b mut [u8; 256]) -> Option<&'b str> {
    crate::target::authority(raw, buf).map(|a| a.name)
}

#[cfg(test)]
mod tests;
