//! Per-app disk limits on a host whose storage looks able to enforce them: a real btrfs (a
//! loop-mounted image file) under Podman's btrfs driver, through `CONTAINERS_STORAGE_CONF`.
//! Whatever the probe decides, an app container must run as the worker would start it, and a
//! limit the worker claims must hold. (The mount table alone says "btrfs"; Debian 12's Podman
//! refuses `--storage-opt size` there, which failed every deploy until the probe asked Podman.)
//!
//! Needs root, loop devices and `mkfs.btrfs` (btrfs-progs; `cargo xtask test` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wh_worker::runtime::{Podman, PodmanSettings, RunSpec};

/// The loop mount, lazily unmounted when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A busybox image whose command keeps the container up.
fn import_busybox(image: &str, dir: &Path) {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "dd", "sleep", "rm"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let tar = dir.join("rootfs.tar");
    run("tar", &["-C", root.to_str().unwrap(), "-cf", tar.to_str().unwrap(), "."]).unwrap();
    run(
        "podman",
        &["import", "--change", "CMD [\"sleep\", \"300\"]", tar.to_str().unwrap(), image],
    )
    .unwrap();
}

#[test]
fn an_app_container_runs_on_btrfs_and_a_claimed_disk_limit_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (img, mnt) = (dir.path().join("btrfs.img"), dir.path().join("mnt"));
    std::fs::File::create(&img).unwrap().set_len(512 << 20).unwrap();
    run("mkfs.btrfs", &["-q", img.to_str().unwrap()])
        .expect("mkfs.btrfs (apt-get install btrfs-progs)");
    std::fs::create_dir(&mnt).unwrap();
    if let Err(e) = run("mount", &["-o", "loop", img.to_str().unwrap(), mnt.to_str().unwrap()]) {
        // Not a failure of ours: this machine cannot loop-mount (no root, no loop devices).
        eprintln!("SKIPPED: cannot loop-mount a btrfs image here: {e}");
        return;
    }
    let _mount = Mount(mnt.clone());
    let conf = dir.path().join("storage.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"btrfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            mnt.join("storage").display(),
            dir.path().join("run").display()
        ),
    )
    .unwrap();
    // Before any other thread exists: every Podman this process starts uses that storage.
    std::env::set_var("CONTAINERS_STORAGE_CONF", &conf);
    assert_eq!(
        run("podman", &["info", "--format", "{{.Store.GraphDriverName}}"]).unwrap().trim(),
        "btrfs"
    );
    import_busybox("localhost/wh-quota-test:1", dir.path());

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let settings = PodmanSettings::probe().await.unwrap();
        // The mount table alone says "btrfs"; the probe asked Podman, which may disagree.
        let quota = settings.disk_quota.clone();
        assert!(
            quota == "btrfs"
                || quota.starts_with("unsupported: the storage is btrfs, but Podman refuses"),
            "{quota}"
        );
        let podman = Podman { settings };
        // As the agent starts an app: the plan's disk limit only when the probe said so.
        let extra_args = if podman.settings.disk_quota_enabled() {
            vec!["--storage-opt".to_owned(), "size=32M".to_owned()]
        } else {
            Vec::new()
        };
        let id = podman
            .run(&RunSpec {
                name: format!("wh-quota-{}", std::process::id()),
                image: "localhost/wh-quota-test:1".into(),
                memory_mb: 64,
                cpus: 0.5,
                pids_limit: 100,
                extra_args,
                ..RunSpec::default()
            })
            .await
            .unwrap_or_else(|e| panic!("the app container did not start ({quota}): {e}"));
        let write = Command::new("podman")
            .args(["exec", &id, "dd", "if=/dev/zero", "of=/fill", "bs=1M", "count=64"])
            .output()
            .unwrap();
        if podman.settings.disk_quota_enabled() {
            assert!(!write.status.success(), "64 MiB written past a 32 MiB limit");
        } else {
            assert!(write.status.success(), "{}", String::from_utf8_lossy(&write.stderr));
        }
        podman.remove(&id, Duration::ZERO).await.unwrap();
    });
    let _ = run("podman", &["rmi", "-f", "localhost/wh-quota-test:1"]);
}
