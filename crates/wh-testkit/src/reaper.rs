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
    let pid = std::process::id();
    let watcher = format!("while kill -0 {pid} 2>/dev/null; do sleep 0.2; done\n{script}\n",);
    Command::new("setsid")
        .arg("sh")
        .arg("-c")
        .arg(watcher)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
}

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
