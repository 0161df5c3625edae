//! Cloning a tenant's repository. The URL is the tenant's, so:
//! - the host must resolve to public addresses only (never loopback, private, link-local or the
//!   mesh), checked before any connection, and an https clone is pinned to the checked address
//!   (`http.curloptResolve`) so a second lookup cannot rebind it; redirects are not followed;
//! - local paths and `file://` are refused unless the operator allows private repositories
//!   (development and tests: [`RepoPolicy::allow_private`]);
//! - credentials (split off the URL and sealed by the control plane) reach git as an
//!   `Authorization` header through `GIT_CONFIG_*` variables: never in argv, never in the URL;
//!   the host's own credential helpers and askpass programs are never consulted;
//! - a ref or URL that looks like an option is refused, and every git call has a timeout.
//!
//! ssh clones are checked but not pinned (ssh resolves the name again itself).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;
use wh_wsproto::repo::{self, RepoUrl, RepoUrlError, Transport};

/// Which repositories this worker clones from.
#[derive(Debug, Clone, Copy, Default)]
pub struct RepoPolicy {
    /// Allow hosts on private, loopback and mesh addresses, and local paths (off in production).
    pub allow_private: bool,
}

/// Why a clone failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloneError {
    #[error("repository URL refused: {0}")]
    Url(#[from] RepoUrlError),
    #[error("refusing a local repository path (allowed only with --allow-private-repos)")]
    Local,
    #[error("refusing to clone from {host}: it resolves to {ip}, which is not a public address")]
    Private { host: String, ip: std::net::IpAddr },
    #[error("cannot resolve {host}: {why}")]
    Resolve { host: String, why: String },
    #[error("refusing a ref or repository that looks like an option")]
    OptionLike,
    #[error("git timed out")]
    Timeout,
    #[error("clone failed: {0}")]
    Git(String),
    #[error("no such ref `{git_ref}`: {detail}")]
    NoSuchRef { git_ref: String, detail: String },
}

/// The addresses `url`'s host resolves to, each public unless `policy` allows private ones;
/// `None` when nothing needs pinning (allowed private, or a local path).
async fn checked_address(
    url: &RepoUrl,
    policy: RepoPolicy,
) -> Result<Option<SocketAddr>, CloneError> {
    if url.transport == Transport::Local {
        return if policy.allow_private { Ok(None) } else { Err(CloneError::Local) };
    }
    if policy.allow_private {
        return Ok(None);
    }
    let host = url.host.clone();
    let lookup = tokio::net::lookup_host((host.as_str(), url.port));
    let addrs: Vec<SocketAddr> = tokio::time::timeout(Duration::from_secs(10), lookup)
        .await
        .map_err(|_| CloneError::Resolve { host: host.clone(), why: "timed out".into() })?
        .map_err(|e| CloneError::Resolve { host: host.clone(), why: e.to_string() })?
        .collect();
    if let Some(bad) = addrs.iter().find(|a| !repo::is_public(a.ip())) {
        return Err(CloneError::Private { host, ip: bad.ip() });
    }
    addrs.first().copied().map(Some).ok_or(CloneError::Resolve { host, why: "no address".into() })
}

/// `git clone --depth 1` of a branch or tag of `url` (credentials, if any, as the control plane
/// sent them); a commit id falls back to a full clone + checkout.
/// The commit checked out in `dir` (hex), if git can say: what a rollback rebuilds.
pub async fn head_commit(dir: &Path) -> Option<String> {
    let mut c = Command::new("git");
    c.args(["rev-parse", "--verify", "HEAD"])
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(10), c.output()).await.ok()?.ok()?;
    let sha = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    let hex = (40..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit());
    (out.status.success() && hex).then_some(sha)
}

pub async fn clone(
    url: &str,
    credentials: Option<&str>,
    git_ref: &str,
    into: &Path,
    policy: RepoPolicy,
) -> Result<(), CloneError> {
    if git_ref.starts_with('-') || url.starts_with('-') {
        return Err(CloneError::OptionLike);
    }
    let parsed = RepoUrl::parse(url)?;
    let pinned = checked_address(&parsed, policy).await?;
    let mut config: Vec<(String, String)> = vec![
        // Never the host's helpers (they could hand the host's own credentials to any URL).
        ("credential.helper".into(), String::new()),
        ("http.followRedirects".into(), "false".into()),
        ("protocol.ext.allow".into(), "never".into()),
    ];
    if let (Some(addr), Transport::Https) = (pinned, parsed.transport) {
        let ip = match addr.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        config
            .push(("http.curloptResolve".into(), format!("{}:{}:{ip}", parsed.host, parsed.port)));
    }
    // Credentials in the URL itself (never stored that way) are used the same way.
    let credentials = credentials.map(str::to_owned).or(parsed.credentials.clone());
    if let (Some(c), Transport::Https) = (&credentials, parsed.transport) {
        use base64::Engine;
        let pair = if c.contains(':') { c.clone() } else { format!("{c}:") };
        let basic = base64::engine::general_purpose::STANDARD.encode(pair);
        config.push(("http.extraHeader".into(), format!("Authorization: Basic {basic}")));
    }
    let run = |args: Vec<String>, dir: Option<&Path>| {
        let mut c = Command::new("git");
        c.args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .env("GIT_CONFIG_COUNT", config.len().to_string())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for (i, (k, v)) in config.iter().enumerate() {
            c.env(format!("GIT_CONFIG_KEY_{i}"), k).env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        if let Some(d) = dir {
            c.current_dir(d);
        }
        async move {
            let out = tokio::time::timeout(Duration::from_secs(300), c.output())
                .await
                .map_err(|_| CloneError::Timeout)?
                .map_err(|e| CloneError::Git(format!("git: {e}")))?;
            if out.status.success() {
                Ok(())
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                Err(CloneError::Git(err.chars().take(4096).collect::<String>().trim().to_owned()))
            }
        }
    };
    let target = into.display().to_string();
    let repo = parsed.public.clone();
    let shallow = ["clone", "--depth", "1", "--branch", git_ref, "--", &repo, &target];
    if run(shallow.map(str::to_owned).to_vec(), None).await.is_ok() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(into);
    run(["clone", "--", &repo, &target].map(str::to_owned).to_vec(), None).await?;
    run(["checkout", "--detach", git_ref].map(str::to_owned).to_vec(), Some(into))
        .await
        .map_err(|e| CloneError::NoSuchRef { git_ref: git_ref.to_owned(), detail: e.to_string() })
}
