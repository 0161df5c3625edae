//! Image retention: every deploy builds an image (`localhost/wh-<app>:<deployment>`), and
//! nothing else would ever remove them, so a busy worker's disk fills up.
//!
//! A sweep removes this worker's app images except
//! - images a container uses (any state; Podman refuses to remove those anyway),
//! - the `keep` newest images of each app that has a container on this host (for a rollback),
//! - images younger than `min_age` (a build that has not started its container yet).
//!
//! So the images of an app that left this host (deleted, or moved to another worker) go once
//! they are `min_age` old. "This worker's" means carrying the app label and every operator label
//! the worker adds (`--label`), so two workers sharing one Podman never sweep each other's.
//! Sweeps run at start, after each deploy job, and every `every`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::monitor::in_scope;
use crate::runtime::{Image, Podman, RuntimeError, LABEL_APP, LABEL_DEPLOYMENT};

/// What a sweep keeps, and how often it runs.
#[derive(Debug, Clone)]
pub struct ImagePolicy {
    /// Newest images kept per app with a container here (0: only the ones in use).
    pub keep: usize,
    pub min_age: Duration,
    pub every: Duration,
}

impl Default for ImagePolicy {
    fn default() -> Self {
        ImagePolicy {
            keep: 2,
            min_age: Duration::from_secs(3600),
            every: Duration::from_secs(3600),
        }
    }
}

/// Removes what `policy` does not keep among the app images carrying all of `scope`; returns
/// the ids removed. An image that cannot be removed (started meanwhile, removed by someone
/// else) is skipped.
pub async fn sweep(
    podman: &Podman,
    policy: &ImagePolicy,
    scope: &[(String, String)],
) -> Result<Vec<String>, RuntimeError> {
    let images: Vec<Image> = podman
        .images(LABEL_APP)
        .await?
        .into_iter()
        .filter(|i| in_scope(&i.labels, scope))
        .collect();
    // Only this worker's containers count: another worker on the same host keeping an app
    // running is no reason to keep this worker's images of it.
    let apps_here: BTreeSet<String> = podman
        .list(LABEL_APP)
        .await?
        .into_iter()
        .filter(|c| in_scope(&c.labels, scope))
        .filter_map(|c| c.labels.get(LABEL_APP).cloned())
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut removed = Vec::new();
    for id in choose(&images, &apps_here, policy, now) {
        match podman.remove_image(&id).await {
            Ok(()) => removed.push(id),
            Err(e) => tracing::debug!(image = %id, error = %e, "image not removed"),
        }
    }
    if !removed.is_empty() {
        tracing::info!(count = removed.len(), "removed old app images");
    }
    Ok(removed)
}

/// Sweeps every `policy.every` until `stop`.
pub async fn sweep_loop(
    podman: Podman,
    policy: ImagePolicy,
    scope: Vec<(String, String)>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(policy.every.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = sweep(&podman, &policy, &scope).await {
            tracing::warn!(error = %e, "image sweep failed");
        }
    }
}

/// The ids of the images to remove (see the module docs), given the apps with a container here.
fn choose(
    images: &[Image],
    apps_here: &BTreeSet<String>,
    policy: &ImagePolicy,
    now: i64,
) -> Vec<String> {
    let mut by_app: BTreeMap<&str, Vec<&Image>> = BTreeMap::new();
    for image in images {
        if let Some(app) = image.labels.get(LABEL_APP) {
            by_app.entry(app).or_default().push(image);
        }
    }
    let deployment =
        |i: &Image| i.labels.get(LABEL_DEPLOYMENT).and_then(|d| d.parse::<i64>().ok()).unwrap_or(0);
    let min_age = i64::try_from(policy.min_age.as_secs()).unwrap_or(i64::MAX);
    let mut remove = Vec::new();
    for (app, mut list) in by_app {
        // Newest first: by deployment id, then by creation time.
        list.sort_by_key(|i| std::cmp::Reverse((deployment(i), i.created)));
        let keep = if apps_here.contains(app) { policy.keep } else { 0 };
        for (rank, image) in list.into_iter().enumerate() {
            let young = now.saturating_sub(image.created) < min_age;
            if rank >= keep && image.containers == 0 && !young {
                remove.push(image.id.clone());
            }
        }
    }
    remove
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, app: &str, deployment: i64, containers: u64, created: i64) -> Image {
        Image {
            id: id.into(),
            labels: [
                (LABEL_APP.to_owned(), app.to_owned()),
                (LABEL_DEPLOYMENT.to_owned(), deployment.to_string()),
            ]
            .into(),
            containers,
            created,
        }
    }

    #[test]
    fn keeps_the_newest_and_the_used_and_the_young() {
        let policy =
            ImagePolicy { keep: 2, min_age: Duration::from_secs(100), ..Default::default() };
        let images = [
            image("a1", "a", 1, 0, 0),
            image("a2", "a", 2, 1, 0), // in use
            image("a3", "a", 3, 0, 0),
            image("a4", "a", 4, 0, 0),
            image("a5", "a", 5, 0, 0),
            image("b1", "b", 1, 0, 0),   // app b has no container here
            image("b2", "b", 2, 0, 950), // young
        ];
        let here = BTreeSet::from(["a".to_owned()]);
        let mut removed = choose(&images, &here, &policy, 1000);
        removed.sort();
        assert_eq!(removed, ["a1", "a3", "b1"]);
        // keep 0: only what is used or young stays.
        let none = ImagePolicy { keep: 0, ..policy };
        let mut removed = choose(&images, &here, &none, 1000);
        removed.sort();
        assert_eq!(removed, ["a1", "a3", "a4", "a5", "b1"]);
    }
}
