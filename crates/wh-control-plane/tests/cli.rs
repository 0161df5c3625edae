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
