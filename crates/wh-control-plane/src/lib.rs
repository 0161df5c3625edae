//! WiseHosting's control plane, as a library so `main`, `wh dev` and the tests run the same code.
//!
//! # Layout
//! - [`config`]: settings from flags and environment; secrets wrapped so they never print.
//! - [`database`]: the pool and migrations (applied on every start).
//! - [`workers`]: the worker registry (create, rotate key, disable; only key hashes stored).
//! - [`jwt`]: short-lived HS256 tokens for workers.
//! - [`proxy_config`]: the Traefik configuration the ingress proxy polls or watches.
//! - [`queue`]: the Postgres job queue (SKIP LOCKED claims, leases, fencing, NOTIFY).
//! - [`scheduler`]: places pending jobs on healthy workers and applies their reports.
//! - [`secrets`]: AES-256-GCM for secrets at rest, one HKDF-derived key per purpose.
//! - [`hub`]: the WebSocket hub: one verified, signed channel per connected worker.
//! - [`api`]: HTTP routes and the one [`api::ApiError`] they answer errors with.
//!
//! Later subsystems (scheduler, alerts, usage, webhooks, dashboard) are wired in when they exist;
//! nothing here fakes them.

pub mod api;
pub mod config;
pub mod database;
pub mod hub;
pub mod jwt;
pub mod proxy_config;
pub mod queue;
pub mod scheduler;
pub mod secrets;
pub mod workers;

use std::sync::Arc;

/// Shared state of every request handler.
#[derive(Clone)]
pub struct AppState {
    pub pool: sqlx::PgPool,
    pub jwt: Arc<jwt::JwtKeys>,
    pub hub: Arc<hub::Hub>,
    pub routing: Arc<Routing>,
}

/// What the proxy-config endpoints need.
pub struct Routing {
    /// Bearer token the proxy presents (`WH_PROXY_TOKEN`); `None` refuses every request.
    pub token: Option<config::Secret>,
    /// e.g. `route.example.com`: apps answer at `<slug>.<route_domain>`.
    pub route_domain: String,
    /// Bumped on every routing change (see [`proxy_config::follow_changes`]).
    pub changes: tokio::sync::watch::Receiver<u64>,
}

impl Routing {
    /// Routing state following `pool`'s `wh_routes` notifications (spawns the follower).
    pub fn follow(
        pool: &sqlx::PgPool,
        token: Option<config::Secret>,
        route_domain: &str,
    ) -> Routing {
        let (tx, rx) = tokio::sync::watch::channel(0);
        tokio::spawn(proxy_config::follow_changes(pool.clone(), tx));
        Routing { token, route_domain: route_domain.to_owned(), changes: rx }
    }
}

/// Compares secrets without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
