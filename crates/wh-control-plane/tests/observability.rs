//! The control plane's observability: `/metrics` on the admin listener (requests by route
//! template and status, hub, queue, deployments, scheduler lag). That an internal error is
//! logged inside its request's span is `tests/request_span.rs`.

use wh_control_plane::deployments::DeploymentState;
use wh_control_plane::testing::{fixtures, Options, TestControlPlane};
use wh_testkit::http;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_template_and_report_the_queue_and_deployments() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let options = Options { admin: true, ..Options::default() };
    let cp = TestControlPlane::start(&db.pool, options).await;
    let (user, auth) = fixtures::user_with_token(&db.pool, "m@example.test").await;
    let app = fixtures::app(&db.pool, user, "metered").insert().await;
    fixtures::deployment(&db.pool, app).state(DeploymentState::Live).insert().await;
    sqlx::query("INSERT INTO jobs (kind) VALUES ('retire')").execute(&db.pool).await.unwrap();

    let api = cp.url();
    for path in ["/api/v1/apps/metered", "/api/v1/apps/other-app"] {
        let url = format!("{api}{path}");
        http::request("GET", &url, None, &[], &[("authorization", &auth)]).await.unwrap();
    }
    let anonymous = http::get(&format!("{api}/api/v1/apps"), &[]).await.unwrap();
    assert_eq!(anonymous.status, 401);
    assert_eq!(http::get(&format!("{api}/api/v1/no/such/1"), &[]).await.unwrap().status, 404);

    let admin = format!("http://{}", cp.admin_addr.unwrap());
    let scrape = http::get(&format!("{admin}/metrics"), &[]).await.unwrap();
    assert_eq!(scrape.status, 200);
    assert_eq!(scrape.headers["content-type"], wh_control_plane::metrics::CONTENT_TYPE);
    let text = scrape.text();
    for line in [
        r#"wh_cp_http_requests_total{route="/api/v1/apps/{slug}",method="GET",status="200"} 1"#,
        r#"wh_cp_http_requests_total{route="/api/v1/apps/{slug}",method="GET",status="404"} 1"#,
        r#"wh_cp_http_requests_total{route="/api/v1/apps",method="GET",status="401"} 1"#,
        r#"wh_cp_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
        "wh_cp_hub_connections 0",
        r#"wh_cp_jobs{state="pending"} 1"#,
        r#"wh_cp_deployments{state="live"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
    assert!(text.contains("wh_cp_scheduler_lag_seconds "), "{text}");
    assert!(text.contains("# TYPE wh_cp_job_claim_wait_seconds histogram"), "{text}");
    // The raw path never becomes a label.
    assert!(!text.contains("other-app") && !text.contains("/no/such"), "{text}");
    // Never on the public listener (a GET there outside /api is the dashboard's).
    let public = http::get(&format!("{api}/metrics"), &[]).await.unwrap();
    assert!(!public.text().contains("wh_cp_"), "{}", public.text());
}
