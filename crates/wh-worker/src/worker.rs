//! One worker, wired: the transport, the agent, the monitor, image sweeps and heartbeats, in the order
//! `main` and `wh dev` both need; containers already running at start have their output
//! followed again (new lines only), and builds a dead worker left running are killed. Returns when `stop` fires or the control plane refuses the key.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wh_wsproto::messages::{Heartbeat, Hello};
use wh_wsproto::Message;

use crate::agent::{Agent, AgentSettings};
use crate::host;
use crate::monitor::{self, Inventory};
use crate::runtime::Podman;
use crate::transport::{Endpoint, Transport, TransportConfig, TransportError};

/// How this worker runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub heartbeat: Duration,
    /// Interval of container resource samples.
    pub stats_every: Duration,
    pub agent: AgentSettings,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            heartbeat: Duration::from_secs(10),
            stats_every: Duration::from_secs(10),
            agent: AgentSettings::default(),
        }
    }
}

/// An operator label that is not `key=value`, or uses one of the worker's own keys.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("label `{0}` must be key=value (and not one of the wh.* labels)")]
pub struct LabelError(pub String);

/// Operator labels (`key=value` each, as `--label` and `WH_CONTAINER_LABELS` give them) for
/// [`AgentSettings::extra_labels`]; the worker's own `wh.app*`/`wh.deployment*` keys are refused.
pub fn parse_labels<'a>(
    items: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, String)>, LabelError> {
    items
        .into_iter()
        .map(|l| match l.split_once('=') {
            Some((k, v))
                if !k.is_empty() && !k.starts_with("wh.app") && !k.starts_with("wh.deployment") =>
            {
                Ok((k.to_owned(), v.to_owned()))
            }
            _ => Err(LabelError(l.to_owned())),
        })
        .collect()
}

/// Spawns the task `make` builds under [`wh_cmd::supervise`] (restarted if it panics or ends).
fn supervised<F, Fut>(name: &'static str, stop: &CancellationToken, make: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(wh_cmd::supervise(name, stop.clone(), make));
}

/// Sends a heartbeat (host stats, the jobs in progress) every `every` until `stop`.
async fn heartbeats(
    transport: std::sync::Arc<Transport>,
    agent: std::sync::Arc<Agent>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        transport.send(Message::Heartbeat(Heartbeat {
            stats: host::stats(),
            running_jobs: agent.running_jobs(),
        }));
    }
}

/// Runs the worker until `stop` (Ok) or until its key is refused (Err).
pub async fn run(
    endpoint: Endpoint,
    key: String,
    podman: Podman,
    settings: WorkerSettings,
    stop: CancellationToken,
) -> Result<(), TransportError> {
    let (transport, inbound) = Transport::new(TransportConfig::new(endpoint, key));
    let disk_quota = podman.settings.disk_quota.clone();
    let agent = Agent::new(podman.clone(), transport.clone(), settings.agent.clone(), stop.clone());
    // Builds of a previous run of this worker (SIGKILLed, crashed) would run on unsupervised.
    if let Ok(n @ 1..) =
        tokio::task::spawn_blocking(crate::process_tree::kill_orphaned_builds).await
    {
        tracing::warn!(count = n, "killed builds left by a previous worker");
    }
    // ...and what they and interrupted removals left in Podman (see `leftovers`).
    if let Err(e) = podman.remove_build_leftovers().await {
        tracing::warn!(error = %e, "cannot look for killed builds' working containers");
    }
    match podman.finish_orphaned_stops().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(count = n, "stopped containers a removal left running"),
        Err(e) => tracing::warn!(error = %e, "cannot look for containers left running"),
    }
    let inventory = Inventory::new(settings.agent.extra_labels.clone());
    if let Err(e) = inventory.refresh(&podman).await {
        tracing::warn!(error = %e, "cannot list this host's containers");
    }
    // Containers from before this start keep reaching the log bus, from now on.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for c in inventory.snapshot().into_iter().filter(|c| c.state == "running") {
        agent.follow(c.app, c.deployment_id, c.container_id, Some(now));
    }
    // Every long-running part is supervised: a panic is logged and the part started again.
    supervised("image-sweeps", &stop, {
        let (podman, policy, scope, stop) = (
            podman.clone(),
            settings.agent.images.clone(),
            settings.agent.extra_labels.clone(),
            stop.clone(),
        );
        move || {
            crate::images::sweep_loop(podman.clone(), policy.clone(), scope.clone(), stop.clone())
        }
    });
    let inbound = std::sync::Arc::new(tokio::sync::Mutex::new(inbound));
    supervised("agent", &stop, {
        let agent = agent.clone();
        move || agent.clone().run(inbound.clone())
    });
    supervised("stats", &stop, {
        let (podman, transport, inventory, every, stop) = (
            podman.clone(),
            transport.clone(),
            inventory.clone(),
            settings.stats_every,
            stop.clone(),
        );
        move || {
            monitor::stats_loop(
                podman.clone(),
                transport.clone(),
                inventory.clone(),
                every,
                stop.clone(),
            )
        }
    });
    supervised("events", &stop, {
        let (podman, transport, inventory, stop) =
            (podman.clone(), transport.clone(), inventory.clone(), stop.clone());
        move || {
            monitor::events_loop(podman.clone(), transport.clone(), inventory.clone(), stop.clone())
        }
    });
    supervised("heartbeats", &stop, {
        let (transport, agent, stop) = (transport.clone(), agent.clone(), stop.clone());
        let every = settings.heartbeat.max(Duration::from_millis(100));
        move || heartbeats(transport.clone(), agent.clone(), every, stop.clone())
    });
    let reporting = agent.clone();
    let hello = move |worker_id: &str| Hello {
        worker_id: worker_id.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        capacity: wh_wsproto::messages::Capacity {
            disk_quota: disk_quota.clone(),
            ..host::capacity()
        },
        containers: inventory.snapshot(),
        running_jobs: reporting.running_jobs(),
    };
    let result = transport.run(hello, stop.clone()).await;
    stop.cancel();
    // The log followers kill their `podman logs -f` as they end; wait for that (bounded).
    agent.followers.close();
    if tokio::time::timeout(Duration::from_secs(10), agent.followers.wait()).await.is_err() {
        tracing::warn!("log followers still running after 10 s");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_value_and_never_the_workers_own() {
        assert_eq!(
            parse_labels(["wh.dev=abc", "team=a=b"]),
            Ok(vec![("wh.dev".into(), "abc".into()), ("team".into(), "a=b".into())])
        );
        for bad in ["novalue", "=v", "wh.app=x", "wh.deployment=1"] {
            assert!(parse_labels([bad]).unwrap_err().to_string().contains(bad), "{bad}");
        }
    }
}
