//! `POST /v1/workers/register` (raw API key → JWT), `POST /v1/workers/refresh-token`
//! (JWT → JWT) and `GET /v1/workers/ws` (JWT → the hub). A wrong key, an expired or forged
//! token, or a disabled or deleted worker is a 401.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use wh_wsproto::token::{ChannelSettings, WorkerToken};

use super::ApiError;
use crate::queue::{JobState, Kind};
use crate::workers::{self, Worker};
use crate::AppState;

/// The WebSocket upgrade's response header carrying the connection's nonce.
pub const CONNECTION_HEADER: &str = "x-wh-connection";

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized("missing bearer token"))
}

fn now_secs() -> i64 {
    crate::now_ms() / 1000
}

fn token_for(state: &AppState, worker: &Worker) -> WorkerToken {
    let id = worker.id.to_string();
    let (token, claims) = state.jwt.issue(&id, worker.key_generation, now_secs());
    WorkerToken {
        token,
        expires_at: claims.exp,
        channel_key: state.jwt.channel_key(&id, worker.key_generation),
        worker_id: id,
        settings: ChannelSettings {
            name: worker.name.clone(),
            mesh_ip: worker.mesh_ip.clone(),
            heartbeat_interval_secs: 10,
        },
    }
}

/// The enabled worker a JWT speaks for.
async fn worker_from_jwt(state: &AppState, headers: &HeaderMap) -> Result<Worker, ApiError> {
    let claims = state.jwt.verify(bearer(headers)?, now_secs()).map_err(|e| {
        tracing::warn!(error = %e, "worker token refused");
        ApiError::Unauthorized("invalid or expired token")
    })?;
    let id = claims.sub.parse().map_err(|_| ApiError::Unauthorized("invalid token subject"))?;
    match workers::get(&state.pool, id).await? {
        Some(w) if w.enabled && w.key_generation == claims.gen => Ok(w),
        Some(w) if w.enabled => {
            tracing::warn!(worker = %w.id, "a token of a rotated key was refused");
            Err(ApiError::Unauthorized("the worker's key was rotated"))
        }
        _ => Err(ApiError::Unauthorized("worker disabled or deleted")),
    }
}

pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<WorkerToken>, ApiError> {
    let key = bearer(&headers)?;
    match workers::find_by_key(&state.pool, key).await? {
        Some(w) if w.enabled => {
            tracing::info!(worker = %w.id, name = %w.name, "worker registered");
            Ok(Json(token_for(&state, &w)))
        }
        Some(w) => {
            tracing::warn!(worker = %w.id, "disabled worker tried to register");
            Err(ApiError::Unauthorized("worker disabled"))
        }
        None => {
            tracing::warn!("register with an unknown key");
            Err(ApiError::Unauthorized("unknown key"))
        }
    }
}

pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<WorkerToken>, ApiError> {
    let worker = worker_from_jwt(&state, &headers).await?;
    Ok(Json(token_for(&state, &worker)))
}

pub async fn ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let worker = worker_from_jwt(&state, &headers).await?;
    let _ = workers::touch(&state.pool, worker.id).await;
    let hub = state.hub.clone();
    let key = state.jwt.channel_key(&worker.id.to_string(), worker.key_generation);
    // Every envelope of this connection is bound to this nonce (and to its direction).
    let connection = wh_wsproto::Signer::new_connection();
    let header =
        axum::http::HeaderValue::from_str(&connection).map_err(|e| ApiError::Internal(e.into()))?;
    let mut response = upgrade
        .max_message_size(1 << 20)
        .on_upgrade(move |socket| hub.serve(worker, key, connection, socket));
    response.headers_mut().insert(CONNECTION_HEADER, header);
    Ok(response)
}

/// `GET /v1/workers/sources/{deployment}`: the uploaded source archive of a deployment, only
/// for the worker that holds its deploy job right now.
pub async fn source(
    State(state): State<AppState>,
    headers: HeaderMap,
    super::params::Path(deployment): super::params::Path<i64>,
) -> Result<Response, ApiError> {
    use axum::response::IntoResponse;
    let worker = worker_from_jwt(&state, &headers).await?;
    let archive: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT s.archive FROM deployment_sources s
         JOIN jobs j ON j.deployment_id = s.deployment_id AND j.kind = $3 AND j.state = $4
         WHERE s.deployment_id = $1 AND j.claimed_by = $2",
    )
    .bind(deployment)
    .bind(worker.id.to_string())
    .bind(Kind(wh_wsproto::job::JobKind::Deploy))
    .bind(JobState::Claimed)
    .fetch_optional(&state.pool)
    .await?;
    let archive = archive.ok_or(ApiError::NotFound)?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/gzip")], archive).into_response())
}
