//! WiseHosting's control plane, as a library so `main`, `wh dev` and the tests run the same code.
//!
//! # Layout
//! - [`alerts`]: per-app alert rules evaluated every 30 s; alerts and their outbox events.
//! - [`config`]: settings from flags and environment; secrets wrapped so they never print.
//! - [`containers`]: what workers run (inventory, events, stats); adoption after reconnects.
//! - [`database`]: the pool and migrations (applied on every start).
//! - [`workers`]: the worker registry (create, rotate key, disable; only key hashes stored).
//! - [`jwt`]: short-lived HS256 tokens for workers.
//! - [`logbus`]: recent runtime logs per app (bounded), with live followers.
//! - [`proxy_config`]: the Traefik configuration the ingress proxy polls or watches.
//! - [`repos`]: repository URLs: credentials sealed, never stored or shown in clear.
//! - [`domains`]: custom domains: hostname rules, TXT verification, background rechecks.
//! - [`githooks`]: inbound git webhooks: providers, signatures, payloads, hooks and deliveries.
//! - [`gitproviders`]: connected git providers (OAuth): tokens sealed and refreshed, repository
//!   lists, hooks registered through the providers' APIs, commit statuses reported back.
//! - [`outbound`]: the one HTTP client for calls to other services (bounded waits and answers),
//!   and the SSRF guard on calls made for a user.
//! - [`notify`]: notification channels: 22 services by Shoutrrr URL, the message an event becomes.
//! - [`deployments`]: the deployment state machine and its per-state deadlines.
//! - [`previews`]: preview deploys of pull requests (`pr-<n>-<slug>` apps).
//! - [`ratelimit`]: per-IP request limits.
//! - [`queue`]: the Postgres job queue (SKIP LOCKED claims, leases, fencing, NOTIFY).
//! - [`scheduler`]: the worker-message pipeline: placement, report ingestion, sweeps.
//! - [`logingest`]: workers' log lines to the log bus and build logs, in batches.
//! - [`metrics`]: requests, hub, queue, deployments and scheduler lag, for the admin listener.
//! - [`webhooks`]: outbound webhooks: the delivery signature (Standard Webhooks, Stripe-style).
//! - [`usage`]: usage metering in 5-minute buckets, day partitions kept 90 days, and its queries.
//! - [`secrets`]: AES-256-GCM for secrets at rest, one HKDF-derived key per purpose.
//! - [`hub`]: the WebSocket hub: one verified, signed channel per connected worker.
//! - [`audit`]: the audit trail of every mutation.
//! - [`auth`]: users (argon2id), sessions with CSRF tokens, personal API tokens.
//! - [`httpserve`]: the API's HTTP server (header, idle and body deadlines, connection limits,
//!   bounded drain).
//! - [`server`]: the whole control plane from a [`config::Config`] (for `main` and `wh dev`).
//! - [`api`]: HTTP routes and the one [`api::ApiError`] they answer errors with.
//! - [`dashboard`]: the built web UI served at `/` (embedded in release builds).
//! - `testing` (feature `test-util`): the test harness, `TestControlPlane` and fixtures.
//!
//! Later subsystems (scheduler, alerts, usage, webhooks, dashboard) are wired in when they exist;
//! nothing here fakes them.

pub mod alerts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod certificates;
pub mod config;
pub mod containers;
pub mod dashboard;
pub mod database;
pub mod deployments;
pub mod domains;
pub mod githooks;
pub mod gitproviders;
pub mod httpserve;
pub mod hub;
pub mod jwt;
pub mod logbus;
pub mod logingest;
pub mod metrics;
pub mod notify;
pub mod outbound;
pub mod previews;
pub mod proxy_config;
pub mod queue;
pub mod ratelimit;
pub mod repos;
pub mod scheduler;
pub mod secrets;
pub mod server;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod usage;
pub mod webhooks;
pub mod workers;

use std::sync::Arc;

/// Shared state of every request handler.
#[derive(Clone)]
pub struct AppState {
    pub pool: sqlx::PgPool,
    pub jwt: Arc<jwt::JwtKeys>,
    pub hub: Arc<hub::Hub>,
    pub routing: Arc<Routing>,
    /// Seals app environment variables.
    pub env: Arc<secrets::Sealer>,
    /// Seals inbound git webhook secrets.
    pub hooks: Arc<secrets::Sealer>,
    /// Mark session cookies `Secure` (off only for plain-HTTP localhost).
    pub cookie_secure: bool,
    /// Per-IP limits: sign-in attempts and the API in general.
    pub limits: Arc<Limits>,
    /// Recent runtime logs of every app.
    pub logs: Arc<logbus::LogBus>,
    /// Looks up custom domains' verification records.
    pub dns: Arc<domains::Verifier>,
    /// Accept repository URLs naming loopback or private addresses (development only).
    pub allow_private_repos: bool,
    /// Delivers webhooks and notifications (and seals their targets).
    pub dispatcher: Arc<webhooks::Dispatcher>,
    /// Counted as things happen; served on the admin listener.
    pub metrics: Arc<metrics::Metrics>,
    /// The git providers users can connect (none unless configured).
    pub forges: Arc<gitproviders::Forges>,
}

/// The API's rate limiters.
#[derive(Debug)]
pub struct Limits {
    pub login: ratelimit::RateLimiter,
    pub api: ratelimit::RateLimiter,
    /// Failed sign-ins per account (lower-cased email), whatever address they come from.
    pub login_failures: ratelimit::RateLimiter<String>,
    /// Inbound git webhooks, per IP.
    pub hooks: ratelimit::RateLimiter,
}

impl Default for Limits {
    /// 10 sign-in attempts and 600 API requests per minute per IP; 10 failed sign-ins per
    /// account in 15 minutes, after which the account refuses sign-ins (429) until the window
    /// ends, the right password included.
    fn default() -> Self {
        Limits {
            login: ratelimit::RateLimiter::per_minute(10),
            api: ratelimit::RateLimiter::per_minute(600),
            login_failures: ratelimit::RateLimiter::per(10, std::time::Duration::from_secs(900)),
            hooks: ratelimit::RateLimiter::per_minute(60),
        }
    }
}

impl AppState {
    /// State with a random, process-lifetime master key (tests and tools that never read
    /// secrets back across restarts); `serve` builds it from `WH_MASTER_KEY` instead.
    pub fn new(
        pool: sqlx::PgPool,
        jwt: Arc<jwt::JwtKeys>,
        hub: Arc<hub::Hub>,
        routing: Arc<Routing>,
    ) -> AppState {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source is available");
        let pool_for_dispatch = pool.clone();
        AppState {
            pool,
            jwt,
            hub,
            routing,
            env: Arc::new(secrets::MasterKey::from_bytes(key).sealer(secrets::Purpose::Env)),
            hooks: Arc::new(secrets::MasterKey::from_bytes(key).sealer(secrets::Purpose::GitHook)),
            cookie_secure: true,
            limits: Arc::new(Limits::default()),
            logs: Arc::new(logbus::LogBus::default()),
            dns: Arc::new(domains::Verifier::new(&domains::DnsSettings::default())),
            allow_private_repos: false,
            metrics: Arc::default(),
            forges: Arc::new(gitproviders::Forges::new(
                vec![],
                "http://localhost",
                outbound::Client::new(&wh_http::client::Trust::System),
                Arc::new(secrets::MasterKey::from_bytes(key).sealer(secrets::Purpose::OAuth)),
            )),
            dispatcher: Arc::new(webhooks::Dispatcher::new(
                pool_for_dispatch,
                webhooks::dispatch::Settings {
                    client: outbound::Client::new(&wh_http::client::Trust::System),
                    // Nothing resolves: a tool's state never calls out for a user.
                    guard: outbound::guard::Guard {
                        allow_http: false,
                        allow: vec![],
                        resolver: Arc::new(outbound::resolve::Fixed::default()),
                    },
                    keys: Arc::new(webhooks::targets::Keys {
                        urls: secrets::MasterKey::from_bytes(key)
                            .sealer(secrets::Purpose::TargetUrl),
                        secrets: secrets::MasterKey::from_bytes(key)
                            .sealer(secrets::Purpose::Webhook),
                    }),
                    dashboard: String::new(),
                    lease: std::time::Duration::from_secs(60),
                },
            )),
        }
    }
}

/// What the proxy-config endpoints need.
pub struct Routing {
    /// Bearer token the proxy presents (`WH_PROXY_TOKEN`); `None` refuses every request.
    pub token: Option<config::Secret>,
    /// e.g. `route.example.com`: apps answer at `<slug>.<route_domain>`.
    pub route_domain: String,
    /// Routers ask for TLS (`websecure`, ACME); off only in local development.
    pub tls: bool,
    /// The proxy's public port when it is not the scheme's default (e.g. 8080 in `wh dev`).
    pub public_port: Option<u16>,
    /// The proxy's public addresses (`WH_PROXY_ADDRESSES`): the A/AAAA records offered for
    /// custom domains that cannot have a CNAME (an apex such as `example.com`).
    pub proxy_addresses: Vec<std::net::IpAddr>,
    /// Bumped on every routing change (see [`proxy_config::follow_changes`]).
    pub changes: tokio::sync::watch::Receiver<u64>,
    /// The proxy-wide document of the latest change.
    pub documents: proxy_config::Cache,
}

impl Routing {
    /// Routing state following `pool`'s `wh_routes` notifications (spawns the follower).
    pub fn follow(
        pool: &sqlx::PgPool,
        token: Option<config::Secret>,
        route_domain: &str,
    ) -> Routing {
        let (tx, rx) = tokio::sync::watch::channel(0);
        let (tx, pool, done) =
            (Arc::new(tx), pool.clone(), tokio_util::sync::CancellationToken::new());
        // Supervised; it ends for good once nobody follows the changes any more.
        tokio::spawn(wh_cmd::supervise("routing-follower", done.clone(), move || {
            let (pool, tx, done) = (pool.clone(), tx.clone(), done.clone());
            async move {
                proxy_config::follow_changes(pool, tx.clone()).await;
                if tx.is_closed() {
                    done.cancel();
                }
            }
        }));
        Routing {
            token,
            route_domain: route_domain.to_owned(),
            tls: true,
            public_port: None,
            proxy_addresses: Vec::new(),
            changes: rx,
            documents: proxy_config::Cache::default(),
        }
    }

    /// The URL app `slug` answers at.
    pub fn app_url(&self, slug: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let port = self.public_port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{scheme}://{slug}.{}{port}", self.route_domain)
    }
}

/// Compares secrets in constant time (`subtle`; only a length difference shows).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

pub use wh_wsproto::now_ms;
