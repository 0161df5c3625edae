//! The OpenAPI document against the API it describes: a tour calls every documented operation
//! with real data, checks each request body it sends against the operation's request schema
//! and each answer against the declared status and response schema; and the dashboard's copy
//! of the document (from which its TypeScript types are generated) is this document.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wh_control_plane::api::openapi;
use wh_control_plane::githooks::Provider;
use wh_control_plane::testing::forge::{FakeForge, FakeRepo};
use wh_control_plane::testing::{Options, TestControlPlane};

struct Tour {
    router: axum::Router,
    doc: serde_json::Value,
    headers: Vec<(String, String)>,
    visited: BTreeSet<(String, String)>,
    /// The last answer's body as text.
    last_text: String,
}

impl Tour {
    /// The operation `template` `method`, as documented.
    fn operation(&self, method: &str, template: &str) -> &serde_json::Value {
        let op = &self.doc["paths"][template][method];
        assert!(op.is_object(), "{method} {template} is not in the document");
        op
    }

    /// Validates `instance` against `schema` (which may `$ref` the document's components).
    fn check(&self, what: &str, schema: &serde_json::Value, instance: &serde_json::Value) {
        // `true` (any JSON) has nowhere to put the components.
        let mut root = match schema {
            serde_json::Value::Bool(true) => serde_json::json!({}),
            other => other.clone(),
        };
        root["components"] = self.doc["components"].clone();
        let validator = jsonschema::validator_for(&root)
            .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}\n{schema}"));
        let errors: Vec<String> = validator.iter_errors(instance).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{what}: {errors:?}\n{instance}");
    }

    /// Calls `method uri` (an instance of `template`) with a JSON body, checks the exchange
    /// against the document, returns the answer's JSON (or Null).
    async fn call(
        &mut self,
        method: &str,
        template: &str,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        self.call_with(method, template, uri, body, &[]).await
    }

    /// [`Tour::call`] without a body, for an answer that is not JSON: its text.
    async fn call_text(&mut self, method: &str, template: &str, uri: &str) -> String {
        self.call_with(method, template, uri, None, &[]).await;
        self.last_text.clone()
    }

    /// [`Tour::call`] with more headers.
    async fn call_with(
        &mut self,
        method: &str,
        template: &str,
        uri: &str,
        body: Option<serde_json::Value>,
        extra: &[(&str, &[u8])],
    ) -> serde_json::Value {
        let op = self.operation(method, template).clone();
        let mut req = Request::builder().method(method.to_ascii_uppercase().as_str()).uri(uri);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(json) => {
                let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                let documented = schema.is_object() || schema.is_boolean();
                assert!(documented, "{method} {template} documents no JSON body");
                self.check(&format!("request of {method} {template}"), schema, &json);
                req = req.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let resp = self.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let responses = op["responses"].as_object().unwrap();
        let error = status.is_client_error().then(|| responses.get("default")).flatten();
        let declared = responses.get(status.as_str()).or(error).unwrap_or_else(|| {
            panic!(
                "{method} {uri}: {status} is not a documented answer ({:?}): {}",
                responses.keys().collect::<Vec<_>>(),
                String::from_utf8_lossy(&bytes)
            )
        });
        let media = content_type.split(';').next().unwrap_or("").trim().to_owned();
        self.last_text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        if status == StatusCode::NO_CONTENT || status.is_redirection() {
            assert!(declared.get("content").is_none(), "{method} {template}: 204 with content");
        } else {
            let schema = &declared["content"][&media]["schema"];
            let documented = schema.is_object() || schema.is_boolean();
            assert!(documented, "{method} {template}: {media} is not documented");
            if media == "application/json" {
                self.check(&format!("answer of {method} {template}"), schema, &json);
            }
        }
        self.visited.insert((method.to_owned(), template.to_owned()));
        json
    }
}

#[tokio::test]
async fn every_operation_answers_what_the_document_says() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    // Domain checks ask a resolver on loopback that never answers: a quick `timeout`.
    let dns = wh_control_plane::domains::DnsSettings {
        servers: vec!["127.0.0.1:9".parse().unwrap()],
        timeout: Duration::from_millis(300),
    };
    let forge = FakeForge::start(3600).await;
    let git_providers = vec![forge.config(Provider::Github)];
    // Webhook and channel deliveries (tests) go to a stand-in on loopback.
    let receiver = wh_control_plane::testing::standin::StandIn::https(&[
        "tour-hooks.example.test",
        "discord.com",
    ])
    .await;
    let resolver = wh_control_plane::outbound::resolve::Fixed(std::collections::HashMap::from([
        ("tour-hooks.example.test".to_owned(), receiver.addr),
        ("discord.com".to_owned(), receiver.addr),
    ]));
    let outbound = wh_control_plane::testing::Outbound::loopback(
        std::sync::Arc::new(resolver),
        receiver.pem.as_deref(),
    );
    let cp = TestControlPlane::start(
        &db.pool,
        Options { dns: Some(dns), git_providers, outbound: Some(outbound), ..Options::bare() },
    )
    .await;
    wh_control_plane::auth::create_user(
        &db.pool,
        "tour@example.test",
        "a long enough password",
        true,
    )
    .await
    .unwrap();
    wh_control_plane::workers::create(&db.pool, "tour-worker", "127.0.0.9").await.unwrap();
    let mut tour = Tour {
        router: wh_control_plane::api::app(cp.state.clone()),
        doc: openapi::build(),
        headers: Vec::new(),
        last_text: String::new(),
        visited: BTreeSet::new(),
    };

    tour.call("get", "/api/v1/openapi.json", "/api/v1/openapi.json", None).await;
    let login =
        serde_json::json!({"email": "tour@example.test", "password": "a long enough password"});
    let req = Request::post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(login.to_string()))
        .unwrap();
    let resp = tour.router.clone().oneshot(req).await.unwrap();
    let cookie =
        resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    tour.headers.push(("cookie".into(), cookie));
    // The tour's own sign-in, checked like every other call (the cookie of the first is used).
    let signed_in =
        tour.call("post", "/api/v1/auth/login", "/api/v1/auth/login", Some(login)).await;
    let session = tour.call("get", "/api/v1/auth/session", "/api/v1/auth/session", None).await;
    tour.headers.push(("x-csrf-token".into(), session["csrf_token"].as_str().unwrap().to_owned()));
    assert_eq!(session["user"], signed_in["user"]);

    tour.call("get", "/api/v1/me", "/api/v1/me", None).await;
    let token = tour
        .call(
            "post",
            "/api/v1/tokens",
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "ci", "expires_in_days": 30})),
        )
        .await;
    tour.call("get", "/api/v1/tokens", "/api/v1/tokens", None).await;
    tour.call("delete", "/api/v1/tokens/{id}", &format!("/api/v1/tokens/{}", token["id"]), None)
        .await;

    let app = serde_json::json!({"name": "tour-app", "port": 8000});
    tour.call("post", "/api/v1/apps", "/api/v1/apps", Some(app)).await;
    tour.call("get", "/api/v1/apps", "/api/v1/apps", None).await;
    let plans = tour.call("get", "/api/v1/plans", "/api/v1/plans", None).await;
    assert_eq!(plans[0]["name"], "hobby", "{plans}");
    tour.call("get", "/api/v1/apps/{slug}", "/api/v1/apps/tour-app", None).await;
    tour.call(
        "patch",
        "/api/v1/apps/{slug}",
        "/api/v1/apps/tour-app",
        Some(serde_json::json!({"port": 8080})),
    )
    .await;
    let env = "/api/v1/apps/tour-app/env";
    tour.call(
        "put",
        "/api/v1/apps/{slug}/env",
        env,
        Some(serde_json::json!({"vars": {"A": "1", "B": "two words"}})),
    )
    .await;
    // One bad variable refuses the whole set, naming it; nothing changes.
    let bad = serde_json::json!({"vars": {"A": "changed", "NOT-A-NAME": "x"}});
    let refused = tour.call("put", "/api/v1/apps/{slug}/env", env, Some(bad)).await;
    assert_eq!(refused["error"]["field"], "vars", "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().starts_with("NOT-A-NAME: "), "{refused}");
    let unchanged =
        tour.call("get", "/api/v1/apps/{slug}/env", &format!("{env}?reveal=true"), None).await;
    assert_eq!(unchanged, serde_json::json!({"A": "1", "B": "two words"}));
    tour.call(
        "put",
        "/api/v1/apps/{slug}/env/{key}",
        &format!("{env}/C"),
        Some(serde_json::json!({"value": "3"})),
    )
    .await;
    tour.call("delete", "/api/v1/apps/{slug}/env/{key}", &format!("{env}/A"), None).await;
    let vars =
        tour.call("get", "/api/v1/apps/{slug}/env", &format!("{env}?reveal=true"), None).await;
    assert_eq!(vars, serde_json::json!({"B": "two words", "C": "3"}));

    let deployments = "/api/v1/apps/tour-app/deployments";
    let tarball =
        wh_wsproto::archive::pack([("index.html", &b"<h1>tour</h1>"[..], false)]).unwrap();
    let mut req = Request::post(deployments).header("content-type", "application/gzip");
    for (k, v) in &tour.headers {
        req = req.header(k, v);
    }
    let resp = tour.router.clone().oneshot(req.body(Body::from(tarball)).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let deployment: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let schema = tour.operation("post", "/api/v1/apps/{slug}/deployments")["responses"]["201"]
        ["content"]["application/json"]["schema"]
        .clone();
    tour.check("answer to an upload", &schema, &deployment);
    tour.visited.insert(("post".into(), "/api/v1/apps/{slug}/deployments".into()));
    assert!(tour.operation("post", "/api/v1/apps/{slug}/deployments")["requestBody"]["content"]
        ["application/gzip"]
        .is_object());
    tour.call("get", "/api/v1/apps/{slug}/deployments", deployments, None).await;
    let id = deployment["id"].as_i64().unwrap();
    tour.call("get", "/api/v1/deployments/{id}", &format!("/api/v1/deployments/{id}"), None).await;
    tour.call(
        "get",
        "/api/v1/deployments/{id}/build-log",
        &format!("/api/v1/deployments/{id}/build-log?from=0"),
        None,
    )
    .await;
    tour.call(
        "post",
        "/api/v1/deployments/{id}/cancel",
        &format!("/api/v1/deployments/{id}/cancel"),
        None,
    )
    .await;
    // Only a deployment that went live can be deployed again.
    let again = serde_json::json!({"rollback_to": id});
    let refused =
        tour.call("post", "/api/v1/apps/{slug}/deployments", deployments, Some(again)).await;
    assert_eq!(refused["error"]["field"], "rollback_to", "{refused}");
    let apps = tour.call("get", "/api/v1/apps", "/api/v1/apps", None).await;
    assert_eq!(apps[0]["last_deployment_state"], "cancelled", "{apps}");
    tour.call("get", "/api/v1/apps/{slug}/containers", "/api/v1/apps/tour-app/containers", None)
        .await;
    tour.call("get", "/api/v1/apps/{slug}/logs", "/api/v1/apps/tour-app/logs?lines=10", None).await;

    let domains = "/api/v1/apps/tour-app/domains";
    tour.call(
        "post",
        "/api/v1/apps/{slug}/domains",
        domains,
        Some(serde_json::json!({"hostname": "www.tour.example"})),
    )
    .await;
    tour.call("get", "/api/v1/apps/{slug}/domains", domains, None).await;
    tour.call(
        "post",
        "/api/v1/apps/{slug}/domains/{hostname}/verify",
        &format!("{domains}/www.tour.example/verify"),
        None,
    )
    .await;
    tour.call(
        "delete",
        "/api/v1/apps/{slug}/domains/{hostname}",
        &format!("{domains}/www.tour.example"),
        None,
    )
    .await;

    // Usage: an app's points and totals, the caller's apps' totals.
    tour.call("get", "/api/v1/apps/{slug}/usage", "/api/v1/apps/tour-app/usage?step=5m", None)
        .await;
    tour.call("get", "/api/v1/usage", "/api/v1/usage", None).await;

    // Alert rules: listed, one changed and muted; the history and what fires now.
    let rules = "/api/v1/apps/tour-app/alerts/rules";
    let listed = tour.call("get", "/api/v1/apps/{slug}/alerts/rules", rules, None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(7), "{listed}");
    let cpu = format!("{rules}/cpu");
    let changed = tour
        .call(
            "put",
            "/api/v1/apps/{slug}/alerts/rules/{kind}",
            &cpu,
            Some(serde_json::json!({"threshold": 70, "for_secs": 120})),
        )
        .await;
    assert_eq!(changed["threshold"], 70.0);
    tour.call(
        "post",
        "/api/v1/apps/{slug}/alerts/rules/{kind}/mute",
        &format!("{cpu}/mute"),
        Some(serde_json::json!({"minutes": 30})),
    )
    .await;
    tour.call("get", "/api/v1/apps/{slug}/alerts", "/api/v1/apps/tour-app/alerts", None).await;
    tour.call("get", "/api/v1/alerts", "/api/v1/alerts", None).await;

    // A signed webhook and a notification channel: added, listed, changed, tested, rotated,
    // their deliveries read, removed.
    for (base, url) in [
        ("/api/v1/webhooks", "https://tour-hooks.example.test/in"),
        ("/api/v1/notifications", "discord://tok@123"),
    ] {
        let created = tour
            .call("post", base, base, Some(serde_json::json!({"url": url, "app": "tour-app", "events": ["deployment.failed"]})))
            .await;
        let id = created["target"]["id"].as_i64().unwrap();
        let one = format!("{base}/{{id}}");
        let this = format!("{base}/{id}");
        tour.call("get", base, base, None).await;
        tour.call("get", &one, &this, None).await;
        tour.call(
            "patch",
            &one,
            &this,
            Some(serde_json::json!({"events": ["deployment.failed", "alert.fired"]})),
        )
        .await;
        let tested = tour.call("post", &format!("{one}/test"), &format!("{this}/test"), None).await;
        assert_eq!(tested["state"], "succeeded", "{tested}");
        if base == "/api/v1/webhooks" {
            tour.call("post", &format!("{one}/rotate"), &format!("{this}/rotate"), None).await;
        }
        tour.call("get", &format!("{one}/deliveries"), &format!("{this}/deliveries"), None).await;
        tour.call("delete", &one, &this, None).await;
    }

    // A git provider: offered, connected (the fake forge approves at once), its repositories
    // listed, disconnected.
    tour.call("get", "/api/v1/git/providers", "/api/v1/git/providers", None).await;
    let authorize = tour
        .call("post", "/api/v1/git/{provider}/connect", "/api/v1/git/github/connect", None)
        .await;
    let approved =
        wh_testkit::http::get(authorize["authorize_url"].as_str().unwrap(), &[]).await.unwrap();
    let location = approved.headers["location"].to_str().unwrap();
    let callback = &location[location.find("/api/v1/git/").unwrap()..];
    tour.call("get", "/api/v1/git/{provider}/callback", callback, None).await;
    let connections =
        tour.call("get", "/api/v1/git/connections", "/api/v1/git/connections", None).await;
    let connection = connections[0]["id"].as_i64().unwrap();
    forge.add_repo(FakeRepo {
        provider: Provider::Github,
        full_name: "tour/site".into(),
        private: false,
        default_branch: "main".into(),
        dir: None,
    });
    let repos = format!("/api/v1/git/connections/{connection}/repos");
    let page = tour
        .call("get", "/api/v1/git/connections/{id}/repos", &format!("{repos}?q=site"), None)
        .await;
    assert_eq!(page["repos"][0]["full_name"], "tour/site", "{page}");
    let gone = format!("/api/v1/git/connections/{connection}");
    tour.call("delete", "/api/v1/git/connections/{id}", &gone, None).await;

    // The GitHub App: made from its manifest (the fake forge approves at once), installed, and
    // a signed ping to its webhook.
    tour.call("get", "/api/v1/git/github-app", "/api/v1/git/github-app", None).await;
    let page =
        tour.call_text("get", "/api/v1/git/github-app/new", "/api/v1/git/github-app/new").await;
    let attribute = |name: &str| {
        let start = page.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let end = start + page[start..].find('"').unwrap();
        page[start..end].replace("&quot;", "\"").replace("&amp;", "&")
    };
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("manifest", &attribute("value"))
        .finish();
    let posted = wh_testkit::http::request(
        "POST",
        &attribute("action"),
        Some(form.into()),
        &[],
        &[("content-type", "application/x-www-form-urlencoded")],
    )
    .await
    .unwrap();
    let back = posted.headers["location"].to_str().unwrap();
    let created = &back[back.find("/api/v1/git/").unwrap()..];
    tour.call("get", "/api/v1/git/github-app/created", created, None).await;
    let install = tour
        .call("post", "/api/v1/git/github-app/install", "/api/v1/git/github-app/install", None)
        .await;
    let installing =
        wh_testkit::http::get(install["install_url"].as_str().unwrap(), &[]).await.unwrap();
    let back = installing.headers["location"].to_str().unwrap();
    let installed = &back[back.find("/api/v1/git/").unwrap()..];
    tour.call("get", "/api/v1/git/github-app/installed", installed, None).await;
    let ping = serde_json::json!({"zen": "Keep it logically awesome.", "hook_id": 1});
    let app_secret = forge.app().unwrap().webhook_secret;
    let signature = wh_control_plane::githooks::verify::sign(
        Provider::Github,
        app_secret.as_bytes(),
        ping.to_string().as_bytes(),
    );
    let extra: [(&str, &[u8]); 3] = [
        ("x-github-event", b"ping"),
        ("x-github-delivery", b"tour-app-1"),
        ("x-hub-signature-256", &signature),
    ];
    tour.call_with(
        "post",
        "/api/v1/hooks/github-app",
        "/api/v1/hooks/github-app",
        Some(ping),
        &extra,
    )
    .await;

    // A git webhook: made, listed, a signed ping delivered to it, removed.
    let hooks = "/api/v1/apps/tour-app/hooks";
    let hook = tour
        .call(
            "post",
            "/api/v1/apps/{slug}/hooks",
            hooks,
            Some(serde_json::json!({"provider": "github"})),
        )
        .await;
    tour.call("get", "/api/v1/apps/{slug}/hooks", hooks, None).await;
    let ping = serde_json::json!({"zen": "Design for failure."});
    let signature = wh_control_plane::githooks::verify::sign(
        wh_control_plane::githooks::Provider::Github,
        hook["secret"].as_str().unwrap().as_bytes(),
        ping.to_string().as_bytes(),
    );
    let extra: [(&str, &[u8]); 3] = [
        ("x-github-event", b"ping"),
        ("x-github-delivery", b"tour-1"),
        ("x-hub-signature-256", &signature),
    ];
    let path = hook["path"].as_str().unwrap().to_owned();
    let pong = tour
        .call_with("post", "/api/v1/hooks/{provider}/{hook_id}", &path, Some(ping), &extra)
        .await;
    assert_eq!(pong["status"], "pong", "{pong}");
    let hook_id = hook["id"].as_str().unwrap();
    tour.call("delete", "/api/v1/apps/{slug}/hooks/{id}", &format!("{hooks}/{hook_id}"), None)
        .await;

    let workers = tour.call("get", "/api/v1/workers", "/api/v1/workers", None).await;
    assert_eq!(workers[0]["enabled"], true);
    tour.call(
        "post",
        "/api/v1/workers/{name}/disable",
        "/api/v1/workers/tour-worker/disable",
        None,
    )
    .await;
    let workers = tour.call("get", "/api/v1/workers", "/api/v1/workers", None).await;
    assert_eq!(workers[0]["enabled"], false);
    tour.call("post", "/api/v1/workers/{name}/enable", "/api/v1/workers/tour-worker/enable", None)
        .await;
    tour.call("get", "/api/v1/users", "/api/v1/users", None).await;
    tour.call("get", "/api/v1/audit-events", "/api/v1/audit-events", None).await;
    tour.call("delete", "/api/v1/apps/{slug}", "/api/v1/apps/tour-app", None).await;
    tour.call("post", "/api/v1/auth/logout", "/api/v1/auth/logout", None).await;

    let documented: BTreeSet<(String, String)> = tour.doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(|m| (m.clone(), path.clone())))
        .collect();
    let missed: Vec<_> = documented.difference(&tour.visited).collect();
    assert!(missed.is_empty(), "operations the tour did not exercise: {missed:?}");
}

/// The dashboard generates its API types from `dashboard/src/api/openapi.json`; it must be
/// this document. `WH_UPDATE_OPENAPI=1 cargo test -p wh-control-plane --test openapi` writes it.
#[test]
fn the_dashboards_copy_of_the_document_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../dashboard/src/api/openapi.json");
    let current = serde_json::to_string_pretty(&openapi::build()).unwrap() + "\n";
    if std::env::var_os("WH_UPDATE_OPENAPI").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &current).unwrap();
    }
    let copy = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        copy == current,
        "{} is not the API's document: run WH_UPDATE_OPENAPI=1 cargo test -p wh-control-plane --test openapi",
        path.display()
    );
}
