//! Alerts: per-app rules of seven kinds ([`Kind`]), evaluated every 30 s ([`run`]) from what
//! workers report: each rule's state machine ([`machine`]: `for`, `keep_firing_for`,
//! hysteresis, missing data keeps the state) and its effects in the database ([`evaluate`]:
//! guarded transitions, at most one open alert per rule, `alert.fired` / `alert.resolved` in the
//! event outbox in the same transaction, so two evaluators never fire twice). Rules and alerts
//! over HTTP are `api/alerts.rs`.
//!
//! Every app gets the default rules when it is made (a trigger, migration 0023).

pub mod evaluate;
pub mod machine;

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// What a rule watches.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
    sqlx::Type,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "alert_kind", rename_all = "snake_case")]
pub enum Kind {
    /// CPU use, in % of the plan's limit.
    Cpu,
    /// Memory use, in % of the plan's limit.
    Memory,
    /// Network receive + transmit, in bytes per second.
    Network,
    /// Disk written, in % of the plan's quota.
    Disk,
    /// It should run (it has a live deployment) and no container runs, or none reported for 90 s.
    Offline,
    /// Restarts within 10 minutes.
    Crashloop,
    /// Its newest finished deployment failed (resolved by the next live one).
    DeploymentFailed,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Cpu,
        Kind::Memory,
        Kind::Network,
        Kind::Disk,
        Kind::Offline,
        Kind::Crashloop,
        Kind::DeploymentFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cpu => "cpu",
            Kind::Memory => "memory",
            Kind::Network => "network",
            Kind::Disk => "disk",
            Kind::Offline => "offline",
            Kind::Crashloop => "crashloop",
            Kind::DeploymentFailed => "deployment_failed",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether it measures a resource (held back while the app is offline or crash-looping).
    pub fn is_resource(self) -> bool {
        matches!(self, Kind::Cpu | Kind::Memory | Kind::Network | Kind::Disk)
    }
}

/// How often rules are evaluated.
pub const EVERY: Duration = Duration::from_secs(30);

/// Evaluates every `every` until `stop`. Returns (to its supervisor, which restarts it) only
/// when the database fails.
pub async fn run(pool: PgPool, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let now = crate::now_ms() as f64 / 1000.0;
        if let Err(e) = evaluate::evaluate(&pool, now).await {
            tracing::warn!(error = %e, "alert rules not evaluated");
            return;
        }
    }
}
