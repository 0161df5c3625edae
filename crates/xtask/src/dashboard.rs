//! The dashboard's build for `cargo xtask test` and `cargo xtask dev`: `npm ci` from the
//! committed lockfile when `node_modules` does not match it, `npm run build` (API types from
//! the OpenAPI document, type check, Vite, precompression, the size budget) when any source
//! changed since the last build, and `npm test` (Vitest). What was built from what is kept in
//! stamps under `node_modules/`, so an unchanged dashboard costs nothing.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Node's oldest version that Vite 8 runs on.
const NODE_MIN: (u32, u32) = (20, 19);

/// What the build reads: a change to any of these rebuilds.
const SOURCES: &[&str] = &[
    "src",
    "public",
    "scripts",
    "index.html",
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "vite.config.ts",
];

fn dir(root: &Path) -> PathBuf {
    root.join("dashboard")
}

/// Installs the npm packages if need be and builds the dashboard if its sources changed.
pub(crate) fn build(root: &Path) -> Result<(), String> {
    let dir = dir(root);
    check_node()?;
    let lock = fingerprint(&dir, &["package-lock.json"]);
    let lock_stamp = dir.join("node_modules/.wh-lock-stamp");
    if std::fs::read_to_string(&lock_stamp).ok().as_deref() != Some(lock.as_str()) {
        npm(&dir, &["ci", "--no-audit", "--no-fund"])?;
        std::fs::write(&lock_stamp, &lock).map_err(|e| format!("{}: {e}", lock_stamp.display()))?;
    }
    let sources = fingerprint(&dir, SOURCES);
    let build_stamp = dir.join("node_modules/.wh-build-stamp");
    let built = dir.join("dist/index.html").is_file()
        && std::fs::read_to_string(&build_stamp).ok().as_deref() == Some(sources.as_str());
    if built {
        eprintln!("xtask: the dashboard is built and current");
        return Ok(());
    }
    npm(&dir, &["run", "build"])?;
    std::fs::write(&build_stamp, &sources).map_err(|e| format!("{}: {e}", build_stamp.display()))
}

/// The dashboard's unit tests (Vitest).
pub(crate) fn unit_tests(root: &Path) -> Result<(), String> {
    npm(&dir(root), &["test"])
}

fn npm(dir: &Path, args: &[&str]) -> Result<(), String> {
    eprintln!("xtask: running npm {} in dashboard/", args.join(" "));
    let status = Command::new("npm").args(args).current_dir(dir).status().map_err(|e| {
        format!("npm: {e} (Node.js {}.{} or newer with npm is needed)", NODE_MIN.0, NODE_MIN.1)
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`npm {}` failed in dashboard/ ({status})", args.join(" ")))
    }
}

fn check_node() -> Result<(), String> {
    let out = Command::new("node").arg("--version").output().map_err(|e| {
        format!("node: {e}: the dashboard needs Node.js {}.{} or newer", NODE_MIN.0, NODE_MIN.1)
    })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().trim_start_matches('v').to_owned();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < NODE_MIN {
        return Err(format!(
            "node {version} is too old: the dashboard's build (Vite 8) needs {}.{} or newer",
            NODE_MIN.0, NODE_MIN.1
        ));
    }
    Ok(())
}

/// A hash of the paths and contents of every file under `entries` (relative to `dir`).
fn fingerprint(dir: &Path, entries: &[&str]) -> String {
    let mut files = Vec::new();
    for e in entries {
        collect(&dir.join(e), &mut files);
    }
    files.sort();
    let mut h = DefaultHasher::new();
    for f in &files {
        f.strip_prefix(dir).unwrap_or(f).hash(&mut h);
        std::fs::read(f).unwrap_or_default().hash(&mut h);
    }
    format!("{:016x} {} files\n", h.finish(), files.len())
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else { return };
        for e in entries.flatten() {
            collect(&e.path(), out);
        }
    } else if path.is_file() {
        // The generated types are an output of the build, not a source.
        if !path.ends_with("src/api/schema.d.ts") {
            out.push(path.to_owned());
        }
    }
}
