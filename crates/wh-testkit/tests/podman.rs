//! Podman with this machine's settings: an image built FROM the local base image answers HTTP.

use std::time::Duration;

use wh_testkit::{http, net, podman::Podman};

#[tokio::test]
async fn image_built_from_base_serves_http_on_a_published_port() {
    let podman = Podman::get().unwrap();
    let base = podman.base_image().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Containerfile"),
        format!("FROM {base}\nRUN mkdir -p /www && echo 'hello from podman' > /www/index.html\nEXPOSE 8000\nCMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/www\"]\n"),
    )
    .unwrap();
    let image = podman.build(ctx.path(), "testkit-hello").unwrap();
    let port = net::free_port();
    let published = format!("127.0.0.1:{port}:8000");
    let container = podman.run_detached(&["-p", &published], &image, &[]).unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let mut last = None;
    let answered =
        wh_testkit::within(Duration::from_secs(10), async || match http::get(&url, &[]).await {
            Ok(r) if r.status == 200 => Some(r),
            other => {
                last = Some(format!("{other:?}"));
                None
            }
        })
        .await;
    let r = answered.unwrap_or_else(|| panic!("no HTTP answer from the container: {last:?}"));
    assert_eq!(r.text().trim(), "hello from podman");
    let labels = std::process::Command::new("podman")
        .args(["inspect", "--format", "{{index .Config.Labels \"wh.testkit.run\"}}", &container.id])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&labels.stdout).trim(), podman.run_id());
}

#[test]
fn dropping_a_container_removes_it() {
    let podman = Podman::get().unwrap();
    let base = podman.base_image().unwrap();
    let c = podman.run_detached(&[], &base, &["sleep", "60"]).unwrap();
    let id = c.id.clone();
    drop(c);
    let out =
        std::process::Command::new("podman").args(["container", "exists", &id]).status().unwrap();
    assert!(!out.success(), "container {id} still exists after drop");
}
