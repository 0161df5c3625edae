//! Why a job failed. A [`DeployError`] names the [`DeployStage`] it failed in; the text of
//! every error is what the user reads as the deployment's error, so it says what to fix and
//! never carries a secret (repository credentials are not in any of them).

use std::time::Duration;

use crate::git::CloneError;
use crate::runtime::RuntimeError;
use crate::source::UnpackError;
use crate::transport::FetchError;

/// Where in a deploy something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployStage {
    /// Getting the source: the build directory, the upload's download and unpacking, the clone.
    Source,
    /// Choosing how to build: the repository's Containerfile or a framework preset.
    Recipe,
    Build,
    /// Finding a port and starting the container.
    Start,
    HealthCheck,
}

impl DeployStage {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployStage::Source => "source",
            DeployStage::Recipe => "recipe",
            DeployStage::Build => "build",
            DeployStage::Start => "start",
            DeployStage::HealthCheck => "health check",
        }
    }
}

/// Why a deploy failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    #[error("cannot create a build directory: {0}")]
    Workspace(std::io::Error),
    #[error(transparent)]
    Download(#[from] FetchError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Clone(#[from] CloneError),
    #[error(
        "no Dockerfile or Containerfile, and no known framework (Next.js, Vite, Node, Go, Python, static)"
    )]
    NoRecipe,
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
    #[error("cannot write the preset's Containerfile: {0}")]
    Recipe(std::io::Error),
    #[error("build failed: {0}")]
    Build(RuntimeError),
    #[error("no free port on {ip}: {source}")]
    NoPort { ip: String, source: std::io::Error },
    #[error("start failed: {0}")]
    Start(RuntimeError),
    #[error("health check failed: {why}; last log lines:\n{logs}")]
    Unhealthy { why: HealthError, logs: String },
    #[error("the image of deployment {0} is no longer on this worker and its uploaded source is not kept: upload the source again")]
    ImageGone(i64),
    /// A blocking task of the deploy died (a panic): a bug here, not the app's fault.
    #[error("the worker failed internally: {0}")]
    Internal(String),
}

impl DeployError {
    /// The stage the deploy failed in.
    pub fn stage(&self) -> DeployStage {
        match self {
            DeployError::Workspace(_)
            | DeployError::Download(_)
            | DeployError::Unpack(_)
            | DeployError::Clone(_)
            | DeployError::ImageGone(_)
            | DeployError::Internal(_) => DeployStage::Source,
            DeployError::NoRecipe | DeployError::Recipe(_) | DeployError::Context(_) => {
                DeployStage::Recipe
            }
            DeployError::Build(_) => DeployStage::Build,
            DeployError::NoPort { .. } | DeployError::Start(_) => DeployStage::Start,
            DeployError::Unhealthy { .. } => DeployStage::HealthCheck,
        }
    }
}

/// The last thing a health check saw before its time ran out.
#[derive(Debug, thiserror::Error)]
#[error("{last} after {after:?}")]
pub struct HealthError {
    pub last: Probe,
    pub after: Duration,
}

/// One health probe's outcome, when it was not healthy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Probe {
    #[error("no answer")]
    NoAnswer,
    #[error("status {0}")]
    Status(u16),
    #[error("{0}")]
    Dial(#[from] wh_http::client::DialError),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("timed out")]
    Timeout,
    /// The health-check path does not make a valid URL (an operator's setting).
    #[error("invalid health-check URL")]
    BadUrl,
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// Removing a deployment's containers (a retire, or a cancelled deploy) failed.
    #[error(transparent)]
    Remove(#[from] RuntimeError),
    #[error("cancelled by the control plane")]
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_their_stage_and_keep_the_users_wording() {
        let e = DeployError::Build(RuntimeError::Timeout(Duration::from_secs(900)));
        assert_eq!(e.stage(), DeployStage::Build);
        assert_eq!(e.to_string(), "build failed: build timed out after 900s");
        let e = DeployError::Unhealthy {
            why: HealthError { last: Probe::Status(503), after: Duration::from_secs(60) },
            logs: "boom".into(),
        };
        assert_eq!(e.stage(), DeployStage::HealthCheck);
        assert_eq!(
            e.to_string(),
            "health check failed: status 503 after 60s; last log lines:\nboom"
        );
        assert_eq!(DeployError::NoRecipe.stage(), DeployStage::Recipe);
        assert_eq!(JobError::Cancelled.to_string(), "cancelled by the control plane");
    }
}
