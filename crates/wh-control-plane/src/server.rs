//! The whole control plane from a [`Config`]: database (migrated), hub, scheduler, log bus,
//! routing follower and the API listeners, in the spec's startup order. `main` runs it until a
//! signal; `wh dev` runs it in-process next to a worker and the proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ExposeSecret};
use crate::{
    api, database, domains, gitproviders, httpserve, hub, jwt, logbus, scheduler, secrets,
    AppState, Limits, Routing,
};

/// A started control plane.
pub struct Server {
    /// Where the user API listens (and the worker/proxy endpoints, unless split off).
    pub public_addr: SocketAddr,
    /// The separate worker/proxy listener, when configured.
    pub internal_addr: Option<SocketAddr>,
    /// The admin listener (`/metrics`), when configured.
    pub admin_addr: Option<SocketAddr>,
    pub pool: sqlx::PgPool,
    servers: JoinSet<std::io::Result<()>>,
    stop: CancellationToken,
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// Connects (waiting up to `db_patience` for the database), migrates, binds and serves until
/// `stop` is cancelled.
pub async fn start(
    config: Config,
    db_patience: Duration,
    stop: CancellationToken,
) -> Result<Server, StartError> {
    let pool = database::connect(config.database_url.expose_secret(), db_patience)
        .await
        .map_err(|e| StartError(e.to_string()))?;
    // Verified worker messages go to the scheduler's pipeline, one queue per family.
    let (routes, queues) = hub::routes(4096);
    let hub = Arc::new(hub::Hub::new(routes));
    tokio::spawn(wh_cmd::supervise("worker-status", stop.clone(), {
        let (hub, pool, stop) = (hub.clone(), pool.clone(), stop.clone());
        move || hub.clone().enforce_enabled(pool.clone(), Duration::from_secs(5), stop.clone())
    }));
    let logs = Arc::new(logbus::LogBus::default());
    let env = Arc::new(config.master_key.sealer(secrets::Purpose::Env));
    // Credentials an older version stored in clear, in repository URLs, are sealed now.
    match crate::repos::seal_stored_credentials(&pool, &env).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(apps = n, "sealed repository credentials stored in clear"),
        Err(e) => {
            return Err(StartError(format!("cannot seal stored repository credentials: {e}")))
        }
    }
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let forges = Arc::new(gitproviders::Forges::new(
        config.git_providers.clone(),
        &config.public_url,
        crate::outbound::Client::new(&wh_http::client::Trust::System),
        Arc::new(config.master_key.sealer(secrets::Purpose::OAuth)),
    ));
    let scheduling = scheduler::SchedulerSettings {
        forges: Some(forges.clone()),
        env: Some(env.clone()),
        logs: Some(logs.clone()),
        metrics: metrics.clone(),
        ..scheduler::SchedulerSettings::default()
    };
    tokio::spawn(scheduler::run(pool.clone(), hub.clone(), scheduling, queues, stop.clone()));
    tokio::spawn(wh_cmd::supervise("alerts", stop.clone(), {
        let (pool, stop) = (pool.clone(), stop.clone());
        move || crate::alerts::run(pool.clone(), crate::alerts::EVERY, stop.clone())
    }));
    tokio::spawn(wh_cmd::supervise("usage", stop.clone(), {
        let (pool, stop) = (pool.clone(), stop.clone());
        move || crate::usage::run(pool.clone(), stop.clone())
    }));
    let resolver = crate::outbound::resolve::Dns::new(&config.outbound_dns)
        .map_err(|e| StartError(format!("cannot read the resolver configuration: {e}")))?;
    let dispatcher = Arc::new(crate::webhooks::Dispatcher::new(
        pool.clone(),
        crate::webhooks::dispatch::Settings {
            client: crate::outbound::Client::new(&wh_http::client::Trust::System),
            guard: crate::outbound::guard::Guard {
                allow_http: config.outbound_allow_http,
                allow: config.outbound_allow.clone(),
                resolver: Arc::new(resolver),
            },
            keys: Arc::new(crate::webhooks::targets::Keys {
                urls: config.master_key.sealer(secrets::Purpose::TargetUrl),
                secrets: config.master_key.sealer(secrets::Purpose::Webhook),
            }),
            dashboard: config.public_url.clone(),
            lease: Duration::from_secs(60),
        },
    ));
    tokio::spawn(wh_cmd::supervise("webhooks", stop.clone(), {
        let (dispatcher, stop) = (dispatcher.clone(), stop.clone());
        move || dispatcher.clone().run(stop.clone())
    }));
    let mut routing =
        Routing::follow(&pool, Some(config.proxy_token.clone()), &config.route_domain);
    routing.tls = config.route_tls;
    routing.public_port = config.route_port;
    routing.proxy_addresses = config.proxy_addresses.clone();
    let state = AppState {
        pool: pool.clone(),
        jwt: Arc::new(jwt::JwtKeys::new(config.jwt_secret.expose_secret(), config.jwt_ttl)),
        hub,
        routing: Arc::new(routing),
        env,
        hooks: Arc::new(config.master_key.sealer(secrets::Purpose::GitHook)),
        cookie_secure: config.cookie_secure,
        limits: Arc::new(Limits::default()),
        logs,
        dns: Arc::new(domains::Verifier::new(&config.dns)),
        allow_private_repos: config.allow_private_repos,
        metrics,
        forges,
        dispatcher,
    };
    gitproviders::spawn(&pool, &state.forges, &state.routing, &stop);
    tokio::spawn(wh_cmd::supervise("domain-rechecks", stop.clone(), {
        let (pool, dns, stop) = (pool.clone(), (*state.dns).clone(), stop.clone());
        move || {
            domains::run_rechecks(pool.clone(), dns.clone(), Duration::from_secs(60), stop.clone())
        }
    }));
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| StartError(format!("cannot listen on {addr}: {e}")))
    };
    let admin = config.admin_listen.map(|addr| (addr, api::admin_router(state.clone())));
    let (public, internal) = match config.internal_listen {
        Some(addr) => (api::public(state.clone()), Some((addr, api::internal(state)))),
        None => (api::app(state), None),
    };
    let public_listener = bind(config.listen).await?;
    let public_addr = public_listener.local_addr().map_err(|e| StartError(e.to_string()))?;
    let mut servers = JoinSet::new();
    let mut internal_addr = None;
    if let Some((addr, router)) = internal {
        let listener = bind(addr).await?;
        internal_addr = listener.local_addr().ok();
        let stop = stop.clone();
        servers.spawn(httpserve::serve(listener, router, config.http, stop));
    }
    let mut admin_addr = None;
    if let Some((addr, router)) = admin {
        let listener = bind(addr).await?;
        admin_addr = listener.local_addr().ok();
        servers.spawn(httpserve::serve(listener, router, config.http, stop.clone()));
    }
    let shutdown = stop.clone();
    servers.spawn(httpserve::serve(public_listener, public, config.http, shutdown));
    Ok(Server { public_addr, internal_addr, admin_addr, pool, servers, stop })
}

impl Server {
    /// Waits until every listener has finished (after `stop`, in-flight requests complete);
    /// a listener failing stops the rest and is the error.
    pub async fn wait(mut self) -> Result<(), std::io::Error> {
        let mut result = Ok(());
        while let Some(joined) = self.servers.join_next().await {
            if let Ok(Err(e)) | Err(e) = joined.map_err(std::io::Error::other) {
                result = Err(e);
                self.stop.cancel();
            }
        }
        result
    }
}
