//! Alert rules on the real Postgres with a simulated clock: the evaluator is called at chosen
//! times with container stats written as a worker would have reported them. A short spike never
//! fires; a value flapping at the threshold fires once and resolves once; a crash loop holds
//! back the cpu alert; two evaluators at once fire once; a failed deployment fires and the next
//! live one resolves it; every app gets the default rules.

use wh_control_plane::alerts::evaluate::evaluate;
use wh_control_plane::deployments::DeploymentState;
use wh_control_plane::testing::fixtures;

/// A start time for the simulated clock (seconds since the epoch).
const T0: f64 = 1_900_000_000.0;

struct Env {
    db: wh_testkit::postgres::TestDatabase,
    app: i64,
    deployment: i64,
}

/// An app on the hobby plan (0.5 CPU) with a live deployment and one running container.
async fn env() -> Env {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let owner = fixtures::user(&db.pool, "alerts@example.test").await;
    let (worker, _) = wh_control_plane::workers::create(&db.pool, "w1", "127.0.0.2").await.unwrap();
    let app = fixtures::app(&db.pool, owner, "watched").plan("hobby").insert().await;
    let deployment = fixtures::deployment(&db.pool, app)
        .state(DeploymentState::Live)
        .worker(worker.id)
        .insert()
        .await;
    fixtures::running_container(&db.pool, "c1", worker.id, app, deployment).await;
    Env { db, app, deployment }
}

/// The container's sample at `at`: cpu in % of one core (the plan allows 50 %).
async fn sample(env: &Env, at: f64, cpu: f64) {
    sqlx::query("UPDATE containers SET cpu_percent = $1, memory_bytes = 1000, net_rx_bytes = 0, net_tx_bytes = 0, stats_at = to_timestamp($2)")
        .bind(cpu)
        .bind(at)
        .execute(&env.db.pool)
        .await
        .unwrap();
}

/// The outbox's events for `kind`, in order.
async fn events(env: &Env, kind: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event_type FROM event_outbox WHERE payload->>'kind' = $1 ORDER BY id",
    )
    .bind(kind)
    .fetch_all(&env.db.pool)
    .await
    .unwrap()
}

/// Runs the clock from `from` to `to` seconds after T0, one second at a time: the sample each
/// second from `cpu` (% of the limit), the evaluator every 30 s.
async fn timeline(env: &Env, from: u32, to: u32, cpu: impl Fn(u32) -> f64) {
    for t in from..to {
        let now = T0 + f64::from(t);
        // The limit is half a core: x % of the limit is x/2 % of a core.
        sample(env, now, cpu(t) / 2.0).await;
        if t % 30 == 0 {
            evaluate(&env.db.pool, now).await.unwrap();
        }
    }
}

#[tokio::test]
async fn every_app_gets_the_default_rules() {
    let env = env().await;
    let rules: Vec<(String, f64, i32, i32)> = sqlx::query_as(
        "SELECT kind::text, threshold, for_secs, keep_firing_secs FROM alert_rules WHERE app_id = $1 ORDER BY alert_rules.kind",
    )
    .bind(env.app)
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    let kinds: Vec<&str> = rules.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        kinds,
        ["cpu", "memory", "network", "disk", "offline", "crashloop", "deployment_failed"]
    );
    assert_eq!(rules[0], ("cpu".into(), 80.0, 300, 60));
    assert_eq!(rules[3], ("disk".into(), 90.0, 0, 60));
    assert_eq!(rules[4], ("offline".into(), 0.0, 60, 0));
}

#[tokio::test]
async fn a_spike_shorter_than_for_never_fires() {
    let env = env().await;
    timeline(&env, 0, 1800, |t| if (300..500).contains(&t) { 100.0 } else { 20.0 }).await;
    assert!(events(&env, "cpu").await.is_empty());
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM alerts").fetch_one(&env.db.pool).await.unwrap();
    assert_eq!(open, 0);
}

#[tokio::test]
async fn a_value_flapping_every_29_seconds_fires_once_and_resolves_once() {
    let env = env().await;
    timeline(&env, 0, 2400, |t| match t {
        0..360 => 95.0,
        360..1500 => {
            if (t / 29) % 2 == 0 {
                83.0
            } else {
                77.0
            }
        }
        _ => 30.0,
    })
    .await;
    assert_eq!(events(&env, "cpu").await, ["alert.fired", "alert.resolved"]);
    let (value, lasted): (f64, f64) = sqlx::query_as(
        "SELECT value, extract(epoch FROM resolved_at - started_at)::float8 FROM alerts WHERE kind = 'cpu'",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert!((value - 95.0).abs() < 0.01, "{value}");
    assert_eq!(lasted, 1560.0, "from the first high sample to 60 s after the last high one");
    let payload: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM event_outbox WHERE event_type = 'alert.resolved'")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(
        (payload["app"].as_str(), payload["kind"].as_str(), payload["threshold"].as_f64()),
        (Some("watched"), Some("cpu"), Some(80.0))
    );
    assert!(payload["resolved_at"].is_string() && payload["alert_id"].is_i64(), "{payload}");
}

#[tokio::test]
async fn a_crash_loop_fires_at_once_and_holds_back_the_cpu_alert() {
    let env = env().await;
    for ago in [120.0, 60.0, 10.0] {
        sqlx::query("INSERT INTO container_restarts (app_id, at) VALUES ($1, to_timestamp($2))")
            .bind(env.app)
            .bind(T0 - ago)
            .execute(&env.db.pool)
            .await
            .unwrap();
    }
    timeline(&env, 0, 420, |_| 99.0).await;
    assert_eq!(events(&env, "crashloop").await, ["alert.fired"]);
    assert!(events(&env, "cpu").await.is_empty(), "held back while crash-looping");
    let held: bool = sqlx::query_scalar("SELECT held_back FROM alerts WHERE kind = 'cpu'")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert!(held, "the cpu alert is still recorded, and shown");
    // Ten minutes after the last restart, the crash loop resolves.
    timeline(&env, 420, 1200, |_| 20.0).await;
    assert_eq!(events(&env, "crashloop").await, ["alert.fired", "alert.resolved"]);
    assert!(events(&env, "cpu").await.is_empty(), "a held-back alert resolves quietly too");
}

#[tokio::test]
async fn an_app_that_stops_reporting_is_offline_and_other_rules_keep_their_state() {
    let env = env().await;
    timeline(&env, 0, 60, |_| 20.0).await;
    // Silence: no samples for three minutes.
    for t in (90..=270).step_by(30) {
        evaluate(&env.db.pool, T0 + f64::from(t)).await.unwrap();
    }
    assert_eq!(events(&env, "offline").await, ["alert.fired"]);
    let cpu_state: String =
        sqlx::query_scalar("SELECT state::text FROM alert_rules WHERE kind = 'cpu'")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(cpu_state, "inactive");
    timeline(&env, 300, 400, |_| 20.0).await;
    assert_eq!(events(&env, "offline").await, ["alert.fired", "alert.resolved"]);
}

#[tokio::test]
async fn two_evaluators_at_once_fire_once() {
    let env = env().await;
    timeline(&env, 0, 299, |_| 99.0).await;
    sample(&env, T0 + 300.0, 49.5).await;
    let now = T0 + 300.0;
    let (a, b, c) = tokio::join!(
        evaluate(&env.db.pool, now),
        evaluate(&env.db.pool, now),
        evaluate(&env.db.pool, now)
    );
    let fired = a.unwrap() + b.unwrap() + c.unwrap();
    assert_eq!(fired, 1, "exactly one evaluator fired");
    assert_eq!(events(&env, "cpu").await, ["alert.fired"]);
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts WHERE kind = 'cpu'")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(open, 1);
}

#[tokio::test]
async fn a_failed_deployment_fires_and_the_next_live_one_resolves_it() {
    let env = env().await;
    let failed =
        fixtures::deployment(&env.db.pool, env.app).state(DeploymentState::Failed).insert().await;
    assert!(failed > env.deployment);
    timeline(&env, 0, 31, |_| 20.0).await;
    assert_eq!(events(&env, "deployment_failed").await, ["alert.fired"]);
    fixtures::deployment(&env.db.pool, env.app).state(DeploymentState::Live).insert().await;
    timeline(&env, 31, 100, |_| 20.0).await;
    assert_eq!(events(&env, "deployment_failed").await, ["alert.fired", "alert.resolved"]);
}

#[tokio::test]
async fn rules_change_within_bounds_and_a_muted_rule_records_without_sending() {
    let env = env().await;
    let cp = wh_control_plane::testing::TestControlPlane::start(
        &env.db.pool,
        wh_control_plane::testing::Options::bare(),
    )
    .await;
    let (_, bearer) = fixtures::user_with_token(&env.db.pool, "other@example.test").await;
    sqlx::query(
        "UPDATE apps SET owner_id = (SELECT id FROM users WHERE email = 'other@example.test')",
    )
    .execute(&env.db.pool)
    .await
    .unwrap();
    let call = |method: &'static str, uri: &str, body: serde_json::Value| {
        let (cp, bearer, uri) = (&cp, bearer.clone(), uri.to_owned());
        async move { cp.call(&bearer, method, &uri, Some(body).filter(|b| !b.is_null())).await }
    };
    let rules = "/api/v1/apps/watched/alerts/rules";
    for (body, field) in [
        (serde_json::json!({"for_secs": 45}), "for_secs"),
        (serde_json::json!({"threshold": 150}), "threshold"),
        (serde_json::json!({"keep_firing_secs": -1}), "keep_firing_secs"),
    ] {
        let (status, e) = call("PUT", &format!("{rules}/cpu"), body).await;
        assert_eq!((status, e["error"]["field"].as_str()), (422, Some(field)), "{e}");
    }
    let (status, _) = call("PUT", &format!("{rules}/sunspots"), serde_json::json!({})).await;
    assert_eq!(status, 404);
    let (status, rule) =
        call("PUT", &format!("{rules}/cpu"), serde_json::json!({"threshold": 60, "for_secs": 60}))
            .await;
    assert_eq!(
        (status, rule["threshold"].as_f64(), rule["for_secs"].as_i64()),
        (200, Some(60.0), Some(60)),
        "{rule}"
    );
    // Muted, the rule still fires and records the alert, and puts nothing in the outbox.
    let (status, rule) =
        call("POST", &format!("{rules}/cpu/mute"), serde_json::json!({"minutes": 60})).await;
    assert!(status == 200 && rule["muted_until"].is_string(), "{rule}");
    let now = wh_control_plane::now_ms() as f64 / 1000.0;
    for t in (0..=90).step_by(30) {
        sample(&env, now + f64::from(t), 49.0).await;
        evaluate(&env.db.pool, now + f64::from(t)).await.unwrap();
    }
    let (_, history) = call("GET", "/api/v1/apps/watched/alerts", serde_json::json!(null)).await;
    assert_eq!(
        (history[0]["kind"].as_str(), history[0]["held_back"].as_bool()),
        (Some("cpu"), Some(true)),
        "{history}"
    );
    assert!(events(&env, "cpu").await.is_empty(), "a muted rule sends nothing");
    let (_, open) = call("GET", "/api/v1/alerts", serde_json::json!(null)).await;
    assert_eq!(open.as_array().map(Vec::len), Some(1), "{open}");
}

#[tokio::test]
async fn alerts_firing_together_share_one_message_and_are_reminded_of_every_4_hours() {
    let env = env().await;
    let high = |at: f64| {
        let pool = env.db.pool.clone();
        async move {
            // 49 % of a core is 98 % of the hobby plan's half core; 500 MiB of its 512.
            sqlx::query("UPDATE containers SET cpu_percent = 49, memory_bytes = 524288000, stats_at = to_timestamp($1)")
                .bind(at)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    for t in (0..=300).step_by(30) {
        high(T0 + f64::from(t)).await;
        evaluate(&env.db.pool, T0 + f64::from(t)).await.unwrap();
    }
    let notices = |kind: &'static str| {
        let pool = env.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i32>(
                "SELECT cardinality(alert_ids) FROM alert_notices WHERE kind = $1::notice_kind ORDER BY id",
            )
            .bind(kind)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(notices("fired").await, [2], "cpu and memory fired together: one message of two");
    // Four hours on, still high: one reminder message for both, and none again at the next turn.
    for t in [14_640u32, 14_670, 14_700] {
        high(T0 + f64::from(t)).await;
        evaluate(&env.db.pool, T0 + f64::from(t)).await.unwrap();
    }
    assert_eq!(notices("reminder").await, [2]);
    let send_after_gap: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM send_after - created_at)::float8 FROM alert_notices WHERE kind = 'fired'",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(send_after_gap, 30.0, "a message waits 30 s for others to join");
}

#[tokio::test]
async fn while_an_app_is_offline_its_cpu_alert_keeps_firing_and_stays_quiet() {
    let env = env().await;
    timeline(&env, 0, 331, |_| 99.0).await;
    assert_eq!(events(&env, "cpu").await, ["alert.fired"]);
    // It stops reporting: offline fires after 60 s; cpu has no data and keeps firing.
    for t in (360..=15_000).step_by(30) {
        evaluate(&env.db.pool, T0 + f64::from(t)).await.unwrap();
    }
    assert_eq!(events(&env, "offline").await, ["alert.fired"]);
    let cpu: String = sqlx::query_scalar("SELECT state::text FROM alert_rules WHERE kind = 'cpu'")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(cpu, "firing", "missing data keeps the state");
    // Four hours on: offline is reminded of, cpu is held back.
    let reminded: Vec<String> = sqlx::query_scalar(
        "SELECT al.kind::text FROM alert_notices n JOIN alerts al ON al.id = ANY(n.alert_ids) WHERE n.kind = 'reminder'",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(reminded, ["offline"]);
}
