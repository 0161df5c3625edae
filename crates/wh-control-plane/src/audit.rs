//! The audit trail: every mutation, with actor, action, target, client IP and details. Details
//! never contain secret values (callers pass key names, not values).

use sqlx::PgConnection;

/// Records one event in the caller's transaction.
pub async fn record(
    tx: &mut PgConnection,
    actor: Option<i64>,
    action: &str,
    target: &str,
    client_ip: Option<std::net::IpAddr>,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_events (actor_id, action, target, client_ip, details) VALUES ($1, $2, $3, $4::inet, $5)")
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(client_ip.map(|ip| ip.to_string()))
        .bind(details)
        .execute(tx)
        .await
        .map(drop)
}
