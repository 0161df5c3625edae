//! Interoperability of the webhook signature: the Standard Webhooks project's own npm package
//! (`standardwebhooks`, installed with the dashboard's locked dev dependencies) verifies a
//! delivery signed by our code, with one secret and during a rotation, and refuses a tampered
//! body. Needs `node` and `cd dashboard && npm ci` (`cargo xtask test` does it).

use std::path::Path;
use std::process::Command;

use wh_control_plane::webhooks::signature;

fn verify_with_npm(secret: &str, headers: &[(&str, String)], body: &str) -> (bool, String) {
    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboard");
    assert!(
        dashboard.join("node_modules/standardwebhooks").is_dir(),
        "the dashboard's npm packages are missing: cd dashboard && npm ci (cargo xtask test does it)"
    );
    let script = r#"
        const { Webhook } = require('standardwebhooks');
        const [secret, headers, body] = [process.env.SECRET, JSON.parse(process.env.HEADERS), process.env.BODY];
        try { new Webhook(secret).verify(body, headers); console.log('verified'); }
        catch (e) { console.log('refused: ' + e.message); process.exitCode = 3; }
    "#;
    let headers: serde_json::Map<String, serde_json::Value> =
        headers.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(v.clone()))).collect();
    let out = Command::new("node")
        .arg("-e")
        .arg(script)
        .current_dir(&dashboard)
        .env("SECRET", secret)
        .env("HEADERS", serde_json::Value::Object(headers).to_string())
        .env("BODY", body)
        .output()
        .expect("node runs");
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

#[test]
fn the_standard_webhooks_package_verifies_our_deliveries() {
    let (old, new) = (signature::new_secret(), signature::new_secret());
    let body = r#"{"type":"deployment.succeeded","timestamp":"2026-12-01T21:00:00Z","data":{"app":"shop"}}"#;
    let now = wh_control_plane::now_ms() / 1000;
    let (k_old, k_new) = (signature::key(&old).unwrap(), signature::key(&new).unwrap());
    let one = signature::headers("msg_2hJ7x9", now, body.as_bytes(), &[&k_new]);
    let (ok, said) = verify_with_npm(&new, &one, body);
    assert!(ok, "{said}");
    // During a rotation, a receiver holding either secret verifies the delivery.
    let both = signature::headers("msg_2hJ7xA", now, body.as_bytes(), &[&k_old, &k_new]);
    for secret in [&old, &new] {
        let (ok, said) = verify_with_npm(secret, &both, body);
        assert!(ok, "{said}");
    }
    // A changed body is refused by the package too.
    let (ok, said) = verify_with_npm(&new, &one, &body.replace("shop", "shoq"));
    assert!(!ok && said.contains("refused"), "{said}");
}

/// A delivery the dispatcher really made (captured by a stand-in receiver) verifies with the
/// npm package as it arrived: the headers and the exact body bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_delivery_verifies_with_the_standard_webhooks_package() {
    use std::collections::HashMap;
    use std::sync::Arc;
    use wh_control_plane::testing::{
        fixtures, standin::StandIn, Options, Outbound, TestControlPlane,
    };
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let (_, bearer) = fixtures::user_with_token(&db.pool, "interop@example.test").await;
    let receiver = StandIn::https(&["receiver.example.test"]).await;
    let resolver = wh_control_plane::outbound::resolve::Fixed(HashMap::from([(
        "receiver.example.test".to_owned(),
        receiver.addr,
    )]));
    let outbound = Outbound::loopback(Arc::new(resolver), receiver.pem.as_deref());
    let cp =
        TestControlPlane::start(&db.pool, Options { outbound: Some(outbound), ..Options::bare() })
            .await;
    let (_, created) = cp
        .call(
            &bearer,
            "POST",
            "/api/v1/webhooks",
            Some(serde_json::json!({"url": "https://receiver.example.test/in"})),
        )
        .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["target"]["id"].as_i64().unwrap();
    let (status, _) = cp.call(&bearer, "POST", &format!("/api/v1/webhooks/{id}/test"), None).await;
    assert_eq!(status, 200);
    let got = receiver.requests().remove(0);
    let headers: Vec<(&str, String)> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .iter()
        .map(|h| (*h, got.header(h).unwrap().to_owned()))
        .collect();
    let body = String::from_utf8(got.body.clone()).unwrap();
    let (ok, said) = verify_with_npm(&secret, &headers, &body);
    assert!(ok, "{said}");
    let (ok, _) = verify_with_npm(&secret, &headers, &body.replace("webhook.test", "webhook.tesu"));
    assert!(!ok, "a changed body verifies");
}
