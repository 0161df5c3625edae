//! Reading usage: an app's points between two times at a step (5 minutes, an hour or a day; at
//! most [`MAX_POINTS`]), with totals in the units people pay for (vCPU-hours, GB-hours of
//! memory, GB in and out; GB = 10⁹ bytes), and the totals of each of a user's apps.

use sqlx::PgPool;

/// The most points one answer holds.
pub const MAX_POINTS: i64 = 1_000;

/// The step between points.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum Step {
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "1d")]
    Day,
}

impl Step {
    pub fn secs(self) -> i64 {
        match self {
            Step::FiveMinutes => 300,
            Step::Hour => 3_600,
            Step::Day => 86_400,
        }
    }
}

/// One point: the usage of the step that starts at `t`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct Point {
    /// The step's start (RFC 3339, UTC).
    pub t: String,
    pub vcpu_hours: f64,
    /// Memory held, in GB-hours.
    pub gb_hours: f64,
    pub memory_peak_bytes: i64,
    pub rx_bytes: i64,
    pub tx_bytes: i64,
    pub disk_peak_bytes: i64,
}

/// Sums over a range.
#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct Totals {
    pub vcpu_hours: f64,
    pub gb_hours: f64,
    /// Bytes sent, in GB.
    pub egress_gb: f64,
    /// Bytes received, in GB.
    pub ingress_gb: f64,
}

const SUMS: &str = "coalesce(sum(cpu_seconds), 0) / 3600 AS vcpu_hours,
    coalesce(sum(memory_byte_seconds), 0) / 3600 / 1e9 AS gb_hours";

/// App `app`'s points in [`from`, `to`) (seconds since the epoch) at `step`.
pub async fn points(
    pool: &PgPool,
    app: i64,
    from: i64,
    to: i64,
    step: Step,
) -> Result<Vec<Point>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT to_char(date_bin(make_interval(secs => $4), bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AT TIME ZONE 'UTC',
                        'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS t,
                {SUMS}, max(memory_peak) AS memory_peak_bytes, sum(net_rx_bytes)::int8 AS rx_bytes,
                sum(net_tx_bytes)::int8 AS tx_bytes, max(disk_peak) AS disk_peak_bytes
         FROM usage_buckets WHERE app_id = $1 AND bucket >= to_timestamp($2) AND bucket < to_timestamp($3)
         GROUP BY 1 ORDER BY 1"
    ))
    .bind(app)
    .bind(from as f64)
    .bind(to as f64)
    .bind(step.secs() as f64)
    .fetch_all(pool)
    .await
}

/// App `app`'s totals in [`from`, `to`).
pub async fn totals(pool: &PgPool, app: i64, from: i64, to: i64) -> Result<Totals, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {SUMS}, coalesce(sum(net_tx_bytes), 0)::float8 / 1e9 AS egress_gb,
                coalesce(sum(net_rx_bytes), 0)::float8 / 1e9 AS ingress_gb
         FROM usage_buckets WHERE app_id = $1 AND bucket >= to_timestamp($2) AND bucket < to_timestamp($3)"
    ))
    .bind(app)
    .bind(from as f64)
    .bind(to as f64)
    .fetch_one(pool)
    .await
}

/// One app's totals, as a user's usage lists them.
#[derive(Debug, serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct AppTotals {
    pub app: String,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub totals: Totals,
}

/// The totals of each of `user`'s apps in [`from`, `to`).
pub async fn per_app(
    pool: &PgPool,
    user: i64,
    from: i64,
    to: i64,
) -> Result<Vec<AppTotals>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT a.slug AS app, {SUMS}, coalesce(sum(net_tx_bytes), 0)::float8 / 1e9 AS egress_gb,
                coalesce(sum(net_rx_bytes), 0)::float8 / 1e9 AS ingress_gb
         FROM apps a JOIN usage_buckets u ON u.app_id = a.id
         WHERE a.owner_id = $1 AND u.bucket >= to_timestamp($2) AND u.bucket < to_timestamp($3)
         GROUP BY a.slug ORDER BY a.slug"
    ))
    .bind(user)
    .bind(from as f64)
    .bind(to as f64)
    .fetch_all(pool)
    .await
}
