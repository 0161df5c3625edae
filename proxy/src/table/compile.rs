//! Document → [`Table`]: every check and allocation happens here, once per configuration.
//!
//! A router that cannot be compiled (its rule does not parse, it names a missing service or
//! middleware, a server URL is invalid) is skipped with a warning naming it and the reason; the
//! rest of the document applies.

use std::sync::Arc;

use crate::config::{duration, dynamic, rule, Document};
use crate::metrics::Metrics;
use crate::middleware::Middleware;
use crate::service::{
    HealthBatch, HealthCheckSpec, HealthRegistry, Service, Upstream,
    DEFAULT_RESPONSE_HEADER_TIMEOUT,
};
use crate::table::matcher::{host_set, HostSet, Matcher};
use crate::table::{FastMap, Ids, Route, Table};

/// Compiles `doc` into generation `generation` of the routing table.
pub fn compile(
    doc: Arc<Document>,
    generation: u64,
    metrics: &Metrics,
    health: &HealthRegistry,
) -> Table {
    let mut warnings = Vec::new();
    let mut services: FastMap<&str, Result<Arc<Service>, String>> = FastMap::default();
    let mut middlewares: FastMap<&str, Result<Arc<Middleware>, String>> = FastMap::default();
    let mut health = health.batch();

    let mut routes = Vec::with_capacity(doc.http.routers.len());
    let mut buckets = Vec::with_capacity(doc.http.routers.len());
    for (name, router) in &doc.http.routers {
        let compiled = compile_router(
            &doc,
            name,
            router,
            &mut services,
            &mut middlewares,
            metrics,
            &mut health,
        );
        match compiled {
            Ok((route, bucket)) => {
                routes.push(route);
                buckets.push(bucket);
            }
            Err(reason) => {
                tracing::warn!(router = %name, %reason, "router skipped");
                warnings.push(format!("router `{name}` skipped: {reason}"));
            }
        }
    }

    let mut exact: FastMap<Box<str>, Ids> =
        FastMap::with_capacity_and_hasher(routes.len(), Default::default());
    let mut suffix: FastMap<Box<str>, Ids> = FastMap::default();
    let (mut wildcard, mut generic) = (Vec::new(), Vec::new());
    let add =
        |map: &mut FastMap<Box<str>, Ids>, key: String, id: u32| match map.get_mut(key.as_str()) {
            Some(ids) => ids.push(id),
            None => {
                map.insert(key.into_boxed_str(), Ids::One([id]));
            }
        };
    for (id, bucket) in buckets.into_iter().enumerate() {
        let id = id as u32;
        match bucket {
            HostSet::Exact(hosts) => hosts.into_iter().for_each(|h| add(&mut exact, h, id)),
            HostSet::Suffix(sfx) => sfx.into_iter().for_each(|s| add(&mut suffix, s, id)),
            HostSet::Wildcard => wildcard.push(id),
            HostSet::Any => generic.push(id),
        }
    }
    let order = |ids: &mut Vec<u32>| {
        ids.sort_by(|&a, &b| {
            let (ra, rb): (&Route, &Route) = (&routes[a as usize], &routes[b as usize]);
            rb.priority.cmp(&ra.priority).then_with(|| ra.name.cmp(&rb.name))
        });
        ids.dedup();
    };
    for ids in exact.values_mut().chain(suffix.values_mut()) {
        if let Ids::Many(v) = ids {
            order(v);
        }
    }
    order(&mut wildcard);
    order(&mut generic);
    let (wildcard, generic) = (wildcard.into_boxed_slice(), generic.into_boxed_slice());
    Table {
        generation,
        routes: routes.into_boxed_slice(),
        exact,
        suffix,
        wildcard,
        generic,
        document: doc,
        warnings: warnings.into_boxed_slice(),
    }
}

fn compile_router<'d>(
    doc: &'d Document,
    name: &str,
    router: &'d dynamic::Router,
    services: &mut FastMap<&'d str, Result<Arc<Service>, String>>,
    middlewares: &mut FastMap<&'d str, Result<Arc<Middleware>, String>>,
    metrics: &Metrics,
    health: &mut HealthBatch<'_>,
) -> Result<(Route, HostSet), String> {
    let parsed = rule::parse(&router.rule).map_err(|e| format!("rule `{}`: {e}", router.rule))?;
    let matcher = Matcher::compile(&parsed)?;
    let service_name = dynamic::local_name(&router.service);
    if service_name.is_empty() {
        return Err("no service".into());
    }
    let service = services
        .entry(service_name)
        .or_insert_with(|| compile_service(doc, service_name, health))
        .clone()
        .map_err(|e| format!("service `{service_name}`: {e}"))?;
    let mut mws = Vec::with_capacity(router.middlewares.len());
    for reference in &router.middlewares {
        let mw_name = dynamic::local_name(reference);
        let mw = middlewares
            .entry(mw_name)
            .or_insert_with(|| match doc.http.middlewares.get(mw_name) {
                Some(def) => Middleware::compile(def).map(Arc::new),
                None => Err("not defined".into()),
            })
            .clone()
            .map_err(|e| format!("middleware `{mw_name}`: {e}"))?;
        mws.push(mw);
    }
    let route = Route {
        name: name.into(),
        priority: router.priority.filter(|p| *p != 0).unwrap_or(router.rule.chars().count() as i64),
        rule: router.rule.as_str().into(),
        matcher,
        metrics: metrics.route(name, &service.name),
        service,
        middlewares: mws.into_boxed_slice(),
        tls: router.tls.is_some(),
        entry_points: router.entry_points.iter().map(|e| e.as_str().into()).collect(),
    };
    Ok((route, host_set(&parsed)))
}

fn compile_service(
    doc: &Document,
    name: &str,
    health: &mut HealthBatch<'_>,
) -> Result<Arc<Service>, String> {
    let def = doc.http.services.get(name).ok_or("not defined")?;
    let lb = def.load_balancer.as_ref().ok_or("only loadBalancer services are supported")?;
    let servers = lb
        .servers
        .iter()
        .map(|s| Upstream::parse(&s.url, health.get(&s.url)).map(|u| (u, s.weight.unwrap_or(1))))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout = match &lb.response_header_timeout {
        Some(t) => {
            duration::parse(t).ok_or_else(|| format!("invalid responseHeaderTimeout `{t}`"))?
        }
        None => DEFAULT_RESPONSE_HEADER_TIMEOUT,
    };
    let health_check = match &lb.health_check {
        Some(hc) => {
            let path = if hc.path.is_empty() { "/" } else { hc.path.as_str() };
            if !path.starts_with('/') {
                return Err(format!("healthCheck.path `{path}` must start with `/`"));
            }
            let dur = |v: &Option<String>, default: u64, what: &str| match v {
                Some(t) => duration::parse(t)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| format!("invalid healthCheck.{what} `{t}`")),
                None => Ok(std::time::Duration::from_secs(default)),
            };
            Some(HealthCheckSpec {
                path: path.into(),
                interval: dur(&hc.interval, 30, "interval")?,
                timeout: dur(&hc.timeout, 5, "timeout")?,
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
