//! Administrator views and actions: `GET /api/v1/workers`, `POST
//! /api/v1/workers/{name}/enable|disable`, `GET /api/v1/users`. Everyone else gets 403.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::Caller;
use super::params::Path;
use super::ApiError;
use crate::AppState;

/// A worker as administrators see it: registry row, connection and latest heartbeat.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct WorkerView {
    pub id: uuid::Uuid,
    pub name: String,
    pub mesh_ip: String,
    /// A disabled worker gets no new apps and cannot renew its token.
    pub enabled: bool,
    /// Apps placed on this worker.
    pub running_apps: i64,
    pub connected: bool,
    pub last_seen_secs_ago: Option<u64>,
    /// CPU use of the host, percent, from the last heartbeat.
    pub cpu: Option<f64>,
    pub memory_used_mb: Option<u64>,
    pub memory_total_mb: Option<u64>,
}

/// A user as administrators see it.
#[derive(Debug, serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub is_admin: bool,
    pub apps: i64,
    pub created_at: String,
}

fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.user.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("administrators only"))
    }
}

/// `GET /api/v1/workers` (admins): registry, connection, last seen, utilisation, running apps.
pub async fn workers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<WorkerView>>, ApiError> {
    admin_only(&caller)?;
    let rows: Vec<(uuid::Uuid, String, String, bool, i64)> = sqlx::query_as(
        "SELECT w.id, w.name, host(w.mesh_ip), w.enabled, (SELECT count(*) FROM apps a WHERE a.worker_id = w.id) FROM workers w ORDER BY w.name",
    )
    .fetch_all(&state.pool)
    .await?;
    let health = state.hub.health();
    let now = std::time::SystemTime::now();
    Ok(Json(
        rows.into_iter()
            .map(|(id, name, mesh_ip, enabled, running_apps)| {
                let h = health.get(&id);
                let stats = h.and_then(|h| h.last_heartbeat.as_ref()).map(|hb| &hb.stats);
                WorkerView {
                    id,
                    name,
                    mesh_ip,
                    enabled,
                    running_apps,
                    connected: h.is_some_and(|h| h.connected),
                    last_seen_secs_ago: h
                        .map(|h| now.duration_since(h.last_seen).unwrap_or_default().as_secs()),
                    cpu: stats.map(|s| s.cpu),
                    memory_used_mb: stats.map(|s| s.memory_used_mb),
                    memory_total_mb: stats.map(|s| s.memory_total_mb),
                }
            })
            .collect(),
    ))
}

/// `POST /api/v1/workers/{name}/enable` (admins).
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_enabled(&state, &caller, &name, true).await
}

/// `POST /api/v1/workers/{name}/disable` (admins): no new apps are placed on it and its token
/// is not renewed; what runs there keeps running.
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_enabled(&state, &caller, &name, false).await
}

async fn set_enabled(
    state: &AppState,
    caller: &Caller,
    name: &str,
    enabled: bool,
) -> Result<StatusCode, ApiError> {
    admin_only(caller)?;
    if !crate::workers::set_enabled(&state.pool, name, enabled).await? {
        return Err(ApiError::NotFound);
    }
    let action = if enabled { "worker.enable" } else { "worker.disable" };
    caller
        .audit(
            &mut *state.pool.acquire().await?,
            action,
            &format!("worker:{name}"),
            serde_json::json!({}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/users` (admins): every account with its number of apps.
pub async fn users(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<UserView>>, ApiError> {
    admin_only(&caller)?;
    let users = sqlx::query_as::<_, UserView>(
        "SELECT u.id, u.email, u.is_admin, (SELECT count(*) FROM apps a WHERE a.owner_id = u.id) AS apps,
                to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at
         FROM users u ORDER BY u.id",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(users))
}
