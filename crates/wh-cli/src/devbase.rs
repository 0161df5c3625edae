//! The base image static sites build on in `wh dev`. The production preset uses the official
//! busybox image; a machine without registry access gets a local one instead, imported once from
//! Debian's statically linked busybox (`busybox-static`): every applet as a symlink, `httpd`
//! included.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

const LOCAL: &str = "localhost/wh-dev-busybox:1";
const BUSYBOX: &str = "/bin/busybox";

async fn image_exists(name: &str) -> bool {
    Command::new("podman")
        .args(["image", "exists", name])
        .stdin(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Why the dev base image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DevBaseError {
    #[error("preparing the dev base image: {0}")]
    Io(std::io::Error),
    #[error("cannot import the dev base image from /bin/busybox")]
    Import,
}

/// The image for the static preset: the official one if present, else the local import.
pub async fn static_base() -> Result<String, DevBaseError> {
    let official = wh_worker::frameworks::BaseImages::default().static_site;
    if image_exists(&official).await {
        return Ok(official);
    }
    if image_exists(LOCAL).await {
        return Ok(LOCAL.to_owned());
    }
    if !Path::new(BUSYBOX).is_file() {
        // Podman pulls the official image at the first build (needs registry access).
        return Ok(official);
    }
    import().await.map(|()| LOCAL.to_owned())
}

async fn import() -> Result<(), DevBaseError> {
    let io = DevBaseError::Io;
    // Removed when dropped, also when a step below fails.
    let dir = tempfile::Builder::new().prefix("wh-dev-base-").tempdir().map_err(io)?;
    let root = dir.path().join("rootfs");
    for d in ["bin", "etc", "tmp", "www"] {
        std::fs::create_dir_all(root.join(d)).map_err(io)?;
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).map_err(io)?;
    let list = Command::new(BUSYBOX).arg("--list").output().await.map_err(io)?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if !applet.is_empty() && applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).map_err(io)?;
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").map_err(io)?;
    std::fs::write(root.join("etc/group"), "root:x:0:\n").map_err(io)?;
    let tar = dir.path().join("rootfs.tar");
    let packed = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .await
        .map_err(io)?;
    let imported = Command::new("podman")
        .args(["import", "--change", "ENV PATH=/bin", "--change", "CMD [\"/bin/sh\"]"])
        .arg(&tar)
        .arg(LOCAL)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .map_err(io)?;
    drop(dir);
    if packed.success() && imported.success() {
        Ok(())
    } else {
        Err(DevBaseError::Import)
    }
}
