//! Usage over HTTP: an app's points and totals (`GET /api/v1/apps/{slug}/usage?from&to&step`)
//! and the caller's apps' totals (`GET /api/v1/usage?from&to`). Times are seconds since the
//! epoch; by default the last 24 hours, an hour a point.

use axum::extract::State;
use axum::Json;

use super::extract::Caller;
use super::params::{Path, Query};
use super::ApiError;
use crate::usage::query::{self, AppTotals, Point, Step, Totals, MAX_POINTS};
use crate::AppState;

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct Range {
    /// Seconds since the epoch (default: 24 h before `to`).
    #[serde(default)]
    pub from: Option<i64>,
    /// Seconds since the epoch (default: now).
    #[serde(default)]
    pub to: Option<i64>,
    /// `5m`, `1h` (the default) or `1d`.
    #[serde(default)]
    pub step: Option<Step>,
}

/// An app's usage in a range.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct AppUsage {
    pub from: i64,
    pub to: i64,
    pub step: Step,
    /// Steps without usage are left out.
    pub points: Vec<Point>,
    pub totals: Totals,
    /// When each deployment of the range that went live was made (seconds since the epoch),
    /// for markers.
    pub deploys: Vec<i64>,
}

fn range(r: &Range) -> Result<(i64, i64), ApiError> {
    let to = r.to.unwrap_or_else(|| crate::now_ms() / 1000);
    let from = r.from.unwrap_or(to - 86_400);
    let bad = |m: &str| ApiError::BadInput { field: "query", message: m.into() };
    if !(0..=4_102_444_800).contains(&from) || !(0..=4_102_444_800).contains(&to) {
        return Err(bad("from and to are seconds since 1970 (before 2100)"));
    }
    if from >= to {
        return Err(bad("from must be before to"));
    }
    Ok((from, to))
}

/// `GET /api/v1/apps/{slug}/usage`.
pub async fn app(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    Query(r): Query<Range>,
) -> Result<Json<AppUsage>, ApiError> {
    let app = caller.app_id(&state.pool, &slug).await?;
    let (from, to) = range(&r)?;
    let step = r.step.unwrap_or(Step::Hour);
    if (to - from) / step.secs() > MAX_POINTS {
        return Err(ApiError::BadInput {
            field: "query",
            message: format!("at most {MAX_POINTS} points: a longer step, or a shorter range"),
        });
    }
    let points = query::points(&state.pool, app, from, to, step).await?;
    let totals = query::totals(&state.pool, app, from, to).await?;
    let deploys: Vec<i64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM created_at)::int8 FROM deployments
         WHERE app_id = $1 AND state IN ('live', 'superseded')
           AND created_at BETWEEN to_timestamp($2) AND to_timestamp($3) ORDER BY 1",
    )
    .bind(app)
    .bind(from as f64)
    .bind(to as f64)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(AppUsage { from, to, step, points, totals, deploys }))
}

/// A user's usage in a range, per app.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct UserUsage {
    pub from: i64,
    pub to: i64,
    pub apps: Vec<AppTotals>,
    pub totals: Totals,
}

/// `GET /api/v1/usage`.
pub async fn user(
    State(state): State<AppState>,
    caller: Caller,
    Query(r): Query<Range>,
) -> Result<Json<UserUsage>, ApiError> {
    let (from, to) = range(&r)?;
    let apps = query::per_app(&state.pool, caller.user.id, from, to).await?;
    let mut totals = Totals::default();
    for a in &apps {
        totals.vcpu_hours += a.totals.vcpu_hours;
        totals.gb_hours += a.totals.gb_hours;
        totals.egress_gb += a.totals.egress_gb;
        totals.ingress_gb += a.totals.ingress_gb;
    }
    Ok(Json(UserUsage { from, to, apps, totals }))
}
