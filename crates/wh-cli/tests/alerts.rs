//! `wh alerts rules|set|mute|list` and `wh usage`, the real binary against a control plane in this process.

use std::process::Command;

use wh_control_plane::testing::{fixtures, Options, TestControlPlane};

const WH: &str = env!("CARGO_BIN_EXE_wh");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_shown_changed_and_muted_from_the_terminal() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let cp =
        TestControlPlane::start(&db.pool, Options { scheduler: None, ..Options::default() }).await;
    let (user, bearer) = fixtures::user_with_token(&db.pool, "cli-alerts@example.test").await;
    fixtures::app(&db.pool, user, "shop").insert().await;
    let config = tempfile::tempdir().unwrap();
    let wh = |args: &[&str]| {
        let out = Command::new(WH)
            .args(args)
            .env("WH_API_URL", cp.url())
            .env("WH_TOKEN", bearer.strip_prefix("Bearer ").unwrap())
            .env("WH_CONFIG_DIR", config.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, rules) = wh(&["alerts", "rules", "-a", "shop"]);
    assert_eq!(code, Some(0), "{rules}");
    assert!(
        rules.contains("cpu")
            && rules.contains("threshold 80")
            && rules.contains("deployment_failed"),
        "{rules}"
    );
    let (code, set) =
        wh(&["alerts", "set", "cpu", "-a", "shop", "--threshold", "70", "--for", "120", "--off"]);
    assert_eq!(code, Some(0), "{set}");
    assert!(set.contains("threshold 70, for 120s") && set.ends_with("off\n"), "{set}");
    let (code, bad) = wh(&["alerts", "set", "cpu", "-a", "shop", "--for", "45"]);
    assert_eq!(code, Some(65), "invalid input: {bad}");
    assert!(bad.contains("multiple of 30"), "{bad}");
    let (code, muted) = wh(&["alerts", "mute", "memory", "-a", "shop", "--minutes", "15"]);
    assert!(code == Some(0) && muted.contains("muted until"), "{muted}");
    let (code, list) = wh(&["alerts", "list"]);
    assert!(code == Some(0) && list.contains("nothing fires"), "{list}");
    let (code, history) = wh(&["alerts", "list", "-a", "shop"]);
    assert!(code == Some(0) && history.contains("no alerts"), "{history}");

    // Usage: a bucket of one core for five minutes shows as vCPU-hours, per app and by day.
    wh_control_plane::usage::partitions::maintain(
        &db.pool,
        wh_control_plane::now_ms() as f64 / 1000.0,
    )
    .await
    .unwrap();
    sqlx::query("INSERT INTO usage_buckets (app_id, bucket, cpu_seconds, net_tx_bytes) SELECT id, date_bin('5 minutes', now(), TIMESTAMPTZ '2000-01-01'), 300, 2000000000 FROM apps")
        .execute(&db.pool)
        .await
        .unwrap();
    let (code, usage) = wh(&["usage"]);
    assert!(
        code == Some(0)
            && usage.contains("shop")
            && usage.contains("0.083 vCPU-h")
            && usage.contains("2.000 GB out"),
        "{usage}"
    );
    let (code, daily) = wh(&["usage", "-a", "shop", "--days", "7"]);
    assert!(
        code == Some(0) && daily.contains("total (7 days)") && daily.contains("0.083"),
        "{daily}"
    );
}
