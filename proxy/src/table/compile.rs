//! Document → [`Table`]: every check and allocation happens here, once per configuration.
//!
//! A router that cannot be compiled (its rule does not parse, it names a missing service or
//! middleware, a server URL is invalid) is skipped with a warning naming it and the reason; the
//! rest of the document applies.
//!
//! [`recompile`] is what a running proxy does: a route of the previous table is reused as it is
//! (the same `Arc`, its metrics and its service's load-balancing state with it) when its router,
//! its service and each of its middlewares are defined exactly as before. Real updates change
//! one app at a time, so almost every route is reused; finding out costs one merge walk over the
//! two documents' sorted maps, not a lookup per router.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::config::{duration, dynamic, rule, Document};
use crate::metrics::Metrics;
use crate::middleware::{Middleware, MiddlewareError};
use crate::service::{
    HealthBatch, HealthCheckSpec, HealthRegistry, ServerUrlError, Service, Upstream,
    DEFAULT_RESPONSE_HEADER_TIMEOUT,
};
use crate::table::matcher::{host_set, HostSet, Matcher, MatcherError};
use crate::table::{Bucket, Route, Table};
use crate::util::FastMap;

type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

/// Compiles `doc` into generation `generation` of the routing table, from scratch.
pub fn compile(
    doc: Arc<Document>,
    generation: u64,
    metrics: &Metrics,
    health: &HealthRegistry,
) -> Table {
    build(doc, generation, metrics, health, None)
}

/// Compiles `doc` like [`compile`], reusing the routes of `previous` that did not change.
pub fn recompile(
    doc: Arc<Document>,
    generation: u64,
    metrics: &Metrics,
    health: &HealthRegistry,
    previous: &Table,
) -> Table {
    build(doc, generation, metrics, health, Some(previous))
}

fn build(
    doc: Arc<Document>,
    generation: u64,
    metrics: &Metrics,
    health: &HealthRegistry,
    previous: Option<&Table>,
) -> Table {
    let mut warnings = Vec::new();
    let mut reuse = previous.map(|p| Reuse::new(p, &doc));
    let mut compiler = Compiler {
        doc: &doc,
        services: FastMap::default(),
        middlewares: FastMap::default(),
        metrics,
        health: health.batch(),
    };
    let mut routes = Vec::with_capacity(doc.http.routers.len());
    for (name, router) in &doc.http.routers {
        if let Some(route) = reuse.as_mut().and_then(|r| r.take(name, router)) {
            routes.push(route);
            continue;
        }
        let old_services = reuse.as_mut().map(|r| &mut r.services);
        match compiler.router(name, router, old_services) {
            Ok(route) => routes.push(Arc::new(route)),
            Err(reason) => {
                tracing::warn!(router = %name, %reason, "router skipped");
                warnings.push(format!("router `{name}` skipped: {reason}"));
            }
        }
    }
    drop(compiler);

    let mut exact: FastMap<Box<str>, Bucket> =
        FastMap::with_capacity_and_hasher(routes.len(), Default::default());
    let mut suffix: FastMap<Box<str>, Bucket> = FastMap::default();
    let (mut wildcard, mut generic) = (Vec::new(), Vec::new());
    let add = |map: &mut FastMap<Box<str>, Bucket>, key: &str, route: &Arc<Route>| match map
        .get_mut(key)
    {
        Some(bucket) => bucket.push(route.clone()),
        None => {
            map.insert(key.into(), Bucket::One([route.clone()]));
        }
    };
    for route in &routes {
        match &route.hosts {
            HostSet::Exact(hosts) => hosts.iter().for_each(|h| add(&mut exact, h, route)),
            HostSet::Suffix(sfx) => sfx.iter().for_each(|s| add(&mut suffix, s, route)),
            HostSet::Wildcard => wildcard.push(route.clone()),
            HostSet::Any => generic.push(route.clone()),
        }
    }
    let order = |bucket: &mut Vec<Arc<Route>>| {
        bucket.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.name.cmp(&b.name)));
        bucket.dedup_by(|a, b| Arc::ptr_eq(a, b));
    };
    for bucket in exact.values_mut().chain(suffix.values_mut()) {
        if let Bucket::Many(v) = bucket {
            order(v);
        }
    }
    order(&mut wildcard);
    order(&mut generic);
    Table {
        generation,
        routes: routes.into_boxed_slice(),
        exact,
        suffix,
        wildcard: wildcard.into_boxed_slice(),
        generic: generic.into_boxed_slice(),
        document: doc,
        warnings: warnings.into_boxed_slice(),
    }
}

/// What [`recompile`] may take from the previous table.
struct Reuse<'p> {
    /// The previous routes, in name order like the routers they are walked with.
    routes: std::iter::Peekable<std::slice::Iter<'p, Arc<Route>>>,
    /// The previous document's routers, walked in step with the new one's.
    routers: std::iter::Peekable<std::collections::btree_map::Iter<'p, String, dynamic::Router>>,
    /// Middlewares added, removed or defined differently.
    changed_middlewares: FastSet<String>,
    services: OldServices<'p>,
}

/// The previous table's compiled services.
struct OldServices<'p> {
    table: &'p Table,
    /// Services added, removed or defined differently.
    changed: FastSet<String>,
    /// By name, for a new router naming an unchanged service (built once, only if that happens).
    by_name: Option<FastMap<&'p str, Arc<Service>>>,
}

impl OldServices<'_> {
    /// The previous compiled `name`, if its definition did not change.
    fn get(&mut self, name: &str) -> Option<Arc<Service>> {
        if self.changed.contains(name) {
            return None;
        }
        let table = self.table;
        let by_name = self.by_name.get_or_insert_with(|| {
            table.routes.iter().map(|r| (&*r.service.name, r.service.clone())).collect()
        });
        by_name.get(name).cloned()
    }
}

impl<'p> Reuse<'p> {
    fn new(previous: &'p Table, doc: &Document) -> Reuse<'p> {
        let old = &previous.document.http;
        Reuse {
            routes: previous.routes.iter().peekable(),
            routers: old.routers.iter().peekable(),
            changed_middlewares: changed(&old.middlewares, &doc.http.middlewares),
            services: OldServices {
                table: previous,
                changed: changed(&old.services, &doc.http.services),
                by_name: None,
            },
        }
    }

    /// The previous route for router `name`, if it and everything it uses is unchanged. Called
    /// with the new routers in name order.
    fn take(&mut self, name: &str, router: &dynamic::Router) -> Option<Arc<Route>> {
        let old_router = advance_to(&mut self.routers, name, |(n, _)| n.as_str())?.1;
        let route = advance_to(&mut self.routes, name, |r| &r.name)?;
        let unchanged = old_router == router
            && !self.services.changed.contains(dynamic::local_name(&router.service))
            && !router
                .middlewares
                .iter()
                .any(|m| self.changed_middlewares.contains(dynamic::local_name(m)));
        unchanged.then(|| route.clone())
    }
}

/// Moves `iter` past the items named before `name`; returns the item named `name`, if any.
fn advance_to<T>(
    iter: &mut std::iter::Peekable<impl Iterator<Item = T>>,
    name: &str,
    name_of: impl Fn(&T) -> &str,
) -> Option<T> {
    while let Some(item) = iter.peek() {
        match name_of(item).cmp(name) {
            std::cmp::Ordering::Less => {
                iter.next();
            }
            std::cmp::Ordering::Equal => return iter.next(),
            std::cmp::Ordering::Greater => return None,
        }
    }
    None
}

/// Names added, removed or defined differently between two sorted maps: one merge walk.
fn changed<V: PartialEq>(old: &BTreeMap<String, V>, new: &BTreeMap<String, V>) -> FastSet<String> {
    let mut out = FastSet::default();
    let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return out,
            (Some((k, _)), None) => {
                out.insert((*k).clone());
                a.next();
            }
            (None, Some((k, _))) => {
                out.insert((*k).clone());
                b.next();
            }
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    out.insert((*ka).clone());
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    out.insert((*kb).clone());
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if va != vb {
                        out.insert((*ka).clone());
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
}

/// The largest priority a router may ask for (Traefik keeps the last 1000 for its own).
pub const MAX_USER_PRIORITY: i64 = i64::MAX - 1000;

/// Why a router was skipped.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    #[error("rule `{rule}`: {source}")]
    Rule { rule: String, source: rule::RuleError },
    #[error("entryPoints {names}: none is one of this proxy's (see --entry-points-web, --entry-points-websecure)")]
    EntryPoints { names: String },
    #[error("ruleSyntax `{value}`: v3 or v2")]
    Syntax { value: String },
    #[error("priority {value} exceeds the largest a router may have ({MAX_USER_PRIORITY})")]
    Priority { value: i64 },
    #[error(transparent)]
    Matcher(#[from] MatcherError),
    #[error("no service")]
    NoService,
    #[error("service `{name}`: {source}")]
    Service { name: String, source: ServiceError },
    #[error("middleware `{name}`: {source}")]
    Middleware { name: String, source: MiddlewareError },
}

/// Why a service cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error("not defined")]
    NotDefined,
    #[error("only loadBalancer services are supported")]
    NotLoadBalancer,
    #[error(transparent)]
    Server(#[from] ServerUrlError),
    #[error("invalid {setting} `{value}`")]
    Duration { setting: &'static str, value: String },
    #[error("healthCheck.path `{0}` must start with `/`")]
    HealthPath(String),
}

/// Compiles routers one by one, sharing services and middlewares between them.
struct Compiler<'d, 'm> {
    doc: &'d Document,
    services: FastMap<&'d str, Result<Arc<Service>, ServiceError>>,
    middlewares: FastMap<&'d str, Result<Arc<Middleware>, MiddlewareError>>,
    metrics: &'m Metrics,
    health: HealthBatch<'m>,
}

impl<'d> Compiler<'d, '_> {
    fn router(
        &mut self,
        name: &str,
        router: &'d dynamic::Router,
        old_services: Option<&mut OldServices<'_>>,
    ) -> Result<Route, RouteError> {
        if router.priority.is_some_and(|p| p > MAX_USER_PRIORITY) {
            return Err(RouteError::Priority { value: router.priority.unwrap_or_default() });
        }
        let names = &self.doc.entry_points;
        let named = |list: &[String]| {
            router.entry_points.is_empty() || router.entry_points.iter().any(|e| list.contains(e))
        };
        let (on_plain, on_tls) = (named(&names.plain), named(&names.tls));
        if !on_plain && !on_tls {
            return Err(RouteError::EntryPoints { names: router.entry_points.join(", ") });
        }
        let syntax = match &router.rule_syntax {
            None => self.doc.default_syntax,
            Some(word) => rule::Syntax::parse(word)
                .ok_or_else(|| RouteError::Syntax { value: word.clone() })?,
        };
        let parsed = rule::parse_with(&router.rule, syntax)
            .map_err(|source| RouteError::Rule { rule: router.rule.clone(), source })?;
        let matcher = Matcher::compile(&parsed)?;
        let service_name = dynamic::local_name(&router.service);
        if service_name.is_empty() {
            return Err(RouteError::NoService);
        }
        let (doc, health) = (self.doc, &mut self.health);
        let service = self
            .services
            .entry(service_name)
            .or_insert_with(|| match old_services.and_then(|old| old.get(service_name)) {
                Some(unchanged) => Ok(unchanged),
                None => compile_service(doc, service_name, health),
            })
            .clone()
            .map_err(|source| RouteError::Service { name: service_name.into(), source })?;
        let mut mws = Vec::with_capacity(router.middlewares.len());
        for reference in &router.middlewares {
            let mw_name = dynamic::local_name(reference);
            let mw = self
                .middlewares
                .entry(mw_name)
                .or_insert_with(|| match doc.http.middlewares.get(mw_name) {
                    Some(def) => Middleware::compile_in(
                        def,
                        &doc.http.middlewares,
                        &mut vec![mw_name.to_owned()],
                    )
                    .map(Arc::new),
                    None => Err(MiddlewareError::NotDefined),
                })
                .clone()
                .map_err(|source| RouteError::Middleware { name: mw_name.into(), source })?;
            mws.push(mw);
        }
        Ok(Route {
            name: name.into(),
            // Traefik's: the rule's length in bytes unless set (0 is unset).
            priority: router.priority.filter(|p| *p != 0).unwrap_or(router.rule.len() as i64),
            rule: router.rule.as_str().into(),
            matcher,
            metrics: self.metrics.route(name, &service.name),
            service,
            middlewares: mws.into_boxed_slice(),
            tls: router.tls.is_some(),
            entry_points: router.entry_points.iter().map(|e| e.as_str().into()).collect(),
            on_plain,
            on_tls,
            hosts: host_set(&parsed),
        })
    }
}

fn compile_service(
    doc: &Document,
    name: &str,
    health: &mut HealthBatch<'_>,
) -> Result<Arc<Service>, ServiceError> {
    let def = doc.http.services.get(name).ok_or(ServiceError::NotDefined)?;
    let lb = def.load_balancer.as_ref().ok_or(ServiceError::NotLoadBalancer)?;
    let servers = lb
        .servers
        .iter()
        .map(|s| Upstream::parse(&s.url, health.get(&s.url)).map(|u| (u, s.weight.unwrap_or(1))))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout = match &lb.response_header_timeout {
        Some(t) => duration::parse(t).ok_or_else(|| ServiceError::Duration {
            setting: "responseHeaderTimeout",
            value: t.clone(),
        })?,
        None => DEFAULT_RESPONSE_HEADER_TIMEOUT,
    };
    let health_check = match &lb.health_check {
        Some(hc) => {
            let path = if hc.path.is_empty() { "/" } else { hc.path.as_str() };
            if !path.starts_with('/') {
                return Err(ServiceError::HealthPath(path.into()));
            }
            let dur = |v: &Option<String>, default: u64, setting: &'static str| match v {
                Some(t) => duration::parse(t)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| ServiceError::Duration { setting, value: t.clone() }),
                None => Ok(std::time::Duration::from_secs(default)),
            };
            Some(HealthCheckSpec {
                path: path.into(),
                interval: dur(&hc.interval, 30, "healthCheck.interval")?,
                timeout: dur(&hc.timeout, 5, "healthCheck.timeout")?,
            })
        }
        None => None,
    };
    Ok(Arc::new(Service::new(
        name,
        servers,
        lb.pass_host_header.unwrap_or(true),
        timeout,
        health_check,
    )))
}
