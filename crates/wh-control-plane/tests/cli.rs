//! The operator commands of the real binary against the testkit's Postgres.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_wh-control-plane");

#[tokio::test]
async fn workers_create_rotate_disable_and_config_errors() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env_remove("WH_JWT_SECRET")
            .output()
            .unwrap()
    };

    let out = run(&["workers", "create", "--name", "cli-1", "--mesh-ip", "10.50.0.31"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout
        .split_whitespace()
        .find(|w| w.starts_with("whk_"))
        .expect("the key is printed")
        .to_owned();
    let found = wh_control_plane::workers::find_by_key(&db.pool, &key)
        .await
        .unwrap()
        .expect("the printed key works");
    assert_eq!(found.name, "cli-1");
    assert_eq!(found.mesh_ip, "10.50.0.31");

    let out = run(&["workers", "rotate-key", "--name", "cli-1"]);
    assert!(out.status.success());
    let new_key = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("whk_"))
        .unwrap()
        .to_owned();
    assert!(
        wh_control_plane::workers::find_by_key(&db.pool, &key).await.unwrap().is_none(),
        "old key still works"
    );
    assert!(wh_control_plane::workers::find_by_key(&db.pool, &new_key).await.unwrap().is_some());

    assert!(run(&["workers", "disable", "--name", "cli-1"]).status.success());
    assert!(
        !wh_control_plane::workers::find_by_key(&db.pool, &new_key).await.unwrap().unwrap().enabled
    );
    assert!(!run(&["workers", "disable", "--name", "nobody"]).status.success());

    // serve without a JWT secret: exit 64 naming the variable.
    let out = run(&["serve"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("WH_JWT_SECRET"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["serve"])
        .env("DATABASE_URL", &db.url)
        .env("WH_JWT_SECRET", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("short"), "the secret was printed");
}

#[tokio::test]
async fn serve_splits_public_and_internal_listeners_and_stops_on_sigterm() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let (public, internal) = (wh_testkit::net::free_port(), wh_testkit::net::free_port());
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("WH_LISTEN", format!("127.0.0.1:{public}"))
        .env("WH_INTERNAL_LISTEN", format!("127.0.0.1:{internal}"))
        .env("WH_JWT_SECRET", "0123456789abcdef0123456789abcdef")
        .env("WH_PROXY_TOKEN", "proxy-token-for-the-test")
        .env("WH_MASTER_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .spawn()
        .unwrap();
    let lo = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
    wh_testkit::net::wait_for_port(lo(public), "public", std::time::Duration::from_secs(20))
        .unwrap();
    wh_testkit::net::wait_for_port(lo(internal), "internal", std::time::Duration::from_secs(20))
        .unwrap();
    async fn get(port: u16, path: &str, auth: Option<&str>) -> u16 {
        let url = format!("http://127.0.0.1:{port}{path}");
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
        wh_testkit::http::request("GET", &url, None, &[], &headers).await.unwrap().status
    }
    assert_eq!(get(public, "/healthz", None).await, 200);
    assert_eq!(
        get(public, "/v1/traefik/proxy-config", None).await,
        404,
        "machine endpoints must not be public"
    );
    assert_eq!(get(internal, "/v1/traefik/proxy-config", None).await, 401);
    assert_eq!(
        get(internal, "/v1/traefik/proxy-config", Some("Bearer proxy-token-for-the-test")).await,
        200
    );
    assert_eq!(
        get(internal, "/api/v1/me", None).await,
        404,
        "the user API must not be on the mesh listener"
    );
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}
