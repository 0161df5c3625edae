//! Git webhooks over HTTP: an app's owner makes one per provider (`POST
//! /api/v1/apps/{slug}/hooks`: its URL and secret, shown once, to add at the provider), lists
//! and removes them; providers deliver to `POST /api/v1/hooks/{provider}/{hook_id}`.
//!
//! A delivery is checked in this order, and nothing past a failed step happens: the hook
//! exists for that provider (404), the body is at most 1 MiB (413), the provider's signature
//! over it is right (401, in constant time), the delivery id was not seen in 24 h (409), the
//! body reads (400). Then a ping answers 200, and a push of the app's branch (or of a tag,
//! when the app asks for tags) queues a deployment of exactly the pushed commit (202), unless
//! the app has watch paths and the delivery lists changed files none of which is watched.
//! A pull request into the app's branch, when the app has previews, deploys its head as the
//! preview app `pr-<n>-<slug>` (202), or removes that preview once closed or merged.
//! Everything else answers 202 with the reason it was ignored. Every outcome is counted
//! (`wh_cp_git_hook_deliveries{provider,outcome}`). Per IP, at most 60 a minute (`api.rs`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::deployments::DeployTarget;
use super::extract::{ApiJson, Caller, ClientIp};
use super::params::Path;
use super::ApiError;
use crate::githooks::payload::{self, Delivery, RefKind};
use crate::githooks::{store, verify, Provider};
use crate::AppState;

/// The most a delivery's body may be.
pub const MAX_BODY: usize = 1 << 20;

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHook {
    pub provider: Provider,
}

/// A hook just made: where the provider delivers, and the secret to give it (shown once).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct CreatedHook {
    pub id: String,
    pub provider: Provider,
    /// The delivery URL's path (on this control plane's public address).
    pub path: String,
    /// The delivery URL, when the request said which address it came to.
    pub url: Option<String>,
    /// The secret: 64 hex digits.
    pub secret: String,
    /// Where it goes at the provider.
    pub setup: &'static str,
}

/// What a delivery did.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct DeliveryOutcome {
    /// `pong`, `queued`, `removed` (a closed pull request's preview) or `ignored`.
    pub status: &'static str,
    /// The deployments queued.
    pub deployments: Vec<i64>,
    pub reason: Option<String>,
}

fn setup(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "Repository → Settings → Webhooks → Add webhook: Payload URL, content type application/json, the secret, just the push event",
        Provider::Gitlab => "Project → Settings → Webhooks: URL, the secret as Secret token, Push events (and Tag push events to deploy tags)",
        Provider::Bitbucket => "Repository settings → Webhooks → Add webhook: URL, the secret, trigger Repository push",
        Provider::Gitea | Provider::Forgejo => "Repository → Settings → Webhooks → Add webhook (Gitea/Forgejo): target URL, content type application/json, the secret, push events",
    }
}

fn hook_path(provider: Provider, id: &str) -> String {
    format!("/api/v1/hooks/{}/{id}", provider.as_str())
}

/// `POST /api/v1/apps/{slug}/hooks`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewHook>,
) -> Result<Response, ApiError> {
    let app = caller.app_id(&state.pool, &slug).await?;
    let Some((id, secret)) = store::create(&state.pool, &state.hooks, app, body.provider).await?
    else {
        return Err(ApiError::Conflict {
            field: "provider",
            message: format!(
                "{slug} already has a {} hook; remove it to make a new one",
                body.provider.as_str()
            ),
        });
    };
    caller
        .audit(
            &mut *state.pool.acquire().await?,
            "hook.create",
            &format!("app:{slug}"),
            serde_json::json!({"provider": body.provider.as_str(), "hook": id}),
        )
        .await?;
    let path = hook_path(body.provider, &id);
    let scheme = if state.cookie_secure { "https" } else { "http" };
    let url = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .map(|host| format!("{scheme}://{host}{path}"));
    let created =
        CreatedHook { id, provider: body.provider, path, url, secret, setup: setup(body.provider) };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// A hook as listed: its id, provider, delivery path, when made and last delivered.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct HookView {
    #[serde(flatten)]
    pub info: store::HookInfo,
    pub path: String,
}

/// `GET /api/v1/apps/{slug}/hooks`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Vec<HookView>>, ApiError> {
    let app = caller.app_id(&state.pool, &slug).await?;
    let hooks = store::list(&state.pool, app).await?;
    Ok(Json(
        hooks
            .into_iter()
            .map(|info| HookView { path: hook_path(info.provider, &info.id), info })
            .collect(),
    ))
}

/// `DELETE /api/v1/apps/{slug}/hooks/{id}`: deliveries to it answer 404 from now on.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = caller.app_id(&state.pool, &slug).await?;
    if !store::remove(&state.pool, app, &id).await? {
        return Err(ApiError::NotFound);
    }
    caller
        .audit(
            &mut *state.pool.acquire().await?,
            "hook.remove",
            &format!("app:{slug}"),
            serde_json::json!({"hook": id}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/hooks/{provider}/{hook_id}`: a delivery (see the module's doc).
pub async fn deliver(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path((provider, hook_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let Some(provider) = Provider::parse(&provider) else { return Err(ApiError::NotFound) };
    let outcome = receive(&state, ip, provider, &hook_id, &headers, body).await;
    answer(&state, provider, outcome)
}

/// Counts a delivery's outcome (`wh_cp_git_hook_deliveries{provider,outcome}`) and answers it.
fn answer(
    state: &AppState,
    provider: Provider,
    outcome: Result<(StatusCode, DeliveryOutcome), ApiError>,
) -> Result<Response, ApiError> {
    let counted = match &outcome {
        Ok((_, o)) => o.status,
        Err(ApiError::NotFound) => "unknown_hook",
        Err(ApiError::TooLarge(_)) => "too_large",
        Err(ApiError::Unauthorized(_)) => "bad_signature",
        Err(ApiError::Conflict { .. }) => "replayed",
        Err(ApiError::BadRequest(_)) => "bad_payload",
        Err(_) => "error",
    };
    state.metrics.git_hook(provider.as_str(), counted);
    let (status, o) = outcome?;
    Ok((status, Json(o)).into_response())
}

async fn receive(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    provider: Provider,
    hook_id: &str,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, DeliveryOutcome), ApiError> {
    let well_formed =
        hook_id.len() == 32 && hook_id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !well_formed {
        return Err(ApiError::NotFound);
    }
    let hook = store::find(&state.pool, provider, hook_id).await?.ok_or(ApiError::NotFound)?;
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge(format!("a delivery is at most {MAX_BODY} bytes")))?;
    let secret = state
        .hooks
        .open(&hook.secret_sealed, hook.id)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hook {}: {e}", hook.id)))?;
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    verify::verify(provider, &secret, header(verify::header(provider)), &body).map_err(|e| {
        tracing::info!(provider = provider.as_str(), hook = hook.id, error = %e, "webhook delivery refused");
        ApiError::Unauthorized("the delivery's signature does not verify")
    })?;
    act(state, ip, provider, &hook, headers, &body).await
}

/// A verified delivery for `hook`: remembered (a replay is refused) and acted on, in one
/// transaction.
async fn act(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    provider: Provider,
    hook: &store::Hook,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(StatusCode, DeliveryOutcome), ApiError> {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    // A provider's redelivery carries the same id; without one, the body's digest.
    let delivery = header(payload::delivery_header(provider))
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|v| (1..=200).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            use sha2::Digest;
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(body)))
        });
    // Remembering the delivery and acting on it are one transaction.
    let mut tx = state.pool.begin().await?;
    if !store::first_delivery(&mut tx, hook.id, &delivery).await? {
        return Err(ApiError::Conflict {
            field: "delivery",
            message: format!("delivery {delivery} was received already"),
        });
    }
    let event = header(payload::event_header(provider))
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("");
    let delivered =
        payload::parse(provider, event, body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let pushes = match delivered {
        Delivery::Ping => {
            tx.commit().await?;
            let pong = DeliveryOutcome { status: "pong", deployments: vec![], reason: None };
            return Ok((StatusCode::OK, pong));
        }
        Delivery::Ignored(why) => return ignored(tx, why).await,
        Delivery::PullRequest(pr) => {
            return pull_request(state, tx, ip, provider, hook.app_id, pr).await
        }
        Delivery::Pushes(p) => p,
    };
    let target = DeployTarget::by_id(&state.pool, hook.app_id).await?.ok_or(ApiError::NotFound)?;
    if target.repo_url.is_empty() {
        return ignored(tx, "the app has no repository (it deploys uploads)".into()).await;
    }
    if !target.auto_deploy {
        return ignored(tx, "auto-deploy is off for this app".into()).await;
    }
    let wanted: Vec<_> = pushes
        .into_iter()
        .filter(|p| match p.kind {
            RefKind::Branch => p.name == target.branch,
            RefKind::Tag => target.deploy_tags,
        })
        .collect();
    let Some(push) = wanted.into_iter().last() else {
        let why = format!(
            "nothing pushed to {} (tags deploy only when the app asks for them)",
            target.branch
        );
        return ignored(tx, why).await;
    };
    // A monorepo app deploys only when a watched path changed (when the delivery says).
    if let (false, Some(changed)) = (target.watch_paths.is_empty(), &push.changed) {
        if !changed.iter().any(|f| watched(&target.watch_paths, f)) {
            let why = format!("no watched path changed ({})", target.watch_paths.join(", "));
            return ignored(tx, why).await;
        }
    }
    let source = wh_wsproto::job::Source::Git {
        repo_url: target.repo_url.clone(),
        git_ref: push.commit.clone(),
        repo_auth: None,
    };
    let job = target.job(source)?;
    let id = crate::deployments::create(&mut tx, target.id, &push.name, job).await?;
    // A connected app's deploy reports its states back as the commit's status.
    sqlx::query(
        "UPDATE deployments d SET commit_sha = $2, commit_message = $3, commit_author = $4,
             report_status = a.git_connection_id IS NOT NULL
         FROM apps a WHERE d.id = $1 AND a.id = d.app_id",
    )
    .bind(id)
    .bind(&push.commit)
    .bind(&push.message)
    .bind(&push.author)
    .execute(&mut *tx)
    .await?;
    crate::audit::record(
        &mut tx,
        None,
        "deployment.create",
        &format!("app:{}", target.slug),
        ip,
        serde_json::json!({"deployment": id, "ref": push.name, "commit": push.commit, "via": provider.as_str()}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(app = %target.slug, deployment = id, commit = %push.commit, "push deploys");
    Ok((
        StatusCode::ACCEPTED,
        DeliveryOutcome { status: "queued", deployments: vec![id], reason: None },
    ))
}

/// `POST /api/v1/hooks/github-app`: a delivery of the GitHub App, for every installation,
/// signed with the App's webhook secret. It goes to each app made from the delivery's
/// repository through that installation, as a delivery to the app's own hook would (each app
/// remembers its deliveries). An uninstalled App's connections go.
pub async fn deliver_app(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let outcome = receive_app(&state, ip, &headers, body).await;
    answer(&state, Provider::Github, outcome)
}

async fn receive_app(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, DeliveryOutcome), ApiError> {
    let app = crate::gitproviders::github_app::load(&state.pool, &state.forges)
        .await?
        .ok_or(ApiError::NotFound)?;
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge(format!("a delivery is at most {MAX_BODY} bytes")))?;
    let signature = headers.get(verify::header(Provider::Github)).map(|v| v.as_bytes());
    verify::verify(Provider::Github, app.webhook_secret(), signature, &body).map_err(|e| {
        tracing::info!(error = %e, "GitHub App delivery refused");
        ApiError::Unauthorized("the delivery's signature does not verify")
    })?;
    #[derive(serde::Deserialize)]
    struct Installation {
        id: i64,
    }
    #[derive(serde::Deserialize)]
    struct Repository {
        full_name: String,
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        action: Option<String>,
        installation: Option<Installation>,
        repository: Option<Repository>,
    }
    let event = headers
        .get(payload::event_header(Provider::Github))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if event == "ping" {
        return Ok((
            StatusCode::OK,
            DeliveryOutcome { status: "pong", deployments: vec![], reason: None },
        ));
    }
    let envelope: Envelope =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let Some(installation) = envelope.installation else {
        let why = "the delivery names no installation".to_owned();
        return Ok((
            StatusCode::ACCEPTED,
            DeliveryOutcome { status: "ignored", deployments: vec![], reason: Some(why) },
        ));
    };
    if event == "installation" && envelope.action.as_deref() == Some("deleted") {
        let gone = sqlx::query("DELETE FROM git_connections WHERE installation_id = $1")
            .bind(installation.id)
            .execute(&state.pool)
            .await?
            .rows_affected();
        let why = format!("the App was uninstalled: {gone} connection(s) removed");
        return Ok((
            StatusCode::ACCEPTED,
            DeliveryOutcome { status: "ignored", deployments: vec![], reason: Some(why) },
        ));
    }
    let Some(repository) = envelope.repository else {
        let why = format!("the {} event is not used", payload::bounded(event));
        return Ok((
            StatusCode::ACCEPTED,
            DeliveryOutcome { status: "ignored", deployments: vec![], reason: Some(why) },
        ));
    };
    let hooks: Vec<store::Hook> = sqlx::query_as(
        "SELECT h.id, h.app_id, h.provider, h.secret_sealed FROM git_hooks h
         JOIN apps a ON a.id = h.app_id JOIN git_connections c ON c.id = a.git_connection_id
         WHERE c.installation_id = $1 AND a.git_repo = $2 AND h.provider = 'github' ORDER BY h.id",
    )
    .bind(installation.id)
    .bind(&repository.full_name)
    .fetch_all(&state.pool)
    .await?;
    if hooks.is_empty() {
        let why = format!("no app deploys {}", payload::bounded(&repository.full_name));
        return Ok((
            StatusCode::ACCEPTED,
            DeliveryOutcome { status: "ignored", deployments: vec![], reason: Some(why) },
        ));
    }
    let mut outcome = DeliveryOutcome { status: "ignored", deployments: vec![], reason: None };
    let mut reasons = Vec::new();
    for hook in &hooks {
        let (_, o) = act(state, ip, Provider::Github, hook, headers, &body).await?;
        if o.status == "queued" || o.status == "removed" {
            outcome.status = o.status;
        }
        outcome.deployments.extend(o.deployments);
        reasons.extend(o.reason);
    }
    if outcome.deployments.is_empty() && outcome.status == "ignored" {
        outcome.reason = Some(reasons.join("; "));
    }
    Ok((StatusCode::ACCEPTED, outcome))
}

/// A pull request into the app's branch, when the app has previews: opened or updated, its
/// head deploys as the app's preview; closed or merged, the preview goes.
async fn pull_request(
    state: &AppState,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    ip: Option<std::net::IpAddr>,
    provider: Provider,
    app: i64,
    pr: payload::PullRequest,
) -> Result<(StatusCode, DeliveryOutcome), ApiError> {
    let (previews, branch, slug): (bool, String, String) =
        sqlx::query_as("SELECT previews, branch, slug FROM apps WHERE id = $1")
            .bind(app)
            .fetch_one(&mut *tx)
            .await?;
    if !previews {
        return ignored(tx, "previews are off for this app".into()).await;
    }
    if pr.base_branch != branch {
        let why = format!("pull request #{} goes into {}, not {branch}", pr.number, pr.base_branch);
        return ignored(tx, why).await;
    }
    let (action, details, outcome) = match pr.action {
        payload::PullAction::Closed => {
            let Some((preview, name)) = crate::previews::find(&mut *tx, app, pr.number).await?
            else {
                return ignored(tx, format!("pull request #{} has no preview", pr.number)).await;
            };
            tx.commit().await?;
            super::apps::remove(state, preview).await?;
            let mut conn = state.pool.acquire().await?;
            let details = serde_json::json!({"preview": name, "pull_request": pr.number});
            let target = format!("app:{slug}");
            crate::audit::record(&mut conn, None, "preview.remove", &target, ip, details).await?;
            tracing::info!(app = %slug, preview = %name, "pull request closed: preview removed");
            let removed = DeliveryOutcome { status: "removed", deployments: vec![], reason: None };
            return Ok((StatusCode::ACCEPTED, removed));
        }
        payload::PullAction::Updated => {
            match crate::previews::deploy(&mut tx, &state.env, app, &pr).await? {
                crate::previews::Deployed::OverLimit(max) => {
                    let why = format!(
                        "the plan allows {max} previews at once; close a pull request first"
                    );
                    return ignored(tx, why).await;
                }
                crate::previews::Deployed::Queued { slug: name, deployment, .. } => {
                    let (action, details) = (
                        "deployment.create",
                        serde_json::json!({"deployment": deployment, "preview": name, "pull_request": pr.number,
                                           "commit": pr.commit, "via": provider.as_str()}),
                    );
                    let outcome = DeliveryOutcome {
                        status: "queued",
                        deployments: vec![deployment],
                        reason: None,
                    };
                    (action, details, outcome)
                }
            }
        }
    };
    crate::audit::record(&mut tx, None, action, &format!("app:{slug}"), ip, details).await?;
    tx.commit().await?;
    tracing::info!(app = %slug, pull_request = pr.number, "pull request deploys a preview");
    Ok((StatusCode::ACCEPTED, outcome))
}

/// Whether `file` is one of `paths`: the path itself, or inside a directory (`web/` or `web`).
fn watched(paths: &[String], file: &str) -> bool {
    paths.iter().any(|p| {
        let dir = p.strip_suffix('/').unwrap_or(p);
        file == dir || file.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
    })
}

/// A delivery accepted and remembered, that deploys nothing for `reason`.
async fn ignored(
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
    reason: String,
) -> Result<(StatusCode, DeliveryOutcome), ApiError> {
    tx.commit().await?;
    let outcome = DeliveryOutcome { status: "ignored", deployments: vec![], reason: Some(reason) };
    Ok((StatusCode::ACCEPTED, outcome))
}
