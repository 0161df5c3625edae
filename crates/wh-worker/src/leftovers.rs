//! What an interrupted worker leaves in Podman, and how it is cleared. Two things outlive a
//! `podman` process that is killed mid-way, and neither shows in `podman ps`:
//! - a build's *working container* (`podman ps --external`): a killed `podman build` (timeout,
//!   cancel, the worker itself SIGKILLed) never removes it. Every build passes its
//!   [`BuildId`] as the build argument [`BUILD_ARG`], which buildah records in the working
//!   container's `buildah.json`; a working container whose build is over is removed
//!   ([`crate::runtime::Podman::remove_build_leftovers`]).
//! - the processes of a container removed while it was stuck in `Stopping` (a `podman rm`
//!   killed during the stop grace): Podman 4 then deletes the container and leaves its conmon
//!   and app running, holding the app's host port. [`crate::runtime::Podman::remove`] stops
//!   before it removes, and a starting worker kills any conmon whose container Podman no longer
//!   knows ([`crate::runtime::Podman::finish_orphaned_stops`]).
//!
//! This module reads `/proc` and never runs Podman.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use crate::process_tree;

/// The build argument that names a build: `<owner>/<n>` ([`process_tree::owner`]).
pub const BUILD_ARG: &str = "WH_BUILD";

/// The warning `podman build` prints because no Containerfile declares [`BUILD_ARG`]: not the
/// tenant's concern, so it is left out of the build log.
pub const UNCONSUMED_WARNING: &str =
    "[Warning] one or more build args were not consumed: [WH_BUILD]";

/// This process's builds in progress. Process-wide, because the id's owner is the process:
/// several workers in one process (tests) share it.
static LIVE: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);
static NEXT: AtomicU64 = AtomicU64::new(1);

/// A build in progress; its working containers are left alone until it is dropped.
pub struct BuildId(String);

impl BuildId {
    pub fn new() -> BuildId {
        let id = format!("{}/{}", process_tree::owner(), NEXT.fetch_add(1, Ordering::Relaxed));
        live().insert(id.clone());
        BuildId(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for BuildId {
    fn default() -> Self {
        BuildId::new()
    }
}

impl Drop for BuildId {
    fn drop(&mut self) {
        live().remove(&self.0);
    }
}

fn live() -> std::sync::MutexGuard<'static, HashSet<String>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the build named `id` is over: its process's own build that is no longer live, or a
/// build of a process that is gone. Another live worker's builds are its own business.
pub fn build_is_over(id: &str) -> bool {
    let Some((owner, _)) = id.rsplit_once('/') else { return false };
    if owner == process_tree::owner() {
        return !live().contains(id);
    }
    !process_tree::owner_alive(owner)
}

/// The [`BUILD_ARG`] recorded in a working container's `buildah.json`, if any.
pub fn build_of(buildah_json: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(buildah_json).ok()?;
    v.get("Args")?.get(BUILD_ARG)?.as_str().map(str::to_owned)
}

/// A running conmon: the process that holds a Podman container's ports and waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conmon {
    pub pid: u32,
    pub container_id: String,
    /// The storage root of the Podman that started it (`--root` of its exit command).
    pub graph_root: String,
}

/// Every conmon started by Podman (it carries Podman's `container cleanup` exit command;
/// buildah's RUN steps have none).
pub fn conmons() -> Vec<Conmon> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let argv = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let argv: Vec<&str> =
            argv.split(|&b| b == 0).filter_map(|a| std::str::from_utf8(a).ok()).collect();
        parse_conmon(pid, &argv)
    })
    .collect()
}

/// A [`Conmon`] from a process's argv; `None` for anything else.
pub fn parse_conmon(pid: u32, argv: &[&str]) -> Option<Conmon> {
    if !argv.first()?.rsplit('/').next()?.eq("conmon") {
        return None;
    }
    let after = |flag: &str| argv.iter().position(|a| *a == flag).and_then(|i| argv.get(i + 1));
    let container_id = after("-c").or_else(|| after("--cid"))?.to_string();
    // The exit command's arguments, each after its own `--exit-command-arg`.
    let exit: Vec<&str> =
        argv.windows(2).filter(|w| w[0] == "--exit-command-arg").map(|w| w[1]).collect();
    let cleanup = exit.windows(3).any(|w| w == ["container", "cleanup", container_id.as_str()]);
    let root = exit.windows(2).find(|w| w[0] == "--root").map(|w| w[1].to_owned())?;
    cleanup.then_some(Conmon { pid, container_id, graph_root: root })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_build_is_over_once_its_id_is_dropped_or_its_process_is_gone() {
        let id = BuildId::new();
        let name = id.as_str().to_owned();
        assert!(!build_is_over(&name));
        drop(id);
        assert!(build_is_over(&name));
        assert!(build_is_over("999999999:1/3"), "a dead owner's build");
        assert!(!build_is_over("garbage"), "not ours to judge");
    }

    #[test]
    fn the_build_argument_is_read_from_buildah_json() {
        let json = br#"{"Args":{"WH_BUILD":"12:34/5","OTHER":"x"},"type":"buildah 0.0.1"}"#;
        assert_eq!(build_of(json).as_deref(), Some("12:34/5"));
        assert_eq!(build_of(br#"{"Args":{}}"#), None);
        assert_eq!(build_of(b"not json"), None);
    }

    #[test]
    fn a_podman_conmon_is_recognised_by_its_cleanup_exit_command() {
        let id = "0b1e31c1d3d05da947a76fb7cf43f287419f6f945dab308743a55b8fa87e5722";
        let argv = [
            "/usr/bin/conmon",
            "--api-version",
            "1",
            "-c",
            id,
            "-n",
            "wh-app-1-1-ab",
            "--exit-command",
            "/usr/bin/podman",
            "--exit-command-arg",
            "--root",
            "--exit-command-arg",
            "/var/lib/containers/storage",
            "--exit-command-arg",
            "container",
            "--exit-command-arg",
            "cleanup",
            "--exit-command-arg",
            id,
        ];
        assert_eq!(
            parse_conmon(7, &argv),
            Some(Conmon {
                pid: 7,
                container_id: id.to_owned(),
                graph_root: "/var/lib/containers/storage".to_owned()
            })
        );
        // Without Podman's exit command (buildah), or not conmon at all.
        assert_eq!(parse_conmon(7, &argv[..7]), None);
        let mut other = argv;
        other[0] = "/usr/bin/sleep";
        assert_eq!(parse_conmon(7, &other), None);
    }

    proptest! {
        #[test]
        fn any_argv_parses_without_panicking(argv in proptest::collection::vec(".{0,12}", 0..12)) {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let _ = parse_conmon(1, &argv);
        }
    }
}
