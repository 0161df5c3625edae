//! `cargo xtask <task>`: project chores that are more than one command.
//!
//! - `test`: the README's test command and the whole of CI. Installs the Debian packages the
//!   tests need when it can (root with apt-get), otherwise names exactly what is missing and how
//!   to install it; builds the dashboard ([`dashboard`]: `npm ci` from the lockfile, `npm run
//!   build`) and runs its unit tests; then `cargo fmt --check`, the [`structure`] checks
//!   (wh-proxy's module layers have no cycle; no banned or doubled crate in `Cargo.lock`),
//!   `cargo clippy -D warnings` and the whole test suite (the browser test among it); then
//!   checks that the suite left no PostgreSQL, pebble or Podman container behind.
//! - `dev`: the README's run command: builds the dashboard when its sources changed, then
//!   `wh dev` from the `local` profile (release without fat LTO, so a fresh clone starts in
//!   minutes, not a quarter of an hour).
//!
//! It builds without incremental compilation (unless `CARGO_INCREMENTAL` is set): a run is one
//! cold build on CI, where incremental state was a third of the 3.5 GB written to `target/`, and
//! a CI machine has run out of disk on this suite before. It says up front how much is free.
//!
//! It deliberately uses only the standard library, so it builds in seconds on a cold cache.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

mod dashboard;
mod structure;

/// Debian packages the test suite needs, each with a file that proves it is installed.
const PACKAGES: &[(&str, &str)] = &[
    ("postgresql", "/usr/lib/postgresql"),
    ("podman", "/usr/bin/podman"),
    ("runc", "/usr/sbin/runc"),
    ("pebble", "/usr/bin/pebble"),
    ("busybox-static", "/bin/busybox"),
    ("git", "/usr/bin/git"),
    ("btrfs-progs", "/sbin/mkfs.btrfs"),
    // The fake forge makes its GitHub App's RSA key with it.
    ("openssl", "/usr/bin/openssl"),
    // The dashboard's browser test drives Debian's Chromium (never a downloaded browser).
    ("chromium", "/usr/bin/chromium"),
];

/// What `wh dev` needs of [`PACKAGES`].
const RUN_PACKAGES: &[&str] = &["postgresql", "podman", "runc", "busybox-static", "git"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("dev") => dev(&args[1..]),
        Some("deps") => ensure_packages(PACKAGES.iter().map(|(p, _)| *p)),
        _ => {
            eprintln!(
                "usage: cargo xtask test [-- <cargo test args>] | cargo xtask dev [-- <wh dev args>] | cargo xtask deps"
            );
            return ExitCode::from(64);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn test(extra: &[String]) -> Result<(), String> {
    ensure_packages(PACKAGES.iter().map(|(p, _)| *p))?;
    let started = Instant::now();
    report_free_disk();
    dashboard::build(&workspace_root())?;
    dashboard::unit_tests(&workspace_root())?;
    cargo_step(&["fmt", "--all", "--", "--check"])?;
    eprintln!("xtask: checking module layers and locked dependencies");
    structure::check(&workspace_root())?;
    cargo_step(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // `wh` without `wh dev` is the API client alone; keep it building that way.
    cargo_step(&["clippy", "-p", "wh-cli", "--no-default-features", "--", "-D", "warnings"])?;
    let mut args = vec!["test", "--workspace", "--no-fail-fast"];
    args.extend(extra.iter().map(String::as_str));
    // Everything the suite creates carries this tag, so the leftover check below only sees this
    // run (another suite running at the same time is none of its business).
    let tag = format!("xt{}", std::process::id());
    eprintln!("xtask: running cargo {}", args.join(" "));
    let tests = cargo()
        .args(&args)
        .env("WH_TESTKIT_TAG", &tag)
        .status()
        .map_err(|e| format!("cargo: {e}"))
        .and_then(|s| {
            if s.success() {
                Ok(())
            } else {
                Err(format!("`cargo {}` failed ({s})", args.join(" ")))
            }
        });
    let leftovers = check_leftovers(&tag);
    tests?;
    leftovers?;
    eprintln!("xtask: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// `wh dev` as the README runs it: the dashboard built if its sources changed, then the
/// platform from the `run` profile (the shipped release keeps fat LTO).
fn dev(extra: &[String]) -> Result<(), String> {
    let started = Instant::now();
    ensure_packages(RUN_PACKAGES.iter().copied())?;
    dashboard::build(&workspace_root())?;
    let mut args = vec!["run", "--profile", "local", "-p", "wh-cli", "--", "dev"];
    args.extend(extra.iter().map(String::as_str).filter(|a| *a != "--"));
    eprintln!(
        "xtask: ready to build in {:.0?}; running cargo {}",
        started.elapsed(),
        args.join(" ")
    );
    // Incremental builds are the point here: a second start rebuilds only what changed.
    let status = Command::new("cargo").args(&args).status().map_err(|e| format!("cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("wh dev ended with {status}"))
    }
}

/// The workspace root: xtask lives in `crates/xtask`.
fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cargo_step(args: &[&str]) -> Result<(), String> {
    eprintln!("xtask: running cargo {}", args.join(" "));
    let status = cargo().args(args).status().map_err(|e| format!("cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

/// `cargo`, without incremental compilation unless the caller chose otherwise.
fn cargo() -> Command {
    let mut cmd = Command::new("cargo");
    if std::env::var_os("CARGO_INCREMENTAL").is_none() {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    cmd
}

/// A cold run writes about 2.5 GB to `target/`; say so when the disk is short of that, since a
/// full disk shows up later as a linker crash ("Bus error") rather than as a clear message.
fn report_free_disk() {
    const NEEDED_KB: u64 = 3 * 1024 * 1024;
    let Ok(out) = Command::new("df").args(["-Pk", "."]).output() else { return };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(free_kb) = text
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    eprintln!("xtask: {:.1} GiB free here", free_kb as f64 / 1024.0 / 1024.0);
    if free_kb < NEEDED_KB {
        eprintln!(
            "xtask: warning: a cold build writes about 2.5 GB to target/; with less free, \
             expect the build to fail with 'No space left on device'"
        );
    }
}

/// Those of `wanted` (names from [`PACKAGES`]) that are not installed.
fn missing_packages<'a>(wanted: impl Iterator<Item = &'a str>) -> Vec<&'static str> {
    let wanted: Vec<&str> = wanted.collect();
    PACKAGES
        .iter()
        .filter(|(pkg, proof)| wanted.contains(pkg) && !std::path::Path::new(proof).exists())
        .map(|(pkg, _)| *pkg)
        .collect()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn ensure_packages<'a>(wanted: impl Iterator<Item = &'a str> + Clone) -> Result<(), String> {
    let missing = missing_packages(wanted.clone());
    if missing.is_empty() {
        return Ok(());
    }
    let have_apt = std::path::Path::new("/usr/bin/apt-get").exists();
    if !(is_root() && have_apt) {
        return Err(format!(
            "missing Debian packages: {m}. Install them with:\n    sudo apt-get update && sudo apt-get install -y {m}\n\
             (this command installs them itself when it runs as root on a Debian machine)",
            m = missing.join(" ")
        ));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("apt-get: {e}"))
            .and_then(|s| {
                if s.success() {
                    Ok(())
                } else {
                    Err(format!("apt-get {} failed ({s})", args.join(" ")))
                }
            })
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q"];
    install.extend(&missing);
    apt(&install)?;
    // Debian may start the packaged default cluster and nginx-like services; the tests start
    // their own servers on free ports, so nothing is touched here.
    let still = missing_packages(wanted);
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!("still missing after apt-get install: {}", still.join(" ")))
    }
}

/// Every test component is cleaned up by a reaper when its test process exits; give those a
/// moment, then fail the run if anything is left.
fn check_leftovers(tag: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = leftovers(tag);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the test suite left these behind: {}", left.join("; ")));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn leftovers(tag: &str) -> Vec<String> {
    let mut left = Vec::new();
    for (what, pattern) in [
        ("postgres", format!("wh-testkit-pg-{tag}-")),
        ("pebble", format!("wh-testkit-pebble-{tag}-")),
        ("challtestsrv", format!("pebble-challtestsrv-{tag}")),
    ] {
        if let Ok(out) = Command::new("pgrep").args(["-f", &pattern]).output() {
            let pids = String::from_utf8_lossy(&out.stdout).split_whitespace().count();
            if pids > 0 {
                left.push(format!("{pids} {what} process(es)"));
            }
        }
    }
    if let Ok(out) = Command::new("podman")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=wh.testkit.run",
            "--format",
            "{{index .Labels \"wh.testkit.run\"}}",
        ])
        .output()
    {
        let prefix = format!("{tag}-");
        let n =
            String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with(&prefix)).count();
        if n > 0 {
            left.push(format!("{n} podman container(s) labelled wh.testkit.run"));
        }
    }
    left
}
