//! The job contract between the control plane and a worker: what a job asks for
//! ([`Job`]: a [`DeployJob`] or a [`RetireJob`]), how far it got ([`Stage`]) and what it
//! produced ([`JobOutput`]). Both sides build and read these types; nothing about a job travels
//! as string keys.
//!
//! On the wire a [`crate::messages::JobAssign`] carries `"kind"` ([`JobKind`]) and `"payload"`
//! (the job's fields), the layout the `jobs` table stores. A deploy's secrets (`env`, the
//! repository credentials) are added only to the assignment, never to the stored row.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a job does. Stored in `jobs.kind` as [`JobKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Build and start a deployment.
    Deploy,
    /// Stop and remove a deployment's containers.
    Retire,
}

impl JobKind {
    pub const ALL: [JobKind; 2] = [JobKind::Deploy, JobKind::Retire];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Deploy => "deploy",
            JobKind::Retire => "retire",
        }
    }

    /// The kind named `s`, if it is one.
    pub fn parse(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job: its kind and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "lowercase")]
pub enum Job {
    Deploy(DeployJob),
    Retire(RetireJob),
}

impl Job {
    pub fn kind(&self) -> JobKind {
        match self {
            Job::Deploy(_) => JobKind::Deploy,
            Job::Retire(_) => JobKind::Retire,
        }
    }

    /// The deployment the job is about.
    pub fn deployment_id(&self) -> i64 {
        match self {
            Job::Deploy(d) => d.deployment_id,
            Job::Retire(r) => r.deployment_id,
        }
    }

    /// The fields as stored in `jobs.payload`.
    pub fn payload(&self) -> serde_json::Value {
        let value = match self {
            Job::Deploy(d) => serde_json::to_value(d),
            Job::Retire(r) => serde_json::to_value(r),
        };
        value.unwrap_or(serde_json::Value::Null)
    }

    /// A job from a stored `(kind, payload)` row.
    pub fn from_stored(kind: &str, payload: &serde_json::Value) -> Result<Job, JobError> {
        let kind = JobKind::parse(kind).ok_or_else(|| JobError::UnknownKind(kind.to_owned()))?;
        let parsed = match kind {
            JobKind::Deploy => DeployJob::deserialize(payload).map(Job::Deploy),
            JobKind::Retire => RetireJob::deserialize(payload).map(Job::Retire),
        };
        parsed.map_err(|e| JobError::Payload { kind, why: e.to_string() })
    }
}

/// Why a stored job could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    #[error("unknown job kind `{0}`")]
    UnknownKind(String),
    #[error("invalid {kind} job: {why}")]
    Payload { kind: JobKind, why: String },
}

/// Build a deployment and start it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployJob {
    /// The app's slug.
    pub app: String,
    pub deployment_id: i64,
    /// The port the app listens on inside its container (`PORT`).
    pub port: u16,
    #[serde(flatten)]
    pub limits: Limits,
    #[serde(flatten)]
    pub source: Source,
    /// The directory of the source to build (a monorepo's `services/web`); empty: all of it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root_dir: String,
    /// The app's variables, opened: only in the assignment, never in the stored row.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// What a deployment may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    #[serde(default = "default_memory")]
    pub memory_mb: u64,
    #[serde(default = "default_cpu")]
    pub cpu_millis: u64,
    /// Writable-layer quota; `None`: the plan sets none.
    #[serde(default)]
    pub disk_mb: Option<u64>,
}

fn default_memory() -> u64 {
    512
}

fn default_cpu() -> u64 {
    1000
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_mb: default_memory(), cpu_millis: default_cpu(), disk_mb: None }
    }
}

/// Where a deployment's source comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum Source {
    /// A clone of `repo_url` at `git_ref`.
    Git {
        repo_url: String,
        #[serde(rename = "ref")]
        git_ref: String,
        /// `user:token` for a private repository, opened: only in the assignment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repo_auth: Option<String>,
    },
    /// An archive the user uploaded, fetched from the control plane.
    Upload,
    /// A redeploy or rollback: the image an earlier deployment of the app built on this worker,
    /// run again as it is; when the worker no longer has it, `rebuild` (that deployment's
    /// commit) is built instead, and without one the deploy fails saying so.
    Image {
        /// The earlier deployment whose image this is (flattened into the job, whose own
        /// `deployment_id` is the new deployment).
        image_of: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rebuild: Option<Box<Source>>,
    },
}

impl Source {
    /// The git source this deploy may clone, if any (to receive the repository's credentials).
    pub fn git_mut(&mut self) -> Option<&mut Source> {
        match self {
            Source::Git { .. } => Some(self),
            Source::Image { rebuild: Some(inner), .. } => inner.git_mut(),
            _ => None,
        }
    }
}

/// Stop a deployment's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetireJob {
    pub deployment_id: i64,
}

/// How far a deploy got; each moves the deployment to the state of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Building,
    Starting,
    Healthy,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Building => "building",
            Stage::Starting => "starting",
            Stage::Healthy => "healthy",
        }
    }
}

/// What a job produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobOutput {
    Deploy(DeployOutput),
    Retire(RetireOutput),
}

/// A deployment that runs: where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployOutput {
    pub host_port: u16,
    pub container_id: String,
    /// The commit built, for a git source (a rollback rebuilds exactly it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The earlier deployment whose image runs (a rollback that found it); none: built now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_of: Option<i64>,
}

impl DeployOutput {
    /// A container started at `host_port` from an image built now (no commit known yet).
    pub fn started(host_port: u16, container_id: String) -> DeployOutput {
        DeployOutput { host_port, container_id, commit: None, image_of: None }
    }
}

/// The containers a retire stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetireOutput {
    pub stopped: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(source: Source) -> DeployJob {
        DeployJob {
            app: "shop".into(),
            deployment_id: 7,
            port: 8080,
            limits: Limits { memory_mb: 256, cpu_millis: 500, disk_mb: Some(1024) },
            source,
            root_dir: String::new(),
            env: BTreeMap::new(),
        }
    }

    #[test]
    fn a_job_travels_as_kind_and_payload_in_the_stored_layout() {
        let git = Source::Git {
            repo_url: "https://g/x.git".into(),
            git_ref: "main".into(),
            repo_auth: None,
        };
        let job = Job::Deploy(deploy(git));
        let wire = serde_json::to_value(&job).unwrap();
        assert_eq!(
            wire,
            json!({"kind": "deploy", "payload": {"app": "shop", "deployment_id": 7, "port": 8080,
                "memory_mb": 256, "cpu_millis": 500, "disk_mb": 1024,
                "source": "git", "repo_url": "https://g/x.git", "ref": "main"}})
        );
        assert_eq!(job.payload(), wire["payload"]);
        assert_eq!(Job::from_stored("deploy", &wire["payload"]).unwrap(), job);
        let retire = Job::Retire(RetireJob { deployment_id: 3 });
        assert_eq!(
            serde_json::to_value(&retire).unwrap(),
            json!({"kind": "retire", "payload": {"deployment_id": 3}})
        );
        let upload = Job::Deploy(deploy(Source::Upload));
        assert_eq!(upload.payload()["source"], "upload");
        assert_eq!(Job::from_stored("deploy", &upload.payload()).unwrap(), upload);
    }

    #[test]
    fn a_rollback_names_the_image_and_what_to_rebuild_with_its_credentials() {
        let commit =
            Source::Git { repo_url: "r".into(), git_ref: "abc123".into(), repo_auth: None };
        let mut rollback = deploy(Source::Image { image_of: 3, rebuild: Some(Box::new(commit)) });
        if let Some(Source::Git { repo_auth, .. }) = rollback.source.git_mut() {
            *repo_auth = Some("me:t".into());
        }
        let job = Job::Deploy(rollback);
        let p = job.payload();
        assert_eq!(
            (p["source"].as_str(), p["image_of"].as_i64(), p["deployment_id"].as_i64()),
            (Some("image"), Some(3), Some(7))
        );
        assert_eq!(
            p["rebuild"],
            json!({"source": "git", "repo_url": "r", "ref": "abc123", "repo_auth": "me:t"})
        );
        assert_eq!(Job::from_stored("deploy", &p).unwrap(), job);
        let mut upload = Source::Image { image_of: 7, rebuild: None };
        assert!(upload.git_mut().is_none(), "an upload's image has nothing to clone");
    }

    #[test]
    fn secrets_are_sent_only_when_set_and_defaults_fill_what_is_missing() {
        let mut d = deploy(Source::Git {
            repo_url: "r".into(),
            git_ref: "v1".into(),
            repo_auth: Some("me:t".into()),
        });
        d.env.insert("GREETING".into(), "hi".into());
        let p = Job::Deploy(d).payload();
        assert_eq!(
            (p["repo_auth"].as_str(), p["env"]["GREETING"].as_str()),
            (Some("me:t"), Some("hi"))
        );
        let minimal = json!({"app": "a", "deployment_id": 1, "port": 80, "source": "upload"});
        let Job::Deploy(d) = Job::from_stored("deploy", &minimal).unwrap() else { panic!() };
        assert_eq!(d.limits, Limits::default());
    }

    #[test]
    fn bad_stored_jobs_are_errors_naming_the_problem() {
        assert_eq!(
            Job::from_stored("build", &json!({})),
            Err(JobError::UnknownKind("build".into()))
        );
        let err = Job::from_stored("deploy", &json!({"app": "a"})).unwrap_err();
        assert!(err.to_string().starts_with("invalid deploy job"), "{err}");
        let err = Job::from_stored(
            "deploy",
            &json!({"app": "a", "deployment_id": 1, "port": 70000, "source": "upload"}),
        );
        assert!(err.is_err(), "a port over 65535");
    }

    #[test]
    fn outputs_and_stages_round_trip() {
        let mut deployed = DeployOutput::started(31001, "c1".into());
        let out = JobOutput::Deploy(deployed.clone());
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v, json!({"host_port": 31001, "container_id": "c1"}));
        assert_eq!(serde_json::from_value::<JobOutput>(v).unwrap(), out);
        (deployed.commit, deployed.image_of) = (Some("ab12".into()), Some(4));
        let out = JobOutput::Deploy(deployed);
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!((v["commit"].as_str(), v["image_of"].as_i64()), (Some("ab12"), Some(4)));
        assert_eq!(serde_json::from_value::<JobOutput>(v).unwrap(), out);
        let out = JobOutput::Retire(RetireOutput { stopped: vec!["a".into()] });
        assert_eq!(
            serde_json::from_value::<JobOutput>(serde_json::to_value(&out).unwrap()).unwrap(),
            out
        );
        assert_eq!(serde_json::to_value(Stage::Healthy).unwrap(), "healthy");
        assert_eq!(Stage::Building.as_str(), "building");
        assert_eq!(JobKind::parse("retire"), Some(JobKind::Retire));
    }
}
