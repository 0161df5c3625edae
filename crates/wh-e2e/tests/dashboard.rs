//! The dashboard in a real browser against the real stack: Postgres, the control plane
//! serving `dashboard/dist`, a worker with Podman, and wh-proxy. The browser side is
//! `dashboard/e2e/flow.mjs` (playwright-core driving Debian's Chromium); this test starts the
//! stack, hands the script its addresses and uploads, and fails with the script's output when
//! the script fails. Screenshots of every page land in `target/dashboard-screenshots/`.
//!
//! Needs `node`, the dashboard's npm packages and its build (`cd dashboard && npm ci && npm run
//! build`) and `chromium`; `cargo xtask test` provides all of them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "a dashboard password";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A source archive: a page saying `version`, `$GREETING` in /env.txt, a tick a second on
/// stdout (the runtime logs), busybox httpd on $PORT.
fn upload(base: &str, version: &str, into: &Path) -> PathBuf {
    let containerfile = format!(
        "FROM {base}\nCOPY index.html /www/index.html\nCMD [\"sh\", \"-c\", \"echo $GREETING > /www/env.txt; \
         (while true; do echo tick; sleep 1; done) & exec httpd -f -p $PORT -h /www\"]\n"
    );
    let page = format!("<!doctype html><title>shop</title><h1>shop {version}</h1>\n");
    let archive = wh_wsproto::archive::pack([
        ("Containerfile", containerfile.as_bytes(), false),
        ("index.html", page.as_bytes(), false),
    ])
    .unwrap();
    let path = into.join(format!("shop-{version}.tar.gz"));
    std::fs::write(&path, archive).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_takes_a_user_from_sign_in_to_a_rolled_back_app_and_out() {
    let root = repo_root();
    let dashboard = root.join("dashboard");
    assert!(
        dashboard.join("dist/index.html").is_file()
            && dashboard.join("node_modules/playwright-core").is_dir(),
        "the dashboard is not built: cd dashboard && npm ci && npm run build (cargo xtask test does it)"
    );
    let chromium = std::env::var("WH_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).is_file(), "{chromium} is missing: apt-get install chromium");

    let wh_e2e::Start { base, db, .. } = wh_e2e::start().await;
    let pool = db.pool.clone();
    let stop = CancellationToken::new();
    // A fake forge the browser connects GitHub at (it approves at once), with one repository.
    let forge = wh_control_plane::testing::forge::FakeForge::start(3600).await;
    forge.add_repo(wh_control_plane::testing::forge::FakeRepo {
        provider: wh_control_plane::gitproviders::Provider::Github,
        full_name: "tess/site".into(),
        private: true,
        default_branch: "main".into(),
        dir: None,
    });
    let providers = vec![forge.config(wh_control_plane::gitproviders::Provider::Github)];
    // Webhooks the browser adds are delivered to a receiver on loopback.
    let receiver =
        wh_control_plane::testing::standin::StandIn::https(&["receiver.example.test"]).await;
    let resolver = wh_control_plane::outbound::resolve::Fixed(std::collections::HashMap::from([(
        "receiver.example.test".to_owned(),
        receiver.addr,
    )]));
    let outbound = wh_control_plane::testing::Outbound::loopback(
        std::sync::Arc::new(resolver),
        receiver.pem.as_deref(),
    );
    let platform =
        wh_e2e::platform_with(&pool, Duration::from_secs(2), providers, Some(outbound), &stop)
            .await;
    let (cp, proxy) = (platform.cp, &platform.proxy);
    let email = "admin@dashboard.test";
    wh_control_plane::auth::create_user(&pool, email, PASSWORD, true).await.unwrap();
    let sources = tempfile::tempdir().unwrap();
    let (v1, v2) = (upload(&base, "v1", sources.path()), upload(&base, "v2", sources.path()));
    let shots = root.join("target/dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&shots);

    // Usage recorded as `serve` does, every 2 s instead of every minute (a minute recorded
    // again changes nothing).
    wh_control_plane::usage::partitions::maintain(
        &pool,
        wh_control_plane::now_ms() as f64 / 1000.0,
    )
    .await
    .unwrap();
    let recorder = tokio::spawn({
        let pool = pool.clone();
        async move {
            loop {
                let now = wh_control_plane::now_ms() as f64 / 1000.0;
                let _ = wh_control_plane::usage::record::record(&pool, now).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    });
    // The script runs in its own thread: the stack above keeps serving on this runtime.
    let script = dashboard.join("e2e/flow.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .current_dir(&dashboard)
        .env("WH_URL", format!("http://{cp}"))
        .env("WH_EMAIL", email)
        .env("WH_PASSWORD", PASSWORD)
        .env("WH_PROXY_PORT", proxy.http_addr.port().to_string())
        .env("WH_UPLOAD_V1", &v1)
        .env("WH_UPLOAD_V2", &v2)
        .env("WH_SHOTS", &shots)
        .env("WH_CHROMIUM", &chromium);
    let run = tokio::task::spawn_blocking(move || cmd.output());
    let out = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the browser flow finished within 10 minutes")
        .unwrap()
        .expect("node runs");
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    recorder.abort();
    stop.cancel();
    assert!(
        out.status.success(),
        "the browser flow failed (screenshots in {}):\n{said}",
        shots.display()
    );
    assert!(said.contains("[flow] passed"), "{said}");
    // The browser's "Send test" reached the receiver, signed.
    let tests: Vec<_> =
        receiver.requests().into_iter().filter(|r| r.target == "/hooks/wisehosting").collect();
    assert!(!tests.is_empty(), "no test delivery arrived");
    assert_eq!(tests[0].json()["type"], "webhook.test");
    assert!(tests[0].header("webhook-signature").is_some_and(|s| s.starts_with("v1,")));
    let taken = std::fs::read_dir(&shots).map(|d| d.count()).unwrap_or(0);
    assert!(taken >= 15, "only {taken} screenshots in {}", shots.display());
}
