//! What the ingress proxy routes: Traefik dynamic configuration for every live app.
//!
//! `GET /v1/traefik/proxy-config` (static bearer token, compared in constant time): one router
//! `app-<slug>` per live app with rule `Host(`<slug>.<route domain>`)` (joined by
//! `|| Host(`<custom>`)` for each verified custom domain), TLS through the `le`
//! resolver, and one service whose server is the worker's mesh address and the container's host
//! port. The body is deterministic (sorted), so its ETag changes only when the routing does.
//! `?watch=1` with a matching `If-None-Match` holds the request until a change (NOTIFY
//! `wh_routes` from triggers on apps, deployments and workers) or 30 s, then answers 304.
//! `GET /v1/traefik/config?worker=<id>`: the legacy per-worker form, servers on localhost ports.
//!
//! The proxy-wide document is rendered once per routing change and shared ([`Cache`]): with
//! several proxies, and each one's polls, a change costs one query and one 2 MiB render (for
//! 10,000 apps), not one per request.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

/// The NOTIFY channel for routing changes.
pub const CHANNEL: &str = "wh_routes";
/// How long a watch request is held before a 304.
pub const WATCH_HOLD: Duration = Duration::from_secs(30);

/// How long a rendered document is reused while no change is notified: the bound on staleness
/// should a notification be lost with the LISTEN connection, as short as a polling proxy's
/// interval.
pub const CACHE_FOR: Duration = Duration::from_secs(5);

/// The last proxy-wide document, reused by every request until routing changes.
#[derive(Debug, Default)]
pub struct Cache {
    /// Locked across a render, so that the requests a change wakes together wait for one render.
    last: tokio::sync::Mutex<Option<Cached>>,
    renders: AtomicU64,
}

#[derive(Debug)]
struct Cached {
    /// The change generation seen before rendering: the document holds at least its changes.
    generation: u64,
    at: Instant,
    doc: Arc<Rendered>,
}

impl Cache {
    /// The document as of change `generation` (see [`follow_changes`]) or later.
    pub async fn get(
        &self,
        pool: &PgPool,
        route_domain: &str,
        tls: bool,
        generation: u64,
    ) -> Result<Arc<Rendered>, sqlx::Error> {
        let mut last = self.last.lock().await;
        if let Some(c) = &*last {
            if c.generation >= generation && c.at.elapsed() < CACHE_FOR {
                return Ok(c.doc.clone());
            }
        }
        let doc = Arc::new(render(pool, route_domain, tls).await?);
        self.renders.fetch_add(1, Relaxed);
        *last = Some(Cached { generation, at: Instant::now(), doc: doc.clone() });
        Ok(doc)
    }

    /// How many times the document was rendered.
    pub fn renders(&self) -> u64 {
        self.renders.load(Relaxed)
    }
}

/// A rendered document and its ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Shared, not copied, by every response that sends it.
    pub body: axum::body::Bytes,
    pub etag: String,
}

#[derive(sqlx::FromRow)]
struct LiveApp {
    slug: String,
    mesh_ip: String,
    host_port: i32,
    /// Its verified custom domains, sorted.
    domains: Vec<String>,
}

/// The proxy-wide document.
pub async fn render(pool: &PgPool, route_domain: &str, tls: bool) -> Result<Rendered, sqlx::Error> {
    let apps: Vec<LiveApp> = sqlx::query_as(
        "SELECT a.slug, host(w.mesh_ip) AS mesh_ip, d.host_port, coalesce(v.domains, '{}') AS domains
         FROM (SELECT DISTINCT ON (app_id) app_id, worker_id, host_port FROM deployments
               WHERE state = $1 AND host_port IS NOT NULL
               ORDER BY app_id, updated_at DESC, id DESC) d
         JOIN apps a ON a.id = d.app_id
         JOIN workers w ON w.id = d.worker_id AND w.enabled
         LEFT JOIN (SELECT app_id, array_agg(hostname ORDER BY hostname) AS domains FROM domains
                    WHERE status = 'verified' GROUP BY app_id) v ON v.app_id = a.id
         ORDER BY a.slug",
    )
    .bind(crate::deployments::DeploymentState::Live)
    .fetch_all(pool)
    .await?;
    Ok(document(
        apps.iter().map(|a| {
            (a.slug.as_str(), format!("http://{}:{}", a.mesh_ip, a.host_port), &a.domains[..])
        }),
        route_domain,
        tls,
    ))
}

/// The legacy per-worker document: that worker's live apps on localhost ports.
pub async fn render_for_worker(
    pool: &PgPool,
    worker: Uuid,
    route_domain: &str,
) -> Result<Rendered, sqlx::Error> {
    let apps: Vec<(String, i32)> = sqlx::query_as(
        "SELECT a.slug, d.host_port FROM apps a
         JOIN LATERAL (SELECT worker_id, host_port FROM deployments
                       WHERE app_id = a.id AND state = $2 AND host_port IS NOT NULL
                       ORDER BY updated_at DESC, id DESC LIMIT 1) d ON true
         WHERE d.worker_id = $1 ORDER BY a.slug",
    )
    .bind(worker)
    .bind(crate::deployments::DeploymentState::Live)
    .fetch_all(pool)
    .await?;
    Ok(document(
        apps.iter()
            .map(|(slug, port)| (slug.as_str(), format!("http://127.0.0.1:{port}"), &[][..])),
        route_domain,
        false,
    ))
}

/// Writes the document directly: 10,000 apps are one string, not a tree of JSON values.
/// Names and hosts are JSON-escaped; the order is the caller's (sorted), so equal routing gives
/// byte-equal documents and equal ETags.
fn document<'a>(
    apps: impl Iterator<Item = (&'a str, String, &'a [String])>,
    route_domain: &str,
    tls: bool,
) -> Rendered {
    use std::fmt::Write as _;
    let json = |s: &str| serde_json::to_string(s).expect("a string serialises");
    let apps: Vec<(&str, String, &[String])> = apps.collect();
    let mut routers = String::with_capacity(apps.len() * 160);
    let mut services = String::with_capacity(apps.len() * 110);
    let (entry, tls_part) =
        if tls { ("websecure", r#","tls":{"certResolver":"le"}"#) } else { ("web", "") };
    for (i, (slug, server, domains)) in apps.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let name = json(&format!("app-{slug}"));
        // One router per app: its custom domains join the rule.
        let mut rule = format!("Host(`{slug}.{route_domain}`)");
        for d in domains.iter() {
            let _ = write!(rule, " || Host(`{d}`)");
        }
        let rule = json(&rule);
        let _ = write!(
            routers,
            r#"{sep}{name}:{{"entryPoints":["{entry}"],"rule":{rule},"service":{name}{tls_part}}}"#
        );
        let _ = write!(
            services,
            r#"{sep}{name}:{{"loadBalancer":{{"servers":[{{"url":{}}}],"passHostHeader":true}}}}"#,
            json(server)
        );
    }
    let body = format!(r#"{{"http":{{"routers":{{{routers}}},"services":{{{services}}}}}}}"#);
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(body.as_bytes()))[..32]);
    Rendered { body: body.into(), etag }
}

/// Bumps a generation counter on every `wh_routes` notification (reconnecting on loss), so
/// watch requests wake at once.
pub async fn follow_changes(pool: PgPool, changes: std::sync::Arc<watch::Sender<u64>>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(CHANNEL).await {
                Ok(()) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN wh_routes failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot connect for LISTEN wh_routes");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // A change may have been missed while not listening.
        changes.send_modify(|g| *g += 1);
        loop {
            tokio::select! {
                _ = changes.closed() => return,
                got = listener.recv() => match got {
                    Ok(_) => changes.send_modify(|g| *g += 1),
                    Err(_) => break,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_valid_traefik_json() {
        let custom = ["shop.example.com".to_owned(), "www.shop.example.com".to_owned()];
        let r = document(
            [
                ("foo", "http://10.50.0.1:31001".to_owned(), &[][..]),
                ("b-2", "http://10.50.0.2:1".to_owned(), &custom[..]),
            ]
            .into_iter(),
            "route.test",
            true,
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["http"]["routers"]["app-foo"]["rule"], "Host(`foo.route.test`)");
        assert_eq!(
            v["http"]["routers"]["app-b-2"]["rule"],
            "Host(`b-2.route.test`) || Host(`shop.example.com`) || Host(`www.shop.example.com`)",
            "custom domains join their app's one router"
        );
        assert_eq!(v["http"]["routers"].as_object().unwrap().len(), 2);
        assert_eq!(v["http"]["routers"]["app-b-2"]["tls"]["certResolver"], "le");
        assert_eq!(
            v["http"]["services"]["app-b-2"]["loadBalancer"]["servers"][0]["url"],
            "http://10.50.0.2:1"
        );
        let empty = document(std::iter::empty(), "route.test", false);
        assert_eq!(&empty.body[..], br#"{"http":{"routers":{},"services":{}}}"#);
        assert_ne!(empty.etag, r.etag);
    }
}
