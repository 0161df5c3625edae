//! `wh webhooks …` and `wh notify …`, the real binary against a control plane in this process
//! whose dispatcher delivers to a stand-in on loopback.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;

use wh_control_plane::outbound::resolve::Fixed;
use wh_control_plane::testing::standin::{Reply, StandIn};
use wh_control_plane::testing::{fixtures, Options, Outbound, TestControlPlane};

const WH: &str = env!("CARGO_BIN_EXE_wh");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_channels_from_the_terminal() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let receiver = StandIn::https(&["hooks.example.test", "ntfy.sh"]).await;
    let resolver = Fixed(HashMap::from([
        ("hooks.example.test".to_owned(), receiver.addr),
        ("ntfy.sh".to_owned(), receiver.addr),
    ]));
    let outbound = Outbound::loopback(Arc::new(resolver), receiver.pem.as_deref());
    let cp = TestControlPlane::start(
        &db.pool,
        Options { scheduler: None, outbound: Some(outbound), ..Options::default() },
    )
    .await;
    let (user, bearer) = fixtures::user_with_token(&db.pool, "cli-hooks@example.test").await;
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
    let (code, added) = wh(&[
        "webhooks",
        "add",
        "https://hooks.example.test/in",
        "-a",
        "shop",
        "--events",
        "deployment.failed,alert.fired",
    ]);
    assert_eq!(code, Some(0), "{added}");
    assert!(added.contains("app shop; deployment.failed, alert.fired"), "{added}");
    assert!(added.contains("signing secret (shown once): whsec_"), "{added}");
    let id = added.split_whitespace().nth(1).unwrap().to_owned();
    let (code, list) = wh(&["webhooks", "list"]);
    assert!(
        code == Some(0) && list.contains("https://hooks.example.test") && list.contains("[on]"),
        "{list}"
    );
    assert!(!list.contains("whsec_"), "{list}");
    let (code, tested) = wh(&["webhooks", "test", &id]);
    assert!(code == Some(0) && tested.contains("delivered (HTTP 200"), "{tested}");
    assert_eq!(receiver.requests()[0].json()["type"], "webhook.test");
    receiver.reply(Reply::status(500).body("receiver broke"));
    let (code, failed) = wh(&["webhooks", "test", &id]);
    assert!(code != Some(0) && failed.contains("HTTP 500 receiver broke"), "{failed}");
    let (code, deliveries) = wh(&["webhooks", "deliveries", &id]);
    assert!(
        code == Some(0) && deliveries.contains("webhook.test") && deliveries.contains("HTTP 500"),
        "{deliveries}"
    );
    let (code, rotated) = wh(&["webhooks", "rotate", &id]);
    assert!(
        code == Some(0)
            && rotated.contains("new signing secret")
            && rotated.contains("also signs until"),
        "{rotated}"
    );
    let (code, removed) = wh(&["webhooks", "remove", &id]);
    assert!(code == Some(0) && removed.contains("removed"), "{removed}");

    let (code, bad) = wh(&["notify", "add", "telegram://123:abc@telegram"]);
    assert_eq!(code, Some(65), "invalid input: {bad}");
    assert!(bad.contains("no chats"), "{bad}");
    let (code, added) = wh(&["notify", "add", "ntfy://ntfy.sh/wh-alerts"]);
    assert!(code == Some(0) && added.contains("ntfy://ntfy.sh (all apps;"), "{added}");
    let id = added.split_whitespace().nth(1).unwrap().to_owned();
    let (code, tested) = wh(&["notify", "test", &id]);
    assert!(code == Some(0) && tested.contains("delivered"), "{tested}");
    let sent = receiver.requests().into_iter().find(|r| r.target == "/wh-alerts").unwrap();
    assert_eq!(sent.header("title"), Some("Test notification"));
    let (code, list) = wh(&["notify", "list"]);
    assert!(code == Some(0) && list.contains("ntfy"), "{list}");
    let (code, _) = wh(&["notify", "remove", &id]);
    assert_eq!(code, Some(0));
    let (code, none) = wh(&["notify", "list"]);
    assert!(code == Some(0) && none.contains("none"), "{none}");
}
