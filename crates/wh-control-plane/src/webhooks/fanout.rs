//! From events to deliveries: each outbox event becomes one delivery per enabled target of
//! its user that chose it (for the event's app or for all of them), and each due alert notice
//! (alerts of one app grouped over 30 s, and reminders) one per channel that chose alerts.
//! Webhooks get every alert event as it happens; channels get the grouped notices. Rows are
//! claimed with SKIP LOCKED and deliveries are unique per (target, event), so several control
//! planes fanning out at once make each delivery once.

use serde_json::{json, Value};
use sqlx::PgPool;

use super::event::{self, DISABLED};

const BATCH: i64 = 200;

/// Fans out pending outbox events; returns how many deliveries were made.
pub async fn events(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    type Row = (i64, uuid::Uuid, String, Option<i64>, Option<i64>, Value, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, event_id, event_type, app_id, user_id, payload,
                to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
         FROM event_outbox WHERE fanned_out_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut made = 0;
    for (id, event_id, kind, app, user, payload, at) in &rows {
        let body = event::body(kind, at, payload.clone());
        let skip: Option<i64> = payload.get("target_id").and_then(Value::as_i64);
        let done = sqlx::query(
            "INSERT INTO deliveries (target_id, event_id, event_type, body)
             SELECT t.id, $1, $2, $3 FROM notify_targets t
             WHERE t.user_id = $4 AND t.enabled
               AND (t.app_id IS NULL OR t.app_id = $5)
               AND CASE WHEN $2 = $6 THEN t.kind = 'channel' AND t.id <> coalesce($7, 0)
                        ELSE $2 = ANY(t.events) AND NOT (t.kind = 'channel' AND $2 LIKE 'alert.%') END
             ON CONFLICT (target_id, event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(kind)
        .bind(&body)
        .bind(user)
        .bind(app)
        .bind(DISABLED)
        .bind(skip)
        .execute(&mut *tx)
        .await?;
        made += done.rows_affected();
        sqlx::query("UPDATE event_outbox SET fanned_out_at = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(made)
}

/// Turns due alert notices into channel deliveries; returns how many deliveries were made.
pub async fn notices(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    type Row = (i64, i64, String, Vec<i64>, i64, String, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT n.id, n.app_id, n.kind::text, n.alert_ids, a.owner_id, a.slug,
                to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
         FROM alert_notices n JOIN apps a ON a.id = n.app_id
         WHERE n.sent_at IS NULL AND n.send_after <= now()
         ORDER BY n.id LIMIT $1 FOR UPDATE OF n SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut made = 0;
    for (id, app, kind, alert_ids, owner, slug, at) in &rows {
        let alerts: Vec<Value> = sqlx::query_scalar(
            "SELECT jsonb_build_object('alert_id', id, 'kind', kind, 'value', value, 'threshold', threshold,
                    'started_at', started_at, 'resolved_at', resolved_at)
             FROM alerts WHERE id = ANY($1) ORDER BY id",
        )
        .bind(alert_ids)
        .fetch_all(&mut *tx)
        .await?;
        let event_type = if kind == "resolved" { "alert.resolved" } else { "alert.fired" };
        let data =
            json!({ "app": slug, "app_id": app, "alerts": alerts, "reminder": kind == "reminder" });
        let body = event::body(event_type, at, data);
        let done = sqlx::query(
            "INSERT INTO deliveries (target_id, event_id, event_type, body)
             SELECT t.id, gen_random_uuid(), $1, $2 FROM notify_targets t
             WHERE t.user_id = $3 AND t.enabled AND t.kind = 'channel'
               AND (t.app_id IS NULL OR t.app_id = $4) AND $1 = ANY(t.events)",
        )
        .bind(event_type)
        .bind(&body)
        .bind(owner)
        .bind(app)
        .execute(&mut *tx)
        .await?;
        made += done.rows_affected();
        sqlx::query("UPDATE alert_notices SET sent_at = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(made)
}
