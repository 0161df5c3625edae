//! HTTP routes. Worker endpoints live under `/v1/workers`, the proxy's configuration under
//! `/v1/traefik`; errors are one [`ApiError`].

pub mod error;
pub mod proxy_config;
pub mod workers;

use axum::routing::{get, post};
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
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}
