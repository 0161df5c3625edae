//! Administrator views: `GET /api/v1/workers`.

use axum::extract::State;
use axum::Json;

use super::extract::Caller;
use super::ApiError;
use crate::AppState;

/// `GET /api/v1/workers` (admins): registry, connection, last seen, utilisation, running apps.
pub async fn workers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    if !caller.user.is_admin {
        return Err(ApiError::Forbidden("administrators only"));
    }
    let rows: Vec<(uuid::Uuid, String, String, bool, i64)> = sqlx::query_as(
        "SELECT w.id, w.name, host(w.mesh_ip), w.enabled, (SELECT count(*) FROM apps a WHERE a.worker_id = w.id) FROM workers w ORDER BY w.name",
    )
    .fetch_all(&state.pool)
    .await?;
    let health = state.hub.health();
    let now = std::time::SystemTime::now();
    Ok(Json(
        rows.into_iter()
            .map(|(id, name, mesh_ip, enabled, apps)| {
                let h = health.get(&id);
                let stats = h.and_then(|h| h.last_heartbeat.as_ref()).map(|hb| &hb.stats);
                serde_json::json!({
                    "id": id, "name": name, "mesh_ip": mesh_ip, "enabled": enabled, "running_apps": apps,
                    "connected": h.is_some_and(|h| h.connected),
                    "last_seen_secs_ago": h.map(|h| now.duration_since(h.last_seen).unwrap_or_default().as_secs()),
                    "cpu": stats.map(|s| s.cpu),
                    "memory_used_mb": stats.map(|s| s.memory_used_mb),
                    "memory_total_mb": stats.map(|s| s.memory_total_mb),
                })
            })
            .collect(),
    ))
}
