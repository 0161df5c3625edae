//! Watches the containers this worker runs (those labelled [`LABEL_APP`] and carrying every
//! label of its scope, the operator's `--label`s: two workers sharing one Podman, a `wh dev` and
//! a test suite say, never report or stop each other's):
//! - the inventory every `hello` reports (kept fresh by the stats tick and by events), so a
//!   control plane that restarted, or a worker that did, learns what runs where;
//! - a resource sample of each every 10 s (`podman stats`) → `container.stats`, CPU as the
//!   share of a core over the interval; every sixth sample (about once a minute) also the bytes
//!   in each one's writable layer (`podman ps --size`, which walks the layers);
//! - exits, restarts, starts and removals (`podman events`) → `container.event`, with the restart
//!   count the restart policy has reached (what crash-loop detection reads).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wh_wsproto::messages::{
    ContainerEvent, ContainerEventKind, ContainerInfo, ContainerStat, ContainerStats,
};
use wh_wsproto::Message;

use crate::lines::BoundedLines;
use crate::runtime::{Found, Podman, Sample, LABEL_APP, LABEL_DEPLOYMENT};
use crate::transport::Transport;

/// The containers this worker runs, as last seen.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    list: Arc<Mutex<Vec<ContainerInfo>>>,
    scope: Arc<[(String, String)]>,
}

/// Whether `labels` carry every `(key, value)` of `scope`.
pub fn in_scope(
    labels: &std::collections::BTreeMap<String, String>,
    scope: &[(String, String)],
) -> bool {
    scope.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl Inventory {
    /// An empty inventory of the containers carrying all of `scope`.
    pub fn new(scope: Vec<(String, String)>) -> Inventory {
        Inventory { list: Arc::default(), scope: scope.into() }
    }

    /// A copy of the current list (for `hello`).
    pub fn snapshot(&self) -> Vec<ContainerInfo> {
        self.list.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, list: Vec<ContainerInfo>) {
        *self.list.lock().unwrap_or_else(|e| e.into_inner()) = list;
    }

    /// Lists the labelled containers again: one `podman ps` and one `podman inspect` (restart
    /// counts), however many containers there are.
    pub async fn refresh(&self, podman: &Podman) -> Result<(), crate::runtime::RuntimeError> {
        let mut found = podman.list(LABEL_APP).await?;
        found.retain(|f| in_scope(&f.labels, &self.scope));
        let ids: Vec<String> = found.iter().map(|f| f.id.clone()).collect();
        let restarts = podman.restart_counts(&ids).await.unwrap_or_default();
        let list = found
            .iter()
            .filter_map(|f| info(f, restarts.get(&f.id).copied().unwrap_or(0)))
            .collect();
        self.replace(list);
        Ok(())
    }

    /// The restart count last seen for `container`.
    fn restarts(&self, container: &str) -> u32 {
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|c| c.container_id == container)
            .map_or(0, |c| c.restarts)
    }
}

/// A labelled container as the protocol reports it; `None` without a deployment label.
fn info(f: &Found, restarts: u32) -> Option<ContainerInfo> {
    Some(ContainerInfo {
        container_id: f.id.clone(),
        app: f.labels.get(LABEL_APP)?.clone(),
        deployment_id: f.labels.get(LABEL_DEPLOYMENT)?.parse().ok()?,
        host_port: f.host_port,
        state: f.state.clone(),
        restarts,
    })
}

/// CPU share from two cumulative samples: percent of one core over the wall-clock interval.
pub fn cpu_percent(prev: Option<(u64, Instant)>, now: (u64, Instant)) -> f64 {
    let Some((cpu0, t0)) = prev else { return 0.0 };
    let wall = now.1.saturating_duration_since(t0).as_nanos() as f64;
    if wall <= 0.0 {
        return 0.0;
    }
    now.0.saturating_sub(cpu0) as f64 / wall * 100.0
}

/// Every how many stats ticks the writable layers are measured.
const DISK_EVERY_TICKS: u32 = 6;

/// Samples every `every` until `stop`, refreshing the inventory on the way.
pub async fn stats_loop(
    podman: Podman,
    transport: Arc<Transport>,
    inventory: Inventory,
    every: Duration,
    stop: CancellationToken,
) {
    let mut previous: HashMap<String, (u64, Instant)> = HashMap::new();
    let mut ticks = 0u32;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = inventory.refresh(&podman).await {
            tracing::warn!(error = %e, "cannot list containers");
            continue;
        }
        let running: Vec<ContainerInfo> =
            inventory.snapshot().into_iter().filter(|c| c.state == "running").collect();
        let ids: Vec<String> = running.iter().map(|c| c.container_id.clone()).collect();
        let samples = match podman.stats(&ids).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot sample container stats");
                continue;
            }
        };
        let at = Instant::now();
        ticks = ticks.wrapping_add(1);
        let disk = if ticks % DISK_EVERY_TICKS == 1 {
            match podman.disk_usage(LABEL_APP).await {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot measure container disk use");
                    None
                }
            }
        } else {
            None
        };
        let mut stats = to_stats(&running, &samples, &mut previous, at);
        if let Some(disk) = disk {
            for c in &mut stats.containers {
                c.disk_bytes = disk.get(&c.container_id).copied();
            }
        }
        previous.retain(|id, _| ids.contains(id));
        if !stats.containers.is_empty() {
            transport.send(Message::ContainerStats(stats));
        }
    }
}

/// Joins samples to the inventory; `previous` keeps the last CPU counter of each container.
pub fn to_stats(
    running: &[ContainerInfo],
    samples: &[Sample],
    previous: &mut HashMap<String, (u64, Instant)>,
    at: Instant,
) -> ContainerStats {
    let mut out = Vec::with_capacity(samples.len());
    for s in samples {
        // `podman stats` may print the full id or a prefix of it.
        let Some(c) = running.iter().find(|c| {
            !s.container_id.is_empty() && c.container_id.starts_with(s.container_id.as_str())
        }) else {
            continue;
        };
        let cpu = cpu_percent(previous.get(&c.container_id).copied(), (s.cpu_nano, at));
        previous.insert(c.container_id.clone(), (s.cpu_nano, at));
        out.push(ContainerStat {
            container_id: c.container_id.clone(),
            app: c.app.clone(),
            deployment_id: c.deployment_id,
            cpu_percent: cpu,
            memory_bytes: s.mem_usage,
            memory_limit: s.mem_limit,
            net_rx_bytes: s.net_input,
            net_tx_bytes: s.net_output,
            block_read: s.block_input,
            block_write: s.block_output,
            disk_bytes: None,
        });
    }
    ContainerStats { containers: out }
}

/// One line of `podman events --format json`, reduced to what a container event needs.
#[derive(Debug, serde::Deserialize)]
struct RawEvent {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "ContainerExitCode", default)]
    exit_code: Option<i32>,
    #[serde(rename = "Attributes", default)]
    attributes: std::collections::BTreeMap<String, String>,
}

/// Parses one event line into (container, app, deployment, kind, exit code); `None` for events
/// that are not about one of our containers (labelled, and in `scope`) or that we do not report.
pub fn parse_event(
    line: &str,
    scope: &[(String, String)],
) -> Option<(String, String, i64, ContainerEventKind, Option<i32>)> {
    let e: RawEvent = serde_json::from_str(line).ok()?;
    if e.kind != "container" || !in_scope(&e.attributes, scope) {
        return None;
    }
    let kind = match e.status.as_str() {
        "start" => ContainerEventKind::Started,
        "died" => ContainerEventKind::Exited,
        "restart" => ContainerEventKind::Restarted,
        "remove" => ContainerEventKind::Removed,
        _ => return None,
    };
    let app = e.attributes.get(LABEL_APP)?.clone();
    let deployment = e.attributes.get(LABEL_DEPLOYMENT)?.parse().ok()?;
    Some((e.id, app, deployment, kind, e.exit_code))
}

/// Follows `podman events` until `stop` (restarted after a second if it ends), sending each
/// event of ours and refreshing the inventory.
pub async fn events_loop(
    podman: Podman,
    transport: Arc<Transport>,
    inventory: Inventory,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let child = podman
            .program()
            .args(["events", "--format", "json", "--filter", "type=container"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        if let Ok(mut child) = child {
            if let Some(out) = child.stdout.take() {
                // Image labels reach events too: bounded, and a cut line is no event.
                let mut lines = BoundedLines::new(tokio::io::BufReader::new(out), 64 * 1024);
                loop {
                    let line = tokio::select! {
                        _ = stop.cancelled() => return,
                        l = lines.next_line() => l,
                    };
                    let Ok(Some(line)) = line else { break };
                    let parsed = parse_event(&line, &inventory.scope);
                    let Some((id, app, deployment, kind, exit_code)) = parsed else {
                        continue;
                    };
                    // One refresh gives both the new inventory and this container's count.
                    if let Err(e) = inventory.refresh(&podman).await {
                        tracing::debug!(error = %e, "cannot refresh the inventory");
                    }
                    transport.send(Message::ContainerEvent(ContainerEvent {
                        restarts: inventory.restarts(&id),
                        container_id: id,
                        app,
                        deployment_id: deployment,
                        event: kind,
                        exit_code,
                    }));
                }
            }
            let _ = child.kill().await;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_our_containers_are_reported_and_others_skipped() {
        let died = r#"{"ContainerExitCode":3,"ID":"abc","Status":"died","Type":"container","Attributes":{"wh.app":"foo","wh.deployment":"7"}}"#;
        assert_eq!(
            parse_event(died, &[]),
            Some(("abc".into(), "foo".into(), 7, ContainerEventKind::Exited, Some(3)))
        );
        let restart = r#"{"ID":"abc","Status":"restart","Type":"container","Attributes":{"wh.app":"foo","wh.deployment":"7"}}"#;
        assert_eq!(parse_event(restart, &[]).map(|e| e.3), Some(ContainerEventKind::Restarted));
        let foreign = r#"{"ID":"x","Status":"died","Type":"container","Attributes":{}}"#;
        assert_eq!(parse_event(foreign, &[]), None);
        let init = r#"{"ID":"abc","Status":"init","Type":"container","Attributes":{"wh.app":"foo","wh.deployment":"7"}}"#;
        assert_eq!(parse_event(init, &[]), None);
        assert_eq!(parse_event("not json", &[]), None);
        // Another worker's container (outside this one's label scope) is not ours.
        let scope = [("wh.testkit.run".to_owned(), "mine".to_owned())];
        assert_eq!(parse_event(died, &scope), None);
        let mine = r#"{"ID":"abc","Status":"died","Type":"container","Attributes":{"wh.app":"foo","wh.deployment":"7","wh.testkit.run":"mine"}}"#;
        assert!(parse_event(mine, &scope).is_some());
    }

    #[test]
    fn cpu_share_comes_from_the_counter_delta_over_wall_time() {
        let t0 = Instant::now();
        assert_eq!(cpu_percent(None, (5_000_000_000, t0)), 0.0);
        let t1 = t0 + Duration::from_secs(2);
        let pct = cpu_percent(Some((1_000_000_000, t0)), (3_000_000_000, t1));
        assert!((pct - 100.0).abs() < 1e-9, "2 s of CPU in 2 s is one core: {pct}");
        let raw = r#"{"ContainerID":"abcdef","CPUNano":3000000000,"MemUsage":1024,"MemLimit":4096,"NetInput":1,"NetOutput":2,"BlockInput":3,"BlockOutput":4}
garbage"#;
        let samples = crate::runtime::parse_samples(raw);
        assert_eq!(samples.len(), 1);
        let running = vec![ContainerInfo {
            container_id: "abcdef0123".into(),
            app: "foo".into(),
            deployment_id: 7,
            state: "running".into(),
            ..Default::default()
        }];
        let mut prev = HashMap::from([("abcdef0123".to_owned(), (1_000_000_000, t0))]);
        let stats = to_stats(&running, &samples, &mut prev, t1);
        assert_eq!(stats.containers.len(), 1);
        let c = &stats.containers[0];
        assert_eq!((c.memory_bytes, c.memory_limit, c.block_write), (1024, 4096, 4));
        assert!((c.cpu_percent - 100.0).abs() < 1e-9);
    }
}
