//! The typed payloads the channel carries, and their type names (`t`).
//!
//! | t | direction | payload |
//! |---|---|---|
//! | `hello` | worker → CP | [`Hello`]: who I am, what I can run, what I already run |
//! | `heartbeat` | worker → CP | [`Heartbeat`]: host stats and running jobs |
//! | `job.assign` | CP → worker | [`JobAssign`] |
//! | `job.ack` | worker → CP | [`JobRef`]: the job was received |
//! | `job.progress` | worker → CP | [`JobProgress`] |
//! | `job.result` | worker → CP | [`JobResult`] |
//! | `log.lines` | worker → CP | [`LogLines`] (build or runtime output) |
//! | `container.event` | worker → CP | [`ContainerEvent`] |
//! | `container.stats` | worker → CP | [`ContainerStats`]: every 10 s |
//! | `container.stop` | CP → worker | [`ContainerStop`]: containers the control plane does not know |
//! | `job.cancel` | CP → worker | [`JobCancel`]: stop this job (cancelled, or past its deadline) |
//! | `ping` / `pong` | both | [`Ping`] |
//! | `ack` | CP → worker | [`Ack`]: these envelope ids were processed; stop resending them |
//!
//! Delivery: `job.ack`, `job.progress`, `job.result` and `container.event` are *reliable*: the
//! worker keeps each until the control plane acknowledges its envelope id, resends it (same id,
//! new sequence number) after a reconnect, and the control plane drops ids it has already
//! processed, so each arrives exactly once. Log lines, stats and heartbeats are best-effort; `container.stop` is repeated on every
//! `hello` that still reports the container, so it needs no acknowledgement.
//!
//! Unknown fields are ignored so either side can add fields without breaking the other; an
//! unknown `t` is an error the receiver logs and skips.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Error;

/// Resources of a worker host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    pub cpus: f64,
    pub memory_mb: u64,
    pub disk_mb: u64,
    /// How per-app disk limits are enforced here (`xfs-prjquota`, `btrfs`), or why they are
    /// not (`unsupported: …`).
    #[serde(default)]
    pub disk_quota: String,
}

/// A container the worker runs, found by its labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub container_id: String,
    pub app: String,
    pub deployment_id: i64,
    pub host_port: Option<u16>,
    pub state: String,
    #[serde(default)]
    pub restarts: u32,
}

/// Sent first on every connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub worker_id: String,
    pub version: String,
    pub capacity: Capacity,
    #[serde(default)]
    pub containers: Vec<ContainerInfo>,
    /// The jobs this worker is executing: a job the control plane has claimed for it that is
    /// not listed (the worker restarted) fails at once instead of waiting for its lease.
    #[serde(default)]
    pub running_jobs: Vec<i64>,
}

/// Host statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostStats {
    /// 0.0 ..= 1.0 of all cores.
    pub cpu: f64,
    pub memory_used_mb: u64,
    pub memory_total_mb: u64,
    pub disk_used_mb: u64,
    pub disk_total_mb: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub stats: HostStats,
    #[serde(default)]
    pub running_jobs: Vec<i64>,
}

/// A job for the worker. `attempt` is the fencing token: results must carry it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobAssign {
    pub job_id: i64,
    pub attempt: i32,
    /// `"kind"` and `"payload"` on the wire ([`crate::job`]).
    #[serde(flatten)]
    pub job: crate::job::Job,
    /// Unix milliseconds after which the lease is gone and the result will be refused.
    pub lease_expires_ms: i64,
}

/// Identifies one attempt of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    pub job_id: i64,
    pub attempt: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    pub job_id: i64,
    pub attempt: i32,
    pub stage: crate::job::Stage,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub job_id: i64,
    pub attempt: i32,
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
    /// What the job produced, when it succeeded.
    #[serde(default)]
    pub output: Option<crate::job::JobOutput>,
}

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Build,
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub ts_ms: i64,
    pub stream: Stream,
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLines {
    pub app: String,
    #[serde(default)]
    pub deployment_id: Option<i64>,
    pub lines: Vec<LogLine>,
    /// Lines dropped before these (the worker's bounded queue overflowed while disconnected).
    #[serde(default)]
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerEventKind {
    Started,
    Exited,
    Restarted,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerEvent {
    pub container_id: String,
    pub app: String,
    pub deployment_id: i64,
    pub event: ContainerEventKind,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub restarts: u32,
}

/// Resource use of one container, sampled by `podman stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStat {
    pub container_id: String,
    pub app: String,
    pub deployment_id: i64,
    /// Percent of one core (200.0 = two cores busy).
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub memory_limit: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub block_read: u64,
    pub block_write: u64,
    /// Bytes in the container's writable layer; sent about once a minute (measuring it walks
    /// the layer), absent in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    pub containers: Vec<ContainerStat>,
}

/// Containers the worker must stop and remove: the control plane knows no deployment of theirs
/// that should run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStop {
    pub container_ids: Vec<String>,
    #[serde(default)]
    pub reason: String,
}

/// A job the worker must stop: its deployment was cancelled or passed its deadline. The worker
/// ends the build or health check and removes what the job started; its result, if any, is
/// refused as stale. Sent again on every heartbeat that still lists the job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCancel {
    pub job_id: i64,
    pub attempt: i32,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub nonce: String,
}

/// Envelope ids the receiver has processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub ids: Vec<String>,
}

/// Every message, by type.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    Hello(Hello),
    Heartbeat(Heartbeat),
    JobAssign(JobAssign),
    JobAck(JobRef),
    JobProgress(JobProgress),
    JobResult(JobResult),
    LogLines(LogLines),
    ContainerEvent(ContainerEvent),
    ContainerStats(ContainerStats),
    ContainerStop(ContainerStop),
    JobCancel(JobCancel),
    Ping(Ping),
    Pong(Ping),
    Ack(Ack),
}

/// Which part of the control plane a worker's message is for; the hub queues each family
/// separately, so a flood of one (log lines) cannot hold up another (job results).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `hello`, `heartbeat` and `job.*`: the scheduler (jobs, leases, a worker's readiness).
    Jobs,
    /// `container.*`: what runs where.
    Containers,
    /// `log.lines`: build and runtime output.
    Logs,
    /// `ping`, `pong`, `ack`: the channel itself, answered by the hub.
    Channel,
}

/// Every message type name (`t`), for tools such as the fuzzer.
pub const TYPE_NAMES: &[&str] = &[
    "hello",
    "heartbeat",
    "job.assign",
    "job.ack",
    "job.progress",
    "job.result",
    "log.lines",
    "container.event",
    "container.stats",
    "container.stop",
    "job.cancel",
    "ping",
    "pong",
    "ack",
];

impl Message {
    /// The family the message belongs to.
    pub fn family(&self) -> Family {
        match self {
            Message::Hello(_)
            | Message::Heartbeat(_)
            | Message::JobAssign(_)
            | Message::JobAck(_)
            | Message::JobProgress(_)
            | Message::JobResult(_)
            | Message::JobCancel(_) => Family::Jobs,
            Message::ContainerEvent(_) | Message::ContainerStats(_) | Message::ContainerStop(_) => {
                Family::Containers
            }
            Message::LogLines(_) => Family::Logs,
            Message::Ping(_) | Message::Pong(_) | Message::Ack(_) => Family::Channel,
        }
    }

    /// The envelope's `t` for this message.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Heartbeat(_) => "heartbeat",
            Message::JobAssign(_) => "job.assign",
            Message::JobAck(_) => "job.ack",
            Message::JobProgress(_) => "job.progress",
            Message::JobResult(_) => "job.result",
            Message::LogLines(_) => "log.lines",
            Message::ContainerEvent(_) => "container.event",
            Message::ContainerStats(_) => "container.stats",
            Message::ContainerStop(_) => "container.stop",
            Message::JobCancel(_) => "job.cancel",
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::Ack(_) => "ack",
        }
    }

    /// Whether this message must arrive exactly once (kept, resent and acknowledged).
    pub fn is_reliable(&self) -> bool {
        matches!(
            self,
            Message::JobAck(_)
                | Message::JobProgress(_)
                | Message::JobResult(_)
                | Message::ContainerEvent(_)
        )
    }

    /// The payload as JSON text.
    pub fn payload(&self) -> Box<RawValue> {
        let text = match self {
            Message::Hello(m) => serde_json::to_string(m),
            Message::Heartbeat(m) => serde_json::to_string(m),
            Message::JobAssign(m) => serde_json::to_string(m),
            Message::JobAck(m) => serde_json::to_string(m),
            Message::JobProgress(m) => serde_json::to_string(m),
            Message::JobResult(m) => serde_json::to_string(m),
            Message::LogLines(m) => serde_json::to_string(m),
            Message::ContainerEvent(m) => serde_json::to_string(m),
            Message::ContainerStats(m) => serde_json::to_string(m),
            Message::ContainerStop(m) => serde_json::to_string(m),
            Message::JobCancel(m) => serde_json::to_string(m),
            Message::Ping(m) | Message::Pong(m) => serde_json::to_string(m),
            Message::Ack(m) => serde_json::to_string(m),
        };
        let text = text.expect("payload types serialise (no non-string map keys)");
        RawValue::from_string(text).expect("serde_json output is valid JSON")
    }

    /// Decodes the payload of an envelope of type `t`.
    pub fn decode(t: &str, p: &RawValue) -> Result<Message, Error> {
        fn parse<T: for<'de> Deserialize<'de>>(t: &str, p: &RawValue) -> Result<T, Error> {
            serde_json::from_str(p.get())
                .map_err(|e| Error::Payload { t: t.to_owned(), reason: e.to_string() })
        }
        Ok(match t {
            "hello" => Message::Hello(parse(t, p)?),
            "heartbeat" => Message::Heartbeat(parse(t, p)?),
            "job.assign" => Message::JobAssign(parse(t, p)?),
            "job.ack" => Message::JobAck(parse(t, p)?),
            "job.progress" => Message::JobProgress(parse(t, p)?),
            "job.result" => Message::JobResult(parse(t, p)?),
            "log.lines" => Message::LogLines(parse(t, p)?),
            "container.event" => Message::ContainerEvent(parse(t, p)?),
            "container.stats" => Message::ContainerStats(parse(t, p)?),
            "container.stop" => Message::ContainerStop(parse(t, p)?),
            "job.cancel" => Message::JobCancel(parse(t, p)?),
            "ping" => Message::Ping(parse(t, p)?),
            "pong" => Message::Pong(parse(t, p)?),
            "ack" => Message::Ack(parse(t, p)?),
            other => {
                return Err(Error::Payload {
                    t: other.to_owned(),
                    reason: "unknown message type".into(),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Key, Signer, Verifier};

    #[test]
    fn every_message_has_the_family_its_type_name_says() {
        for m in samples() {
            let t = m.type_name();
            let expected = match t {
                "hello" | "heartbeat" => Family::Jobs,
                "ping" | "pong" | "ack" => Family::Channel,
                _ if t.starts_with("job.") => Family::Jobs,
                _ if t.starts_with("container.") => Family::Containers,
                _ if t.starts_with("log.") => Family::Logs,
                _ => panic!("no family rule for `{t}`"),
            };
            assert_eq!(m.family(), expected, "{t}");
        }
        assert_eq!(samples().len(), TYPE_NAMES.len(), "a sample of every message type");
    }

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello(Hello {
                worker_id: "w1".into(),
                version: "0.1.0".into(),
                capacity: Capacity {
                    cpus: 2.0,
                    memory_mb: 4096,
                    disk_mb: 100_000,
                    disk_quota: "unsupported: ext4".into(),
                },
                containers: vec![ContainerInfo {
                    container_id: "c1".into(),
                    app: "foo".into(),
                    deployment_id: 3,
                    host_port: Some(31001),
                    state: "running".into(),
                    restarts: 1,
                }],
                running_jobs: vec![7],
            }),
            Message::Heartbeat(Heartbeat {
                stats: HostStats {
                    cpu: 0.25,
                    memory_used_mb: 100,
                    memory_total_mb: 4096,
                    disk_used_mb: 1,
                    disk_total_mb: 2,
                },
                running_jobs: vec![7],
            }),
            Message::JobAssign(JobAssign {
                job_id: 7,
                attempt: 2,
                job: crate::job::Job::Retire(crate::job::RetireJob { deployment_id: 3 }),
                lease_expires_ms: 1,
            }),
            Message::JobAck(JobRef { job_id: 7, attempt: 2 }),
            Message::JobProgress(JobProgress {
                job_id: 7,
                attempt: 2,
                stage: crate::job::Stage::Building,
                message: String::new(),
            }),
            Message::JobResult(JobResult {
                job_id: 7,
                attempt: 2,
                ok: false,
                error: Some("boom".into()),
                output: None,
            }),
            Message::LogLines(LogLines {
                app: "foo".into(),
                deployment_id: Some(3),
                lines: vec![LogLine { ts_ms: 1, stream: Stream::Build, line: "step 1/3".into() }],
                dropped: 4,
            }),
            Message::ContainerEvent(ContainerEvent {
                container_id: "c1".into(),
                app: "foo".into(),
                deployment_id: 3,
                event: ContainerEventKind::Restarted,
                exit_code: Some(137),
                restarts: 2,
            }),
            Message::ContainerStats(ContainerStats {
                containers: vec![ContainerStat {
                    container_id: "c1".into(),
                    app: "foo".into(),
                    deployment_id: 3,
                    cpu_percent: 12.5,
                    memory_bytes: 1 << 20,
                    memory_limit: 128 << 20,
                    disk_bytes: Some(4096),
                    ..Default::default()
                }],
            }),
            Message::ContainerStop(ContainerStop {
                container_ids: vec!["c9".into()],
                reason: "unknown deployment".into(),
            }),
            Message::JobCancel(JobCancel { job_id: 4, attempt: 2, reason: "cancelled".into() }),
            Message::Ping(Ping { nonce: "n".into() }),
            Message::Pong(Ping { nonce: "n".into() }),
            Message::Ack(Ack { ids: vec!["00112233445566778899aabbccddeeff".into()] }),
        ]
    }

    #[test]
    fn the_type_list_names_every_message() {
        let names: Vec<&str> = samples().iter().map(Message::type_name).collect();
        assert_eq!(names, TYPE_NAMES);
    }

    #[test]
    fn every_message_round_trips_through_an_envelope() {
        let key = Key::from_secret("k");
        let binding = crate::Binding::to_worker("00000000000000000000000000000000");
        let mut signer = Signer::new(key.clone(), binding.clone(), 1);
        let mut verifier = Verifier::new(key, binding);
        for msg in samples() {
            let text = signer.seal(&msg, 1_000);
            let opened = verifier.open(text.as_bytes(), 1_000).unwrap();
            assert_eq!(opened.message().unwrap(), msg);
        }
    }

    #[test]
    fn wrong_payloads_and_unknown_types_are_errors() {
        let p = RawValue::from_string(r#"{"nonce": 5}"#.into()).unwrap();
        assert!(matches!(Message::decode("ping", &p), Err(Error::Payload { .. })));
        assert!(matches!(Message::decode("teleport", &p), Err(Error::Payload { .. })));
    }
}
