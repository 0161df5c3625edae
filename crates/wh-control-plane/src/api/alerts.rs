//! Alert rules and alerts over HTTP: an app's rules with their state (`GET
//! /api/v1/apps/{slug}/alerts/rules`), changing one (`PUT …/rules/{kind}`), muting one for a
//! while (`POST …/rules/{kind}/mute`: it still evaluates and records alerts, but sends
//! nothing), an app's alert history (`GET /api/v1/apps/{slug}/alerts`), and the alerts open
//! now across the caller's apps (`GET /api/v1/alerts`).

use axum::extract::State;
use axum::Json;

use super::extract::{ApiJson, Caller};
use super::params::Path;
use super::ApiError;
use crate::alerts::machine::State as RuleState;
use crate::alerts::Kind;
use crate::AppState;

/// A rule as its owner sees it.
#[derive(serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct RuleView {
    pub kind: Kind,
    /// % of the plan's limit (cpu, memory, disk), bytes per second (network), restarts in 10
    /// minutes (crashloop); unused by offline and deployment_failed.
    pub threshold: f64,
    /// How long the condition must hold before it fires (a multiple of 30 s).
    pub for_secs: i32,
    /// How long it must stop holding before it resolves.
    pub keep_firing_secs: i32,
    /// Reminders while firing (0: none).
    pub remind_secs: i32,
    pub enabled: bool,
    pub muted_until: Option<String>,
    pub state: RuleState,
    pub last_value: Option<f64>,
    pub evaluated_at: Option<String>,
}

const RULE: &str = "SELECT kind, threshold, for_secs, keep_firing_secs, remind_secs, enabled,
    to_char(muted_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS muted_until, state, last_value,
    to_char(evaluated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS evaluated_at
    FROM alert_rules";

fn kind(name: &str) -> Result<Kind, ApiError> {
    Kind::parse(name).ok_or(ApiError::NotFound)
}

/// `GET /api/v1/apps/{slug}/alerts/rules`.
pub async fn rules(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Vec<RuleView>>, ApiError> {
    let app = caller.app_id(&state.pool, &slug).await?;
    let rules = sqlx::query_as(&format!("{RULE} WHERE app_id = $1 ORDER BY kind"))
        .bind(app)
        .fetch_all(&state.pool)
        .await?;
    Ok(Json(rules))
}

/// What may change of a rule (absent: unchanged).
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    pub threshold: Option<f64>,
    pub for_secs: Option<i32>,
    pub keep_firing_secs: Option<i32>,
    pub remind_secs: Option<i32>,
    pub enabled: Option<bool>,
}

fn invalid(field: &'static str, message: &str) -> ApiError {
    ApiError::Validation { field, message: message.into() }
}

/// `PUT /api/v1/apps/{slug}/alerts/rules/{kind}`.
pub async fn set_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<RulePatch>,
) -> Result<Json<RuleView>, ApiError> {
    let app = caller.app_id(&state.pool, &slug).await?;
    let kind = kind(&name)?;
    if let Some(t) = body.threshold {
        let percent = matches!(kind, Kind::Cpu | Kind::Memory | Kind::Disk);
        if !t.is_finite() || t < 0.0 || (percent && t > 100.0) {
            return Err(invalid("threshold", "a number from 0 (and at most 100 for a percentage)"));
        }
    }
    if body.for_secs.is_some_and(|f| !(0..=86_400).contains(&f) || f % 30 != 0) {
        return Err(invalid("for_secs", "a multiple of 30 from 0 to 86400"));
    }
    if body.keep_firing_secs.is_some_and(|k| !(0..=86_400).contains(&k)) {
        return Err(invalid("keep_firing_secs", "0 to 86400"));
    }
    if body.remind_secs.is_some_and(|r| !(0..=7 * 86_400).contains(&r)) {
        return Err(invalid("remind_secs", "0 (never) to 604800"));
    }
    let mut tx = state.pool.begin().await?;
    sqlx::query(
        "UPDATE alert_rules SET threshold = coalesce($3, threshold), for_secs = coalesce($4, for_secs),
             keep_firing_secs = coalesce($5, keep_firing_secs), remind_secs = coalesce($6, remind_secs),
             enabled = coalesce($7, enabled), version = version + 1
         WHERE app_id = $1 AND kind = $2",
    )
    .bind(app)
    .bind(kind)
    .bind(body.threshold)
    .bind(body.for_secs)
    .bind(body.keep_firing_secs)
    .bind(body.remind_secs)
    .bind(body.enabled)
    .execute(&mut *tx)
    .await?;
    let details = serde_json::json!({"kind": kind.as_str(), "threshold": body.threshold, "for_secs": body.for_secs,
        "keep_firing_secs": body.keep_firing_secs, "remind_secs": body.remind_secs, "enabled": body.enabled});
    caller.audit(&mut tx, "alert_rule.update", &format!("app:{slug}"), details).await?;
    tx.commit().await?;
    one(&state, app, kind).await.map(Json)
}

async fn one(state: &AppState, app: i64, kind: Kind) -> Result<RuleView, ApiError> {
    sqlx::query_as(&format!("{RULE} WHERE app_id = $1 AND kind = $2"))
        .bind(app)
        .bind(kind)
        .fetch_optional(&state.pool)
        .await?
        .ok_or(ApiError::NotFound)
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mute {
    /// For how long (0 unmutes), at most a week.
    pub minutes: u32,
}

/// `POST /api/v1/apps/{slug}/alerts/rules/{kind}/mute`.
pub async fn mute(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<Mute>,
) -> Result<Json<RuleView>, ApiError> {
    let app = caller.app_id(&state.pool, &slug).await?;
    let kind = kind(&name)?;
    if body.minutes > 7 * 24 * 60 {
        return Err(invalid("minutes", "at most 10080 (a week)"));
    }
    let mut tx = state.pool.begin().await?;
    sqlx::query(
        "UPDATE alert_rules SET muted_until = CASE WHEN $3 = 0 THEN NULL ELSE now() + make_interval(mins => $3) END
         WHERE app_id = $1 AND kind = $2",
    )
    .bind(app)
    .bind(kind)
    .bind(body.minutes as i32)
    .execute(&mut *tx)
    .await?;
    let details = serde_json::json!({"kind": kind.as_str(), "minutes": body.minutes});
    caller.audit(&mut tx, "alert_rule.mute", &format!("app:{slug}"), details).await?;
    tx.commit().await?;
    one(&state, app, kind).await.map(Json)
}

/// An alert that fired.
#[derive(serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct AlertView {
    pub id: i64,
    pub app: String,
    pub kind: Kind,
    /// The value when it fired.
    pub value: f64,
    pub threshold: f64,
    pub started_at: String,
    /// None while it fires.
    pub resolved_at: Option<String>,
    /// How long it fired (until now while it fires).
    pub duration_secs: f64,
    /// Recorded while the app was offline or crash-looping, or the rule muted: not notified.
    pub held_back: bool,
}

const ALERT: &str = "SELECT al.id, a.slug AS app, al.kind, al.value, al.threshold,
    to_char(al.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS started_at,
    to_char(al.resolved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS resolved_at,
    extract(epoch FROM coalesce(al.resolved_at, now()) - al.started_at)::float8 AS duration_secs, al.held_back
    FROM alerts al JOIN apps a ON a.id = al.app_id";

/// `GET /api/v1/apps/{slug}/alerts`: the newest 200.
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    let app = caller.app_id(&state.pool, &slug).await?;
    let alerts = sqlx::query_as(&format!(
        "{ALERT} WHERE al.app_id = $1 ORDER BY al.started_at DESC, al.id DESC LIMIT 200"
    ))
    .bind(app)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(alerts))
}

/// `GET /api/v1/alerts`: what fires now across the caller's apps.
pub async fn open(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    let alerts = sqlx::query_as(&format!(
        "{ALERT} WHERE a.owner_id = $1 AND al.resolved_at IS NULL ORDER BY al.started_at DESC LIMIT 500"
    ))
    .bind(caller.user.id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(alerts))
}
