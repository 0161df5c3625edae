//! Podman for tests: this machine's runtime settings, a local base image, labelled cleanup.
//!
//! No container registry is reachable, so the base image is made here: a rootfs holding Debian's
//! static busybox (`sh`, `httpd` and the usual applets as links) is piped into `podman import`.
//! Every container and image this module creates carries the label `wh.testkit.run=<id>` for this
//! test process; a [`reaper`](crate::reaper) removes all of them when the process exits, and
//! [`Container`] also removes its container on drop.
//!
//! Runtime settings default to what this machine needs (`--runtime runc`, explicit `nofile` and
//! `nproc` ulimits: crun fails on cgroup v1 hybrid hosts) and can be overridden with
//! `WH_PODMAN_RUNTIME` (empty for Podman's default) and `WH_PODMAN_ULIMITS` (space-separated).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crate::process::{run, which};
use crate::reaper;
use crate::{Error, Result};

/// Label key carried by everything the testkit creates.
pub const LABEL: &str = "wh.testkit.run";

/// Where Debian's busybox-static installs its binary.
const BUSYBOX: &str = "/bin/busybox";

/// Podman invocation settings for this machine.
#[derive(Debug, Clone)]
pub struct Podman {
    runtime: Option<String>,
    ulimits: Vec<String>,
    run_id: String,
}

// The first outcome stands for the whole process; an error is handed out again as its text
// (`Error` is not `Clone`).
static PODMAN: OnceLock<Result<Podman>> = OnceLock::new();
static BASE: OnceLock<Result<String>> = OnceLock::new();

impl Podman {
    /// The process-wide instance; registers the cleanup of everything labelled for this process.
    pub fn get() -> Result<&'static Podman> {
        PODMAN.get_or_init(Self::init).as_ref().map_err(|e| Error::Other(e.to_string()))
    }

    fn init() -> Result<Podman> {
        which("podman").ok_or_else(|| Error::Missing {
            program: "podman".into(),
            hint: "apt-get install podman runc".into(),
        })?;
        let runtime = match std::env::var("WH_PODMAN_RUNTIME") {
            Ok(r) if r.is_empty() => None,
            Ok(r) => Some(r),
            Err(_) => Some("runc".to_owned()),
        };
        let ulimits = std::env::var("WH_PODMAN_ULIMITS")
            .unwrap_or_else(|_| "nofile=1024:1024 nproc=1024:1024".into())
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let run_id = format!(
            "{}-{}-{}",
            crate::run_tag(),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        );
        let filter = format!("label={LABEL}={run_id}");
        // Earlier test binaries' image removals must not race this binary's builds.
        let lock = std::env::temp_dir().join("wh-testkit-podman-cleanup.lock");
        reaper::wait_for_reapers(&lock, std::time::Duration::from_secs(120))?;
        reaper::after_exit_holding(
            &format!(
                "podman rm -f -t 0 --filter {f} >/dev/null 2>&1 </dev/null; \
                 podman images -q --filter {f} </dev/null | xargs -r podman rmi -f >/dev/null 2>&1",
                f = reaper::sh_quote(&filter)
            ),
            reaper::shared_lock(&lock)?,
        )?;
        Ok(Podman { runtime, ulimits, run_id })
    }

    /// This process's run id, the value of [`LABEL`] on everything it creates.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// A `podman <sub>` command with the runtime settings that `run` and `build` need.
    pub fn command(&self, sub: &str) -> Command {
        let mut c = Command::new("podman");
        c.arg(sub);
        if matches!(sub, "run" | "build" | "create") {
            if let Some(rt) = &self.runtime {
                c.args(["--runtime", rt]);
            }
            for u in &self.ulimits {
                c.args(["--ulimit", u]);
            }
            c.args(["--label", &format!("{LABEL}={}", self.run_id)]);
        }
        c
    }

    /// The local busybox base image, built once per process; returns its name.
    pub fn base_image(&self) -> Result<String> {
        match BASE.get_or_init(|| self.import_base()) {
            Ok(name) => Ok(name.clone()),
            Err(e) => Err(Error::Other(e.to_string())),
        }
    }

    fn import_base(&self) -> Result<String> {
        if !Path::new(BUSYBOX).is_file() {
            return Err(Error::Missing {
                program: BUSYBOX.into(),
                hint: "apt-get install busybox-static".into(),
            });
        }
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("rootfs");
        for d in ["bin", "etc", "tmp", "www", "proc", "sys", "dev"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        std::fs::copy(BUSYBOX, root.join("bin/busybox"))?;
        let list = run(Command::new(BUSYBOX).arg("--list"))?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
            }
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )?;
        std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
        let tar = dir.path().join("rootfs.tar");
        run(Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg("."))?;
        let name = format!("localhost/wh-testkit-base:{}", self.run_id);
        run(Command::new("podman")
            .arg("import")
            .args(["--change", &format!("LABEL {LABEL}={}", self.run_id)])
            .args(["--change", "ENV PATH=/bin"])
            .args(["--change", "CMD [\"/bin/sh\"]"])
            .arg(&tar)
            .arg(&name))?;
        Ok(name)
    }

    /// The base image under another name, `localhost/<name>-<run id>:1`. Buildah names a
    /// build's working container after its base image, so a build `FROM` this alias has a
    /// working container only this test can have: see [`Podman::working_containers`].
    pub fn base_alias(&self, name: &str) -> Result<String> {
        let alias = format!("localhost/{name}-{}:1", self.run_id);
        run(Command::new("podman").args(["tag", &self.base_image()?, &alias]))?;
        Ok(alias)
    }

    /// The ids of the build working containers (`podman ps --external`) of builds `FROM`
    /// `alias` (from [`Podman::base_alias`]).
    pub fn working_containers(&self, alias: &str) -> Result<Vec<String>> {
        let short = alias.rsplit('/').next().unwrap_or(alias);
        let short = short.split(':').next().unwrap_or(short);
        let prefix = format!("{short}-working-container");
        let out = run(Command::new("podman").args([
            "ps",
            "-a",
            "--external",
            "--format",
            "{{.ID}} {{.Names}}",
        ]))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, name)| name.starts_with(&prefix))
            .map(|(id, _)| id.to_owned())
            .collect())
    }

    /// Builds `context` (with its `Containerfile`) into an image tagged `name`, labelled for cleanup.
    pub fn build(&self, context: &Path, name: &str) -> Result<String> {
        let tag = format!("localhost/{name}:{}", self.run_id);
        run(self.command("build").args(["--network", "none", "-t", &tag]).arg(context))?;
        Ok(tag)
    }

    /// Starts a detached container; `args` go between `run -d` and the image (ports, env, ...).
    pub fn run_detached(&self, args: &[&str], image: &str, cmd: &[&str]) -> Result<Container> {
        let out = run(self.command("run").arg("-d").args(args).arg(image).args(cmd))?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(Container { id })
    }
}

/// A running container, force-removed on drop.
#[derive(Debug)]
pub struct Container {
    /// The container id.
    pub id: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rm", "-f", "-t", "0", &self.id]).output();
    }
}
