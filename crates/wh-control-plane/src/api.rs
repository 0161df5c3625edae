//! HTTP routes. Worker endpoints live under `/v1/workers`, the proxy's configuration under
//! `/v1/traefik`; errors are one [`ApiError`].

pub mod admin;
pub mod alerts;
pub mod apps;
pub mod auth;
pub mod deployments;
pub mod domains;
pub mod error;
pub mod extract;
pub mod git;
pub mod github_app;
pub mod hooks;
pub mod observe;
pub mod openapi;
pub mod params;
pub mod proxy_config;
pub mod usage;
pub mod webhooks;
pub mod workers;

use axum::routing::{get, post, put};
use axum::Router;

pub use error::ApiError;

use crate::AppState;

/// Per-IP limits on `/api/`: sign-in attempts (10/min) and everything (600/min); over the limit
/// is 429 with `Retry-After`. The worker and proxy endpoints are not limited here (they
/// authenticate with their own credentials and poll by design).
async fn rate_limit(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path();
    if path.starts_with("/api/") {
        let ip =
            extract::client_ip(req.extensions()).unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let now = std::time::Instant::now();
        let mut verdict = state.limits.api.check(ip, now);
        if verdict.is_ok() && path == "/api/v1/auth/login" {
            verdict = state.limits.login.check(ip, now);
        }
        if verdict.is_ok() && path.starts_with("/api/v1/hooks/") {
            verdict = state.limits.hooks.check(ip, now);
        }
        if let Err(retry) = verdict {
            return ApiError::RateLimited("too many requests", retry).into_response();
        }
    }
    next.run(req).await
}

/// The control plane's whole router (both halves and the dashboard on one listener).
pub fn app(state: AppState) -> Router {
    finish(public_routes(&state).merge(internal_routes()), state, true)
}

/// The user-facing API (`/api/v1`, rate-limited per IP) and the dashboard.
pub fn public(state: AppState) -> Router {
    finish(public_routes(&state), state, true)
}

/// The machine endpoints: workers (`/v1/workers`) and the ingress proxy (`/v1/traefik`).
/// With `WH_INTERNAL_LISTEN` they are served only there (e.g. on the mesh address).
pub fn internal(state: AppState) -> Router {
    finish(internal_routes(), state, false)
}

/// Routes become a router: GETs outside `/api` and `/v1` are the dashboard's (when it is
/// served here), other unknown routes and wrong methods answer in our error format; then the
/// guards go around all of it.
fn finish(routes: Router<AppState>, state: AppState, dashboard: bool) -> Router {
    use axum::http::{HeaderMap, Method, Uri};
    use axum::response::IntoResponse;
    let fallback = move |method: Method, uri: Uri, headers: HeaderMap| async move {
        if dashboard && crate::dashboard::is_dashboard_request(&method, uri.path()) {
            crate::dashboard::serve(&crate::dashboard::Built, &uri, &headers)
        } else {
            ApiError::NoRoute.into_response()
        }
    };
    let routes = routes
        .fallback(fallback)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state.clone());
    guarded(routes, &state)
}

/// What every router of ours does around its routes: each request in its span and counted
/// ([`observe`]), encoded NUL bytes refused.
fn guarded(router: Router, state: &AppState) -> Router {
    router
        .layer(axum::middleware::from_fn(extract::refuse_nul))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe::observe))
}

/// The admin listener's routes: `/metrics` (OpenMetrics) and `/healthz`. Never merged into the
/// public or internal routers.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let counts = crate::metrics::DbCounts::read(&state.pool).await?;
    let text = state.metrics.render(&state.hub, &counts);
    Ok(([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

fn public_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/session", get(auth::session))
        .route("/api/v1/me", get(auth::me))
        .route("/api/v1/tokens", post(auth::create_token).get(auth::list_tokens))
        .route("/api/v1/tokens/{id}", axum::routing::delete(auth::revoke_token))
        .route("/api/v1/plans", get(apps::plans))
        .route("/api/v1/apps", post(apps::create).get(apps::list))
        .route("/api/v1/apps/{slug}", get(apps::get).patch(apps::update).delete(apps::delete))
        .route("/api/v1/apps/{slug}/env/{key}", put(apps::env_set).delete(apps::env_delete))
        .route("/api/v1/audit-events", get(apps::audit_events))
        .route(
            "/api/v1/apps/{slug}/deployments",
            // An upload deploy carries its source: the handler enforces its own, larger limit.
            post(deployments::create)
                .layer(axum::extract::DefaultBodyLimit::disable())
                .get(deployments::list),
        )
        .route("/api/v1/apps/{slug}/containers", get(apps::containers))
        .route("/api/v1/apps/{slug}/hooks", post(hooks::create).get(hooks::list))
        .route("/api/v1/apps/{slug}/hooks/{id}", axum::routing::delete(hooks::remove))
        .route(
            "/api/v1/hooks/{provider}/{hook_id}",
            // The handler reads at most hooks::MAX_BODY itself.
            post(hooks::deliver).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/api/v1/usage", get(usage::user))
        .route("/api/v1/apps/{slug}/usage", get(usage::app))
        .route("/api/v1/alerts", get(alerts::open))
        .route("/api/v1/apps/{slug}/alerts", get(alerts::history))
        .route("/api/v1/apps/{slug}/alerts/rules", get(alerts::rules))
        .route("/api/v1/apps/{slug}/alerts/rules/{kind}", put(alerts::set_rule))
        .route("/api/v1/apps/{slug}/alerts/rules/{kind}/mute", post(alerts::mute))
        .route("/api/v1/webhooks", get(webhooks::list_webhooks).post(webhooks::add_webhook))
        .route(
            "/api/v1/webhooks/{id}",
            get(webhooks::get_webhook)
                .patch(webhooks::patch_webhook)
                .delete(webhooks::delete_webhook),
        )
        .route("/api/v1/webhooks/{id}/test", post(webhooks::test_webhook))
        .route("/api/v1/webhooks/{id}/rotate", post(webhooks::rotate))
        .route("/api/v1/webhooks/{id}/deliveries", get(webhooks::webhook_deliveries))
        .route("/api/v1/notifications", get(webhooks::list_channels).post(webhooks::add_channel))
        .route(
            "/api/v1/notifications/{id}",
            get(webhooks::get_channel)
                .patch(webhooks::patch_channel)
                .delete(webhooks::delete_channel),
        )
        .route("/api/v1/notifications/{id}/test", post(webhooks::test_channel))
        .route("/api/v1/notifications/{id}/deliveries", get(webhooks::channel_deliveries))
        .route("/api/v1/git/providers", get(git::providers))
        .route("/api/v1/git/github-app", get(github_app::info))
        .route("/api/v1/git/github-app/new", get(github_app::new_page))
        .route("/api/v1/git/github-app/created", get(github_app::created))
        .route("/api/v1/git/github-app/install", post(github_app::install))
        .route("/api/v1/git/github-app/installed", get(github_app::installed))
        .route(
            "/api/v1/hooks/github-app",
            post(hooks::deliver_app).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/api/v1/git/{provider}/connect", post(git::connect))
        .route("/api/v1/git/{provider}/callback", get(git::callback))
        .route("/api/v1/git/connections", get(git::list))
        .route("/api/v1/git/connections/{id}", axum::routing::delete(git::disconnect))
        .route("/api/v1/git/connections/{id}/repos", get(git::repos))
        .route("/api/v1/apps/{slug}/domains", post(domains::add).get(domains::list))
        .route("/api/v1/apps/{slug}/domains/{hostname}", axum::routing::delete(domains::remove))
        .route("/api/v1/apps/{slug}/domains/{hostname}/verify", post(domains::verify))
        .route("/api/v1/deployments/{id}", get(deployments::get))
        .route("/api/v1/deployments/{id}/cancel", post(deployments::cancel))
        .route("/api/v1/deployments/{id}/build-log", get(deployments::build_log))
        .route("/api/v1/apps/{slug}/logs", get(apps::logs))
        .route("/api/v1/workers", get(admin::workers))
        .route("/api/v1/workers/{name}/enable", post(admin::enable))
        .route("/api/v1/workers/{name}/disable", post(admin::disable))
        .route("/api/v1/users", get(admin::users))
        .route("/api/v1/apps/{slug}/env", get(apps::env_list).put(apps::env_replace))
        .route("/api/v1/openapi.json", get(openapi::document))
        .layer(axum::middleware::from_fn_with_state(state.clone(), rate_limit))
        .route("/healthz", get(|| async { "ok\n" }))
}

fn internal_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/workers/register", post(workers::register))
        .route("/v1/workers/refresh-token", post(workers::refresh))
        .route("/v1/workers/ws", get(workers::ws))
        .route("/v1/workers/sources/{deployment}", get(workers::source))
        .route("/v1/traefik/proxy-config", get(proxy_config::proxy_config))
        .route(wh_wsproto::proxy::CERTIFICATES_PATH, post(proxy_config::certificates))
        .route("/v1/traefik/config", get(proxy_config::worker_config))
}
