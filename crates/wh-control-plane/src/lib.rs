//! WiseHosting's control plane, as a library so `main`, `wh dev` and the tests run the same code.
//!
//! # Layout
//! - [`config`]: settings from flags and environment; secrets wrapped so they never print.
//! - [`database`]: the pool and migrations (applied on every start).
//! - [`workers`]: the worker registry (create, rotate key, disable; only key hashes stored).
//! - [`jwt`]: short-lived HS256 tokens for workers.
//! - [`queue`]: the Postgres job queue (SKIP LOCKED claims, leases, fencing, NOTIFY).
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
pub mod queue;
pub mod secrets;
pub mod workers;

use std::sync::Arc;

/// Shared state of every request handler.
#[derive(Clone)]
pub struct AppState {
    pub pool: sqlx::PgPool,
    pub jwt: Arc<jwt::JwtKeys>,
    pub hub: Arc<hub::Hub>,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
