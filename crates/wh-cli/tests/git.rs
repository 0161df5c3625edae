//! `wh git` and `wh apps create --repo provider:owner/name`, the real binary against a control
//! plane in this process and the fake forge: connect (the address printed, the forge approves,
//! `wh` sees the connection), list, repositories, an app from one (its webhook registered),
//! disconnect.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use wh_control_plane::gitproviders::Provider;
use wh_control_plane::testing::forge::{FakeForge, FakeRepo};
use wh_control_plane::testing::{fixtures, Options, TestControlPlane};

const WH: &str = env!("CARGO_BIN_EXE_wh");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_list_pick_a_repository_and_disconnect() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let forge = FakeForge::start(3600).await;
    let options = Options {
        scheduler: None,
        git_providers: vec![forge.config(Provider::Gitlab)],
        ..Options::default()
    };
    let cp = TestControlPlane::start(&db.pool, options).await;
    let (_, bearer) = fixtures::user_with_token(&db.pool, "cli-git@example.test").await;
    let token = bearer.strip_prefix("Bearer ").unwrap().to_owned();
    let config = tempfile::tempdir().unwrap();
    let wh = |args: &[&str]| {
        let mut c = Command::new(WH);
        c.args(args)
            .env("WH_API_URL", cp.url())
            .env("WH_TOKEN", &token)
            .env("WH_CONFIG_DIR", config.path());
        c
    };
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };

    // `wh git connect` prints where to authorize and waits until the provider sends us back.
    let mut child = wh(&["git", "connect", "gitlab"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::task::spawn_blocking(move || {
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.trim().starts_with("http").then(|| l.trim().to_owned()))
            .expect("an authorize address is printed");
        (url, lines)
    });
    let (url, lines) = tokio::time::timeout(Duration::from_secs(30), url).await.unwrap().unwrap();
    assert!(url.starts_with(&forge.config(Provider::Gitlab).web_url), "{url}");
    let approved = wh_testkit::http::get(&url, &[]).await.unwrap();
    let callback = approved.headers["location"].to_str().unwrap().to_owned();
    let back = wh_testkit::http::get(&callback, &[]).await.unwrap();
    assert_eq!(back.status, 303, "{}", back.text());
    let rest = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        (status, lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"))
    });
    let (status, rest) =
        tokio::time::timeout(Duration::from_secs(30), rest).await.unwrap().unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("connected gitlab as tess"), "{rest}");

    let out = wh(&["git", "list"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let listed = text(&out);
    assert!(listed.contains("gitlab") && listed.contains("tess"), "{listed}");
    let id = listed.split_whitespace().next().unwrap().to_owned();

    forge.add_repo(FakeRepo {
        provider: Provider::Gitlab,
        full_name: "tess/shop".into(),
        private: true,
        default_branch: "main".into(),
        dir: None,
    });
    let out = wh(&["git", "repos", &id, "--search", "shop"]).output().unwrap();
    assert!(text(&out).contains("tess/shop") && text(&out).contains("private"), "{}", text(&out));

    let out = wh(&["apps", "create", "shop", "--repo", "gitlab:tess/shop", "--port", "3000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(forge.hooks().len(), 1, "the webhook is registered");

    // An app's repository at a provider not connected is refused, with what to do.
    let out = wh(&["apps", "create", "other", "--repo", "github:tess/x"]).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("github"), "{}", text(&out));

    let out = wh(&["git", "disconnect", &id]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("webhooks removed: 1"), "{}", text(&out));
    assert!(forge.hooks().is_empty());
    let out = wh(&["git", "list"]).output().unwrap();
    assert!(text(&out).contains("no git providers connected"), "{}", text(&out));
}
