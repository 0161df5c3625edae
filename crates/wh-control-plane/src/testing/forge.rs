//! A fake forge: one HTTP server on 127.0.0.1 that speaks, under a prefix per provider
//! (`/github`, `/gitlab`, `/bitbucket`, `/gitea`, `/forgejo`), each provider's OAuth authorize
//! and token endpoints, the REST calls WiseHosting makes (account, repository list and lookup,
//! hooks, commit statuses, revocation), git's smart HTTP protocol for its repositories (through
//! `git http-backend`, private ones only with a valid token), and signed push and ping
//! deliveries to the hooks registered on it. It keeps every request it was sent, so tests
//! assert exactly what the control plane asked each provider.
//!
//! Authorizing is automatic: `GET …/authorize` answers with the redirect a user's "Authorize"
//! click would cause.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::githooks::{verify, Provider};
use crate::gitproviders::ForgeConfig;

pub const CLIENT_ID: &str = "fake-client-id";
pub const CLIENT_SECRET: &str = "fake-client-secret";

/// A request the forge was sent.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub provider: Provider,
    pub method: String,
    /// The path after the provider's prefix, with the query.
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

/// A repository the forge hosts.
#[derive(Debug, Clone)]
pub struct FakeRepo {
    pub provider: Provider,
    pub full_name: String,
    pub private: bool,
    pub default_branch: String,
    /// The git repository served for it (a work tree or a bare one), if it is cloned.
    pub dir: Option<PathBuf>,
}

/// A hook registered on the forge.
#[derive(Debug, Clone)]
pub struct FakeHook {
    pub provider: Provider,
    pub repo: String,
    pub id: String,
    pub url: String,
    pub secret: String,
}

/// A commit status set on the forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeStatus {
    pub provider: Provider,
    pub repo: String,
    pub sha: String,
    /// The provider's own word (`success`, `SUCCESSFUL`, `running`, …).
    pub state: String,
    pub target_url: String,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    codes: HashMap<String, Provider>,
    access: HashMap<String, Provider>,
    refresh: HashMap<String, Provider>,
    repos: Vec<FakeRepo>,
    hooks: Vec<FakeHook>,
    statuses: Vec<FakeStatus>,
    revoked: Vec<(Provider, String)>,
    clones: Vec<(Provider, String, Option<String>)>,
    next: u64,
    /// Lifetime of access tokens given out (GitHub's never expire).
    ttl: u64,
    https_port: Option<u16>,
    /// The GitHub App made from a manifest, once one was posted.
    app: Option<FakeApp>,
    manifest_codes: HashMap<String, Value>,
    /// Installations of the App: id and account.
    installations: Vec<(i64, String)>,
    /// Installation tokens minted: token → installation.
    installation_tokens: HashMap<String, i64>,
    /// The bodies installation tokens were asked for with (their restrictions).
    token_requests: Vec<Value>,
}

/// The GitHub App the fake forge made from a manifest.
#[derive(Debug, Clone)]
pub struct FakeApp {
    pub id: i64,
    pub slug: String,
    pub client_id: String,
    pub client_secret: String,
    pub webhook_secret: String,
    pub manifest: Value,
    pub private_pem: String,
    public_pem: String,
}

pub const APP_ID: i64 = 77;
pub const INSTALLATION: i64 = 5001;

/// A 2048-bit RSA key pair from `openssl` (ring cannot make RSA keys): PKCS#1, as GitHub
/// hands out, and its public half.
fn rsa_pair() -> (String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let private = Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .stderr(Stdio::null())
        .output()
        .expect("openssl runs");
    assert!(private.status.success(), "openssl genrsa failed");
    let mut public = Command::new("openssl")
        .args(["rsa", "-pubout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl runs");
    public.stdin.take().expect("stdin").write_all(&private.stdout).expect("the key goes in");
    let public = public.wait_with_output().expect("openssl answers");
    assert!(public.status.success(), "openssl rsa -pubout failed");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("PEM is text");
    (text(private.stdout), text(public.stdout))
}

/// The running forge.
#[derive(Clone)]
pub struct FakeForge {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeForge {
    /// Starts it on a free loopback port; tokens it grants live `ttl` seconds (not GitHub's).
    pub async fn start(ttl: u64) -> FakeForge {
        let inner = Arc::new(Mutex::new(Inner { ttl, next: 1000, ..Inner::default() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let forge = FakeForge { addr, inner };
        let app = forge.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        forge
    }

    /// The forge's routes (to serve it over TLS too, for git clients that want https).
    pub fn router(&self) -> axum::Router {
        axum::Router::new().fallback(handle).with_state(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration that points the control plane at this forge for `provider`.
    pub fn config(&self, provider: Provider) -> ForgeConfig {
        let web = format!("http://{}/{}", self.addr, provider.as_str());
        ForgeConfig::new(
            provider,
            Some(&web),
            None,
            CLIENT_ID.into(),
            SecretString::from(CLIENT_SECRET),
        )
        .expect("a valid forge configuration")
    }

    /// Adds a repository; `dir` is served for cloning at [`FakeForge::clone_url`].
    pub fn add_repo(&self, repo: FakeRepo) {
        self.lock().repos.push(repo);
    }

    /// The port a test serves [`FakeForge::router`] on over TLS: clone URLs name it (git
    /// clones over https only).
    pub fn set_https_port(&self, port: u16) {
        self.lock().https_port = Some(port);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    pub fn hooks(&self) -> Vec<FakeHook> {
        self.lock().hooks.clone()
    }

    pub fn statuses(&self) -> Vec<FakeStatus> {
        self.lock().statuses.clone()
    }

    /// Tokens revoked, by provider.
    pub fn revoked(&self) -> Vec<(Provider, String)> {
        self.lock().revoked.clone()
    }

    /// Clones served: provider, repository, and the Basic user (None: anonymous).
    pub fn clones(&self) -> Vec<(Provider, String, Option<String>)> {
        self.lock().clones.clone()
    }

    /// The GitHub App, once made.
    pub fn app(&self) -> Option<FakeApp> {
        self.lock().app.clone()
    }

    /// Installation tokens minted so far.
    pub fn installation_tokens(&self) -> usize {
        self.lock().installation_tokens.len()
    }

    /// What each installation token was asked for with (`{}` for none).
    pub fn installation_token_requests(&self) -> Vec<Value> {
        self.lock().token_requests.clone()
    }

    /// Delivers `event` with `body` (its `installation` and `repository` added) to the App's
    /// webhook, signed with the App's secret; the answer's status and body.
    pub async fn deliver_app(
        &self,
        event: &str,
        delivery: &str,
        repo: &str,
        body: &Value,
    ) -> (u16, String) {
        let app = self.app().expect("the App exists");
        let mut body = body.clone();
        body["installation"] = json!({"id": INSTALLATION});
        body["repository"] = json!({"full_name": repo});
        let body = body.to_string();
        let signature =
            verify::sign(Provider::Github, app.webhook_secret.as_bytes(), body.as_bytes());
        let signature = String::from_utf8(signature).expect("signatures are text");
        let url = app.manifest["hook_attributes"]["url"].as_str().expect("a hook URL").to_owned();
        let headers = [
            ("content-type", "application/json"),
            ("x-github-event", event),
            ("x-github-delivery", delivery),
            ("x-hub-signature-256", signature.as_str()),
        ];
        let answer = wh_testkit::http::request("POST", &url, Some(body.into()), &[], &headers)
            .await
            .expect("the control plane answers");
        (answer.status, answer.text())
    }

    /// Whether `token` is a live access token.
    pub fn token_is_live(&self, token: &str) -> bool {
        self.lock().access.contains_key(token)
    }

    /// Delivers `event` with `body` to every hook of `repo`, signed as `provider` signs; the
    /// answers' statuses and bodies.
    pub async fn deliver(
        &self,
        provider: Provider,
        repo: &str,
        event: &str,
        delivery: &str,
        body: &Value,
    ) -> Vec<(u16, String)> {
        let hooks: Vec<FakeHook> =
            self.hooks().into_iter().filter(|h| h.provider == provider && h.repo == repo).collect();
        let body = body.to_string();
        let mut answers = Vec::new();
        for hook in hooks {
            let signature = verify::sign(provider, hook.secret.as_bytes(), body.as_bytes());
            let signature = String::from_utf8(signature).expect("signatures are text");
            let event_header = crate::githooks::payload::event_header(provider);
            let delivery_header = crate::githooks::payload::delivery_header(provider);
            let headers = [
                ("content-type", "application/json"),
                (event_header, event),
                (delivery_header, delivery),
                (verify::header(provider), signature.as_str()),
            ];
            let answer = wh_testkit::http::request(
                "POST",
                &hook.url,
                Some(body.clone().into()),
                &[],
                &headers,
            )
            .await
            .expect("the control plane answers a delivery");
            answers.push((answer.status, answer.text()));
        }
        answers
    }
}

/// A push of `branch` to `sha` as `provider` delivers it: the event header's value and the body.
pub fn push_event(provider: Provider, branch: &str, sha: &str) -> (&'static str, Value) {
    let author = json!({"name": "Tess", "email": "tess@example.test"});
    match provider {
        Provider::Github | Provider::Gitea | Provider::Forgejo => (
            "push",
            json!({"ref": format!("refs/heads/{branch}"), "after": sha, "deleted": false,
                   "head_commit": {"id": sha, "message": "Ship it", "author": author}}),
        ),
        Provider::Gitlab => (
            "Push Hook",
            json!({"object_kind": "push", "ref": format!("refs/heads/{branch}"), "after": sha,
                   "checkout_sha": sha, "commits": [{"id": sha, "message": "Ship it", "author": author}]}),
        ),
        Provider::Bitbucket => (
            "repo:push",
            json!({"push": {"changes": [{"new": {"type": "branch", "name": branch,
                   "target": {"type": "commit", "hash": sha, "message": "Ship it",
                              "author": {"raw": "Tess <tess@example.test>"}}}}]}}),
        ),
    }
}

/// A pull request `number` from `head` into `base` at `sha`, opened (`open`) or closed, as
/// `provider` delivers it: the event header's value and the body.
pub fn pull_event(
    provider: Provider,
    number: u32,
    open: bool,
    head: &str,
    base: &str,
    sha: &str,
) -> (&'static str, Value) {
    match provider {
        Provider::Github | Provider::Gitea | Provider::Forgejo => (
            "pull_request",
            json!({"action": if open { "opened" } else { "closed" }, "number": number,
                   "pull_request": {"number": number, "title": "Try this",
                                    "head": {"ref": head, "sha": sha}, "base": {"ref": base, "sha": sha}}}),
        ),
        Provider::Gitlab => (
            "Merge Request Hook",
            json!({"object_kind": "merge_request", "object_attributes": {"iid": number,
                   "action": if open { "open" } else { "merge" }, "title": "Try this",
                   "source_branch": head, "target_branch": base, "last_commit": {"id": sha}}}),
        ),
        Provider::Bitbucket => (
            if open { "pullrequest:created" } else { "pullrequest:fulfilled" },
            json!({"pullrequest": {"id": number, "title": "Try this",
                   "source": {"branch": {"name": head}, "commit": {"hash": sha}},
                   "destination": {"branch": {"name": base}, "commit": {"hash": sha}}}}),
        ),
    }
}

fn random() -> String {
    crate::auth::random_hex(16)
}

fn answer(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).expect("a status"), axum::Json(body)).into_response()
}

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn basic_user(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

async fn handle(
    State(forge): State<FakeForge>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let full = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
    let Some((provider, rest)) = Provider::ALL.into_iter().find_map(|p| {
        full.strip_prefix(&format!("/{}", p.as_str())).map(|rest| (p, rest.to_owned()))
    }) else {
        return answer(404, json!({"message": "no such provider"}));
    };
    let authorization =
        headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    forge.lock().requests.push(Recorded {
        provider,
        method: method.to_string(),
        path: rest.clone(),
        authorization: authorization.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let (path, query) = rest.split_once('?').unwrap_or((&rest, ""));
    let query: HashMap<String, String> =
        form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    if let Some(git) = path.strip_prefix("/git/") {
        return serve_git(&forge, provider, git, &method, &query_string(&rest), &headers, body)
            .await;
    }
    match (method.as_str(), path) {
        ("GET", "/login/oauth/authorize" | "/oauth/authorize" | "/site/oauth2/authorize") => {
            if query.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
                return answer(400, json!({"error": "unknown client"}));
            }
            let code = random();
            forge.lock().codes.insert(code.clone(), provider);
            let redirect = query.get("redirect_uri").cloned().unwrap_or_default();
            let state = query.get("state").cloned().unwrap_or_default();
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("code", &code).append_pair("state", &state);
            (StatusCode::FOUND, [("location", format!("{redirect}?{}", q.finish()))])
                .into_response()
        }
        ("POST", "/login/oauth/access_token" | "/oauth/token" | "/site/oauth2/access_token") => {
            token(&forge, provider, &headers, &body)
        }
        ("POST", "/settings/apps/new") if provider == Provider::Github => {
            let manifest: Value = form(&body)
                .get("manifest")
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_default();
            let redirect = manifest["redirect_url"].as_str().unwrap_or_default().to_owned();
            let code = random();
            forge.lock().manifest_codes.insert(code.clone(), manifest);
            let state = query.get("state").cloned().unwrap_or_default();
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("code", &code).append_pair("state", &state);
            (StatusCode::FOUND, [("location", format!("{redirect}?{}", q.finish()))])
                .into_response()
        }
        ("GET", p) if provider == Provider::Github && p.ends_with("/installations/new") => {
            // The user installs the App on "tess-org" and authorizes it (request_oauth_on_install).
            let mut inner = forge.lock();
            let Some(app) = inner.app.clone() else { return answer(404, json!({})) };
            if !inner.installations.iter().any(|(id, _)| *id == INSTALLATION) {
                inner.installations.push((INSTALLATION, "tess-org".into()));
            }
            let code = random();
            inner.codes.insert(code.clone(), provider);
            let callback = app.manifest["callback_urls"][0].as_str().unwrap_or_default().to_owned();
            let state = query.get("state").cloned().unwrap_or_default();
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("code", &code)
                .append_pair("installation_id", &INSTALLATION.to_string())
                .append_pair("setup_action", "install")
                .append_pair("state", &state);
            (StatusCode::FOUND, [("location", format!("{callback}?{}", q.finish()))])
                .into_response()
        }
        ("POST", "/oauth/revoke") => {
            let f = form(&body);
            if f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
                return answer(401, json!({"error": "invalid_client"}));
            }
            let token = f.get("token").cloned().unwrap_or_default();
            let mut inner = forge.lock();
            inner.access.remove(&token);
            inner.revoked.push((provider, token));
            answer(200, json!({}))
        }
        _ => api(&forge, provider, &method, path, &query, &headers, &body),
    }
}

fn query_string(rest: &str) -> String {
    rest.split_once('?').map(|(_, q)| q.to_owned()).unwrap_or_default()
}

fn token(forge: &FakeForge, provider: Provider, headers: &HeaderMap, body: &[u8]) -> Response {
    let f = form(body);
    let client_ok = match provider {
        Provider::Bitbucket => {
            basic_user(headers) == Some((CLIENT_ID.into(), CLIENT_SECRET.into()))
        }
        _ => {
            let app = forge.lock().app.clone();
            let app_client = app.map(|a| (a.client_id, a.client_secret));
            let given = (
                f.get("client_id").cloned().unwrap_or_default(),
                f.get("client_secret").cloned().unwrap_or_default(),
            );
            given == (CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned()) || Some(given) == app_client
        }
    };
    if !client_ok {
        return answer(401, json!({"error": "invalid_client"}));
    }
    let mut inner = forge.lock();
    let granted = match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            f.get("code").and_then(|c| inner.codes.remove(c)).filter(|p| *p == provider)
        }
        Some("refresh_token") => {
            f.get("refresh_token").and_then(|r| inner.refresh.remove(r)).filter(|p| *p == provider)
        }
        _ => None,
    };
    if granted.is_none() {
        // GitHub says so with 200.
        let status = if provider == Provider::Github { 200 } else { 400 };
        return answer(
            status,
            json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}),
        );
    }
    let access = format!("{}-{}", provider.as_str(), random());
    inner.access.insert(access.clone(), provider);
    if provider == Provider::Github {
        return answer(
            200,
            json!({"access_token": access, "token_type": "bearer", "scope": "repo,admin:repo_hook,read:user"}),
        );
    }
    let refresh = format!("r-{}", random());
    inner.refresh.insert(refresh.clone(), provider);
    answer(
        200,
        json!({"access_token": access, "token_type": "bearer", "refresh_token": refresh, "expires_in": inner.ttl}),
    )
}

fn repo_json(provider: Provider, r: &FakeRepo, addr: SocketAddr, https: Option<u16>) -> Value {
    let clone = match https {
        Some(port) => {
            format!("https://127.0.0.1:{port}/{}/git/{}.git", provider.as_str(), r.full_name)
        }
        None => format!("https://{addr}/{}/git/{}.git", provider.as_str(), r.full_name),
    };
    let web = format!("http://{addr}/{}/{}", provider.as_str(), r.full_name);
    match provider {
        Provider::Github | Provider::Gitea | Provider::Forgejo => json!({
            "id": 1, "full_name": r.full_name, "private": r.private, "clone_url": clone,
            "default_branch": r.default_branch, "html_url": web,
        }),
        Provider::Gitlab => json!({
            "id": 1, "path_with_namespace": r.full_name,
            "visibility": if r.private { "private" } else { "public" },
            "http_url_to_repo": clone, "default_branch": r.default_branch, "web_url": web,
        }),
        Provider::Bitbucket => json!({
            "full_name": r.full_name, "is_private": r.private, "mainbranch": {"name": r.default_branch},
            "links": {"clone": [{"name": "https", "href": clone.replacen("https://", "https://someone@", 1)}],
                      "html": {"href": web}},
        }),
    }
}

#[allow(clippy::too_many_arguments)]
fn api(
    forge: &FakeForge,
    provider: Provider,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let api = match provider {
        Provider::Github => "/api/v3",
        Provider::Gitlab => "/api/v4",
        Provider::Bitbucket => "/2.0",
        Provider::Gitea | Provider::Forgejo => "/api/v1",
    };
    let Some(path) = path.strip_prefix(api) else {
        return answer(404, json!({"message": "Not Found"}));
    };
    // GitHub's grant revocation authenticates the OAuth App itself.
    if provider == Provider::Github
        && method == Method::DELETE
        && path == format!("/applications/{CLIENT_ID}/grant")
    {
        if basic_user(headers) != Some((CLIENT_ID.into(), CLIENT_SECRET.into())) {
            return answer(401, json!({"message": "Requires authentication"}));
        }
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        let token = v["access_token"].as_str().unwrap_or_default().to_owned();
        let mut inner = forge.lock();
        inner.access.remove(&token);
        inner.revoked.push((provider, token));
        return StatusCode::NO_CONTENT.into_response();
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    if provider == Provider::Github {
        if let Some(answered) = github_app_api(forge, method, path, &token, query, body) {
            return answered;
        }
    }
    let mut inner = forge.lock();
    if inner.access.get(&token) != Some(&provider) {
        return answer(401, json!({"message": "Bad credentials"}));
    }
    let body: Value = serde_json::from_slice(body).unwrap_or_default();
    let addr = forge.addr;
    let https = inner.https_port;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let repo_name = |segs: &[&str]| -> Option<(String, usize)> {
        // The repository's name and how many segments it took.
        match provider {
            Provider::Gitlab => {
                let decoded: String =
                    form_urlencoded::parse(format!("n={}", segs.first()?).as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())?;
                Some((decoded, 1))
            }
            _ => Some((format!("{}/{}", segs.first()?, segs.get(1)?), 2)),
        }
    };
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["user"]) => answer(
            200,
            match provider {
                Provider::Github | Provider::Gitea | Provider::Forgejo => {
                    json!({"login": "tess", "id": 4242})
                }
                Provider::Gitlab => json!({"username": "tess", "id": 4242}),
                Provider::Bitbucket => {
                    json!({"username": "tess", "account_id": "557058:4242", "nickname": "tess"})
                }
            },
        ),
        ("GET", ["user", "repos"] | ["projects"] | ["repositories"]) => {
            let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let per: usize = query
                .get("per_page")
                .or(query.get("limit"))
                .or(query.get("pagelen"))
                .and_then(|p| p.parse().ok())
                .unwrap_or(30);
            let mut names: Vec<&FakeRepo> =
                inner.repos.iter().filter(|r| r.provider == provider).collect();
            let search = query.get("search").cloned().or_else(|| {
                query
                    .get("q")
                    .and_then(|q| q.strip_prefix("name ~ \""))
                    .and_then(|q| q.strip_suffix('"'))
                    .map(str::to_owned)
            });
            if let Some(s) = search {
                names.retain(|r| r.full_name.contains(&s));
            }
            let start = (page - 1) * per;
            let items: Vec<Value> = names
                .iter()
                .skip(start)
                .take(per)
                .map(|r| repo_json(provider, r, addr, https))
                .collect();
            if provider == Provider::Bitbucket {
                let more = names.len() > start + per;
                let mut v = json!({"values": items, "page": page, "pagelen": per});
                if more {
                    v["next"] = json!(format!(
                        "http://{addr}/bitbucket/2.0/repositories?page={}",
                        page + 1
                    ));
                }
                answer(200, v)
            } else {
                answer(200, Value::Array(items))
            }
        }
        (_, [first, rest @ ..])
            if matches!(
                (provider, *first),
                (Provider::Gitlab, "projects")
                    | (Provider::Bitbucket, "repositories")
                    | (Provider::Github | Provider::Gitea | Provider::Forgejo, "repos")
            ) =>
        {
            let Some((name, used)) = repo_name(rest) else { return answer(404, json!({})) };
            let Some(repo) =
                inner.repos.iter().find(|r| r.provider == provider && r.full_name == name).cloned()
            else {
                return answer(404, json!({"message": "Not Found"}));
            };
            let tail = &rest[used..];
            match (method.as_str(), tail) {
                ("GET", []) => answer(200, repo_json(provider, &repo, addr, https)),
                ("POST", ["hooks"]) => {
                    let (url, secret) = match provider {
                        Provider::Github | Provider::Gitea | Provider::Forgejo => {
                            (body["config"]["url"].as_str(), body["config"]["secret"].as_str())
                        }
                        Provider::Gitlab => (body["url"].as_str(), body["token"].as_str()),
                        Provider::Bitbucket => (body["url"].as_str(), body["secret"].as_str()),
                    };
                    let (Some(url), Some(secret)) = (url, secret) else {
                        return answer(422, json!({"message": "url and secret are required"}));
                    };
                    inner.next += 1;
                    let id = match provider {
                        Provider::Bitbucket => format!("{{{}-hook}}", inner.next),
                        _ => inner.next.to_string(),
                    };
                    inner.hooks.push(FakeHook {
                        provider,
                        repo: name.clone(),
                        id: id.clone(),
                        url: url.into(),
                        secret: secret.into(),
                    });
                    match provider {
                        Provider::Bitbucket => answer(201, json!({"uuid": id, "url": url})),
                        _ => answer(201, json!({"id": id.parse::<u64>().unwrap_or(0), "url": url})),
                    }
                }
                ("DELETE", ["hooks", id]) => {
                    let id = form_urlencoded::parse(format!("i={id}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    let before = inner.hooks.len();
                    inner
                        .hooks
                        .retain(|h| !(h.provider == provider && h.repo == name && h.id == id));
                    if inner.hooks.len() < before {
                        StatusCode::NO_CONTENT.into_response()
                    } else {
                        answer(404, json!({}))
                    }
                }
                ("POST", ["statuses", sha]) | ("POST", ["commit", sha, "statuses", "build"]) => {
                    let (state, url) = match provider {
                        Provider::Bitbucket => (body["state"].as_str(), body["url"].as_str()),
                        _ => (body["state"].as_str(), body["target_url"].as_str()),
                    };
                    inner.statuses.push(FakeStatus {
                        provider,
                        repo: name.clone(),
                        sha: (*sha).to_owned(),
                        state: state.unwrap_or_default().to_owned(),
                        target_url: url.unwrap_or_default().to_owned(),
                    });
                    answer(201, json!({"state": state}))
                }
                _ => answer(404, json!({"message": "Not Found"})),
            }
        }
        _ => answer(404, json!({"message": "Not Found"})),
    }
}

/// The GitHub App's own endpoints, when `path` is one.
fn github_app_api(
    forge: &FakeForge,
    method: &Method,
    path: &str,
    token: &str,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Option<Response> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["app-manifests", code, "conversions"]) => {
            let manifest = forge.lock().manifest_codes.remove(*code);
            let Some(manifest) = manifest else {
                return Some(answer(404, json!({"message": "Not Found"})));
            };
            let (private_pem, public_pem) = rsa_pair();
            let app = FakeApp {
                id: APP_ID,
                slug: "wisehosting-test".into(),
                client_id: "Iv1.fakeapp".into(),
                client_secret: format!("app-secret-{}", random()),
                webhook_secret: random(),
                manifest,
                private_pem,
                public_pem,
            };
            let html = format!("http://{}/github/apps/{}", forge.addr, app.slug);
            let body = json!({"id": app.id, "slug": app.slug, "html_url": html, "client_id": app.client_id,
                              "client_secret": app.client_secret, "webhook_secret": app.webhook_secret, "pem": app.private_pem});
            forge.lock().app = Some(app);
            Some(answer(201, body))
        }
        ("POST", ["app", "installations", id, "access_tokens"]) => {
            let app = forge.lock().app.clone()?;
            let key = jsonwebtoken::DecodingKey::from_rsa_pem(app.public_pem.as_bytes()).ok()?;
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_issuer(&[APP_ID.to_string()]);
            validation.set_required_spec_claims(&["exp", "iss", "iat"]);
            if jsonwebtoken::decode::<Value>(token, &key, &validation).is_err() {
                return Some(answer(
                    401,
                    json!({"message": "A JSON web token could not be decoded"}),
                ));
            }
            let Ok(installation) = id.parse::<i64>() else { return Some(answer(404, json!({}))) };
            let mut inner = forge.lock();
            if !inner.installations.iter().any(|(i, _)| *i == installation) {
                return Some(answer(404, json!({"message": "Not Found"})));
            }
            inner.token_requests.push(serde_json::from_slice(body).unwrap_or(json!({})));
            let minted = format!("ghs_{}", random());
            inner.access.insert(minted.clone(), Provider::Github);
            inner.installation_tokens.insert(minted.clone(), installation);
            Some(answer(201, json!({"token": minted, "expires_at": "2099-01-01T00:00:00Z"})))
        }
        ("GET", ["user", "installations"]) => {
            let inner = forge.lock();
            if inner.access.get(token) != Some(&Provider::Github)
                || inner.installation_tokens.contains_key(token)
            {
                return Some(answer(401, json!({"message": "Bad credentials"})));
            }
            let list: Vec<Value> = inner
                .installations
                .iter()
                .map(|(id, login)| json!({"id": id, "account": {"login": login}}))
                .collect();
            Some(answer(200, json!({"total_count": list.len(), "installations": list})))
        }
        ("GET", ["installation", "repositories"]) => {
            let inner = forge.lock();
            if !inner.installation_tokens.contains_key(token) {
                return Some(answer(401, json!({"message": "Bad credentials"})));
            }
            let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let per: usize = query.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
            let repos: Vec<Value> = inner
                .repos
                .iter()
                .filter(|r| r.provider == Provider::Github)
                .skip((page - 1) * per)
                .take(per)
                .map(|r| repo_json(Provider::Github, r, forge.addr, inner.https_port))
                .collect();
            Some(answer(200, json!({"total_count": repos.len(), "repositories": repos})))
        }
        _ => None,
    }
}

/// Git's smart HTTP for `rest` (`owner/name.git/info/refs`, …) through `git http-backend`.
async fn serve_git(
    forge: &FakeForge,
    provider: Provider,
    rest: &str,
    method: &Method,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some((name, tail)) = rest.split_once(".git") else { return answer(404, json!({})) };
    let (repo, allowed, user) = {
        let inner = forge.lock();
        let repo =
            inner.repos.iter().find(|r| r.provider == provider && r.full_name == name).cloned();
        let user = basic_user(headers);
        let allowed = match (&repo, &user) {
            (Some(r), _) if !r.private => true,
            (Some(_), Some((_, token))) => inner.access.get(token) == Some(&provider),
            _ => false,
        };
        (repo, allowed, user.map(|(u, _)| u))
    };
    let Some(FakeRepo { dir: Some(dir), .. }) = repo else { return answer(404, json!({})) };
    if !allowed {
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Basic realm=\"fake forge\"")],
            "",
        )
            .into_response();
    }
    if tail.ends_with("/info/refs") {
        forge.lock().clones.push((provider, name.to_owned(), user));
    }
    let parent = dir.parent().expect("a repository has a parent directory").to_owned();
    let leaf = dir.file_name().expect("a repository has a name").to_string_lossy().into_owned();
    let mut cgi = tokio::process::Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &parent)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{leaf}{tail}"))
        .env("REQUEST_METHOD", method.as_str())
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (header, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(v) = headers.get(header).and_then(|v| v.to_str().ok()) {
            cgi.env(var, v);
        }
    }
    let Ok(mut child) = cgi.spawn() else { return answer(500, json!({})) };
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    }
    let Ok(out) = child.wait_with_output().await else { return answer(500, json!({})) };
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, sep)) = split else { return answer(500, json!({})) };
    let head = String::from_utf8_lossy(&raw[..at]).into_owned();
    let mut response = Response::builder().status(200);
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            let code = v.split(' ').next().and_then(|c| c.parse().ok()).unwrap_or(500);
            response = response.status(code);
        } else {
            response = response.header(k.trim(), v);
        }
    }
    response
        .body(axum::body::Body::from(raw[at + sep..].to_vec()))
        .unwrap_or_else(|_| answer(500, json!({})))
}
