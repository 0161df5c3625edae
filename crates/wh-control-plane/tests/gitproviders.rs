//! Connected git providers against the fake forge, for each of GitHub, GitLab, Bitbucket,
//! Gitea and Forgejo: the OAuth flow (the state used once, the tokens sealed), the repository
//! list (pages, search), an app made from a repository (its webhook registered with its own
//! secret), a signed push deploying the pushed commit with its state reported back as the
//! commit's status, pull requests deploying previews (the plan's bound, the preview-only
//! variables, the preview's URL on the status) removed when closed, a token refreshed before it expires, the hook removed with the app, and the
//! grant revoked on disconnect where the provider can. Real Postgres, real sockets.

use std::time::Duration;

use serde_json::{json, Value};
use wh_control_plane::gitproviders::Provider;
use wh_control_plane::testing::forge::{self, FakeForge, FakeRepo};
use wh_control_plane::testing::{fixtures, Options, TestControlPlane};
use wh_testkit::{eventually, http};

const SHA: &str = "4c1f0d9e5b1a2c4d6e8f0a1b3c5d7e9f1a2b3c4d";
const PR_SHA: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d";

struct Env {
    cp: TestControlPlane,
    forge: FakeForge,
    db: wh_testkit::postgres::TestDatabase,
    bearer: String,
}

async fn env(ttl: u64) -> Env {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let forge = FakeForge::start(ttl).await;
    let options = Options {
        scheduler: None,
        git_providers: Provider::ALL.iter().map(|p| forge.config(*p)).collect(),
        ..Options::default()
    };
    let cp = TestControlPlane::start(&db.pool, options).await;
    let (_, bearer) = fixtures::user_with_token(&db.pool, "git@example.test").await;
    Env { cp, forge, db, bearer }
}

async fn api(env: &Env, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", env.cp.url());
    let mut headers = vec![("authorization", env.bearer.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let body = body.map(|b| b.to_string().into());
    let r = http::request(method, &url, body, &[], &headers).await.unwrap();
    (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
}

fn location(r: &http::Response) -> String {
    r.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Connects `provider` as the test's user: connect → the forge's authorize page (which
/// approves at once) → the callback. Returns the callback URL (spent by now).
async fn connect(env: &Env, provider: Provider) -> String {
    let (status, body) =
        api(env, "POST", &format!("/api/v1/git/{}/connect", provider.as_str()), None).await;
    assert_eq!(status, 201, "{body}");
    let authorize = body["authorize_url"].as_str().unwrap().to_owned();
    let web = env.forge.config(provider).web_url;
    assert!(authorize.starts_with(&web), "{authorize}");
    let redirect = format!("{}/api/v1/git/{}/callback", env.cp.url(), provider.as_str());
    let encoded: String = form_urlencoded::byte_serialize(redirect.as_bytes()).collect();
    assert!(authorize.contains(&format!("redirect_uri={encoded}")), "{authorize}");
    assert!(authorize.contains("client_id=fake-client-id"), "{authorize}");
    let approved = http::get(&authorize, &[]).await.unwrap();
    assert_eq!(approved.status, 302, "{}", approved.text());
    let callback = location(&approved);
    assert!(callback.starts_with(&redirect), "{callback}");
    let back = http::get(&callback, &[]).await.unwrap();
    assert_eq!(back.status, 303, "{}", back.text());
    assert_eq!(
        location(&back),
        format!("/settings/git?connected={}&account=tess", provider.as_str())
    );
    callback
}

/// The access tokens the control plane presented to the forge so far.
fn bearer_tokens(forge: &FakeForge, provider: Provider) -> Vec<String> {
    forge
        .requests()
        .into_iter()
        .filter(|r| r.provider == provider)
        .filter_map(|r| r.authorization?.strip_prefix("Bearer ").map(str::to_owned))
        .collect()
}

async fn provider_end_to_end(provider: Provider) {
    let env = env(3600).await;
    let p = provider.as_str();
    let (status, providers) = api(&env, "GET", "/api/v1/git/providers", None).await;
    assert_eq!(status, 200);
    assert!(providers.as_array().unwrap().iter().any(|x| x["provider"] == p), "{providers}");

    // Connect; the callback works once.
    let callback = connect(&env, provider).await;
    let again = http::get(&callback, &[]).await.unwrap();
    assert_eq!(again.status, 400, "a spent state must not connect again: {}", again.text());
    let (_, conns) = api(&env, "GET", "/api/v1/git/connections", None).await;
    let conns = conns.as_array().unwrap().clone();
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(
        (conns[0]["provider"].as_str(), conns[0]["account"].as_str()),
        (Some(p), Some("tess"))
    );
    let conn = conns[0]["id"].as_i64().unwrap();

    // Repositories: pages of 30, and a search.
    env.forge.add_repo(FakeRepo {
        provider,
        full_name: "tess/site".into(),
        private: true,
        default_branch: "trunk".into(),
        dir: None,
    });
    for i in 0..35 {
        env.forge.add_repo(FakeRepo {
            provider,
            full_name: format!("tess/other-{i}"),
            private: false,
            default_branch: "main".into(),
            dir: None,
        });
    }
    let (status, page1) =
        api(&env, "GET", &format!("/api/v1/git/connections/{conn}/repos"), None).await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(page1["repos"].as_array().unwrap().len(), 30, "{page1}");
    assert_eq!(page1["more"], true);
    let (_, page2) =
        api(&env, "GET", &format!("/api/v1/git/connections/{conn}/repos?page=2"), None).await;
    assert_eq!(page2["repos"].as_array().unwrap().len(), 6, "{page2}");
    assert_eq!(page2["more"], false);
    let (_, found) =
        api(&env, "GET", &format!("/api/v1/git/connections/{conn}/repos?q=site"), None).await;
    let found = found["repos"].as_array().unwrap().clone();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0]["full_name"].as_str(), found[0]["private"].as_bool()),
        (Some("tess/site"), Some(true))
    );

    // The tokens are sealed: not in the database in clear.
    let token = bearer_tokens(&env.forge, provider).pop().expect("the control plane used a token");
    let dump: Vec<Vec<u8>> = sqlx::query_scalar("SELECT tokens_sealed FROM git_connections")
        .fetch_all(&env.db.pool)
        .await
        .unwrap();
    assert!(!dump.iter().any(|d| d.windows(token.len()).any(|w| w == token.as_bytes())));

    // An app from the repository: its hook is registered with a secret of its own.
    let reference = format!("{p}:tess/site");
    let (status, app) = api(
        &env,
        "POST",
        "/api/v1/apps",
        Some(json!({"name": format!("site-{p}"), "repo": reference, "port": 8080})),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["repo"], reference.as_str());
    assert_eq!(app["connection"], conn);
    assert_eq!(app["branch"], "trunk", "the repository's default branch");
    assert!(app["repo_url"].as_str().unwrap().ends_with("/git/tess/site.git"), "{app}");
    let hooks = env.forge.hooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let hook_url = format!("{}/api/v1/hooks/{p}/", env.cp.url());
    assert!(hooks[0].url.starts_with(&hook_url), "{:?}", hooks[0]);
    assert_eq!(hooks[0].secret.len(), 64);
    assert!(hooks[0].secret.bytes().all(|b| b.is_ascii_hexdigit()));

    // A signed push deploys that commit, and its state goes back to the forge.
    let (event, body) = forge::push_event(provider, "trunk", SHA);
    let answers = env.forge.deliver(provider, "tess/site", event, "d-1", &body).await;
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0, 202, "{}", answers[0].1);
    let queued: Value = serde_json::from_str(&answers[0].1).unwrap();
    let deployment = queued["deployments"][0].as_i64().unwrap();
    let target = format!("{}/deployments/{deployment}", env.cp.url());
    let pending = match provider {
        Provider::Gitlab => "running",
        Provider::Bitbucket => "INPROGRESS",
        _ => "pending",
    };
    let success = match provider {
        Provider::Bitbucket => "SUCCESSFUL",
        _ => "success",
    };
    let forge_ref = env.forge.clone();
    eventually(Duration::from_secs(10), "the pending status reaches the forge", || {
        let statuses = forge_ref.statuses();
        async move { statuses.iter().any(|s| s.state == pending && s.sha == SHA).then_some(()) }
    })
    .await;
    sqlx::query("UPDATE deployments SET state = 'live' WHERE id = $1")
        .bind(deployment)
        .execute(&env.db.pool)
        .await
        .unwrap();
    let forge_ref = env.forge.clone();
    let done = eventually(Duration::from_secs(10), "the success status reaches the forge", || {
        let statuses = forge_ref.statuses();
        async move { statuses.into_iter().find(|s| s.state == success) }
    })
    .await;
    assert_eq!(
        (done.repo.as_str(), done.sha.as_str(), done.target_url.as_str()),
        ("tess/site", SHA, target.as_str())
    );
    let reporting: bool = sqlx::query_scalar("SELECT report_status FROM deployments WHERE id = $1")
        .bind(deployment)
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert!(!reporting, "a final state is the last one reported");

    // With auto-deploy off, a push deploys nothing.
    let site_path = format!("/api/v1/apps/site-{p}");
    let (_, off) = api(&env, "PATCH", &site_path, Some(json!({"auto_deploy": false}))).await;
    assert_eq!(off["auto_deploy"], false, "{off}");
    let answers = env.forge.deliver(provider, "tess/site", event, "d-2", &body).await;
    assert!(answers[0].1.contains("auto-deploy is off"), "{:?}", answers);
    api(&env, "PATCH", &site_path, Some(json!({"auto_deploy": true}))).await;

    // Pull requests into the app's branch get previews once the app asks for them.
    let site = format!("site-{p}");
    let preview = format!("pr-7-{site}");
    let (event, body) = forge::pull_event(provider, 7, true, "cart", "trunk", PR_SHA);
    let answers = env.forge.deliver(provider, "tess/site", event, "pr-0", &body).await;
    assert!(answers[0].1.contains("previews are off"), "{:?}", answers);
    let (status, _) = api(
        &env,
        "PUT",
        &format!("/api/v1/apps/{site}/env/GREETING"),
        Some(json!({"value": "hello"})),
    )
    .await;
    assert_eq!(status, 204);
    let patch =
        json!({"previews": true, "preview_env": {"STAGE": "preview", "GREETING": "preview hello"}});
    let (status, patched) = api(&env, "PATCH", &format!("/api/v1/apps/{site}"), Some(patch)).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["previews"].as_bool(), patched["max_previews"].as_i64()),
        (Some(true), Some(2))
    );
    assert_eq!(patched["preview_env_keys"], json!(["GREETING", "STAGE"]));
    let answers = env.forge.deliver(provider, "tess/site", event, "pr-1", &body).await;
    assert_eq!(answers[0].0, 202, "{}", answers[0].1);
    let queued: Value = serde_json::from_str(&answers[0].1).unwrap();
    assert_eq!(queued["status"], "queued", "{queued}");
    let preview_deployment = queued["deployments"][0].as_i64().unwrap();
    let (status, shown) = api(&env, "GET", &format!("/api/v1/apps/{preview}"), None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        (shown["preview_of"].as_str(), shown["branch"].as_str()),
        (Some(site.as_str()), Some("cart"))
    );
    let (_, vars) =
        api(&env, "GET", &format!("/api/v1/apps/{preview}/env?reveal=true"), None).await;
    assert_eq!(
        vars,
        json!({"GREETING": "preview hello", "STAGE": "preview"}),
        "the app's variables, the preview's over them"
    );
    sqlx::query("UPDATE deployments SET state = 'live' WHERE id = $1")
        .bind(preview_deployment)
        .execute(&env.db.pool)
        .await
        .unwrap();
    let forge_ref = env.forge.clone();
    let preview_status =
        eventually(Duration::from_secs(10), "the preview's status reaches the forge", || {
            let statuses = forge_ref.statuses();
            async move { statuses.into_iter().find(|s| s.state == success && s.sha == PR_SHA) }
        })
        .await;
    assert_eq!(
        preview_status.target_url,
        format!("https://{preview}.route.test"),
        "the pull request links to the preview"
    );
    // The plan (hobby) allows two at once; a request into another branch gets none.
    for n in [8, 9] {
        let (event, body) = forge::pull_event(provider, n, true, &format!("f{n}"), "trunk", PR_SHA);
        env.forge.deliver(provider, "tess/site", event, &format!("pr-{n}"), &body).await;
    }
    let (_, apps) = api(&env, "GET", "/api/v1/apps", None).await;
    let names: Vec<&str> =
        apps.as_array().unwrap().iter().filter_map(|a| a["slug"].as_str()).collect();
    assert!(
        names.contains(&format!("pr-8-{site}").as_str())
            && !names.contains(&format!("pr-9-{site}").as_str()),
        "{names:?}"
    );
    let (event, body) = forge::pull_event(provider, 10, true, "x", "elsewhere", PR_SHA);
    let answers = env.forge.deliver(provider, "tess/site", event, "pr-10", &body).await;
    assert!(answers[0].1.contains("not trunk"), "{:?}", answers);
    // Closing (or merging) removes the preview.
    let (event, body) = forge::pull_event(provider, 7, false, "cart", "trunk", PR_SHA);
    let answers = env.forge.deliver(provider, "tess/site", event, "pr-close", &body).await;
    assert_eq!(answers[0].0, 202, "{}", answers[0].1);
    assert!(answers[0].1.contains("removed"), "{}", answers[0].1);
    let (status, _) = api(&env, "GET", &format!("/api/v1/apps/{preview}"), None).await;
    assert_eq!(status, 404, "the preview is gone");

    // Neither the audit trail nor the jobs carry a token.
    let tokens = bearer_tokens(&env.forge, provider);
    let trail: Vec<String> = sqlx::query_scalar(
        "SELECT details::text FROM audit_events UNION ALL SELECT payload::text FROM jobs",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert!(!trail.iter().any(|t| tokens.iter().any(|k| t.contains(k.as_str()))), "a token leaked");

    // Tokens about to expire are refreshed before use (GitHub OAuth App tokens do not expire),
    // and in the background.
    if provider != Provider::Github {
        sqlx::query("UPDATE git_connections SET expires_at = now() + interval '1 minute'")
            .execute(&env.db.pool)
            .await
            .unwrap();
        let n = wh_control_plane::gitproviders::connections::refresh_due(
            &env.db.pool,
            &env.cp.state.forges,
        )
        .await
        .unwrap();
        assert_eq!(n, 1);
        sqlx::query("UPDATE git_connections SET expires_at = now() + interval '1 minute'")
            .execute(&env.db.pool)
            .await
            .unwrap();
        let (status, _) =
            api(&env, "GET", &format!("/api/v1/git/connections/{conn}/repos"), None).await;
        assert_eq!(status, 200);
        let refreshes = env
            .forge
            .requests()
            .iter()
            .filter(|r| r.provider == provider && r.body.contains("grant_type=refresh_token"))
            .count();
        assert_eq!(refreshes, 2, "one refresh in the background, one before use");
        let later: bool = sqlx::query_scalar(
            "SELECT expires_at > now() + interval '30 minutes' FROM git_connections",
        )
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
        assert!(later, "the new expiry was not stored");
    }

    // Another repository URL unlinks the app: its hook goes at the provider.
    let (status, _) = api(
        &env,
        "POST",
        "/api/v1/apps",
        Some(json!({"name": format!("moved-{p}"), "repo": reference, "port": 8080})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(env.forge.hooks().len(), 2);
    let (status, moved) = api(
        &env,
        "PATCH",
        &format!("/api/v1/apps/moved-{p}"),
        Some(json!({"repo_url": "https://example.test/elsewhere.git"})),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!((moved["repo"].is_null(), moved["connection"].is_null()), (true, true), "{moved}");
    assert_eq!(env.forge.hooks().len(), 1, "{:?}", env.forge.hooks());
    api(&env, "DELETE", &format!("/api/v1/apps/moved-{p}"), None).await;

    // Deleting the app removes its hook at the provider, and its previews.
    let (status, _) = api(&env, "DELETE", &format!("/api/v1/apps/site-{p}"), None).await;
    assert_eq!(status, 204);
    let (_, apps) = api(&env, "GET", "/api/v1/apps", None).await;
    assert_eq!(apps, json!([]), "the previews went with the app");
    assert!(env.forge.hooks().is_empty(), "{:?}", env.forge.hooks());

    // Disconnecting revokes the grant where the provider has a way.
    let live = bearer_tokens(&env.forge, provider).pop().unwrap();
    let (status, gone) =
        api(&env, "DELETE", &format!("/api/v1/git/connections/{conn}"), None).await;
    assert_eq!(status, 200, "{gone}");
    let revocable = matches!(provider, Provider::Github | Provider::Gitlab);
    assert_eq!(gone["revoked"], revocable, "{gone}");
    if revocable {
        assert!(env.forge.revoked().iter().any(|(_, t)| *t == live), "{:?}", env.forge.revoked());
        assert!(!env.forge.token_is_live(&live));
    }
    let (_, conns) = api(&env, "GET", "/api/v1/git/connections", None).await;
    assert_eq!(conns, json!([]));
}

#[tokio::test]
async fn github_end_to_end() {
    provider_end_to_end(Provider::Github).await;
}

#[tokio::test]
async fn gitlab_end_to_end() {
    provider_end_to_end(Provider::Gitlab).await;
}

#[tokio::test]
async fn bitbucket_end_to_end() {
    provider_end_to_end(Provider::Bitbucket).await;
}

#[tokio::test]
async fn gitea_end_to_end() {
    provider_end_to_end(Provider::Gitea).await;
}

#[tokio::test]
async fn forgejo_end_to_end() {
    provider_end_to_end(Provider::Forgejo).await;
}

#[tokio::test]
async fn what_cannot_be_connected_or_linked_is_refused_with_the_reason() {
    let env = env(3600).await;
    // A forged or stale state connects nothing.
    let forged =
        format!("{}/api/v1/git/github/callback?code=x&state={}", env.cp.url(), "ab".repeat(32));
    let r = http::get(&forged, &[]).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let r = http::get(&format!("{}/api/v1/git/github/callback?code=x", env.cp.url()), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    // A user who declines is sent back with the reason, and nothing is connected.
    let (_, body) = api(&env, "POST", "/api/v1/git/gitlab/connect", None).await;
    let authorize = body["authorize_url"].as_str().unwrap();
    let state = authorize.split("state=").nth(1).unwrap().split('&').next().unwrap();
    let declined =
        format!("{}/api/v1/git/gitlab/callback?error=access_denied&state={state}", env.cp.url());
    let r = http::get(&declined, &[]).await.unwrap();
    assert_eq!(r.status, 303);
    assert!(location(&r).starts_with("/settings/git?error="), "{}", location(&r));
    let (_, conns) = api(&env, "GET", "/api/v1/git/connections", None).await;
    assert_eq!(conns, json!([]));
    // An unknown provider, and linking without a connection, a malformed or an unknown repository.
    let (status, _) = api(&env, "POST", "/api/v1/git/svn/connect", None).await;
    assert_eq!(status, 404);
    let (status, e) = api(
        &env,
        "POST",
        "/api/v1/apps",
        Some(json!({"name": "xone", "repo": "github:tess/site", "port": 80})),
    )
    .await;
    assert_eq!((status, e["error"]["field"].as_str()), (422, Some("repo")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("connect github first"), "{e}");
    connect(&env, Provider::Github).await;
    let (status, e) = api(
        &env,
        "POST",
        "/api/v1/apps",
        Some(json!({"name": "xtwo", "repo": "github:../../x", "port": 80})),
    )
    .await;
    assert_eq!((status, e["error"]["field"].as_str()), (422, Some("repo")), "{e}");
    let (status, e) = api(
        &env,
        "POST",
        "/api/v1/apps",
        Some(json!({"name": "xthree", "repo": "github:tess/nope", "port": 80})),
    )
    .await;
    assert_eq!(status, 502, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("404"), "{e}");
    let (status, _) = api(&env, "GET", "/api/v1/apps/xthree", None).await;
    assert_eq!(status, 404, "a failed link leaves no app behind");
    // Another user's connection is not yours.
    let (_, other) = fixtures::user_with_token(&env.db.pool, "other@example.test").await;
    let (_, conns) = api(&env, "GET", "/api/v1/git/connections", None).await;
    let id = conns[0]["id"].as_i64().unwrap();
    let url = format!("{}/api/v1/git/connections/{id}/repos", env.cp.url());
    let r =
        http::request("GET", &url, None, &[], &[("authorization", other.as_str())]).await.unwrap();
    assert_eq!(r.status, 404);
}

fn html_attribute(page: &str, name: &str) -> String {
    let start = page.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let end = start + page[start..].find('"').unwrap();
    page[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn the_github_app_is_made_from_its_manifest_installed_and_deploys_through_its_one_webhook() {
    let env = env(3600).await;
    sqlx::query("UPDATE users SET is_admin = true").execute(&env.db.pool).await.unwrap();
    let (status, info) = api(&env, "GET", "/api/v1/git/github-app", None).await;
    assert_eq!((status, info["slug"].is_null()), (200, true), "{info}");

    // The administrator's page posts the manifest to GitHub, which sends them back with a code.
    let url = format!("{}/api/v1/git/github-app/new", env.cp.url());
    let page = http::request("GET", &url, None, &[], &[("authorization", env.bearer.as_str())])
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    let csp = page.headers["content-security-policy"].to_str().unwrap().to_owned();
    // The form may post to the forge's origin only (a path would match that path alone).
    assert!(csp.contains(&format!("form-action 'self' http://{};", env.forge.addr)), "{csp}");
    let action = html_attribute(&page.text(), "action");
    let manifest: Value = serde_json::from_str(&html_attribute(&page.text(), "value")).unwrap();
    assert_eq!(
        manifest["hook_attributes"]["url"],
        format!("{}/api/v1/hooks/github-app", env.cp.url())
    );
    assert_eq!(manifest["default_permissions"]["statuses"], "write");
    assert_eq!(manifest["request_oauth_on_install"], true);
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("manifest", &manifest.to_string())
        .finish();
    let posted = http::request(
        "POST",
        &action,
        Some(form.into()),
        &[],
        &[("content-type", "application/x-www-form-urlencoded")],
    )
    .await
    .unwrap();
    assert_eq!(posted.status, 302, "{}", posted.text());
    let back = http::get(&location(&posted), &[]).await.unwrap();
    assert_eq!(
        location(&back),
        "/settings/git?app=created&slug=wisehosting-test",
        "{}",
        back.text()
    );
    let (_, info) = api(&env, "GET", "/api/v1/git/github-app", None).await;
    assert_eq!(info["slug"], "wisehosting-test");
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT secrets_sealed FROM github_apps")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    let key_line = env.forge.app().unwrap().private_pem.lines().nth(1).unwrap().to_owned();
    assert!(
        !sealed.windows(key_line.len()).any(|w| w == key_line.as_bytes()),
        "the private key is sealed"
    );

    // A user installs it; the installation is theirs by their own token, and becomes a connection.
    let (status, install) = api(&env, "POST", "/api/v1/git/github-app/install", None).await;
    assert_eq!(status, 201, "{install}");
    let installing = http::get(install["install_url"].as_str().unwrap(), &[]).await.unwrap();
    assert_eq!(installing.status, 302);
    let callback = location(&installing);
    let back = http::get(&callback, &[]).await.unwrap();
    assert_eq!(
        location(&back),
        "/settings/git?connected=github&account=tess-org",
        "{}",
        back.text()
    );
    let (_, conns) = api(&env, "GET", "/api/v1/git/connections", None).await;
    let conn = &conns.as_array().unwrap()[0];
    assert_eq!(
        (conn["installation_id"].as_i64(), conn["account"].as_str()),
        (Some(forge::INSTALLATION), Some("tess-org"))
    );
    let conn = conn["id"].as_i64().unwrap();

    // Someone else's installation id in the callback connects nothing.
    let (_, again) = api(&env, "POST", "/api/v1/git/github-app/install", None).await;
    let installing = http::get(again["install_url"].as_str().unwrap(), &[]).await.unwrap();
    let forged = location(&installing)
        .replace(&format!("installation_id={}", forge::INSTALLATION), "installation_id=999");
    let back = http::get(&forged, &[]).await.unwrap();
    assert!(location(&back).contains("error="), "{}", location(&back));
    assert!(location(&back).contains("not+one+of+yours"), "{}", location(&back));
    let (_, conns) = api(&env, "GET", "/api/v1/git/connections", None).await;
    assert_eq!(conns.as_array().unwrap().len(), 1);

    // Its repositories, an app from one: no hook registered per repository.
    env.forge.add_repo(FakeRepo {
        provider: Provider::Github,
        full_name: "tess-org/site".into(),
        private: true,
        default_branch: "main".into(),
        dir: None,
    });
    let (status, page) =
        api(&env, "GET", &format!("/api/v1/git/connections/{conn}/repos"), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["repos"][0]["full_name"], "tess-org/site");
    let (status, app) = api(&env, "POST", "/api/v1/apps", Some(json!({"name": "orgsite", "repo": "github:tess-org/site", "connection": conn, "port": 8080}))).await;
    assert_eq!(status, 201, "{app}");
    assert!(env.forge.hooks().is_empty(), "the App's webhook covers every repository");
    assert!(env.forge.installation_tokens() >= 2, "a token is minted per use");

    // The App's webhook deploys the push; its state goes back with an installation token.
    let (event, body) = forge::push_event(Provider::Github, "main", SHA);
    let (status, answer) = env.forge.deliver_app(event, "app-1", "tess-org/site", &body).await;
    assert_eq!(status, 202, "{answer}");
    let queued: Value = serde_json::from_str(&answer).unwrap();
    let deployment = queued["deployments"][0].as_i64().unwrap();
    let credentials = wh_control_plane::gitproviders::clone_credentials(
        &env.db.pool,
        &env.cp.state.forges,
        deployment,
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        credentials.starts_with("x-access-token:ghs_"),
        "clones with a fresh installation token"
    );
    sqlx::query("UPDATE deployments SET state = 'live' WHERE id = $1")
        .bind(deployment)
        .execute(&env.db.pool)
        .await
        .unwrap();
    let forge_ref = env.forge.clone();
    eventually(Duration::from_secs(10), "the App's status reaches the forge", || {
        let statuses = forge_ref.statuses();
        async move {
            statuses.iter().any(|s| s.state == "success" && s.repo == "tess-org/site").then_some(())
        }
    })
    .await;
    let (status, _) = env.forge.deliver_app(event, "app-1", "tess-org/site", &body).await;
    assert_eq!(status, 409, "a replayed delivery");
    let (status, answer) = env.forge.deliver_app(event, "app-2", "tess-org/elsewhere", &body).await;
    assert!(status == 202 && answer.contains("no app deploys"), "{answer}");
    let bad = http::request(
        "POST",
        &format!("{}/api/v1/hooks/github-app", env.cp.url()),
        Some(body.to_string().into()),
        &[],
        &[("x-github-event", "push"), ("x-hub-signature-256", "sha256=00")],
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 401);

    // Uninstalling removes the connection.
    let (status, answer) = env
        .forge
        .deliver_app("installation", "app-3", "tess-org/site", &json!({"action": "deleted"}))
        .await;
    assert_eq!(status, 202, "{answer}");
    let (_, conns) = api(&env, "GET", "/api/v1/git/connections", None).await;
    assert_eq!(conns, json!([]));
}
