//! The user API through the router (`tower::ServiceExt::oneshot`) on the real Postgres:
//! sessions and CSRF, API tokens, apps with ownership, encrypted env vars, audit, error shapes.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wh_control_plane::testing::{Options, TestControlPlane};
use wh_control_plane::{api, auth, AppState};

struct Env {
    state: AppState,
    db: wh_testkit::postgres::TestDatabase,
    _cp: TestControlPlane,
}

async fn env() -> Env {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let cp = TestControlPlane::start(&db.pool, Options::bare()).await;
    Env { state: cp.state.clone(), db, _cp: cp }
}

async fn call(
    env: &Env,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Body::from(body.unwrap_or("").to_owned())).unwrap();
    let resp = api::app(env.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// Signs in; returns (cookie header, csrf token).
async fn sign_in(env: &Env, email: &str) -> (String, String) {
    auth::create_user(&env.db.pool, email, "a long enough password", false).await.unwrap();
    let body =
        serde_json::json!({"email": email, "password": "a long enough password"}).to_string();
    let (status, headers, json) = call(env, "POST", "/api/v1/auth/login", &[], Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let set_cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && set_cookie.contains("Secure"),
        "{set_cookie}"
    );
    (
        set_cookie.split(';').next().unwrap().to_owned(),
        json["csrf_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn sessions_csrf_tokens_and_ownership() {
    let env = env().await;
    assert_eq!(call(&env, "GET", "/api/v1/me", &[], None).await.0, StatusCode::UNAUTHORIZED);
    let wrong = serde_json::json!({"email": "nobody@example.test", "password": "x"}).to_string();
    assert_eq!(
        call(&env, "POST", "/api/v1/auth/login", &[], Some(&wrong)).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (alice, csrf) = sign_in(&env, "alice@example.test").await;
    let (status, _, me) = call(&env, "GET", "/api/v1/me", &[("cookie", &alice)], None).await;
    assert_eq!((status, me["email"].as_str()), (StatusCode::OK, Some("alice@example.test")));

    let new_app = r#"{"name": "alice-app", "repo_url": "https://git.example/a.git", "port": 8080}"#;
    let (status, _, err) =
        call(&env, "POST", "/api/v1/apps", &[("cookie", &alice)], Some(new_app)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "cookie mutation without CSRF: {err}");
    let (status, _, app) = call(
        &env,
        "POST",
        "/api/v1/apps",
        &[("cookie", &alice), ("x-csrf-token", &csrf)],
        Some(new_app),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(
        (app["slug"].as_str(), app["plan"].as_str(), app["branch"].as_str()),
        (Some("alice-app"), Some("hobby"), Some("main"))
    );
    let (status, _, err) = call(
        &env,
        "POST",
        "/api/v1/apps",
        &[("cookie", &alice), ("x-csrf-token", &csrf)],
        Some(new_app),
    )
    .await;
    assert_eq!((status, err["error"]["field"].as_str()), (StatusCode::CONFLICT, Some("name")));

    // Bob cannot see or change Alice's app: 404, as if it did not exist.
    let (bob, bob_csrf) = sign_in(&env, "bob@example.test").await;
    assert_eq!(
        call(&env, "GET", "/api/v1/apps/alice-app", &[("cookie", &bob)], None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &env,
            "DELETE",
            "/api/v1/apps/alice-app",
            &[("cookie", &bob), ("x-csrf-token", &bob_csrf)],
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (_, _, list) = call(&env, "GET", "/api/v1/apps", &[("cookie", &bob)], None).await;
    assert_eq!(list, serde_json::json!([]));

    // A personal API token: no CSRF needed, shown once.
    let (status, _, token) = call(
        &env,
        "POST",
        "/api/v1/tokens",
        &[("cookie", &alice), ("x-csrf-token", &csrf)],
        Some(r#"{"name": "cli"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let (status, _, _) = call(
        &env,
        "PATCH",
        "/api/v1/apps/alice-app",
        &[("authorization", &bearer)],
        Some(r#"{"branch": "prod"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        call(&env, "GET", "/api/v1/me", &[("authorization", "Bearer wht_nope")], None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_all(&env.db.pool)
        .await
        .unwrap();
    assert!(!stored.iter().any(|h| bearer.contains(h.as_str())), "raw token stored");

    // Logout ends the session.
    assert_eq!(
        call(
            &env,
            "POST",
            "/api/v1/auth/logout",
            &[("cookie", &alice), ("x-csrf-token", &csrf)],
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&env, "GET", "/api/v1/me", &[("cookie", &alice)], None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn validation_errors_name_the_field_and_bad_json_is_400() {
    let env = env().await;
    let (cookie, csrf) = sign_in(&env, "v@example.test").await;
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    for (body, field) in [
        (r#"{"name": "ab", "repo_url": "https://g/x.git", "port": 80}"#, "name"),
        (r#"{"name": "admin", "repo_url": "https://g/x.git", "port": 80}"#, "name"),
        (r#"{"name": "good-name", "repo_url": "file:///etc", "port": 80}"#, "repo_url"),
        (r#"{"name": "good-name", "repo_url": "https://g/x.git", "port": 70000}"#, "port"),
        (
            r#"{"name": "good-name", "repo_url": "https://g/x.git", "port": 80, "plan": "gold"}"#,
            "plan",
        ),
    ] {
        let (status, _, err) = call(&env, "POST", "/api/v1/apps", &h, Some(body)).await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{body}: {err}"
        );
    }
    let (status, _, err) = call(&env, "POST", "/api/v1/apps", &h, Some("{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"]["message"].as_str().unwrap().to_lowercase().contains("json"), "{err}");
    let (status, _, err) = call(&env, "POST", "/api/v1/apps", &h, Some(r#"{"name": "x"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "missing fields: {err}");
}

#[tokio::test]
async fn env_vars_are_encrypted_masked_audited_and_bound_to_their_app() {
    let env = env().await;
    let (cookie, csrf) = sign_in(&env, "e@example.test").await;
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    for name in ["env-one", "env-two"] {
        let body = format!(
            r#"{{"name": "{name}", "repo_url": "https://git.example/x.git", "port": 8080}}"#
        );
        assert_eq!(
            call(&env, "POST", "/api/v1/apps", &h, Some(&body)).await.0,
            StatusCode::CREATED
        );
    }
    const SECRET: &str = "sup3r-s3cret-database-password";
    assert_eq!(
        call(
            &env,
            "PUT",
            "/api/v1/apps/env-one/env/DATABASE_URL",
            &h,
            Some(&format!(r#"{{"value": "{SECRET}"}}"#))
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (status, _, err) =
        call(&env, "PUT", "/api/v1/apps/env-one/env/1BAD", &h, Some(r#"{"value": "x"}"#)).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("key"))
    );
    // What the worker's env file could not carry is refused when stored, not at deploy time.
    for value in [r#""a\nINJECTED=1""#, r#""nul\u0000""#, r#""cr\r""#] {
        let body = format!(r#"{{"value": {value}}}"#);
        let (status, _, err) =
            call(&env, "PUT", "/api/v1/apps/env-one/env/MULTI", &h, Some(&body)).await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("value")),
            "{value}: {err}"
        );
    }

    let (_, _, masked) = call(&env, "GET", "/api/v1/apps/env-one/env", &h, None).await;
    assert_eq!(masked["DATABASE_URL"], "********");
    let (_, _, revealed) =
        call(&env, "GET", "/api/v1/apps/env-one/env?reveal=true", &h, None).await;
    assert_eq!(revealed["DATABASE_URL"], SECRET);

    // No plaintext anywhere in a dump of the whole database.
    let bin = wh_testkit::postgres::bin_dir().unwrap();
    let url = env.db.url.split('?').next().unwrap(); // libpq rejects sqlx-only parameters
    let dump = std::process::Command::new(bin.join("pg_dump"))
        .arg("--data-only")
        .arg(url)
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("DATABASE_URL"), "the dump did not include env_vars at all");
    assert!(!text.contains(SECRET), "plaintext secret in the database dump");

    // A ciphertext copied to another app does not decrypt there.
    sqlx::query("INSERT INTO env_vars (app_id, key, value_sealed) SELECT (SELECT id FROM apps WHERE slug = 'env-two'), key, value_sealed FROM env_vars")
        .execute(&env.db.pool)
        .await
        .unwrap();
    let (status, _, body) =
        call(&env, "GET", "/api/v1/apps/env-two/env?reveal=true", &h, None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.to_string().contains(SECRET));

    // Audited: who set which key, never the value.
    let (_, _, events) = call(&env, "GET", "/api/v1/audit-events", &h, None).await;
    let events = events.to_string();
    assert!(
        events.contains("env.set")
            && events.contains("DATABASE_URL")
            && events.contains("app.create"),
        "{events}"
    );
    assert!(!events.contains(SECRET));
    assert_eq!(
        call(&env, "DELETE", "/api/v1/apps/env-one/env/DATABASE_URL", &h, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&env, "DELETE", "/api/v1/apps/env-one/env/DATABASE_URL", &h, None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn deployments_are_queued_with_their_job_listed_cancelled_and_time_out() {
    let env = env().await;
    let (cookie, csrf) = sign_in(&env, "d@example.test").await;
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let app = r#"{"name": "dep-app", "repo_url": "https://git.example/x.git", "port": 8080}"#;
    assert_eq!(call(&env, "POST", "/api/v1/apps", &h, Some(app)).await.0, StatusCode::CREATED);

    let (status, _, d) = call(&env, "POST", "/api/v1/apps/dep-app/deployments", &h, None).await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    assert_eq!((d["state"].as_str(), d["git_ref"].as_str()), (Some("queued"), Some("main")));
    let id = d["id"].as_i64().unwrap();
    let (kind, payload): (String, serde_json::Value) =
        sqlx::query_as("SELECT kind::text, payload FROM jobs WHERE deployment_id = $1")
            .bind(id)
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(kind, "deploy");
    assert_eq!(payload["deployment_id"], id);
    assert_eq!(payload["repo_url"], "https://git.example/x.git");

    let (status, _, d2) =
        call(&env, "POST", "/api/v1/apps/dep-app/deployments", &h, Some(r#"{"ref": "v1.2.3"}"#))
            .await;
    assert_eq!((status, d2["git_ref"].as_str()), (StatusCode::CREATED, Some("v1.2.3")));
    let (status, _, err) = call(
        &env,
        "POST",
        "/api/v1/apps/dep-app/deployments",
        &h,
        Some(r#"{"ref": "--upload-pack=evil"}"#),
    )
    .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("ref"))
    );
    let (_, _, list) = call(&env, "GET", "/api/v1/apps/dep-app/deployments", &h, None).await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    let (status, _, cancelled) =
        call(&env, "POST", &format!("/api/v1/deployments/{id}/cancel"), &h, None).await;
    assert_eq!((status, cancelled["state"].as_str()), (StatusCode::OK, Some("cancelled")));
    let job_state: String =
        sqlx::query_scalar("SELECT state::text FROM jobs WHERE deployment_id = $1")
            .bind(id)
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(job_state, "cancelled");
    assert_eq!(
        call(&env, "POST", &format!("/api/v1/deployments/{id}/cancel"), &h, None).await.0,
        StatusCode::CONFLICT
    );

    // Someone else's deployment does not exist for you.
    let (other, other_csrf) = sign_in(&env, "other@example.test").await;
    let oh = [("cookie", other.as_str()), ("x-csrf-token", other_csrf.as_str())];
    assert_eq!(
        call(&env, "GET", &format!("/api/v1/deployments/{id}"), &oh, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&env, "GET", "/api/v1/apps/dep-app/deployments", &oh, None).await.0,
        StatusCode::NOT_FOUND
    );

    // A deployment past its state's deadline fails, saying where it was stuck.
    let stuck = d2["id"].as_i64().unwrap();
    sqlx::query(
        "UPDATE deployments SET state_deadline = now() - interval '1 second' WHERE id = $1",
    )
    .bind(stuck)
    .execute(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(wh_control_plane::deployments::expire(&env.db.pool).await.unwrap(), vec![stuck]);
    let (_, _, failed) = call(&env, "GET", &format!("/api/v1/deployments/{stuck}"), &h, None).await;
    assert_eq!(
        (failed["state"].as_str(), failed["error"].as_str()),
        (Some("failed"), Some("timed out while queued"))
    );
}

#[tokio::test]
async fn login_is_rate_limited_per_ip_admin_endpoints_and_openapi() {
    let env = env().await;
    let wrong = serde_json::json!({"email": "x@example.test", "password": "nope"}).to_string();
    for _ in 0..10 {
        assert_eq!(
            call(&env, "POST", "/api/v1/auth/login", &[], Some(&wrong)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, headers, _) = call(&env, "POST", "/api/v1/auth/login", &[], Some(&wrong)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));

    let env = self::env().await; // fresh limiter
    let (user, _) = sign_in(&env, "plain@example.test").await;
    assert_eq!(
        call(&env, "GET", "/api/v1/workers", &[("cookie", &user)], None).await.0,
        StatusCode::FORBIDDEN
    );
    wh_control_plane::auth::create_user(
        &env.db.pool,
        "root@example.test",
        "a long enough password",
        true,
    )
    .await
    .unwrap();
    let body =
        serde_json::json!({"email": "root@example.test", "password": "a long enough password"})
            .to_string();
    let (_, headers, _) = call(&env, "POST", "/api/v1/auth/login", &[], Some(&body)).await;
    let admin = headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    wh_control_plane::workers::create(&env.db.pool, "w-admin", "10.50.0.50").await.unwrap();
    let (status, _, workers) =
        call(&env, "GET", "/api/v1/workers", &[("cookie", &admin)], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(workers[0]["name"], "w-admin");
    assert_eq!(workers[0]["connected"], false);

    let (status, _, doc) = call(&env, "GET", "/api/v1/openapi.json", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/apps"]["post"].is_object());
    for (path, method) in [
        ("/api/v1/apps/{slug}/domains", "post"),
        ("/api/v1/apps/{slug}/domains/{hostname}/verify", "post"),
        ("/api/v1/apps/{slug}/containers", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} undocumented");
    }
}

#[tokio::test]
async fn runtime_logs_recent_and_followed_and_build_logs_kept_with_the_deployment() {
    use wh_control_plane::logbus::Entry;
    use wh_wsproto::messages::{LogLine, LogLines, Stream};
    let env = env().await;
    let (cookie, csrf) = sign_in(&env, "logs@example.test").await;
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let app = r#"{"name": "log-app", "repo_url": "https://git.example/x.git", "port": 8080}"#;
    assert_eq!(call(&env, "POST", "/api/v1/apps", &h, Some(app)).await.0, StatusCode::CREATED);
    let app_id: i64 = sqlx::query_scalar("SELECT id FROM apps WHERE slug = 'log-app'")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    let line = |s: &str| Entry { ts_ms: 1, stream: "stdout", line: s.into(), deployment_id: None };
    env.state.logs.push(app_id, [line("first"), line("second")]);
    let (status, _, recent) =
        call(&env, "GET", "/api/v1/apps/log-app/logs?lines=1", &h, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(recent[0]["line"], "second");
    assert_eq!(recent.as_array().unwrap().len(), 1);

    // Follow: the backlog, then a line pushed afterwards, as server-sent events.
    let req = Request::get("/api/v1/apps/log-app/logs?follow=1&lines=1")
        .header("cookie", &cookie)
        .body(Body::empty())
        .unwrap();
    let resp = api::app(env.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut seen = String::new();
    async fn next(body: &mut Body) -> bytes::Bytes {
        tokio::time::timeout(Duration::from_secs(3), body.frame())
            .await
            .expect("no event")
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap()
    }
    seen.push_str(&String::from_utf8_lossy(&next(&mut body).await));
    assert!(seen.contains("second"), "{seen}");
    env.state.logs.push(app_id, [line("third, live")]);
    seen.push_str(&String::from_utf8_lossy(&next(&mut body).await));
    assert!(seen.contains("third, live"), "{seen}");

    // Build output arriving from a worker is kept with its deployment.
    let (_, _, d) = call(&env, "POST", "/api/v1/apps/log-app/deployments", &h, None).await;
    let id = d["id"].as_i64().unwrap();
    let settings = wh_control_plane::scheduler::SchedulerSettings {
        logs: Some(env.state.logs.clone()),
        ..Default::default()
    };
    // The worker building it holds its job; only it may send the deployment's lines.
    let (worker, _) =
        wh_control_plane::workers::create(&env.db.pool, "w", "127.0.0.1").await.unwrap();
    sqlx::query("UPDATE jobs SET state = 'claimed', claimed_by = $2 WHERE deployment_id = $1")
        .bind(id)
        .bind(worker.id.to_string())
        .execute(&env.db.pool)
        .await
        .unwrap();
    let hub = env.state.hub.clone();
    let build = LogLines {
        app: "log-app".into(),
        deployment_id: Some(id),
        lines: vec![LogLine {
            ts_ms: 2,
            stream: Stream::Build,
            line: "STEP 1/2: FROM base".into(),
        }],
        dropped: 3,
    };
    let inbound = wh_control_plane::hub::Inbound {
        worker_id: worker.id,
        conn: 0,
        message: wh_wsproto::Message::LogLines(build),
    };
    wh_control_plane::scheduler::handle(&env.db.pool, &hub, &settings, inbound).await;
    let (_, _, recent) = call(&env, "GET", "/api/v1/apps/log-app/logs", &h, None).await;
    assert!(recent.to_string().contains("3 lines dropped"), "{recent}");
    let build_log = |query: &str| {
        let req = Request::get(format!("/api/v1/deployments/{id}/build-log{query}"))
            .header("cookie", &cookie)
            .body(Body::empty())
            .unwrap();
        let app = api::app(env.state.clone());
        async move {
            let resp = app.oneshot(req).await.unwrap();
            let header = |n: &str| resp.headers()[n].to_str().unwrap().parse::<u64>().unwrap();
            let (offset, skipped) = (header("x-log-offset"), header("x-log-skipped"));
            let text = resp.into_body().collect().await.unwrap().to_bytes();
            (String::from_utf8_lossy(&text).into_owned(), offset, skipped)
        }
    };
    assert_eq!(build_log("").await, ("STEP 1/2: FROM base\n".into(), 20, 0));
    // A follower asks from the offset it saw and gets only what is new.
    let more = |lines: Vec<String>| wh_control_plane::hub::Inbound {
        worker_id: worker.id,
        conn: 0,
        message: wh_wsproto::Message::LogLines(LogLines {
            app: "log-app".into(),
            deployment_id: Some(id),
            lines: lines
                .into_iter()
                .map(|line| LogLine { ts_ms: 3, stream: Stream::Build, line })
                .collect(),
            dropped: 0,
        }),
    };
    wh_control_plane::scheduler::handle(
        &env.db.pool,
        &hub,
        &settings,
        more(vec!["STEP 2/2: RUN é".into()]),
    )
    .await;
    assert_eq!(build_log("?from=20").await, ("STEP 2/2: RUN é\n".into(), 37, 0));
    assert_eq!(build_log("?from=37").await, (String::new(), 37, 0));
    assert_eq!(build_log("?from=999999").await, (String::new(), 37, 0));
    // Past the kept MiB the oldest output goes, and a follower that fell behind is told so.
    // (65 lines of 16 KiB with their newlines; one line is at most 16 KiB.)
    let lines = vec!["x".repeat(16 * 1024 - 1); 65];
    wh_control_plane::scheduler::handle(&env.db.pool, &hub, &settings, more(lines)).await;
    let (text, offset, skipped) = build_log("?from=37").await;
    assert_eq!(offset, 37 + 65 * 16 * 1024);
    assert_eq!(text.len(), 1 << 20);
    assert_eq!(skipped, 16 * 1024);
    assert!(text.ends_with("xx\n"));
    // A batch of messages for one deployment (a chatty build) costs one write of its build log,
    // and its lines arrive in order.
    let batch: Vec<_> = ["batched 1", "batched 2", "batched 3"]
        .into_iter()
        .map(|l| more(vec![l.to_owned()]))
        .collect();
    let done = wh_control_plane::logingest::ingest(&env.db.pool, &hub, None, &batch).await;
    assert_eq!(done, wh_control_plane::logingest::Ingested { messages: 3, build_writes: 1 });
    let (text, _, _) = build_log("?from=0").await;
    assert!(text.ends_with("batched 1\nbatched 2\nbatched 3\n"), "{}", &text[text.len() - 60..]);

    // Logs belong to the app, not to its slug: deleted with it, never shown to the next owner.
    assert_eq!(
        call(&env, "DELETE", "/api/v1/apps/log-app", &h, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(env.state.logs.recent(app_id, 10).is_empty(), "the deleted app's lines were kept");
    let (other_cookie, other_csrf) = sign_in(&env, "next-owner@example.test").await;
    let other = [("cookie", other_cookie.as_str()), ("x-csrf-token", other_csrf.as_str())];
    let (status, _, _) = call(&env, "POST", "/api/v1/apps", &other, Some(app)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, recent) = call(&env, "GET", "/api/v1/apps/log-app/logs", &other, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(recent, serde_json::json!([]), "the new app sees the old app's lines");
}

async fn upload(
    env: &Env,
    h: &[(&str, &str)],
    app: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder()
        .method("POST")
        .uri(format!("/api/v1/apps/{app}/deployments"))
        .header("content-type", "application/gzip");
    for (k, v) in h {
        req = req.header(*k, *v);
    }
    let resp =
        api::app(env.state.clone()).oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn uploaded_sources_are_checked_kept_for_the_claiming_worker_and_dropped_when_done() {
    use wh_wsproto::archive;
    let env = env().await;
    let (cookie, csrf) = sign_in(&env, "up@example.test").await;
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    // An app without a repository: uploads only.
    let app = r#"{"name": "up-app", "port": 8000}"#;
    assert_eq!(call(&env, "POST", "/api/v1/apps", &h, Some(app)).await.0, StatusCode::CREATED);
    let (status, _, err) = call(&env, "POST", "/api/v1/apps/up-app/deployments", &h, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(err["error"]["message"].as_str().unwrap().contains("no repository"), "{err}");

    // Refused: garbage, an escaping path, and over the size limit (413).
    let (status, err) = upload(&env, &h, "up-app", b"not a tarball".to_vec()).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("source"))
    );
    let (status, _) = upload(&env, &h, "up-app", vec![0u8; 51 << 20]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let nothing: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(nothing, 0, "a refused upload creates nothing");

    // Accepted: kept with the deployment, its job says where the source is.
    let tarball = archive::pack([("index.html", &b"<h1>up</h1>"[..], false)]).unwrap();
    let (status, d) = upload(&env, &h, "up-app", tarball.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    assert!(d["git_ref"].as_str().unwrap().starts_with("upload:"), "{d}");
    let id = d["id"].as_i64().unwrap();
    let payload: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM jobs WHERE deployment_id = $1")
            .bind(id)
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(payload["source"], "upload");
    assert!(payload.get("repo_url").is_none());

    // Only a worker holding the job gets the source.
    let (worker, _key) =
        wh_control_plane::workers::create(&env.db.pool, "w-up", "127.0.0.1").await.unwrap();
    let (jwt, _) =
        env.state.jwt.issue(&worker.id.to_string(), 1, wh_control_plane::now_ms() / 1000);
    let bearer = format!("Bearer {jwt}");
    let fetch = |auth: Option<String>| {
        let mut req = Request::get(format!("/v1/workers/sources/{id}"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        api::app(env.state.clone()).oneshot(req.body(Body::empty()).unwrap())
    };
    assert_eq!(fetch(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        fetch(Some(bearer.clone())).await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "not claimed yet"
    );
    sqlx::query("UPDATE jobs SET state = 'claimed', claimed_by = $2, attempt = 1, lease_expires_at = now() + interval '1 minute' WHERE deployment_id = $1")
        .bind(id)
        .bind(worker.id.to_string())
        .execute(&env.db.pool)
        .await
        .unwrap();
    let resp = fetch(Some(bearer)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes().as_ref(), &tarball[..]);

    // Once the deployment ends, its source goes.
    sqlx::query("UPDATE deployments SET state = 'failed' WHERE id = $1")
        .bind(id)
        .execute(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(
        wh_control_plane::deployments::drop_finished_sources(&env.db.pool).await.unwrap(),
        1
    );
}

/// A dump of the whole database as text.
fn dump(env: &Env) -> String {
    let bin = wh_testkit::postgres::bin_dir().unwrap();
    let url = env.db.url.split('?').next().unwrap();
    let out = std::process::Command::new(bin.join("pg_dump"))
        .arg("--data-only")
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 12, items A6 and A8: credentials in a repository URL are sealed, never stored, shown
/// or audited in clear; local paths and private literals are refused; branch and ref names
/// follow git's rules when stored.
#[tokio::test]
async fn repository_credentials_are_sealed_and_bad_urls_and_refs_refused_when_stored() {
    const TOKEN: &str = "s3cret-repo-token";
    let env = env().await;
    let (cookie, csrf) = sign_in(&env, "repo@example.test").await;
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let body = format!(
        r#"{{"name": "private-repo", "repo_url": "https://me:{TOKEN}@git.example.com/o/r.git", "port": 8080}}"#
    );
    let (status, _, app) = call(&env, "POST", "/api/v1/apps", &h, Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["repo_url"], "https://git.example.com/o/r.git");
    assert_eq!(app["repo_credentials"], true);
    let (status, _, d) =
        call(&env, "POST", "/api/v1/apps/private-repo/deployments", &h, None).await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    let text = dump(&env);
    assert!(text.contains("git.example.com/o/r.git"), "the dump has no apps at all");
    assert!(!text.contains(TOKEN), "the repository token is in the database dump");
    // The sealed credentials open for this app.
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT repo_auth_sealed FROM apps WHERE slug = 'private-repo'")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    let id: i64 = sqlx::query_scalar("SELECT id FROM apps WHERE slug = 'private-repo'")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(env.state.env.open(&sealed, id).unwrap(), format!("me:{TOKEN}").as_bytes());
    // A new URL without credentials drops them.
    let patch = r#"{"repo_url": "https://git.example.com/o/public.git"}"#;
    let (status, _, app) = call(&env, "PATCH", "/api/v1/apps/private-repo", &h, Some(patch)).await;
    assert_eq!((status, &app["repo_credentials"]), (StatusCode::OK, &serde_json::json!(false)));

    for (url, why) in [
        ("/srv/repos/x", "https://"),
        ("file:///etc", "https://"),
        ("https://127.0.0.1/o/r.git", "private"),
        ("https://localhost:8080/o/r.git", "private"),
        ("ssh://git@10.50.0.12/o/r.git", "private"),
        ("https://[::1]/r", "private"),
        ("ssh://git:pw@git.example.com/r", "password"),
        ("http://git.example.com/r", "https://"),
    ] {
        let body = format!(r#"{{"name": "bad-url", "repo_url": "{url}", "port": 8080}}"#);
        let (status, _, err) = call(&env, "POST", "/api/v1/apps", &h, Some(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {err}");
        assert_eq!(err["error"]["field"], "repo_url", "{url}");
        assert!(err["error"]["message"].as_str().unwrap().contains(why), "{url}: {err}");
    }
    for branch in ["a..b", "-x", "has space", "x.lock", "a@{1}"] {
        let body = format!(
            r#"{{"name": "bad-branch", "repo_url": "", "branch": "{branch}", "port": 8080}}"#
        );
        let (status, _, err) = call(&env, "POST", "/api/v1/apps", &h, Some(&body)).await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("branch")),
            "{branch}"
        );
        let patch = format!(r#"{{"branch": "{branch}"}}"#);
        let (status, _, _) =
            call(&env, "PATCH", "/api/v1/apps/private-repo", &h, Some(&patch)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "PATCH {branch}");
    }
    let (status, _, err) = call(
        &env,
        "POST",
        "/api/v1/apps/private-repo/deployments",
        &h,
        Some(r#"{"ref": "--upload-pack=touch /tmp/x"}"#),
    )
    .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("ref"))
    );
}

/// Credentials an older version stored in clear are sealed at start, and scrubbed from jobs
/// and the audit trail.
#[tokio::test]
async fn credentials_stored_in_clear_before_are_sealed_at_start() {
    const TOKEN: &str = "old-clear-token";
    let env = env().await;
    let pool = &env.db.pool;
    let user: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash) VALUES ('old@example.test', 'x') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let url = format!("https://oauth2:{TOKEN}@git.example.com/o/r.git");
    let app: i64 = sqlx::query_scalar("INSERT INTO apps (owner_id, slug, repo_url, plan_id, port) VALUES ($1, 'old-app', $2, (SELECT id FROM plans LIMIT 1), 80) RETURNING id")
        .bind(user)
        .bind(&url)
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO jobs (kind, payload) VALUES ('deploy', jsonb_build_object('repo_url', $1::text))")
        .bind(&url)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO audit_events (actor_id, action, target, details) VALUES ($1, 'app.create', 'app:old-app', jsonb_build_object('repo_url', $2::text))")
        .bind(user)
        .bind(&url)
        .execute(pool)
        .await
        .unwrap();
    assert!(dump(&env).contains(TOKEN));
    let sealed =
        wh_control_plane::repos::seal_stored_credentials(pool, &env.state.env).await.unwrap();
    assert_eq!(sealed, 1);
    assert!(!dump(&env).contains(TOKEN), "a clear token survived the start");
    let (kept, auth): (String, Vec<u8>) =
        sqlx::query_as("SELECT repo_url, repo_auth_sealed FROM apps WHERE id = $1")
            .bind(app)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(kept, "https://git.example.com/o/r.git");
    assert_eq!(env.state.env.open(&auth, app).unwrap(), format!("oauth2:{TOKEN}").as_bytes());
    assert_eq!(
        wh_control_plane::repos::seal_stored_credentials(pool, &env.state.env).await.unwrap(),
        0
    );
}

/// Issue 12, item A7: a NUL byte anywhere a client can put one answers 422 naming the field
/// (Postgres text cannot hold it: these were 500s, unauthenticated sign-in among them). And
/// JSON bodies: a wrong content type is 415, an oversized body 413.
#[tokio::test]
async fn nul_bytes_answer_422_naming_the_field_and_bodies_are_typed_and_bounded() {
    let env = env().await;
    let (cookie, csrf) = sign_in(&env, "nul@example.test").await;
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let app = r#"{"name": "nul-app", "repo_url": "", "port": 8080}"#;
    assert_eq!(call(&env, "POST", "/api/v1/apps", &h, Some(app)).await.0, StatusCode::CREATED);
    /// (method, uri, headers, body, the field named)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
    let cases: &[Case] = &[
        (
            "POST",
            "/api/v1/auth/login",
            &[],
            Some(r#"{"email": "a\u0000@x.test", "password": "p"}"#),
            "email",
        ),
        (
            "POST",
            "/api/v1/auth/login",
            &[],
            Some(r#"{"email": "a@x.test", "password": "p\u0000"}"#),
            "password",
        ),
        (
            "POST",
            "/api/v1/apps",
            &h,
            Some(r#"{"name": "n\u0000", "repo_url": "", "port": 8080}"#),
            "name",
        ),
        (
            "POST",
            "/api/v1/apps",
            &h,
            Some(r#"{"name": "n", "repo_url": "https://x\u0000/r", "port": 1}"#),
            "repo_url",
        ),
        ("PATCH", "/api/v1/apps/nul-app", &h, Some(r#"{"branch": "m\u0000"}"#), "branch"),
        ("PUT", "/api/v1/apps/nul-app/env/KEY", &h, Some(r#"{"value": "v\u0000"}"#), "value"),
        ("PUT", "/api/v1/apps/nul-app/env/K%00EY", &h, Some(r#"{"value": "v"}"#), "path"),
        ("GET", "/api/v1/apps/nul%00app", &h, None, "path"),
        ("DELETE", "/api/v1/apps/nul%00app", &h, None, "path"),
        (
            "POST",
            "/api/v1/apps/nul-app/domains",
            &h,
            Some(r#"{"hostname": "a\u0000.example.com"}"#),
            "hostname",
        ),
        ("POST", "/api/v1/apps/nul-app/deployments", &h, Some(r#"{"ref": "m\u0000"}"#), "ref"),
        ("POST", "/api/v1/tokens", &h, Some(r#"{"name": "t\u0000"}"#), "name"),
        ("GET", "/api/v1/apps/nul-app/logs?lines=1&follow=%00", &h, None, "follow"),
        ("GET", "/api/v1/deployments/1%00", &h, None, "path"),
    ];
    for (method, uri, headers, body, field) in cases {
        let (status, _, err) = call(&env, method, uri, headers, *body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{method} {uri}: {err}");
        assert_eq!(err["error"]["field"], *field, "{method} {uri}: {err}");
    }
    // JSON bodies: the content type is checked and the size bounded.
    let req = Request::post("/api/v1/auth/login")
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"email": "a@x.test", "password": "p"}"#))
        .unwrap();
    let resp = api::app(env.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!(r#"{{"email": "a@x.test", "password": "{}"}}"#, "x".repeat(10 << 20));
    let (status, _, err) = call(&env, "POST", "/api/v1/auth/login", &[], Some(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
}

/// Issue 12, item A12: sign-in is limited per account as well as per IP, and failures are
/// audited with the address and the account. (40 guesses from 40 addresses were all answered
/// 401, and the right password worked right after.)
#[tokio::test]
async fn sign_in_is_limited_per_account_whatever_the_address_and_failures_are_audited() {
    let env = env().await;
    auth::create_user(&env.db.pool, "victim@example.test", "the right password", false)
        .await
        .unwrap();
    let attempt = |password: &str, n: u8| {
        let body = serde_json::json!({"email": "Victim@Example.test", "password": password});
        let mut req = Request::post("/api/v1/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let from: std::net::SocketAddr = format!("198.51.100.{n}:40000").parse().unwrap();
        req.extensions_mut().insert(axum::extract::ConnectInfo(from));
        let app = api::app(env.state.clone());
        async move { app.oneshot(req).await.unwrap() }
    };
    let mut statuses = Vec::new();
    for n in 1..=40u8 {
        statuses.push(attempt("a wrong guess", n).await.status());
    }
    assert!(statuses[..10].iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let right = attempt("the right password", 41).await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS, "the right password got in");
    assert!(right.headers().contains_key("retry-after"));
    let failed: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT target, host(client_ip) FROM audit_events WHERE action = 'auth.login_failed' ORDER BY id",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(failed.len(), 10, "each counted failure is audited");
    assert_eq!(
        failed[0],
        ("account:victim@example.test".to_owned(), Some("198.51.100.1".to_owned()))
    );
}

/// Item A13: personal API tokens are listed (never their secret), revoked, and expire; a user
/// keeps at most 10 sessions.
#[tokio::test]
async fn tokens_are_listed_revoked_and_expire_and_sessions_are_capped() {
    let env = env().await;
    let (cookie, csrf) = sign_in(&env, "tokens@example.test").await;
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let (status, _, made) =
        call(&env, "POST", "/api/v1/tokens", &h, Some(r#"{"name": "ci", "expires_in_days": 30}"#))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let secret = made["token"].as_str().unwrap().to_owned();
    let (_, _, list) = call(&env, "GET", "/api/v1/tokens", &h, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "ci");
    assert!(list[0]["expires_at"].is_string());
    assert!(!list.to_string().contains(&secret), "a token's secret is listed");
    let bearer = format!("Bearer {secret}");
    let by_token = [("authorization", bearer.as_str())];
    assert_eq!(call(&env, "GET", "/api/v1/me", &by_token, None).await.0, StatusCode::OK);
    // Expired: refused.
    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
        .execute(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(call(&env, "GET", "/api/v1/me", &by_token, None).await.0, StatusCode::UNAUTHORIZED);
    // Revoked: gone at once.
    let (_, _, second) =
        call(&env, "POST", "/api/v1/tokens", &h, Some(r#"{"name": "laptop"}"#)).await;
    let bearer2 = format!("Bearer {}", second["token"].as_str().unwrap());
    let uri = format!("/api/v1/tokens/{}", second["id"]);
    assert_eq!(call(&env, "DELETE", &uri, &h, None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&env, "GET", "/api/v1/me", &[("authorization", bearer2.as_str())], None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(&env, "DELETE", &uri, &h, None).await.0, StatusCode::NOT_FOUND);
    let (status, _, err) =
        call(&env, "POST", "/api/v1/tokens", &h, Some(r#"{"name": "x", "expires_in_days": 0}"#))
            .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("expires_in_days"))
    );
    // Sessions: at most 10 per user; the oldest goes first.
    // (Through the library: the per-IP sign-in limit would stop twelve requests a minute.)
    for _ in 0..12 {
        let opened =
            auth::login(&env.db.pool, "tokens@example.test", "a long enough password").await;
        assert!(opened.unwrap().is_some());
    }
    let sessions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions").fetch_one(&env.db.pool).await.unwrap();
    assert_eq!(sessions, 10);
    assert_eq!(
        call(&env, "GET", "/api/v1/me", &h, None).await.0,
        StatusCode::UNAUTHORIZED,
        "the oldest session survived"
    );
}

/// Every error answers the JSON error shape: bad path and query values, unknown routes and
/// wrong methods included (they were text/plain or empty).
#[tokio::test]
async fn rejections_unknown_routes_and_wrong_methods_answer_json_errors() {
    let env = env().await;
    let (cookie, csrf) = sign_in(&env, "shape@example.test").await;
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let cases: [(&str, &str, StatusCode, &str, Option<&str>); 5] = [
        (
            "GET",
            "/api/v1/deployments/not-a-number",
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some("path"),
        ),
        (
            "GET",
            "/api/v1/deployments/1/build-log?from=minus",
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some("query"),
        ),
        ("GET", "/api/v1/no/such/route", StatusCode::NOT_FOUND, "not_found", None),
        ("GET", "/v1/workers/nothing-here", StatusCode::NOT_FOUND, "not_found", None),
        ("DELETE", "/api/v1/me", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None),
    ];
    for (method, uri, status, code, field) in cases {
        let (got, headers, body) = call(&env, method, uri, &h, None).await;
        assert_eq!(got, status, "{method} {uri}: {body}");
        assert_eq!(headers["content-type"], "application/json", "{method} {uri}");
        assert_eq!(body["error"]["code"], code, "{method} {uri}: {body}");
        assert_eq!(body["error"]["field"].as_str(), field, "{method} {uri}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(headers["allow"], "GET,HEAD", "a 405 still says what is allowed");
        }
    }
}

/// The dashboard's place: `/` and app routes answer HTML with the security headers (here, with
/// no `dashboard/dist` built, the page that says how to build it); the API keeps its JSON 404s.
#[tokio::test]
async fn the_dashboard_is_served_outside_the_api_with_its_security_headers() {
    let env = env().await;
    for path in ["/", "/apps/hello"] {
        let req = Request::get(path).body(Body::empty()).unwrap();
        let resp = api::app(env.state.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        let page = resp.into_body().collect().await.unwrap().to_bytes();
        let page = String::from_utf8_lossy(&page);
        if !std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboard/dist").exists() {
            assert!(page.contains("npm run build"), "{page}");
        }
    }
    let (status, _, body) = call(&env, "GET", "/api/v1/nothing", &[], None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _, _) = call(&env, "POST", "/apps/hello", &[], None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only GET and HEAD are the dashboard's");
}
