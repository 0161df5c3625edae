//! The newcomer's path, with the real binaries: `wh dev` (its own embedded Postgres, the control
//! plane, a worker with Podman, wh-proxy), then `wh deploy --path examples/hello`, the page
//! through the proxy at <slug>.localhost, logs, env vars, a clear error for bad input, deleting
//! the app (its container goes), Ctrl-C stopping everything, and a restart serving again.

#![cfg(feature = "dev")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use wh_testkit::podman::{Podman as TestPodman, LABEL};

const WH: &str = env!("CARGO_BIN_EXE_wh");

/// Processes started by the worker of process `pid` (builds and log followers carry
/// `WH_BUILD_OWNER=<pid>:<start time>`).
fn owned_by(pid: u32) -> Vec<u32> {
    let mark = format!("WH_BUILD_OWNER={pid}:");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v.starts_with(mark.as_bytes())))
        })
        .collect()
}

/// `wh dev` as a child process, stopped as Ctrl-C would when dropped.
struct Dev {
    child: Child,
    proxy: String,
}

impl Dev {
    /// SIGTERM, then up to 60 s for a clean exit (SIGKILL after that).
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(s)) = self.child.try_wait() {
            return Some(s);
        }
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.stop();
    }
}

fn examples_hello() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello")
}

fn start_dev(dir: &Path, run_id: &str) -> (Dev, String) {
    let (proxy, api) = (wh_testkit::net::free_port(), wh_testkit::net::free_port());
    let mut child = Command::new(WH)
        .args(["dev", "--proxy-addr", &format!("127.0.0.1:{proxy}")])
        .args(["--api-addr", &format!("127.0.0.1:{api}")])
        .current_dir(dir)
        .env("WH_CONFIG_DIR", dir.join("config"))
        .env("WH_CONTAINER_LABELS", format!("{LABEL}={run_id}"))
        .env_remove("DATABASE_URL")
        // Domain checks stay on loopback (nothing answers there): tests never query the internet.
        .env("WH_DNS_SERVERS", "127.0.0.1:9")
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        banner.push_str(&line);
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (Dev { child, proxy: format!("127.0.0.1:{proxy}") }, banner)
}

fn wh(dir: &Path, args: &[&str]) -> Output {
    Command::new(WH)
        .args(args)
        .current_dir(dir)
        .env("WH_CONFIG_DIR", dir.join("config"))
        .env_remove("WH_API_URL")
        .env_remove("WH_TOKEN")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

async fn get(proxy: &str, host: &str) -> (u16, String) {
    match wh_testkit::http::request(
        "GET",
        &format!("http://{proxy}/"),
        None,
        &[],
        &[("host", host)],
    )
    .await
    {
        Ok(r) => (r.status, r.text()),
        Err(e) => (0, e.to_string()),
    }
}

fn postgres_running(dir: &Path) -> bool {
    // Any process whose command line names this cluster's data directory.
    let data = dir.join(".wh-dev/pg/data").display().to_string();
    std::fs::read_dir("/proc").into_iter().flatten().filter_map(Result::ok).any(|p| {
        std::fs::read(p.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .is_ok_and(|c| c.contains("postgres") && c.contains(&data))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wh_dev_then_wh_deploy_serves_the_example_and_ctrl_c_stops_everything() {
    let kit = TestPodman::get().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let (mut dev, banner) = start_dev(dir, kit.run_id());
    assert!(banner.contains("WiseHosting is running"), "{banner}");
    assert!(banner.contains("admin    admin@wisehosting.localhost / "), "{banner}");
    assert!(banner.contains("worker   connected"), "{banner}");
    let dashboard = banner.lines().find_map(|l| l.trim().strip_prefix("dashboard ")).unwrap();
    let dashboard = dashboard.split_whitespace().next().unwrap().to_owned();
    let (status, page) =
        wh_testkit::http::get(&dashboard, &[]).await.map(|r| (r.status, r.text())).unwrap();
    assert_eq!(status, 200, "{dashboard}: {page}");
    assert!(page.contains("<title>WiseHosting</title>"), "the dashboard answers: {page}");

    // The README's second step.
    let hello = examples_hello();
    let out = wh(dir, &["deploy", "--path", hello.to_str().unwrap()]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("created app hello"), "{said}");
    assert!(said.contains("COPY . /www"), "build output streamed: {said}");
    let port = dev.proxy.rsplit(':').next().unwrap().to_owned();
    assert!(
        said.trim_end().ends_with(&format!("http://hello.localhost:{port}")),
        "ends with the URL: {said}"
    );
    let (status, page) = get(&dev.proxy, "hello.localhost").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Hello from WiseHosting"), "{page}");

    // The user commands.
    let list = wh(dir, &["apps", "list"]);
    assert!(text(&list).contains("hello"), "{}", text(&list));
    let set = wh(dir, &["env", "set", "-a", "hello", "GREETING=hi"]);
    assert!(set.status.success(), "{}", text(&set));
    let env = wh(dir, &["env", "list", "-a", "hello", "--reveal"]);
    assert_eq!(text(&env).trim(), "GREETING=hi");
    let logs = wh(dir, &["logs", "-a", "hello", "-n", "50"]);
    assert!(logs.status.success(), "{}", text(&logs));
    // `wh logs -f` prints the backlog (here the build's lines) and keeps following.
    let mut follow = Command::new(WH)
        .args(["logs", "-f", "-a", "hello", "-n", "5"])
        .current_dir(dir)
        .env("WH_CONFIG_DIR", dir.join("config"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(follow.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("[build]"), "{first}");
    assert!(follow.try_wait().unwrap().is_none(), "wh logs -f keeps following");
    let _ = follow.kill();
    let _ = follow.wait();

    // `wh rollback`: nothing to go back to after one deploy; after a second deploy, back to the
    // first one's image (no build), live again.
    let none = wh(dir, &["rollback", "-a", "hello"]);
    assert_eq!(none.status.code(), Some(64), "{}", text(&none));
    assert!(text(&none).contains("no earlier deployment"), "{}", text(&none));
    let again = wh(dir, &["deploy", "--path", hello.to_str().unwrap()]);
    assert!(again.status.success(), "{}", text(&again));
    let back = wh(dir, &["rollback", "-a", "hello"]);
    let said = text(&back);
    assert!(back.status.success(), "{said}");
    assert!(said.contains("rolling back to deployment "), "{said}");
    assert!(said.contains("reusing the image of deployment "), "{said}");
    assert!(said.trim_end().ends_with(&format!("http://hello.localhost:{port}")), "{said}");

    // `wh login` with the admin the banner printed, into a second configuration.
    let password = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("admin    admin@wisehosting.localhost / "))
        .unwrap()
        .to_owned();
    let api = banner.lines().find_map(|l| l.trim().strip_prefix("API      ")).unwrap();
    let api = api.trim_end_matches("/api/v1").to_owned();
    let other = dir.join("other-config");
    let login = |password: &str| {
        Command::new(WH)
            .args(["login", "--api", &api, "--email", "admin@wisehosting.localhost"])
            .env("WH_CONFIG_DIR", &other)
            .env("WH_PASSWORD", password)
            .output()
            .unwrap()
    };
    let wrong = login("not the password");
    assert_eq!(wrong.status.code(), Some(77), "{}", text(&wrong));
    let ok = login(&password);
    assert!(ok.status.success(), "{}", text(&ok));
    let listed =
        Command::new(WH).args(["apps", "list"]).env("WH_CONFIG_DIR", &other).output().unwrap();
    assert!(text(&listed).contains("hello"), "{}", text(&listed));
    let bad = wh(dir, &["apps", "create", "Bad_Name"]);
    assert_eq!(bad.status.code(), Some(65), "a validation error exits 65: {}", text(&bad));
    assert!(text(&bad).contains("may contain only"), "{}", text(&bad));
    let no_repo = wh(dir, &["deploy", "-a", "hello", "--ref", "main"]);
    assert!(text(&no_repo).contains("no repository"), "{}", text(&no_repo));
    // `wh hooks`: a GitHub webhook's URL and secret; a ping signed with it reaches the app's hook.
    let hook = wh(dir, &["hooks", "add", "github", "-a", "hello"]);
    let said = text(&hook);
    assert!(hook.status.success(), "{said}");
    let url = said.lines().find_map(|l| l.trim().strip_prefix("URL     ")).unwrap().to_owned();
    let secret = said.lines().find_map(|l| l.trim().strip_prefix("secret  ")).unwrap();
    let secret = secret.split_whitespace().next().unwrap().to_owned();
    assert!(url.contains("/api/v1/hooks/github/") && secret.len() == 64, "{said}");
    let ping = br#"{"zen":"Speak like a human."}"#;
    let signature = wh_control_plane::githooks::verify::sign(
        wh_control_plane::githooks::Provider::Github,
        secret.as_bytes(),
        ping,
    );
    let signature = String::from_utf8(signature).unwrap();
    let headers = [
        ("content-type", "application/json"),
        ("x-github-event", "ping"),
        ("x-github-delivery", "dev-1"),
        ("x-hub-signature-256", signature.as_str()),
    ];
    let pong = wh_testkit::http::request("POST", &url, Some(ping.to_vec().into()), &[], &headers)
        .await
        .unwrap();
    assert_eq!(pong.status, 200, "{}", pong.text());
    let hooks = wh(dir, &["hooks", "list", "-a", "hello"]);
    let id = text(&hooks).split_whitespace().next().unwrap_or_default().to_owned();
    assert!(text(&hooks).contains("github") && !text(&hooks).contains("never"), "{}", text(&hooks));
    let removed = wh(dir, &["hooks", "remove", &id, "-a", "hello"]);
    assert!(removed.status.success(), "{}", text(&removed));
    let added = wh(dir, &["domains", "add", "Shop.Example.COM", "-a", "hello"]);
    assert!(added.status.success(), "{}", text(&added));
    assert!(text(&added).contains("_wisehosting.shop.example.com"), "{}", text(&added));
    assert!(text(&added).contains("orange cloud"), "{}", text(&added));
    let listed = wh(dir, &["domains", "list", "-a", "hello"]);
    assert!(text(&listed).contains("shop.example.com") && text(&listed).contains("pending"));
    let invalid = wh(dir, &["domains", "add", "10.0.0.1", "-a", "hello"]);
    assert_eq!(invalid.status.code(), Some(65), "{}", text(&invalid));
    let removed = wh(dir, &["domains", "remove", "shop.example.com", "-a", "hello"]);
    assert!(removed.status.success(), "{}", text(&removed));
    let missing = wh(dir, &["deploy", "--path", dir.join("nope").to_str().unwrap(), "-a", "nope"]);
    assert_eq!(missing.status.code(), Some(64), "{}", text(&missing));

    // Ctrl-C (SIGTERM here): everything stops, the database too; the app keeps its container.
    let pid = dev.child.id();
    assert!(!owned_by(pid).is_empty(), "wh dev follows no app's output");
    let status = dev.stop();
    assert!(status.is_some_and(|s| s.success()), "wh dev did not stop cleanly: {status:?}");
    assert!(!postgres_running(dir), "the dev database is still running");
    // Issue 12, item C24: nothing it started outlives it (its `podman logs -f` followers used
    // to keep running, orphaned).
    assert_eq!(owned_by(pid), Vec::<u32>::new(), "processes of the stopped wh dev still run");

    // A restart serves the app again (the worker reports its container; the control plane adopts
    // it), and deleting the app removes its container.
    let (dev2, banner) = start_dev(dir, kit.run_id());
    assert!(banner.contains("WiseHosting is running"), "{banner}");
    let mut served = (0, String::new());
    wh_testkit::until(Duration::from_secs(10), async || {
        served = get(&dev2.proxy, "hello.localhost").await;
        served.0 == 200
    })
    .await;
    assert_eq!(served.0, 200, "after a restart: {}", served.1);
    let del = wh(dir, &["apps", "delete", "hello"]);
    assert!(del.status.success(), "{}", text(&del));
    let gone = wh_testkit::until(Duration::from_secs(30), async || {
        let ps = Command::new("podman")
            .args(["ps", "-aq", "--filter", "label=wh.app=hello"])
            .args(["--filter", &format!("label={LABEL}={}", kit.run_id())])
            .output()
            .unwrap();
        ps.stdout.iter().all(u8::is_ascii_whitespace)
    });
    let left = || {
        let ps = Command::new("podman")
            .args(["ps", "-a", "--format", "{{.Names}} {{.State}} {{.Labels}}"])
            .args(["--filter", "label=wh.app=hello"])
            .args(["--filter", &format!("label={LABEL}={}", kit.run_id())])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ps.stdout).into_owned()
    };
    assert!(gone.await, "the deleted app's container is still there: {}", left());
    let mut unrouted = (0, String::new());
    wh_testkit::until(Duration::from_secs(10), async || {
        unrouted = get(&dev2.proxy, "hello.localhost").await;
        unrouted.0 == 404
    })
    .await;
    assert_eq!(unrouted.0, 404, "a deleted app's route goes: {}", unrouted.1);
    let mut dev2 = dev2;
    let pid = dev2.child.id();
    assert!(dev2.stop().is_some_and(|s| s.success()));
    // Not even the follower of the deleted app's container (its `podman logs -f` never ends).
    assert_eq!(owned_by(pid), Vec::<u32>::new(), "processes of the stopped wh dev still run");
    assert!(!postgres_running(dir), "the dev database is still running");
}
