//! Certificate reports from proxies on the real Postgres: matched to the app serving the host,
//! an event only when the host's state changed, hosts no app serves ignored, the endpoint
//! behind the proxy token.

use wh_control_plane::certificates::{record, Recorded, ReportError};
use wh_control_plane::testing::{fixtures, Options, TestControlPlane};
use wh_wsproto::proxy::{CertificateOutcome, CertificateReport};

fn issued(host: &str, not_after: i64) -> CertificateReport {
    CertificateReport { host: host.into(), outcome: CertificateOutcome::Issued { not_after } }
}

fn failed(host: &str, error: &str) -> CertificateReport {
    CertificateReport {
        host: host.into(),
        outcome: CertificateOutcome::Failed { error: error.into() },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_become_events_when_the_state_changes() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let user = fixtures::user(&db.pool, "certs@example.test").await;
    let app = fixtures::app(&db.pool, user, "shop").insert().await;
    sqlx::query("INSERT INTO domains (app_id, hostname, token, status) VALUES ($1, 'www.shop.test', 't', 'verified'), ($1, 'pending.shop.test', 't', 'pending')")
        .bind(app)
        .execute(&db.pool)
        .await
        .unwrap();
    let pool = &db.pool;
    let r = |rep: CertificateReport| async move { record(pool, "route.test", &rep).await.unwrap() };
    assert_eq!(
        r(failed("shop.route.test", "validation failed: connection refused")).await,
        Recorded::Event
    );
    assert_eq!(r(failed("shop.route.test", "validation failed again")).await, Recorded::Unchanged);
    assert_eq!(r(issued("shop.route.test", 1_900_000_000)).await, Recorded::Event);
    assert_eq!(
        r(issued("shop.route.test", 1_900_000_000)).await,
        Recorded::Unchanged,
        "a second proxy"
    );
    assert_eq!(r(issued("shop.route.test", 1_907_776_000)).await, Recorded::Event, "a renewal");
    assert_eq!(r(issued("www.shop.test", 1_900_000_000)).await, Recorded::Event);
    assert_eq!(r(issued("pending.shop.test", 1)).await, Recorded::Unknown, "not verified");
    assert_eq!(r(issued("other.route.test", 1)).await, Recorded::Unknown);
    assert!(matches!(
        record(pool, "route.test", &issued("Evil Host", 1)).await,
        Err(ReportError::Host)
    ));
    let events: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT event_type, payload FROM event_outbox WHERE event_type LIKE 'certificate.%' ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["certificate.failed", "certificate.issued", "certificate.issued", "certificate.issued"]
    );
    assert_eq!(events[0].1["error"], "validation failed: connection refused");
    assert_eq!(events[0].1["app"], "shop");
    assert_eq!(events[2].1["not_after"], 1_907_776_000);
    assert_eq!(events[3].1["hostname"], "www.shop.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_wants_the_proxy_token() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let user = fixtures::user(&db.pool, "certs2@example.test").await;
    fixtures::app(&db.pool, user, "shop").insert().await;
    let cp = TestControlPlane::start(
        &db.pool,
        Options { proxy_token: Some("proxy-token-0123456789".into()), ..Options::bare() },
    )
    .await;
    let body = serde_json::to_value(issued("shop.route.test", 1_900_000_000)).unwrap();
    let (status, _) =
        cp.call("Bearer wrong", "POST", "/v1/traefik/certificates", Some(body.clone())).await;
    assert_eq!(status, 401);
    let (status, _) = cp
        .call("Bearer proxy-token-0123456789", "POST", "/v1/traefik/certificates", Some(body))
        .await;
    assert_eq!(status, 204);
    let bad = serde_json::json!({"host": "shop.route.test", "outcome": {"exploded": {}}});
    let (status, _) = cp
        .call("Bearer proxy-token-0123456789", "POST", "/v1/traefik/certificates", Some(bad))
        .await;
    assert_eq!(status, 400);
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_outbox WHERE event_type = 'certificate.issued'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(n, 1);
}
