//! The targets a user chose: signed webhooks (an https URL and a `whsec_` secret, shown once)
//! and notification channels (a Shoutrrr URL). The URL is sealed (`wh/target-url/v1`) and the
//! secret too (`wh/webhook/v1`), each bound to the target's id; only a masked form of the URL is
//! stored in clear. Rotating a secret keeps the old one signing alongside for 24 hours.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::event::EVENTS;
use super::signature;
use crate::notify;
use crate::outbound::guard::{Guard, Use};
use crate::secrets::Sealer;

/// The most targets one user may have.
pub const MAX_TARGETS: i64 = 25;

/// A signed webhook or a notification channel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, sqlx::Type,
)]
#[sqlx(type_name = "target_kind", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Webhook,
    Channel,
}

/// Why a target was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    #[error("{0}")]
    Url(String),
    #[error("{0}")]
    Events(String),
    #[error("at most {MAX_TARGETS} webhooks and channels per user")]
    Limit,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The two sealers targets use.
#[derive(Debug)]
pub struct Keys {
    pub urls: Sealer,
    pub secrets: Sealer,
}

/// What is checked of a webhook URL when it is saved (the guard checks again, with the
/// resolved addresses, for every delivery): http(s), a host, an allowed port, and an IP literal
/// outside the refused ranges.
pub fn check_webhook_url(url: &str, guard: &Guard) -> Result<String, TargetError> {
    let bad = |why: &str| TargetError::Url(why.to_owned());
    if url.len() > 2048 {
        return Err(bad("the URL is longer than 2048 bytes"));
    }
    let parsed =
        url::Url::parse(url.trim()).map_err(|e| TargetError::Url(format!("not a URL: {e}")))?;
    let tls = match parsed.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(bad("a webhook URL is https://")),
    };
    guard.check_scheme(tls).map_err(|e| TargetError::Url(e.to_string()))?;
    let host = parsed.host().ok_or_else(|| bad("the URL has no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    Guard::check_port(port, Use::Http).map_err(|e| TargetError::Url(e.to_string()))?;
    let literal = match host {
        url::Host::Ipv4(a) => Some(std::net::IpAddr::V4(a)),
        url::Host::Ipv6(a) => Some(std::net::IpAddr::V6(a)),
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = literal {
        if let Some(why) = wh_wsproto::addr::forbidden(ip, &guard.allow) {
            return Err(TargetError::Url(format!("{ip} is {why}")));
        }
    }
    if parsed.host_str().is_some_and(|h| h.eq_ignore_ascii_case("localhost")) {
        return Err(bad("localhost is loopback"));
    }
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{}://{}{port}", parsed.scheme(), parsed.host_str().unwrap_or_default()))
}

/// Checks a list of event names; empty means every event.
pub fn check_events(events: &[String]) -> Result<Vec<String>, TargetError> {
    if events.is_empty() {
        return Ok(EVENTS.iter().map(|e| e.to_string()).collect());
    }
    let mut out = Vec::new();
    for e in events {
        if !EVENTS.contains(&e.as_str()) {
            return Err(TargetError::Events(format!(
                "unknown event `{}` (one of {})",
                e.chars().take(64).collect::<String>(),
                EVENTS.join(", ")
            )));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

/// A new target.
#[derive(Debug)]
pub struct NewTarget {
    pub kind: TargetKind,
    pub url: String,
    pub app_id: Option<i64>,
    pub events: Vec<String>,
}

/// A created target: its id, and for a webhook the secret (returned once, never again).
#[derive(Debug)]
pub struct Created {
    pub id: i64,
    pub secret: Option<String>,
}

/// Creates a target for `user` in `tx` (its audit entry is the caller's).
pub async fn create(
    tx: &mut sqlx::PgConnection,
    keys: &Keys,
    guard: &Guard,
    user: i64,
    new: NewTarget,
) -> Result<Created, TargetError> {
    let (service, display) = match new.kind {
        TargetKind::Webhook => ("webhook", check_webhook_url(&new.url, guard)?),
        TargetKind::Channel => {
            let parsed = notify::parse(&new.url).map_err(|e| TargetError::Url(e.to_string()))?;
            (parsed.service, parsed.display)
        }
    };
    let events = check_events(&new.events)?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM notify_targets WHERE user_id = $1")
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_TARGETS {
        return Err(TargetError::Limit);
    }
    let id: i64 =
        sqlx::query_scalar("SELECT nextval('notify_targets_id_seq')").fetch_one(&mut *tx).await?;
    let secret = (new.kind == TargetKind::Webhook).then(signature::new_secret);
    sqlx::query(
        "INSERT INTO notify_targets (id, user_id, app_id, kind, service, display, url_sealed, secret_sealed, events)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(user)
    .bind(new.app_id)
    .bind(new.kind)
    .bind(service)
    .bind(&display)
    .bind(keys.urls.seal(new.url.trim().as_bytes(), id))
    .bind(secret.as_ref().map(|s| keys.secrets.seal(s.as_bytes(), id)))
    .bind(&events)
    .execute(&mut *tx)
    .await?;
    Ok(Created { id, secret })
}

/// A target as its owner sees it (never its URL or secret).
#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct TargetView {
    pub id: i64,
    pub kind: TargetKind,
    /// `webhook`, or the channel's service.
    pub service: String,
    /// The URL without its secrets.
    pub display: String,
    /// The app it is for; absent: every app of the user.
    pub app: Option<String>,
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why it was disabled (410 Gone, failing too long), when it was.
    pub disabled_reason: Option<String>,
    /// Failed attempts in a row.
    pub consecutive_failures: i32,
    pub failing_since: Option<String>,
    /// While a rotation is under way, until when the previous secret still signs.
    pub previous_secret_until: Option<String>,
    pub created_at: String,
}

const VIEW: &str = "SELECT t.id, t.kind, t.service, t.display, a.slug AS app, t.events, t.enabled, t.disabled_reason,
    t.consecutive_failures,
    to_char(t.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS failing_since,
    to_char(t.previous_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS previous_secret_until,
    to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at
    FROM notify_targets t LEFT JOIN apps a ON a.id = t.app_id";

/// `user`'s targets of `kind`, newest first.
pub async fn list(
    pool: &PgPool,
    user: i64,
    kind: TargetKind,
) -> Result<Vec<TargetView>, sqlx::Error> {
    sqlx::query_as(&format!("{VIEW} WHERE t.user_id = $1 AND t.kind = $2 ORDER BY t.id DESC"))
        .bind(user)
        .bind(kind)
        .fetch_all(pool)
        .await
}

/// One of `user`'s targets of `kind`.
pub async fn get(
    pool: &PgPool,
    user: i64,
    kind: TargetKind,
    id: i64,
) -> Result<Option<TargetView>, sqlx::Error> {
    sqlx::query_as(&format!("{VIEW} WHERE t.user_id = $1 AND t.kind = $2 AND t.id = $3"))
        .bind(user)
        .bind(kind)
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Changes the events and whether it is enabled; enabling clears the failure count.
pub async fn update(
    tx: &mut sqlx::PgConnection,
    user: i64,
    kind: TargetKind,
    id: i64,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
) -> Result<bool, TargetError> {
    let events = events.map(|e| check_events(&e)).transpose()?;
    let done = sqlx::query(
        "UPDATE notify_targets SET events = coalesce($4, events),
                enabled = coalesce($5, enabled),
                disabled_reason = CASE WHEN $5 THEN NULL ELSE disabled_reason END,
                consecutive_failures = CASE WHEN $5 THEN 0 ELSE consecutive_failures END,
                failing_since = CASE WHEN $5 THEN NULL ELSE failing_since END
         WHERE id = $1 AND user_id = $2 AND kind = $3",
    )
    .bind(id)
    .bind(user)
    .bind(kind)
    .bind(events)
    .bind(enabled)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a target (and its deliveries).
pub async fn remove(
    tx: &mut sqlx::PgConnection,
    user: i64,
    kind: TargetKind,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM notify_targets WHERE id = $1 AND user_id = $2 AND kind = $3")
            .bind(id)
            .bind(user)
            .bind(kind)
            .execute(&mut *tx)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// A new secret for a webhook; the current one keeps signing next to it for 24 hours. `None`
/// when there is no such webhook.
pub async fn rotate(
    tx: &mut sqlx::PgConnection,
    keys: &Keys,
    user: i64,
    id: i64,
) -> Result<Option<String>, sqlx::Error> {
    let secret = signature::new_secret();
    let done = sqlx::query(
        "UPDATE notify_targets SET previous_secret_sealed = secret_sealed,
                previous_until = now() + interval '24 hours', secret_sealed = $3
         WHERE id = $1 AND user_id = $2 AND kind = 'webhook'",
    )
    .bind(id)
    .bind(user)
    .bind(keys.secrets.seal(secret.as_bytes(), id))
    .execute(&mut *tx)
    .await?;
    Ok((done.rows_affected() == 1).then_some(secret))
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct AttemptView {
    pub attempt: i32,
    pub started_at: String,
    pub duration_ms: i32,
    /// The answer's status; absent when none came.
    pub status: Option<i32>,
    pub error: Option<String>,
    /// The first 64 KiB of the answer.
    pub response: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    delivery_id: i64,
    #[sqlx(flatten)]
    view: AttemptView,
}

/// A delivery of one event to a target.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    /// pending, succeeded or failed.
    pub state: String,
    pub attempts: i32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub tries: Vec<AttemptView>,
}

/// The latest 50 deliveries of a target, with their attempts.
pub async fn deliveries(pool: &PgPool, target: i64) -> Result<Vec<DeliveryView>, sqlx::Error> {
    type Row = (i64, uuid::Uuid, String, String, i32, Option<String>, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, event_id, event_type, state::text, attempts,
                CASE WHEN state = 'pending' THEN to_char(next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') END,
                to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
         FROM deliveries WHERE target_id = $1 ORDER BY id DESC LIMIT 50",
    )
    .bind(target)
    .fetch_all(pool)
    .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let attempts: Vec<AttemptRow> = sqlx::query_as(
        "SELECT delivery_id, attempt, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS started_at,
                duration_ms, status, error, response
         FROM delivery_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut by_delivery: std::collections::HashMap<i64, Vec<AttemptView>> = Default::default();
    for a in attempts {
        by_delivery.entry(a.delivery_id).or_default().push(a.view);
    }
    Ok(rows
        .into_iter()
        .map(|(id, event_id, event_type, state, attempts_n, next, created)| DeliveryView {
            id,
            event_id: event_id.to_string(),
            event_type,
            state,
            attempts: attempts_n,
            next_attempt_at: next,
            created_at: created,
            tries: by_delivery.remove(&id).unwrap_or_default(),
        })
        .collect())
}
