//! The states of a deployment, as the `deployment_state` Postgres enum: the only place their
//! names are written. SQL binds them (`state = $1`, `state = ANY($2)`) instead of spelling them.

use std::time::Duration;

/// Where a deployment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "deployment_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum DeploymentState {
    Queued,
    Building,
    Starting,
    Healthy,
    Live,
    Failed,
    Cancelled,
    Superseded,
}

impl DeploymentState {
    /// The states a deployment is still in progress in, each with a deadline.
    pub const IN_PROGRESS: [DeploymentState; 4] = [
        DeploymentState::Queued,
        DeploymentState::Building,
        DeploymentState::Starting,
        DeploymentState::Healthy,
    ];

    /// The states a deployment has ended in.
    pub const ENDED: [DeploymentState; 4] = [
        DeploymentState::Live,
        DeploymentState::Failed,
        DeploymentState::Cancelled,
        DeploymentState::Superseded,
    ];

    /// How long a deployment may stay in this state; `None` for the states it ends in.
    pub fn deadline(self) -> Option<Duration> {
        match self {
            DeploymentState::Queued => Some(Duration::from_secs(10 * 60)),
            DeploymentState::Building => Some(Duration::from_secs(15 * 60)),
            DeploymentState::Starting | DeploymentState::Healthy => {
                Some(Duration::from_secs(5 * 60))
            }
            _ => None,
        }
    }

    /// The state a worker's progress stage moves a deployment to.
    pub fn of_stage(stage: wh_wsproto::job::Stage) -> DeploymentState {
        use wh_wsproto::job::Stage;
        match stage {
            Stage::Building => DeploymentState::Building,
            Stage::Starting => DeploymentState::Starting,
            Stage::Healthy => DeploymentState::Healthy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_in_progress_state_has_a_deadline_and_no_ended_one_does() {
        assert!(DeploymentState::IN_PROGRESS.iter().all(|s| s.deadline().is_some()));
        assert!(DeploymentState::ENDED.iter().all(|s| s.deadline().is_none()));
        assert_eq!(
            DeploymentState::of_stage(wh_wsproto::job::Stage::Starting),
            DeploymentState::Starting
        );
    }
}
