//! The processes a build leaves when it is cut short. `podman build` runs each `RUN` step as a
//! container whose process gets its own session: killing `podman` (a timeout, or the worker
//! itself SIGKILLed) leaves that step running, with nobody to stop it. So a build's whole
//! process tree is killed on timeout ([`TreeGuard`]), and every build, and every `podman logs
//! -f` that follows an app, carries its worker's identity in the environment ([`OWNER_VAR`]) so
//! that a restarted worker finds what a dead one left and kills it ([`kill_orphaned_builds`]).
//! A worker that is a zombie (dead, not yet reaped by its parent) counts as dead. Read from
//! `/proc`; Linux only.

use std::collections::BTreeMap;

/// Environment variable on every `podman build` the worker starts: `<pid>:<start time>`.
pub const OWNER_VAR: &str = "WH_BUILD_OWNER";

/// This process's identity for [`OWNER_VAR`]: its pid and start time (clock ticks since
/// boot), so a recycled pid is not mistaken for the owner.
pub fn owner() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_time(pid).unwrap_or(0))
}

/// Kills `pid`'s descendants (SIGKILL), walking again while new ones appear, then `pid`.
pub fn kill_tree(pid: u32) {
    for _ in 0..5 {
        let found = descendants(pid, &parents());
        if found.is_empty() {
            break;
        }
        signal_kill(&found);
    }
    signal_kill(&[pid]);
}

/// Kills the process tree of every build whose owning worker is gone; returns how many.
pub fn kill_orphaned_builds() -> usize {
    let mut killed = 0;
    for (pid, ppid) in parents() {
        let Some(owner) = read_env(pid, OWNER_VAR) else { continue };
        // Only the top of a build (its parent does not carry the same owner).
        if read_env(ppid, OWNER_VAR).as_deref() == Some(owner.as_str()) {
            continue;
        }
        if !owner_alive(&owner) {
            tracing::warn!(pid, owner = %owner, "killing a build left by a worker that is gone");
            kill_tree(pid);
            killed += 1;
        }
    }
    killed
}

/// Kills a child's process tree when dropped, unless [`TreeGuard::disarm`]ed (it exited).
pub struct TreeGuard(Option<u32>);

impl TreeGuard {
    pub fn new(pid: Option<u32>) -> TreeGuard {
        TreeGuard(pid)
    }

    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_tree(pid);
        }
    }
}

/// Whether the worker named by an [`owner`] string still runs.
pub fn owner_alive(owner: &str) -> bool {
    let Some((pid, start)) = owner.split_once(':') else { return false };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else { return false };
    start_time(pid) == Some(start) && !dead_but_unreaped(pid)
}

/// Whether `pid` has exited and only waits to be reaped (state Z or X): it runs nothing.
fn dead_but_unreaped(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return true };
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
    matches!(state, Some("Z" | "X" | "x"))
}

/// Every process's parent, from `/proc/<pid>/stat`.
fn parents() -> BTreeMap<u32, u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return BTreeMap::new() };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        Some((pid, stat(pid)?.0))
    })
    .collect()
}

/// All descendants of `root` in a pid → parent map.
fn descendants(root: u32, parents: &BTreeMap<u32, u32>) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (&child, _) in parents.iter().filter(|(&c, &pp)| pp == p && c != root) {
            if !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

fn start_time(pid: u32) -> Option<u64> {
    Some(stat(pid)?.1)
}

/// `(ppid, start time)` of a running process.
fn stat(pid: u32) -> Option<(u32, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `(ppid, start time)` from a `/proc/<pid>/stat` line. The command name in parentheses may
/// itself hold spaces and parentheses, so fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (field 3), ppid (4), …, starttime (22).
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

fn read_env(pid: u32, var: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|&b| b == 0).find_map(|entry| {
        let entry = std::str::from_utf8(entry).ok()?;
        entry.strip_prefix(var)?.strip_prefix('=').map(str::to_owned)
    })
}

fn signal_kill(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(u32::to_string))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Issue 12, item C24: builds were not killed while their dead worker was still an
    /// unreaped zombie (its pid and start time still matched).
    #[test]
    fn a_zombie_owner_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let dead = format!("{pid}:{}", start_time(pid).unwrap());
        // Exited but not waited for: a zombie of this test process.
        let mut zombie = false;
        for _ in 0..100 {
            if dead_but_unreaped(pid) {
                zombie = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(zombie, "the child never became a zombie");
        assert!(!owner_alive(&dead), "a zombie owner counted as alive");
        child.wait().unwrap();
        assert!(owner_alive(&owner()), "this process is alive");
    }

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let line =
            "4242 (a) b (c) d) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1 2";
        assert_eq!(parse_stat(line), Some((17, 98765)));
        assert_eq!(parse_stat("1 (x) S"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn this_process_is_its_own_live_owner_and_a_made_up_one_is_not() {
        assert!(owner_alive(&owner()));
        assert!(!owner_alive(&format!("{}:1", std::process::id())));
        assert!(!owner_alive("999999999:1"));
        assert!(!owner_alive("garbage"));
    }

    #[test]
    fn descendants_walk_the_whole_tree_and_nothing_else() {
        let parents = BTreeMap::from([(2, 1), (3, 2), (4, 3), (5, 1), (6, 9)]);
        let mut d = descendants(2, &parents);
        d.sort();
        assert_eq!(d, [3, 4]);
    }

    proptest! {
        #[test]
        fn stat_parsing_never_panics(s in ".{0,200}") {
            let _ = parse_stat(&s);
        }
    }
}
