//! HTTP routes. Worker endpoints live under `/v1/workers`, the proxy's configuration under
//! `/v1/traefik`; errors are one [`ApiError`].

pub mod apps;
pub mod auth;
pub mod error;
pub mod extract;
pub mod proxy_config;
pub mod workers;

use axum::routing::{get, post, put};
use axum::Router;

pub use error::ApiError;

use crate::AppState;

/// The control plane's router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/workers/register", post(workers::register))
        .route("/v1/workers/refresh-token", post(workers::refresh))
        .route("/v1/workers/ws", get(workers::ws))
        .route("/v1/traefik/proxy-config", get(proxy_config::proxy_config))
        .route("/v1/traefik/config", get(proxy_config::worker_config))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/me", get(auth::me))
        .route("/api/v1/tokens", post(auth::create_token))
        .route("/api/v1/apps", post(apps::create).get(apps::list))
        .route("/api/v1/apps/{slug}", get(apps::get).patch(apps::update).delete(apps::delete))
        .route("/api/v1/apps/{slug}/env", get(apps::env_list))
        .route("/api/v1/apps/{slug}/env/{key}", put(apps::env_set).delete(apps::env_delete))
        .route("/api/v1/audit-events", get(apps::audit_events))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}
