//! Inbound git webhooks through the router on the real Postgres: each provider's signed push
//! deploys exactly the pushed commit; a bad signature, a replay, an oversized body, an unknown
//! hook, another branch or a tag are refused or ignored, counted, and deploy nothing.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wh_control_plane::githooks::{verify, Provider};
use wh_control_plane::testing::{fixtures, Options, TestControlPlane};

const SHA: &str = "8c3f0d9e5b1a2c4d6e8f0a1b3c5d7e9f1a2b3c4d";

struct Env {
    cp: TestControlPlane,
    db: wh_testkit::postgres::TestDatabase,
    bearer: String,
}

async fn env() -> Env {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let cp = TestControlPlane::start(&db.pool, Options::bare()).await;
    let (_, bearer) = fixtures::user_with_token(&db.pool, "hooks@example.test").await;
    Env { cp, db, bearer }
}

async fn send(env: &Env, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = wh_control_plane::api::app(env.cp.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

async fn api(
    env: &Env,
    method: &str,
    uri: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri).header("authorization", &env.bearer);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
    send(env, req.body(body).unwrap()).await
}

/// A push of `git_ref` to [`SHA`] as `provider` sends it: (event, body).
fn push(provider: Provider, git_ref: &str) -> (&'static str, String) {
    let zero = "0".repeat(40);
    match provider {
        Provider::Github | Provider::Gitea | Provider::Forgejo => (
            "push",
            serde_json::json!({"ref": git_ref, "before": zero, "after": SHA, "deleted": false,
                "head_commit": {"id": SHA, "message": "Fix checkout\n\nDetails.", "author": {"name": "Ada", "email": "ada@example.test"}}})
            .to_string(),
        ),
        Provider::Gitlab => (
            if git_ref.starts_with("refs/tags/") { "Tag Push Hook" } else { "Push Hook" },
            serde_json::json!({"object_kind": "push", "ref": git_ref, "before": zero, "after": SHA, "checkout_sha": SHA,
                "commits": [{"id": SHA, "message": "Fix checkout", "author": {"name": "Ada", "email": "ada@example.test"}}]})
            .to_string(),
        ),
        Provider::Bitbucket => {
            let (kind, name) = match git_ref.strip_prefix("refs/tags/") {
                Some(t) => ("tag", t),
                None => ("branch", git_ref.trim_start_matches("refs/heads/")),
            };
            (
                "repo:push",
                serde_json::json!({"push": {"changes": [{"new": {"type": kind, "name": name,
                    "target": {"type": "commit", "hash": SHA, "message": "Fix checkout", "author": {"raw": "Ada <ada@example.test>"}}}}]}})
                .to_string(),
            )
        }
    }
}

fn delivery(
    provider: Provider,
    path: &str,
    secret: &str,
    event: &str,
    id: &str,
    body: &str,
) -> Request<Body> {
    use wh_control_plane::githooks::payload;
    Request::post(path)
        .header("content-type", "application/json")
        .header(payload::event_header(provider), event)
        .header(payload::delivery_header(provider), id)
        .header(
            verify::header(provider),
            verify::sign(provider, secret.as_bytes(), body.as_bytes()),
        )
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn deployments(env: &Env) -> Vec<(String, Option<String>, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT git_ref, commit_sha, commit_message, commit_author FROM deployments ORDER BY id",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn each_providers_signed_push_deploys_the_pushed_commit() {
    let env = env().await;
    for (i, provider) in Provider::ALL.into_iter().enumerate() {
        let slug = format!("shop-{}", provider.as_str());
        let app = serde_json::json!({"name": slug, "repo_url": "https://git.example.test/shop.git", "port": 8080});
        assert_eq!(api(&env, "POST", "/api/v1/apps", Some(app)).await.0, StatusCode::CREATED);
        let (status, hook) = api(
            &env,
            "POST",
            &format!("/api/v1/apps/{slug}/hooks"),
            Some(serde_json::json!({"provider": provider})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        let (path, secret) = (hook["path"].as_str().unwrap(), hook["secret"].as_str().unwrap());
        assert_eq!(secret.len(), 64);
        assert!(path.starts_with(&format!("/api/v1/hooks/{}/", provider.as_str())), "{path}");
        let (event, body) = push(provider, "refs/heads/main");
        let (status, out) =
            send(&env, delivery(provider, path, secret, event, &format!("d-{i}"), &body)).await;
        assert_eq!(
            (status, out["status"].as_str()),
            (StatusCode::ACCEPTED, Some("queued")),
            "{provider:?}: {out}"
        );
        let id = out["deployments"][0].as_i64().unwrap();
        let (git_ref, commit, message, author) = deployments(&env).await.pop().unwrap();
        assert_eq!((git_ref.as_str(), commit.as_deref()), ("main", Some(SHA)), "{provider:?}");
        assert_eq!(message.as_deref(), Some("Fix checkout"));
        assert_eq!(author.as_deref(), Some("Ada <ada@example.test>"));
        // The job clones exactly the pushed commit, not the branch's head.
        let payload: serde_json::Value =
            sqlx::query_scalar("SELECT payload FROM jobs WHERE deployment_id = $1")
                .bind(id)
                .fetch_one(&env.db.pool)
                .await
                .unwrap();
        assert_eq!(payload["ref"], SHA, "{payload}");
        // The secret is sealed at rest.
        let stored: Vec<u8> =
            sqlx::query_scalar("SELECT secret_sealed FROM git_hooks WHERE public_id = $1")
                .bind(hook["id"].as_str().unwrap())
                .fetch_one(&env.db.pool)
                .await
                .unwrap();
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is stored in clear"
        );
    }
    let (status, listed) = api(&env, "GET", "/api/v1/apps/shop-github/hooks", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        listed[0]["last_delivery_at"].is_string() && listed[0].get("secret").is_none(),
        "{listed}"
    );
    let codeberg = format!("/api/v1/hooks/codeberg/{}", listed[0]["id"].as_str().unwrap());
    let (status, _) =
        send(&env, delivery(Provider::Forgejo, &codeberg, "x", "push", "c", "{}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "codeberg is forgejo, and this hook is github's");
}

#[tokio::test]
async fn what_is_not_a_verified_new_push_of_the_branch_deploys_nothing() {
    let env = env().await;
    let app = serde_json::json!({"name": "shop", "repo_url": "https://git.example.test/shop.git", "port": 8080});
    assert_eq!(api(&env, "POST", "/api/v1/apps", Some(app)).await.0, StatusCode::CREATED);
    let (_, hook) = api(
        &env,
        "POST",
        "/api/v1/apps/shop/hooks",
        Some(serde_json::json!({"provider": "github"})),
    )
    .await;
    let (path, secret) =
        (hook["path"].as_str().unwrap().to_owned(), hook["secret"].as_str().unwrap().to_owned());
    let (status, again) = api(
        &env,
        "POST",
        "/api/v1/apps/shop/hooks",
        Some(serde_json::json!({"provider": "github"})),
    )
    .await;
    assert_eq!(
        (status, again["error"]["field"].as_str()),
        (StatusCode::CONFLICT, Some("provider"))
    );
    let gh = Provider::Github;
    let (event, body) = push(gh, "refs/heads/main");

    // Ping: 200, nothing deployed.
    let (status, out) =
        send(&env, delivery(gh, &path, &secret, "ping", "p1", r#"{"zen":"Keep it simple."}"#))
            .await;
    assert_eq!((status, out["status"].as_str()), (StatusCode::OK, Some("pong")));
    // A bad signature, a missing one, the wrong secret.
    let mut forged = delivery(gh, &path, &secret, event, "f1", &body);
    forged.headers_mut().insert("x-hub-signature-256", "sha256=00".parse().unwrap());
    assert_eq!(send(&env, forged).await.0, StatusCode::UNAUTHORIZED);
    let mut unsigned = delivery(gh, &path, &secret, event, "f2", &body);
    unsigned.headers_mut().remove("x-hub-signature-256");
    assert_eq!(send(&env, unsigned).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&env, delivery(gh, &path, "not-the-secret", event, "f3", &body)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Unknown hooks, the wrong provider for this hook.
    let unknown = format!("/api/v1/hooks/github/{}", "0".repeat(32));
    assert_eq!(
        send(&env, delivery(gh, &unknown, &secret, event, "u1", &body)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&env, delivery(gh, "/api/v1/hooks/github/nope", &secret, event, "u2", &body)).await.0,
        StatusCode::NOT_FOUND
    );
    let as_gitlab = path.replace("/github/", "/gitlab/");
    assert_eq!(
        send(&env, delivery(Provider::Gitlab, &as_gitlab, &secret, "Push Hook", "u3", &body))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&env, delivery(gh, "/api/v1/hooks/svn/abc", &secret, event, "u4", &body)).await.0,
        StatusCode::NOT_FOUND
    );
    // Over 1 MiB.
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1 << 20));
    assert_eq!(
        send(&env, delivery(gh, &path, &secret, event, "b1", &big)).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Another branch, and a tag while the app does not deploy tags: accepted, ignored.
    let (event, other) = push(gh, "refs/heads/feature");
    let (status, out) = send(&env, delivery(gh, &path, &secret, event, "o1", &other)).await;
    assert_eq!((status, out["status"].as_str()), (StatusCode::ACCEPTED, Some("ignored")), "{out}");
    let (_, tag) = push(gh, "refs/tags/v1.0");
    let (status, out) = send(&env, delivery(gh, &path, &secret, "push", "t1", &tag)).await;
    assert_eq!((status, out["status"].as_str()), (StatusCode::ACCEPTED, Some("ignored")));
    // A verified body that lies about the commit.
    let lying = r#"{"ref":"refs/heads/main","after":"$(reboot)"}"#;
    assert_eq!(
        send(&env, delivery(gh, &path, &secret, "push", "l1", lying)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert!(
        deployments(&env).await.is_empty(),
        "something deployed: {:?}",
        deployments(&env).await
    );

    // The real push deploys once; its replay is refused.
    assert_eq!(
        send(&env, delivery(gh, &path, &secret, "push", "real", &body)).await.0,
        StatusCode::ACCEPTED
    );
    let (status, out) = send(&env, delivery(gh, &path, &secret, "push", "real", &body)).await;
    assert_eq!((status, out["error"]["field"].as_str()), (StatusCode::CONFLICT, Some("delivery")));
    assert_eq!(deployments(&env).await.len(), 1, "the replay deployed again");
    // With tags on, the tag deploys.
    assert_eq!(
        api(&env, "PATCH", "/api/v1/apps/shop", Some(serde_json::json!({"deploy_tags": true})))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&env, delivery(gh, &path, &secret, "push", "t2", &tag)).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(deployments(&env).await.last().unwrap().0, "v1.0");

    // Every outcome is counted.
    let text = env.cp.state.metrics.render(&env.cp.state.hub, &Default::default());
    for (outcome, n) in [
        ("pong", 1),
        ("bad_signature", 3),
        ("unknown_hook", 2),
        ("too_large", 1),
        ("ignored", 2),
        ("bad_payload", 1),
        ("replayed", 1),
        ("queued", 2),
    ] {
        let line = format!(
            "wh_cp_git_hook_deliveries_total{{provider=\"github\",outcome=\"{outcome}\"}} {n}"
        );
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }

    // Removed: deliveries answer 404.
    let id = hook["id"].as_str().unwrap();
    assert_eq!(
        api(&env, "DELETE", &format!("/api/v1/apps/shop/hooks/{id}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&env, delivery(gh, &path, &secret, "push", "after", &body)).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn deliveries_are_limited_to_60_a_minute_per_address() {
    let env = env().await;
    let path = format!("/api/v1/hooks/github/{}", "a".repeat(32));
    for i in 0..60 {
        let (status, _) =
            send(&env, delivery(Provider::Github, &path, "s", "push", &format!("{i}"), "{}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "delivery {i}");
    }
    let (status, body) =
        send(&env, delivery(Provider::Github, &path, "s", "push", "61", "{}")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

#[tokio::test]
async fn a_monorepo_app_builds_its_directory_and_deploys_only_when_a_watched_path_changed() {
    let env = env().await;
    let app = serde_json::json!({"name": "mono", "repo_url": "https://git.example.test/mono.git", "port": 8080});
    assert_eq!(api(&env, "POST", "/api/v1/apps", Some(app)).await.0, StatusCode::CREATED);
    for (field, bad) in [
        ("root_dir", serde_json::json!({"root_dir": "../etc"})),
        ("root_dir", serde_json::json!({"root_dir": "/srv"})),
        ("watch_paths", serde_json::json!({"watch_paths": ["web/", "a/../b"]})),
    ] {
        let (status, err) = api(&env, "PATCH", "/api/v1/apps/mono", Some(bad)).await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field))
        );
    }
    let set = serde_json::json!({"root_dir": "services/web", "watch_paths": ["services/web/", "package.json"]});
    let (status, app) = api(&env, "PATCH", "/api/v1/apps/mono", Some(set)).await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["root_dir"], "services/web");
    let (_, hook) = api(
        &env,
        "POST",
        "/api/v1/apps/mono/hooks",
        Some(serde_json::json!({"provider": "github"})),
    )
    .await;
    let (path, secret) = (hook["path"].as_str().unwrap(), hook["secret"].as_str().unwrap());
    let push_touching = |files: &[&str]| {
        serde_json::json!({"ref": "refs/heads/main", "after": SHA,
            "head_commit": {"id": SHA, "message": "m", "author": {"name": "A", "email": "a@example.test"}},
            "commits": [{"id": SHA, "added": [], "modified": files, "removed": []}]})
        .to_string()
    };
    let gh = Provider::Github;
    let elsewhere = push_touching(&["services/api/main.go", "services/webhooks.txt"]);
    let (status, out) = send(&env, delivery(gh, path, secret, "push", "m1", &elsewhere)).await;
    assert_eq!((status, out["status"].as_str()), (StatusCode::ACCEPTED, Some("ignored")), "{out}");
    assert!(out["reason"].as_str().unwrap().contains("no watched path"), "{out}");
    let inside = push_touching(&["docs/x.md", "services/web/src/app.tsx"]);
    let (status, out) = send(&env, delivery(gh, path, secret, "push", "m2", &inside)).await;
    assert_eq!((status, out["status"].as_str()), (StatusCode::ACCEPTED, Some("queued")), "{out}");
    // The job builds the root directory.
    let payload: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM jobs ORDER BY id DESC LIMIT 1")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(payload["root_dir"], "services/web", "{payload}");
    // A delivery that does not list its files deploys (it may have touched anything).
    let unlisted = serde_json::json!({"ref": "refs/heads/main", "after": SHA}).to_string();
    let (_, out) = send(&env, delivery(gh, path, secret, "push", "m3", &unlisted)).await;
    assert_eq!(out["status"], "queued", "{out}");
}
