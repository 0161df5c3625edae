//! Cleanup that runs after the test process has exited, however it exits.
//!
//! Rust never drops statics, and a test binary that panics or is killed runs no destructor at
//! all, so a cluster or container tied to a `Drop` would outlive the suite. Instead each
//! component registers a shell snippet here: a detached watcher polls the test process and runs
//! the snippet once the process is gone. The snippet must be idempotent (it may also run after
//! the component was cleaned up by hand).

use std::process::{Command, Stdio};

/// Runs `script` (POSIX sh) once the current process has exited.
///
/// The watcher is its own session leader (`setsid`), so a Ctrl-C aimed at the test run's process
/// group does not kill it before it has cleaned up.
pub fn after_exit(script: &str) -> std::io::Result<()> {
    spawn_watcher(script, Stdio::null())
}

/// Like [`after_exit`], but the watcher holds `lock` (as its standard input) until `script` has
/// finished, so [`wait_for_reapers`] in a later process can wait for this cleanup to end.
pub fn after_exit_holding(script: &str, lock: std::fs::File) -> std::io::Result<()> {
    spawn_watcher(script, Stdio::from(lock))
}

/// Waits (at most `patience`) until no watcher holds a shared lock on `path`: the cleanups of
/// earlier test processes are done. Under `cargo xtask test` the test binaries run one after
/// another, and a `podman rmi` from the previous binary's cleanup racing this binary's
/// `podman build` fails the build (buildah #5674, "layer not known"). Watchers of test processes
/// that still run (two suites at once) also hold the lock; after `patience` this goes on anyway.
pub fn wait_for_reapers(
    path: &std::path::Path,
    patience: std::time::Duration,
) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let deadline = std::time::Instant::now() + patience;
    loop {
        match file.try_lock() {
            Ok(()) => return file.unlock(),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                eprintln!("wh-testkit: earlier cleanups still hold {}; going on", path.display());
                return Ok(());
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// `path` opened and locked shared, to hand to [`after_exit_holding`].
pub fn shared_lock(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.lock_shared()?;
    Ok(file)
}

fn spawn_watcher(script: &str, stdin: Stdio) -> std::io::Result<()> {
    let pid = std::process::id();
    let watcher = format!("while kill -0 {pid} 2>/dev/null; do sleep 0.2; done\n{script}\n",);
    Command::new("setsid")
        .arg("sh")
        .arg("-c")
        .arg(watcher)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
}

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
