//! Podman as a subprocess: building images and running containers with this host's settings.
//!
//! The settings Podman needs on a host are runtime configuration, found by [`PodmanSettings::probe`]:
//! on cgroup v1 hosts crun fails, so runc is used when present; ulimits are passed explicitly
//! (`nofile`, `nproc`) because raising them implicitly fails on some hosts. Builds run on a
//! per-host build network (never `--network=host`) with memory and CPU caps (`--cpu-quota`) and a timeout, their
//! output streamed line by line; a build cut short loses its whole process tree, RUN step
//! included ([`process_tree`]). An app's environment variables reach `podman run` through a
//! private env file ([`EnvFile`]): never its argv (they would show in `ps`) and never its own
//! environment (a tenant's `PATH` or `LD_PRELOAD` would steer Podman on the host).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::lines::{BoundedLines, MAX_LINE};
use crate::process_tree;

use tokio::io::BufReader;
use tokio::process::Command;

/// Label carrying the app slug on every container we start.
pub const LABEL_APP: &str = "wh.app";
/// Label carrying the deployment id.
pub const LABEL_DEPLOYMENT: &str = "wh.deployment";

/// Why a Podman call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("podman is not usable: {0}")]
    Unavailable(String),
    #[error("`podman {command}` failed: {output}")]
    Failed { command: String, output: String },
    #[error("build timed out after {0:?}")]
    Timeout(Duration),
    #[error("env var `{key}`: {why}")]
    Env { key: String, why: wh_wsproto::env::EnvError },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Why this host cannot limit an app's disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoDiskQuota {
    #[error("no mount found for {0}")]
    NoMount(String),
    #[error("{0} is xfs without project quotas (mount it with prjquota)")]
    XfsWithoutProjectQuotas(String),
    #[error("{point} is {fs} with the {driver} driver; per-app disk limits need xfs with prjquota or btrfs")]
    Storage { point: String, fs: String, driver: String },
}

/// How to invoke Podman on this host.
#[derive(Debug, Clone)]
pub struct PodmanSettings {
    /// The `podman` executable (`podman`, found on `PATH`, unless a test puts a stand-in here).
    pub program: std::path::PathBuf,
    pub runtime: Option<String>,
    pub ulimits: Vec<String>,
    pub build_network: String,
    /// How per-app disk limits are enforced (`xfs-prjquota`, `btrfs`) or why they are not
    /// (`unsupported: …`); see [`disk_quota_support`].
    pub disk_quota: String,
    /// Whether app containers get Podman's init (`--init`, catatonit) as PID 1: it forwards
    /// signals and reaps zombies, so an app that installs no SIGTERM handler (busybox httpd,
    /// most scripts) stops at once instead of after the whole grace period. On when the init
    /// binary is installed (`catatonit`, which Debian's podman recommends).
    pub init: bool,
}

impl PodmanSettings {
    /// Whether `--storage-opt size=` can be used for app containers.
    pub fn disk_quota_enabled(&self) -> bool {
        !self.disk_quota.starts_with("unsupported")
    }
}

/// Whether the container storage at `graph_root` (driver `driver`) can limit a container's
/// disk, from the mount table (`/proc/self/mounts`): overlay on xfs mounted with project quotas
/// (`prjquota`/`pquota`), or the btrfs driver on btrfs.
pub fn disk_quota_support(
    mounts: &str,
    graph_root: &str,
    driver: &str,
) -> Result<&'static str, NoDiskQuota> {
    // The mount holding graph_root: the longest mount point that is a path prefix of it.
    let mount = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, fstype, options) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let inside = graph_root == point
                || point == "/"
                || graph_root.strip_prefix(point).is_some_and(|rest| rest.starts_with('/'));
            inside.then_some((point, fstype, options))
        })
        .max_by_key(|(point, _, _)| point.len());
    let Some((point, fstype, options)) = mount else {
        return Err(NoDiskQuota::NoMount(graph_root.to_owned()));
    };
    let has = |o: &str| options.split(',').any(|x| x == o);
    match (fstype, driver) {
        ("xfs", "overlay") if has("prjquota") || has("pquota") => Ok("xfs-prjquota"),
        ("xfs", _) => Err(NoDiskQuota::XfsWithoutProjectQuotas(point.to_owned())),
        ("btrfs", "btrfs") => Ok("btrfs"),
        (fs, d) => Err(NoDiskQuota::Storage {
            point: point.to_owned(),
            fs: fs.to_owned(),
            driver: d.to_owned(),
        }),
    }
}

impl PodmanSettings {
    /// Looks at this host: Podman must answer; runc is preferred on cgroup v1 (crun fails
    /// there); `WH_PODMAN_RUNTIME` and `WH_PODMAN_ULIMITS` override.
    pub async fn probe() -> Result<PodmanSettings, RuntimeError> {
        let info = Command::new("podman")
            .args(["info", "--format", "json"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| {
                RuntimeError::Unavailable(format!("podman: {e} (apt-get install podman)"))
            })?;
        if !info.status.success() {
            return Err(RuntimeError::Unavailable(
                String::from_utf8_lossy(&info.stderr).into_owned(),
            ));
        }
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap_or_default();
        let cgroup_v1 = info["host"]["cgroupVersion"].as_str() == Some("v1");
        let has_runc = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("runc").is_file()));
        let runtime = match std::env::var("WH_PODMAN_RUNTIME") {
            Ok(r) if r.is_empty() => None,
            Ok(r) => Some(r),
            Err(_) => (has_runc
                && (cgroup_v1 || info["host"]["ociRuntime"]["name"].as_str() != Some("runc")))
            .then(|| "runc".to_owned()),
        };
        let ulimits = std::env::var("WH_PODMAN_ULIMITS")
            .unwrap_or_else(|_| "nofile=1024:1024 nproc=1024:1024".into())
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let mut settings = PodmanSettings {
            program: "podman".into(),
            runtime,
            ulimits,
            build_network: "wisehosting-build".into(),
            disk_quota: String::new(),
            init: ["/usr/libexec/podman/catatonit", "/usr/bin/catatonit"]
                .iter()
                .any(|p| std::path::Path::new(p).is_file()),
        };
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        settings.disk_quota = match disk_quota_support(
            &mounts,
            info["store"]["graphRoot"].as_str().unwrap_or("/var/lib/containers/storage"),
            info["store"]["graphDriverName"].as_str().unwrap_or("overlay"),
        ) {
            Ok(how) => match (Podman { settings: settings.clone() }).accepts_disk_limits().await {
                Ok(()) => how.to_owned(),
                Err(why) => format!(
                    "unsupported: the storage is {how}, but Podman refuses --storage-opt size: {why}"
                ),
            },
            Err(why) => format!("unsupported: {why}"),
        };
        Ok(settings)
    }
}

/// Podman's message from its standard error: the last `Error: …` line (warnings logged before
/// it are noise), or else the last line.
fn podman_error(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("Error: "))
        .or(lines.last().copied())
        .unwrap_or("no output")
        .to_owned()
}

/// An image to build.
#[derive(Debug, Clone)]
pub struct BuildSpec<'a> {
    pub context: &'a Path,
    /// A Containerfile outside the context's own (a preset); `None` uses the context's.
    pub dockerfile: Option<&'a Path>,
    pub tag: &'a str,
    pub labels: &'a [(String, String)],
    pub memory_mb: u64,
    pub cpus: f64,
    pub timeout: Duration,
}

/// A container to start.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub name: String,
    pub image: String,
    /// The app's variables: they reach the container through a private env file, never the
    /// arguments or the environment of `podman` (see [`EnvFile`]).
    pub env: Vec<(String, String)>,
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids_limit: u32,
    pub labels: Vec<(String, String)>,
    /// (host address, host port, container port)
    pub publish: Option<(String, u16, u16)>,
    pub extra_args: Vec<String>,
}

/// A container found by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    pub name: String,
    pub state: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// The first published host port.
    pub host_port: Option<u16>,
}

/// An image found by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// How many containers (in any state) use it.
    pub containers: u64,
    /// Unix seconds.
    pub created: i64,
}

/// One `podman stats` sample (raw counters).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Sample {
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    /// CPU time used since the container started, in nanoseconds.
    #[serde(default, rename = "CPUNano")]
    pub cpu_nano: u64,
    #[serde(default)]
    pub mem_usage: u64,
    #[serde(default)]
    pub mem_limit: u64,
    #[serde(default)]
    pub net_input: u64,
    #[serde(default)]
    pub net_output: u64,
    #[serde(default)]
    pub block_input: u64,
    #[serde(default)]
    pub block_output: u64,
}

/// The Podman runtime.
#[derive(Debug, Clone)]
pub struct Podman {
    pub settings: PodmanSettings,
}

/// How many times one build may run when Podman's image store races it (see [`Podman::build`]).
const BUILD_ATTEMPTS: u32 = 3;

/// Whether a failed build's output ends with Podman's own "layer not known" error: a layer
/// removed by a concurrent `rmi`/`prune`, not anything in the app's Containerfile.
fn is_storage_race(output: &str) -> bool {
    output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.starts_with("Error: ") && l.ends_with("layer not known"))
}

impl Podman {
    /// A bare `podman` command, no arguments or settings applied.
    pub fn program(&self) -> Command {
        Command::new(&self.settings.program)
    }

    fn command(&self, sub: &str) -> Command {
        let mut c = self.program();
        // Its own process group: a Ctrl-C at the terminal (`wh dev`) must not interrupt a
        // `podman rm` half-way (see [`crate::leftovers`]); the worker decides when it stops.
        c.arg(sub).stdin(Stdio::null()).kill_on_drop(true).process_group(0);
        if matches!(sub, "run" | "build" | "create") {
            if let Some(rt) = &self.settings.runtime {
                c.args(["--runtime", rt]);
            }
            for u in &self.settings.ulimits {
                c.args(["--ulimit", u]);
            }
        }
        c
    }

    /// Asks Podman itself whether it limits a container's disk: creates (never starts) a
    /// container with `--storage-opt size=` from an empty throwaway image, then removes both.
    /// The mount table alone can say yes where Podman says no: Debian 12's Podman 4.3 refuses
    /// `size` on its btrfs driver ("unknown option size"), which would have failed every
    /// deploy on such a host.
    async fn accepts_disk_limits(&self) -> Result<(), RuntimeError> {
        // Per process: two workers starting on one host must not remove each other's probe.
        let name = format!("wh-disk-quota-probe-{}", std::process::id());
        let image = format!("localhost/{name}:1");
        let attempt = async {
            let mut import = self.command("import");
            import.args(["-", &image]).stdin(Stdio::piped()).stdout(Stdio::null());
            let mut import = import.stderr(Stdio::piped()).spawn()?;
            if let Some(mut stdin) = import.stdin.take() {
                use tokio::io::AsyncWriteExt;
                // An empty tar archive: two zero blocks.
                stdin.write_all(&[0u8; 1024]).await?;
            }
            let imported = import.wait_with_output().await?;
            if !imported.status.success() {
                let output = podman_error(&imported.stderr);
                return Err(RuntimeError::Failed { command: "import".into(), output });
            }
            let mut create = self.command("create");
            create.args(["--name", &name, "--network", "none", "--storage-opt", "size=64M"]);
            let created = create.args([&image, "/probe"]).output().await?;
            if created.status.success() {
                Ok(())
            } else {
                let output = podman_error(&created.stderr);
                Err(RuntimeError::Failed {
                    command: "create --storage-opt size=64M".into(),
                    output,
                })
            }
        };
        let outcome = tokio::time::timeout(Duration::from_secs(60), attempt)
            .await
            .unwrap_or(Err(RuntimeError::Timeout(Duration::from_secs(60))));
        let mut rm = self.command("rm");
        rm.args(["-f", &name]);
        let mut rmi = self.command("rmi");
        rmi.args(["-f", &image]);
        for mut cleanup in [rm, rmi] {
            let _ = tokio::time::timeout(Duration::from_secs(30), cleanup.output()).await;
        }
        outcome
    }

    async fn output(&self, mut cmd: Command, what: &str) -> Result<String, RuntimeError> {
        let out = cmd.output().await?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(RuntimeError::Failed {
                command: what.to_owned(),
                output: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    /// Creates the build network unless it exists.
    pub async fn ensure_build_network(&self) -> Result<(), RuntimeError> {
        let net = &self.settings.build_network;
        let exists =
            self.program().args(["network", "exists", net]).stdin(Stdio::null()).status().await?;
        if exists.success() {
            return Ok(());
        }
        let mut c = self.program();
        c.args(["network", "create", net]).stdin(Stdio::null());
        match self.output(c, "network create").await {
            Ok(_) => Ok(()),
            // Another build created it meanwhile.
            Err(RuntimeError::Failed { output, .. }) if output.contains("already") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Builds `context` into `tag`, streaming every output line to `on_line`.
    ///
    /// Podman 4's layer cache lookup fails with "layer not known" when an image is removed while
    /// the build looks it up (buildah #5674, fixed upstream in 1.43): a `podman rmi` or
    /// `image prune` on the same host, by us or an operator, fails an unrelated build. Nothing
    /// was built yet when that happens, so the build is tried again, at most [`BUILD_ATTEMPTS`]
    /// times in all, inside the one `timeout`.
    pub async fn build(
        &self,
        spec: &BuildSpec<'_>,
        mut on_line: impl FnMut(&str) + Send,
    ) -> Result<(), RuntimeError> {
        self.ensure_build_network().await?;
        let deadline = tokio::time::Instant::now() + spec.timeout;
        let attempt = async {
            let mut attempt = 1;
            loop {
                let result = self.build_once(spec, &mut on_line).await;
                match result {
                    Err(RuntimeError::Failed { ref output, .. })
                        if attempt < BUILD_ATTEMPTS && is_storage_race(output) =>
                    {
                        on_line("wh: Podman's image store changed under the build (layer not known); building again");
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        };
        let result = tokio::time::timeout_at(deadline, attempt).await;
        if result.is_err() {
            // The killed build's working container stays in Podman's store.
            if let Err(e) = self.remove_build_leftovers().await {
                tracing::warn!(error = %e, "cannot remove a timed-out build's working container");
            }
        }
        result.unwrap_or(Err(RuntimeError::Timeout(spec.timeout)))
    }

    /// One `podman build`; the caller bounds it in time.
    async fn build_once(
        &self,
        spec: &BuildSpec<'_>,
        on_line: &mut (impl FnMut(&str) + Send),
    ) -> Result<(), RuntimeError> {
        let BuildSpec { context, dockerfile, tag, labels, memory_mb, cpus, .. } = *spec;
        let id = crate::leftovers::BuildId::new();
        let mut cmd = self.command("build");
        cmd.args([
            "--build-arg",
            &format!("{}={}", crate::leftovers::BUILD_ARG, id.as_str()),
            "--network",
            &self.settings.build_network,
            "--memory",
            &format!("{memory_mb}m"),
            // CPU cap: `cpus` cores' worth of each 100 ms period.
            "--cpu-period",
            "100000",
            "--cpu-quota",
            &((cpus.max(0.1) * 100_000.0) as u64).to_string(),
            "-t",
            tag,
        ]);
        for (k, v) in labels {
            cmd.args(["--label", &format!("{k}={v}")]);
        }
        if let Some(f) = dockerfile {
            cmd.arg("-f").arg(f);
        }
        cmd.arg(context)
            .env(process_tree::OWNER_VAR, process_tree::owner())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        // Cut short (timeout), the build's RUN step would outlive `podman`: kill the tree.
        let mut guard = process_tree::TreeGuard::new(child.id());
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let stderr = BufReader::new(child.stderr.take().expect("piped"));
        let mut merged = merge_lines(stdout, stderr);
        let run = async {
            let mut tail = std::collections::VecDeque::new();
            while let Some(line) = merged.recv().await {
                if line == crate::leftovers::UNCONSUMED_WARNING {
                    continue;
                }
                on_line(&line);
                if tail.len() == 20 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            (child.wait().await, tail)
        };
        let (status, tail) = run.await;
        guard.disarm();
        if status?.success() {
            Ok(())
        } else {
            Err(RuntimeError::Failed {
                command: "build".into(),
                output: tail.into_iter().collect::<Vec<_>>().join("\n"),
            })
        }
    }

    /// Starts a detached container; returns its id.
    pub async fn run(&self, spec: &RunSpec) -> Result<String, RuntimeError> {
        let mut cmd = self.command("run");
        cmd.args(["-d", "--name", &spec.name, "--restart", "on-failure:5"]);
        if self.settings.init {
            cmd.arg("--init");
        }
        if spec.memory_mb > 0 {
            cmd.args(["--memory", &format!("{}m", spec.memory_mb)]);
        }
        if spec.cpus > 0.0 {
            cmd.args(["--cpus", &format!("{:.2}", spec.cpus)]);
        }
        if spec.pids_limit > 0 {
            cmd.args(["--pids-limit", &spec.pids_limit.to_string()]);
        }
        for (k, v) in &spec.labels {
            cmd.args(["--label", &format!("{k}={v}")]);
        }
        if let Some((ip, host, container)) = &spec.publish {
            cmd.args(["-p", &format!("{ip}:{host}:{container}")]);
        }
        // Removed when this returns: Podman has copied the variables into the container's config.
        let env_file = EnvFile::write(&spec.env)?;
        cmd.arg("--env-file").arg(env_file.path());
        cmd.args(&spec.extra_args).arg(&spec.image);
        self.output(cmd, "run").await.map(|out| out.trim().to_owned())
    }

    /// `podman inspect` of a container, as JSON.
    pub async fn inspect(&self, id: &str) -> Result<serde_json::Value, RuntimeError> {
        let mut cmd = self.command("inspect");
        cmd.args(["--format", "json", id]);
        let out = self.output(cmd, "inspect").await?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
            RuntimeError::Failed { command: "inspect".into(), output: e.to_string() }
        })?;
        Ok(v.get(0).cloned().unwrap_or(v))
    }

    /// Containers (running or not) carrying label `key` (any value) — what this worker runs.
    pub async fn list(&self, key: &str) -> Result<Vec<Found>, RuntimeError> {
        let mut cmd = self.command("ps");
        cmd.args(["-a", "--format", "json", "--filter", &format!("label={key}")]);
        let out = self.output(cmd, "ps").await?;
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
        Ok(rows
            .iter()
            .map(|r| Found {
                id: r["Id"].as_str().unwrap_or_default().to_owned(),
                name: r["Names"].get(0).and_then(|n| n.as_str()).unwrap_or_default().to_owned(),
                state: r["State"].as_str().unwrap_or_default().to_owned(),
                labels: string_map(&r["Labels"]),
                host_port: r["Ports"]
                    .get(0)
                    .and_then(|p| p["host_port"].as_u64())
                    .and_then(|p| u16::try_from(p).ok()),
            })
            .collect())
    }

    /// One resource sample of each of `ids` (running containers; others are skipped).
    pub async fn stats(&self, ids: &[String]) -> Result<Vec<Sample>, RuntimeError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = self.command("stats");
        cmd.args(["--no-stream", "--no-reset", "--format", "{{json .ContainerStats}}"]).args(ids);
        let out = tokio::time::timeout(Duration::from_secs(30), self.output(cmd, "stats"))
            .await
            .map_err(|_| RuntimeError::Timeout(Duration::from_secs(30)))??;
        Ok(parse_samples(&out))
    }

    /// How often the restart policy has restarted each of `ids`, in one `podman inspect`
    /// (ids gone meanwhile are left out).
    pub async fn restart_counts(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, u32>, RuntimeError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let mut cmd = self.command("inspect");
        cmd.args(["--type", "container", "--format", "{{.Id}} {{.RestartCount}}"]).args(ids);
        // A container removed since it was listed makes inspect fail, yet it still prints the rest.
        let out = cmd.output().await?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (id, n) = l.split_once(' ')?;
                Some((id.to_owned(), n.trim().parse().ok()?))
            })
            .collect())
    }

    /// The last `lines` lines of a container's output (for failure reports).
    pub async fn logs_tail(&self, id: &str, lines: usize) -> Result<String, RuntimeError> {
        let mut cmd = self.command("logs");
        cmd.args(["--tail", &lines.to_string(), id]).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let err = BufReader::new(child.stderr.take().expect("piped"));
        // The app's lines: each bounded, and only the last `lines` kept, however many come.
        let mut merged = merge_lines(out, err);
        let mut tail = std::collections::VecDeque::with_capacity(lines);
        let read = async {
            while let Some(line) = merged.recv().await {
                if tail.len() == lines {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
        let _ = child.kill().await;
        Ok(tail.into_iter().map(|l| l + "\n").collect())
    }

    /// Bytes in the writable layer of each container labelled `key` (`podman ps --size`, which
    /// walks the layers: not for every stats tick).
    pub async fn disk_usage(
        &self,
        key: &str,
    ) -> Result<std::collections::HashMap<String, u64>, RuntimeError> {
        let mut cmd = self.command("ps");
        cmd.args(["-a", "--size", "--format", "json", "--filter", &format!("label={key}")]);
        let out = tokio::time::timeout(Duration::from_secs(60), self.output(cmd, "ps --size"))
            .await
            .map_err(|_| RuntimeError::Timeout(Duration::from_secs(60)))??;
        Ok(parse_disk_usage(&out))
    }

    /// The images carrying label `key`.
    pub async fn images(&self, key: &str) -> Result<Vec<Image>, RuntimeError> {
        let mut cmd = self.command("images");
        cmd.args(["--format", "json", "--filter", &format!("label={key}")]);
        let out = self.output(cmd, "images").await?;
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
        Ok(rows
            .iter()
            .map(|r| Image {
                id: r["Id"].as_str().unwrap_or_default().to_owned(),
                labels: string_map(&r["Labels"]),
                containers: r["Containers"].as_u64().unwrap_or(0),
                created: r["Created"].as_i64().unwrap_or(0),
            })
            .collect())
    }

    /// Removes an image unless a container uses it (no `--force`: Podman refuses then).
    pub async fn remove_image(&self, id: &str) -> Result<(), RuntimeError> {
        let mut cmd = self.command("rmi");
        cmd.arg(id);
        self.output(cmd, "rmi").await.map(drop)
    }

    /// Stops (SIGTERM, then SIGKILL after `grace`) and removes a container. Stopped first, in
    /// its own call: a container left `Stopping` by an interrupted `podman rm` would otherwise
    /// be deleted with its processes still running (see [`crate::leftovers`]).
    pub async fn remove(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let mut stop = self.command("stop");
        stop.args(["-t", &grace.as_secs().to_string(), id]);
        // A container that is gone already, or exited, is refused here and removed below.
        let _ = self.output(stop, "stop").await;
        let mut cmd = self.command("rm");
        cmd.args(["-f", "-t", "0", id]);
        self.output(cmd, "rm").await.map(drop)
    }

    /// Where Podman keeps containers: `(graph root, storage driver)`.
    async fn store(&self) -> Result<(String, String), RuntimeError> {
        let mut cmd = self.command("info");
        cmd.args(["--format", "{{.Store.GraphRoot}} {{.Store.GraphDriverName}}"]);
        let out = self.output(cmd, "info").await?;
        let (root, driver) = out.trim().split_once(' ').unwrap_or((out.trim(), "overlay"));
        Ok((root.to_owned(), driver.to_owned()))
    }

    /// Removes the working containers of builds that are over ([`crate::leftovers`]): killed
    /// by this process (timeout, cancel) or left by a worker that is gone. Returns how many.
    pub async fn remove_build_leftovers(&self) -> Result<usize, RuntimeError> {
        let (root, driver) = self.store().await?;
        let mut cmd = self.command("ps");
        cmd.args(["-a", "--external", "--no-trunc", "--format", "{{.ID}} {{.State}}"]);
        let out = self.output(cmd, "ps --external").await?;
        let mut removed = 0;
        for (id, _) in out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, s)| s.eq_ignore_ascii_case("storage"))
        {
            if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let json = format!("{root}/{driver}-containers/{id}/userdata/buildah.json");
            let Some(build) = std::fs::read(json).ok().and_then(|j| crate::leftovers::build_of(&j))
            else {
                continue;
            };
            if crate::leftovers::build_is_over(&build) {
                tracing::info!(container = id, build = %build, "removing a killed build's working container");
                let mut rm = self.command("rm");
                rm.args(["-f", id]);
                self.output(rm, "rm").await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Kills the conmon (and the app under it) of every container this Podman no longer knows:
    /// what a removal interrupted half-way leaves, holding the app's host port
    /// ([`crate::leftovers`]). For a starting worker; returns how many.
    pub async fn finish_orphaned_stops(&self) -> Result<usize, RuntimeError> {
        // Conmons first: a container created after the listing below has a conmon not in it.
        let conmons = tokio::task::spawn_blocking(crate::leftovers::conmons)
            .await
            .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?;
        let (root, _) = self.store().await?;
        let mut cmd = self.command("ps");
        cmd.args(["-a", "--no-trunc", "--format", "{{.ID}}"]);
        let known: std::collections::HashSet<String> =
            self.output(cmd, "ps").await?.lines().map(str::to_owned).collect();
        let orphans: Vec<_> = conmons
            .into_iter()
            .filter(|c| c.graph_root == root && !known.contains(&c.container_id))
            .collect();
        for c in &orphans {
            tracing::warn!(container = %c.container_id, pid = c.pid, "stopping a container Podman lost while removing it");
            let pid = c.pid;
            let _ = tokio::task::spawn_blocking(move || process_tree::kill_tree(pid)).await;
        }
        Ok(orphans.len())
    }
}

/// An app's variables as a Podman env file, `KEY=VALUE` a line, mode 0600 in a private (0700)
/// directory removed on drop. Tenant-chosen names (`PATH`, `LD_PRELOAD`, `CONTAINERS_CONF`…)
/// so never become the environment of `podman` itself, and values never show in `ps`.
pub struct EnvFile {
    dir: tempfile::TempDir,
}

impl EnvFile {
    /// Writes `vars`; a variable an env file cannot carry is refused, naming it.
    pub fn write(vars: &[(String, String)]) -> Result<EnvFile, RuntimeError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut text = String::new();
        for (key, value) in vars {
            wh_wsproto::env::check(key, value)
                .map_err(|why| RuntimeError::Env { key: key.clone(), why })?;
            text.push_str(key);
            text.push('=');
            text.push_str(value);
            text.push('\n');
        }
        // tempfile makes the directory 0700.
        let dir = tempfile::Builder::new().prefix("wh-env-").tempdir()?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.path().join("env"))?;
        file.write_all(text.as_bytes())?;
        Ok(EnvFile { dir })
    }

    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("env")
    }
}

/// `podman ps --size --format json` → container id → bytes in its writable layer; rows without
/// a size are left out.
pub fn parse_disk_usage(out: &str) -> std::collections::HashMap<String, u64> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(out).unwrap_or_default();
    rows.iter()
        .filter_map(|r| Some((r["Id"].as_str()?.to_owned(), r["Size"]["rwSize"].as_u64()?)))
        .collect()
}

/// A JSON object of strings (Podman's `Labels`) as a map; anything else is empty.
fn string_map(v: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect()
        })
        .unwrap_or_default()
}

/// Parses `podman stats --format '{{json .ContainerStats}}'` output: one JSON object a line;
/// lines that are not one are skipped.
pub fn parse_samples(out: &str) -> Vec<Sample> {
    out.lines().filter_map(|l| serde_json::from_str(l.trim()).ok()).collect()
}

/// Merges the bounded lines ([`BoundedLines`]) of two outputs into one channel (build output
/// comes on both).
fn merge_lines<A, B>(a: A, b: B) -> tokio::sync::mpsc::Receiver<String>
where
    A: tokio::io::AsyncBufRead + Unpin + Send + 'static,
    B: tokio::io::AsyncBufRead + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let tx2 = tx.clone();
    tokio::spawn(forward_lines(BoundedLines::new(a, MAX_LINE), tx));
    tokio::spawn(forward_lines(BoundedLines::new(b, MAX_LINE), tx2));
    rx
}

async fn forward_lines<R: tokio::io::AsyncBufRead + Unpin>(
    mut lines: BoundedLines<R>,
    tx: tokio::sync::mpsc::Sender<String>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send(line).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podmans_error_line_is_picked_out_of_its_log_noise() {
        let stderr = b"time=\"...\" level=error msg=\"[graphdriver] prior storage driver overlay failed\"\nError: unknown option size\n";
        assert_eq!(podman_error(stderr), "unknown option size");
        assert_eq!(podman_error(b"no such thing\n\n"), "no such thing");
        assert_eq!(podman_error(b""), "no output");
    }

    #[test]
    fn disk_quotas_need_xfs_with_project_quotas_or_btrfs() {
        let mounts = "/dev/sda1 / ext4 rw,relatime 0 0\n\
                      /dev/sdb1 /var/lib/containers xfs rw,prjquota 0 0\n\
                      /dev/sdc1 /srv xfs rw,noquota 0 0\n\
                      /dev/sdd1 /data btrfs rw 0 0\n";
        assert_eq!(
            disk_quota_support(mounts, "/var/lib/containers/storage", "overlay"),
            Ok("xfs-prjquota")
        );
        assert!(disk_quota_support(mounts, "/srv/storage", "overlay")
            .unwrap_err()
            .to_string()
            .contains("without project quotas"));
        assert_eq!(disk_quota_support(mounts, "/data/storage", "btrfs"), Ok("btrfs"));
        assert!(disk_quota_support(mounts, "/home/x/storage", "overlay")
            .unwrap_err()
            .to_string()
            .contains("ext4"));
        // A mount point that is only a string prefix is not a parent directory.
        let tricky = "/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /var/lib/cont xfs rw,prjquota 0 0\n";
        assert!(disk_quota_support(tricky, "/var/lib/containers/storage", "overlay").is_err());
    }

    /// A stand-in `podman` whose builds fail with Podman's "layer not known" store race the
    /// first `races` times (or with an ordinary RUN failure when `races` is "run"), counting calls.
    fn stand_in(dir: &Path, races: &str) -> Podman {
        use std::os::unix::fs::PermissionsExt;
        let program = dir.join("podman");
        let count = dir.join("builds");
        std::fs::write(
            &program,
            format!(
                r#"#!/bin/sh
case "$1" in
network) exit 0 ;;
build)
  n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}
  echo "STEP 1/2: FROM base"
  if [ "{races}" = flood ]; then head -c 33554432 /dev/zero | tr '\0' x; printf '\nafter\n'; exit 0; fi
  if [ "{races}" = run ]; then echo "Error: building at STEP \"RUN false\": exit status 1" >&2; exit 1; fi
  if [ $n -le {races} ]; then
    echo "Error: checking if cached image exists from a previous build: getting top layer info: layer not known" >&2
    exit 125
  fi
  echo "COMMIT" ;;
esac
"#,
                count = count.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        Podman {
            settings: PodmanSettings {
                program,
                runtime: None,
                ulimits: Vec::new(),
                build_network: "wisehosting-build".into(),
                disk_quota: "unsupported: test".into(),
                init: false,
            },
        }
    }

    async fn build_with(races: &str) -> (Result<(), RuntimeError>, u32, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let podman = stand_in(dir.path(), races);
        let mut lines = Vec::new();
        let result = podman
            .build(
                &BuildSpec {
                    context: dir.path(),
                    dockerfile: None,
                    tag: "t",
                    labels: &[],
                    memory_mb: 256,
                    cpus: 1.0,
                    timeout: Duration::from_secs(30),
                },
                |l| lines.push(l.to_owned()),
            )
            .await;
        let builds = std::fs::read_to_string(dir.path().join("builds")).unwrap();
        (result, builds.trim().parse().unwrap(), lines)
    }

    #[tokio::test]
    async fn a_build_raced_by_an_image_removal_is_built_again() {
        let (result, builds, lines) = build_with("2").await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(builds, 3);
        assert_eq!(lines.iter().filter(|l| l.contains("building again")).count(), 2);
        assert_eq!(lines.last().map(String::as_str), Some("COMMIT"));
    }

    #[tokio::test]
    async fn store_races_are_retried_a_bounded_number_of_times() {
        let (result, builds, _) = build_with("99").await;
        assert_eq!(builds, BUILD_ATTEMPTS);
        let Err(RuntimeError::Failed { output, .. }) = result else { panic!("{result:?}") };
        assert!(output.ends_with("layer not known"), "{output}");
    }

    #[tokio::test]
    async fn an_ordinary_build_failure_is_not_retried() {
        let (result, builds, _) = build_with("run").await;
        assert_eq!(builds, 1);
        assert!(matches!(result, Err(RuntimeError::Failed { .. })), "{result:?}");
    }

    #[tokio::test]
    async fn a_build_printing_without_newlines_is_read_in_bounded_lines() {
        // 32 MiB on one line, as a tenant's RUN step can print it.
        let (result, _, lines) = build_with("flood").await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(lines.len(), 3, "{:?}", lines.iter().map(String::len).collect::<Vec<_>>());
        assert!(lines[1].len() <= MAX_LINE + crate::lines::TRUNCATED.len());
        assert!(lines[1].ends_with(crate::lines::TRUNCATED));
        assert_eq!(lines[2], "after");
    }

    #[test]
    fn only_podmans_own_final_error_counts_as_a_store_race() {
        assert!(is_storage_race("STEP 1/2: FROM x\nError: committing container for step {}: creating image \"ab\": layer not known\n"));
        assert!(!is_storage_race(
            "layer not known\nError: building at STEP \"RUN x\": exit status 1"
        ));
        assert!(!is_storage_race("echo Error: layer not known"));
        assert!(!is_storage_race(""));
    }

    #[test]
    fn disk_usage_is_read_from_the_writable_layer_size() {
        let out = r#"[{"Id":"aaa","Size":{"rootFsSize":1984580,"rwSize":12}},
                      {"Id":"bbb","Size":null},{"Id":"ccc"},{"Size":{"rwSize":5}}]"#;
        assert_eq!(parse_disk_usage(out), [("aaa".to_owned(), 12)].into());
        assert!(parse_disk_usage("not json").is_empty());
    }
}
