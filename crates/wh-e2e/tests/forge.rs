//! A connected provider end to end: a private repository on the fake forge (served over TLS
//! by `git http-backend`, cloned only with a valid token), an app made from it through the
//! API, a signed push delivered by the forge to the hook it registered, the pushed commit
//! built by the real worker with Podman and live through wh-proxy, and the deploy's state
//! reported back to the forge as the commit's status; then a pull request's preview, live at
//! its own name, and gone once the request is merged. Real Postgres, git, Podman, sockets.

use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wh_control_plane::gitproviders::Provider;
use wh_control_plane::testing::fixtures;
use wh_control_plane::testing::forge::{self, FakeForge, FakeRepo};
use wh_e2e::{app_repo, git, wait_state};

fn commit(repo: &std::path::Path, page: &str) -> String {
    std::fs::write(repo.join("index.html"), page).unwrap();
    git(repo, &["-c", "user.email=t@example.test", "-c", "user.name=Tess", "commit", "-qam", page]);
    let out = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(repo).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A TLS front for the forge on 127.0.0.1 (its certificate written to `ca`): git clones over
/// https only.
async fn tls_front(forge: &FakeForge, ca: &std::path::Path) -> u16 {
    let (server, pem) = wh_testkit::tls::self_signed(&["127.0.0.1"]);
    std::fs::write(ca, pem).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = front.local_addr().unwrap().port();
    let upstream = forge.addr;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = front.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_a_connected_private_repository_goes_live_and_is_reported_back() {
    let wh_e2e::Start { base, db, .. } = wh_e2e::start().await;
    let pool = db.pool.clone();
    let stop = CancellationToken::new();
    let forge = FakeForge::start(3600).await;
    let certs = tempfile::tempdir().unwrap();
    let ca = certs.path().join("forge-ca.pem");
    let https = tls_front(&forge, &ca).await;
    forge.set_https_port(https);
    // The worker's git trusts the forge's certificate as a self-managed forge's CA would be.
    std::env::set_var("GIT_SSL_CAINFO", &ca);
    let providers = vec![forge.config(Provider::Github)];
    let platform =
        wh_e2e::platform_with_forges(&pool, Duration::from_secs(5), providers, &stop).await;
    let (_, bearer) = fixtures::user_with_token(&pool, "forge@example.test").await;

    let repo = app_repo(&base, "<h1>v1</h1>", true);
    forge.add_repo(FakeRepo {
        provider: Provider::Github,
        full_name: "tess/shop".into(),
        private: true,
        default_branch: "main".into(),
        dir: Some(repo.path().to_owned()),
    });
    let clone_url = format!("https://127.0.0.1:{https}/github/git/tess/shop.git");
    let anonymous = Command::new("git")
        .args(["ls-remote", &clone_url])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(!anonymous.status.success(), "the private repository must not clone without a token");

    // Connect GitHub as the user (the forge approves at once).
    let (status, started) =
        platform.api(&bearer, "POST", "/api/v1/git/github/connect", serde_json::json!(null)).await;
    assert_eq!(status, 201, "{started}");
    let approved =
        wh_testkit::http::get(started["authorize_url"].as_str().unwrap(), &[]).await.unwrap();
    let back =
        wh_testkit::http::get(approved.headers["location"].to_str().unwrap(), &[]).await.unwrap();
    assert_eq!(back.status, 303, "{}", back.text());

    let (status, app) = platform
        .api(
            &bearer,
            "POST",
            "/api/v1/apps",
            serde_json::json!({"name": "shop", "repo": "github:tess/shop", "port": 8000}),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["repo_url"], clone_url.as_str());

    // Two commits land; the push names the first, which is what must go live.
    let pushed = commit(repo.path(), "<h1>v2, pushed</h1>");
    commit(repo.path(), "<h1>v3, not pushed</h1>");
    let (event, body) = forge::push_event(Provider::Github, "main", &pushed);
    let answers = forge.deliver(Provider::Github, "tess/shop", event, "e2e-push-1", &body).await;
    assert_eq!(answers.len(), 1, "one hook was registered");
    assert_eq!(answers[0].0, 202, "{}", answers[0].1);
    let outcome: serde_json::Value = serde_json::from_str(&answers[0].1).unwrap();
    let deployment = outcome["deployments"][0].as_i64().unwrap();
    let (state, error) =
        wait_state(&pool, deployment, &["live", "failed"], Duration::from_secs(180)).await;
    assert_eq!(state, "live", "{error:?}");
    let page = wh_testkit::eventually(
        Duration::from_secs(10),
        "the pushed commit answers through wh-proxy",
        async || {
            let r = wh_e2e::through_proxy(&platform, "shop", "/").await.ok()?;
            (r.status == 200 && r.text().contains("v2, pushed")).then(|| r.text())
        },
    )
    .await;
    assert!(!page.contains("v3"), "{page}");

    // It cloned with the connection's token, and the forge heard how it went.
    let clones = forge.clones();
    assert!(
        clones
            .iter()
            .any(|(_, r, user)| r == "tess/shop" && user.as_deref() == Some("x-access-token")),
        "{clones:?}"
    );
    let target = format!("http://{}/deployments/{deployment}", platform.cp);
    let forge_ref = forge.clone();
    let reported = wh_testkit::eventually(
        Duration::from_secs(10),
        "the success status reaches the forge",
        || {
            let (statuses, sha) = (forge_ref.statuses(), pushed.clone());
            async move { statuses.into_iter().find(|s| s.state == "success" && s.sha == sha) }
        },
    )
    .await;
    assert_eq!(reported.target_url, target);
    assert!(forge.statuses().iter().any(|s| s.state == "pending"), "{:?}", forge.statuses());

    // A pull request gets a preview of its own, live through the proxy, gone once merged.
    let (status, _) = platform
        .api(&bearer, "PATCH", "/api/v1/apps/shop", serde_json::json!({"previews": true}))
        .await;
    assert_eq!(status, 200);
    git(repo.path(), &["checkout", "-q", "-b", "cart"]);
    let head = commit(repo.path(), "<h1>cart preview</h1>");
    let (event, body) = forge::pull_event(Provider::Github, 7, true, "cart", "main", &head);
    let answers = forge.deliver(Provider::Github, "tess/shop", event, "e2e-pr-open", &body).await;
    assert_eq!(answers[0].0, 202, "{}", answers[0].1);
    let outcome: serde_json::Value = serde_json::from_str(&answers[0].1).unwrap();
    let preview = outcome["deployments"][0].as_i64().unwrap();
    let (state, error) =
        wait_state(&pool, preview, &["live", "failed"], Duration::from_secs(180)).await;
    assert_eq!(state, "live", "{error:?}");
    wh_testkit::eventually(
        Duration::from_secs(10),
        "the preview answers through wh-proxy",
        async || {
            let r = wh_e2e::through_proxy(&platform, "pr-7-shop", "/").await.ok()?;
            (r.status == 200 && r.text().contains("cart preview")).then_some(())
        },
    )
    .await;
    let main = wh_e2e::through_proxy(&platform, "shop", "/").await.unwrap();
    assert!(main.text().contains("v2, pushed"), "the app itself is untouched: {}", main.text());
    let (event, body) = forge::pull_event(Provider::Github, 7, false, "cart", "main", &head);
    let answers = forge.deliver(Provider::Github, "tess/shop", event, "e2e-pr-close", &body).await;
    assert!(answers[0].1.contains("removed"), "{}", answers[0].1);
    wh_testkit::eventually(Duration::from_secs(10), "the preview's route is gone", async || {
        let r = wh_e2e::through_proxy(&platform, "pr-7-shop", "/").await.ok()?;
        (r.status == 404).then_some(())
    })
    .await;
    stop.cancel();
}
