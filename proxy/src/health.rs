//! Active health checks: one task per (server, check settings), reconciled on every new table.
//!
//! A check is `GET <server><path>` with the service's timeout; 2xx and 3xx are healthy, anything
//! else (including no answer) marks the server down until a later check passes. Results land in
//! the server's shared [`ServerHealth`](crate::service::ServerHealth), which the request path
//! reads with one atomic load.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use http::{Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use crate::service::{HealthCheckSpec, ServerHealth};
use crate::table::Table;
use crate::upstream::ReqBody;

type Key = (Box<str>, HealthCheckSpec);

/// Owns the running checks.
pub struct HealthChecker {
    running: HashMap<Key, CancellationToken>,
    client: Client<HttpConnector, ReqBody>,
    shutdown: CancellationToken,
}

impl HealthChecker {
    pub fn new(shutdown: CancellationToken) -> HealthChecker {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
        let client =
            Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector);
        HealthChecker { running: HashMap::new(), client, shutdown }
    }

    /// Starts checks the table needs and stops the ones it no longer does.
    pub fn reconcile(&mut self, table: &Table) {
        let mut wanted: HashMap<Key, Arc<ServerHealth>> = HashMap::new();
        for route in table.routes() {
            if let Some(spec) = &route.service.health_check {
                for server in route.service.servers.iter() {
                    wanted.insert((server.url.clone(), spec.clone()), server.health.clone());
                }
            }
        }
        self.running.retain(|key, token| {
            let keep = wanted.contains_key(key);
            if !keep {
                token.cancel();
            }
            keep
        });
        for (key, health) in wanted {
            if self.running.contains_key(&key) {
                continue;
            }
            let token = self.shutdown.child_token();
            self.running.insert(key.clone(), token.clone());
            tokio::spawn(check_loop(self.client.clone(), key.0, key.1, health, token));
        }
        // Servers without a check are never held down by an old check's result.
        for route in table.routes() {
            if route.service.health_check.is_none() {
                for server in route.service.servers.iter() {
                    server.health.active_down.store(false, Relaxed);
                }
            }
        }
    }
}

async fn check_loop(
    client: Client<HttpConnector, ReqBody>,
    url: Box<str>,
    spec: HealthCheckSpec,
    health: Arc<ServerHealth>,
    stop: CancellationToken,
) {
    let Ok(uri) = format!("{url}{}", spec.path).parse::<Uri>() else {
        return;
    };
    loop {
        let req = Request::get(uri.clone())
            .header("user-agent", "wh-proxy-healthcheck")
            .body(ReqBody::Empty);
        let healthy = match req {
            Ok(req) => matches!(
                tokio::time::timeout(spec.timeout, client.request(req)).await,
                Ok(Ok(resp)) if resp.status().is_success() || resp.status().is_redirection()
            ),
            Err(_) => false,
        };
        let was_down = health.active_down.swap(!healthy, Relaxed);
        if was_down == healthy {
            tracing::info!(server = %url, healthy, "health check state changed");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(spec.interval) => {}
        }
    }
}
