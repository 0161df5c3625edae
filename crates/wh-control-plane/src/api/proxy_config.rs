//! `GET /v1/traefik/proxy-config` and `GET /v1/traefik/config?worker=<id>`; see
//! [`crate::proxy_config`] for what they contain. `POST /v1/traefik/certificates`: a proxy's
//! certificate order outcome ([`crate::certificates`]).

use axum::extract::State;

use super::params::Query;
use axum::http::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::ApiError;
use crate::proxy_config::{render_for_worker, Rendered, WATCH_HOLD};
use crate::AppState;

#[derive(Debug, Deserialize)]
pub struct ConfigQuery {
    #[serde(default)]
    watch: Option<String>,
    #[serde(default)]
    worker: Option<String>,
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = state
        .routing
        .token
        .as_ref()
        .ok_or(ApiError::Unauthorized("WH_PROXY_TOKEN is not configured"))?;
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized("missing bearer token"))?;
    if crate::constant_time_eq(given.trim().as_bytes(), expected.expose_secret()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("invalid proxy token"))
    }
}

fn answer(rendered: &Rendered) -> Response {
    // The cached document's buffer is shared, not copied (2.3 MiB for 10,000 apps).
    let (body, etag) = (rendered.body.clone(), rendered.etag.clone());
    ([(CONTENT_TYPE, "application/json".to_owned()), (ETAG, etag)], body).into_response()
}

fn not_modified(etag: &str) -> Response {
    (StatusCode::NOT_MODIFIED, [(ETAG, etag.to_owned())]).into_response()
}

pub async fn proxy_config(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ConfigQuery>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let known = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let watch = q.watch.as_deref().is_some_and(|w| w == "1" || w == "true");
    let deadline = tokio::time::Instant::now() + WATCH_HOLD;
    let mut changes = state.routing.changes.clone();
    loop {
        let generation = *changes.borrow_and_update();
        let routing = &state.routing;
        let rendered = routing
            .documents
            .get(&state.pool, &routing.route_domain, routing.tls, generation)
            .await?;
        if known.as_deref() != Some(rendered.etag.as_str()) {
            return Ok(answer(&rendered));
        }
        if !watch {
            return Ok(not_modified(&rendered.etag));
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            _ => return Ok(not_modified(&rendered.etag)),
        }
    }
}

pub async fn worker_config(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ConfigQuery>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let worker = q.worker.as_deref().and_then(|w| w.parse().ok()).ok_or(ApiError::Validation {
        field: "worker",
        message: "a worker id (UUID) is required".into(),
    })?;
    let rendered = render_for_worker(&state.pool, worker, &state.routing.route_domain).await?;
    let known = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    if known == Some(rendered.etag.as_str()) {
        return Ok(not_modified(&rendered.etag));
    }
    Ok(answer(&rendered))
}

/// `POST /v1/traefik/certificates`: 204 once recorded (or ignored: a host no app serves).
pub async fn certificates(
    State(state): State<AppState>,
    headers: HeaderMap,
    super::extract::ApiJson(report): super::extract::ApiJson<wh_wsproto::proxy::CertificateReport>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers)?;
    match crate::certificates::record(&state.pool, &state.routing.route_domain, &report).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(crate::certificates::ReportError::Host) => {
            Err(ApiError::Validation { field: "host", message: "not a lower-case DNS name".into() })
        }
        Err(crate::certificates::ReportError::Database(e)) => Err(e.into()),
    }
}
