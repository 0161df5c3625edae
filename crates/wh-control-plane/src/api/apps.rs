//! Apps and their environment variables under `/api/v1/apps`. A user sees and changes only
//! their own apps: another user's app is a 404, exactly like one that does not exist.

use axum::extract::State;

use super::params::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{ApiJson, Caller};
use super::ApiError;
use crate::AppState;

/// Slugs that would collide with the platform's own names.
const RESERVED: &[&str] = &[
    "www",
    "api",
    "admin",
    "dashboard",
    "app",
    "apps",
    "static",
    "assets",
    "mail",
    "proxy",
    "traefik",
    "control",
    "root",
    "status",
    "docs",
    "help",
    "wisehosting",
    "localhost",
];

/// Validates an app slug: 3–40 of `[a-z0-9-]`, no leading or trailing hyphen, not reserved.
pub fn validate_slug(slug: &str) -> Result<(), ApiError> {
    let bad = |m: &str| Err(ApiError::Validation { field: "name", message: m.to_owned() });
    if !(3..=40).contains(&slug.len()) {
        return bad("must be 3 to 40 characters");
    }
    if !slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return bad("may contain only a-z, 0-9 and -");
    }
    if slug.starts_with('-') || slug.ends_with('-') {
        return bad("must not start or end with -");
    }
    if RESERVED.contains(&slug) {
        return bad("is reserved");
    }
    if crate::previews::is_preview_name(slug) {
        return bad("names pr-<number>-… are kept for preview deploys");
    }
    Ok(())
}

/// Validates an environment variable name (POSIX: a letter or `_`, then letters, digits, `_`).
pub fn validate_env_key(key: &str) -> Result<(), ApiError> {
    wh_wsproto::env::check_name(key)
        .map_err(|e| ApiError::Validation { field: "key", message: e.to_string() })
}

/// Validates a whole variable: what the worker can pass to the container, nothing else.
fn validate_env(key: &str, value: &str) -> Result<(), ApiError> {
    validate_env_key(key)?;
    wh_wsproto::env::check(key, value)
        .map_err(|e| ApiError::Validation { field: "value", message: e.to_string() })
}

#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct App {
    #[serde(skip)]
    pub id: i64,
    pub slug: String,
    pub repo_url: String,
    pub branch: String,
    pub plan: String,
    pub port: i32,
    /// Whether the repository has credentials (sealed; never shown).
    pub repo_credentials: bool,
    /// Whether pushes deploy (git webhooks); off, only deploys by hand (and previews) do.
    pub auto_deploy: bool,
    /// Whether pushed tags deploy (git webhooks).
    pub deploy_tags: bool,
    /// The directory built; empty: the repository's root.
    pub root_dir: String,
    /// Paths whose changes deploy on a push; empty: any change.
    pub watch_paths: Vec<String>,
    /// The connected provider's repository it was made from (`github:owner/name`), if any.
    pub repo: Option<String>,
    /// The git connection that reads it.
    pub connection: Option<i64>,
    /// Whether pull requests into its branch get preview deploys.
    pub previews: bool,
    /// The names of the variables only previews get (their values are never shown).
    pub preview_env_keys: Vec<String>,
    /// The app this one previews a pull request of, if it is a preview.
    pub preview_of: Option<String>,
    /// How many previews its plan allows at once.
    pub max_previews: i32,
    /// Where the app answers once live.
    #[sqlx(skip)]
    pub url: String,
    /// The deployment serving now, if any.
    pub live_deployment_id: Option<i64>,
    /// The newest deployment: its id, state and when it was created.
    pub last_deployment_id: Option<i64>,
    pub last_deployment_state: Option<String>,
    pub last_deployed_at: Option<String>,
}

const APP_COLUMNS: &str = "a.id, a.slug, a.repo_url, a.branch, p.name AS plan, a.port, (a.repo_auth_sealed IS NOT NULL) AS repo_credentials, a.auto_deploy, a.deploy_tags, a.root_dir, a.watch_paths,
    (SELECT c.provider::text || ':' || a.git_repo FROM git_connections c WHERE c.id = a.git_connection_id) AS repo,
    a.git_connection_id AS connection, a.previews, p.max_previews,
    ARRAY(SELECT k.key FROM preview_env_vars k WHERE k.app_id = a.id ORDER BY k.key) AS preview_env_keys,
    (SELECT o.slug FROM apps o WHERE o.id = a.preview_of) AS preview_of,
    (SELECT max(l.id) FROM deployments l WHERE l.app_id = a.id AND l.state = 'live') AS live_deployment_id,
    last.id AS last_deployment_id, last.state::text AS last_deployment_state,
    to_char(last.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS last_deployed_at";

/// What follows `FROM apps a` in every app query: its plan and its newest deployment.
const APP_JOINS: &str = "JOIN plans p ON p.id = a.plan_id
    LEFT JOIN LATERAL (SELECT d.id, d.state, d.created_at FROM deployments d WHERE d.app_id = a.id ORDER BY d.created_at DESC, d.id DESC LIMIT 1) last ON true";

async fn owned_app(state: &AppState, caller: &Caller, slug: &str) -> Result<App, ApiError> {
    let mut app = sqlx::query_as::<_, App>(&format!(
        "SELECT {APP_COLUMNS} FROM apps a {APP_JOINS} WHERE a.slug = $1 AND a.owner_id = $2"
    ))
    .bind(slug)
    .bind(caller.user.id)
    .fetch_optional(&state.pool)
    .await?
    .ok_or(ApiError::NotFound)?;
    app.url = state.routing.app_url(&app.slug);
    Ok(app)
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct NewApp {
    name: String,
    /// Empty or absent: the app is deployed from uploads only (`wh deploy --path`).
    #[serde(default)]
    repo_url: String,
    /// A connected provider's repository instead of a URL: `github:owner/name` (also `gitlab:`,
    /// `bitbucket:`, `gitea:`, `forgejo:`, `codeberg:`). It clones with the connection's token
    /// and gets a push webhook registered; the branch defaults to the repository's default.
    #[serde(default)]
    repo: Option<String>,
    /// Which of the caller's connections to that provider reads it (needed only with several).
    #[serde(default)]
    connection: Option<i64>,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    plan: Option<String>,
    port: i32,
}

/// A branch name by git's rules (`git check-ref-format --branch`): at most 200 bytes, no leading
/// `-` (it would read as an option), no `..`, `@{`, control characters, space or any of `~^:?*[\`,
/// no component starting with `.` or ending with `.lock`, not ending with `/` or `.`.
pub fn validate_branch(name: &str) -> Result<(), ApiError> {
    if crate::repos::valid_ref_name(name) {
        Ok(())
    } else {
        Err(ApiError::Validation {
            field: "branch",
            message: "must be a valid git branch name (git check-ref-format)".into(),
        })
    }
}

fn validate_port(port: i32) -> Result<(), ApiError> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(ApiError::Validation { field: "port", message: "must be 1 to 65535".into() })
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewApp>,
) -> Result<Response, ApiError> {
    validate_slug(&body.name)?;
    validate_port(body.port)?;
    let linked = match &body.repo {
        Some(_) if !body.repo_url.is_empty() => {
            return Err(ApiError::Validation {
                field: "repo",
                message: "give repo or repo_url, not both".into(),
            })
        }
        Some(reference) => {
            Some(super::git::link_repo(&state, &caller, reference, body.connection).await?)
        }
        None => None,
    };
    let repo = match &linked {
        // The operator's provider named it; the worker checks the address when it clones.
        Some(l) => crate::repos::check(&l.repo.clone_url, true)?,
        None => crate::repos::check(&body.repo_url, state.allow_private_repos)?,
    };
    let default_branch = linked.as_ref().map(|l| l.repo.default_branch.clone());
    let branch =
        body.branch.or(default_branch.filter(|b| !b.is_empty())).unwrap_or_else(|| "main".into());
    validate_branch(&branch)?;
    let plan = body.plan.unwrap_or_else(|| "hobby".into());
    let mut tx = state.pool.begin().await?;
    // The user's row lock makes the count and the insert one step (two creations at once
    // cannot both take the last place).
    let (max, have): (i32, i64) = sqlx::query_as(
        "SELECT u.max_apps, (SELECT count(*) FROM apps a WHERE a.owner_id = u.id AND a.preview_of IS NULL)
         FROM users u WHERE u.id = $1 FOR UPDATE",
    )
    .bind(caller.user.id)
    .fetch_one(&mut *tx)
    .await?;
    if have >= i64::from(max) {
        return Err(ApiError::Conflict {
            field: "name",
            message: format!(
                "you have {have} apps, the most your account may have; delete one first"
            ),
        });
    }
    let plan_id: Option<i64> = sqlx::query_scalar("SELECT id FROM plans WHERE name = $1")
        .bind(&plan)
        .fetch_optional(&mut *tx)
        .await?;
    let plan_id = plan_id.ok_or(ApiError::Validation {
        field: "plan",
        message: format!("no plan named `{plan}`"),
    })?;
    let inserted = sqlx::query_scalar::<_, i64>(
        "INSERT INTO apps (owner_id, slug, repo_url, branch, plan_id, port) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (slug) DO NOTHING RETURNING id",
    )
    .bind(caller.user.id)
    .bind(&body.name)
    .bind(&repo.public)
    .bind(&branch)
    .bind(plan_id)
    .bind(body.port)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = inserted else {
        return Err(ApiError::Conflict {
            field: "name",
            message: format!("`{}` is taken", body.name),
        });
    };
    if let Some(credentials) = &repo.credentials {
        // Sealed with the app's id as associated data, so the row id is needed first.
        sqlx::query("UPDATE apps SET repo_auth_sealed = $2 WHERE id = $1")
            .bind(id)
            .bind(state.env.seal(credentials.as_bytes(), id))
            .execute(&mut *tx)
            .await?;
    }
    if let Some(l) = &linked {
        sqlx::query("UPDATE apps SET git_connection_id = $2, git_repo = $3 WHERE id = $1")
            .bind(id)
            .bind(l.connection)
            .bind(&l.repo.full_name)
            .execute(&mut *tx)
            .await?;
    }
    caller
        .audit(
            &mut tx,
            "app.create",
            &format!("app:{}", body.name),
            serde_json::json!({"repo_url": repo.public, "repo": body.repo, "plan": plan}),
        )
        .await?;
    tx.commit().await?;
    if let Some(l) = &linked {
        // Without its webhook the app would never deploy a push: it is not made at all.
        if let Err(e) = super::git::register_hook(&state, id, l).await {
            sqlx::query("DELETE FROM apps WHERE id = $1").bind(id).execute(&state.pool).await?;
            return Err(e);
        }
    }
    let app = owned_app(&state, &caller, &body.name).await?;
    Ok((StatusCode::CREATED, Json(app)).into_response())
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<App>>, ApiError> {
    let mut apps = sqlx::query_as::<_, App>(&format!(
        "SELECT {APP_COLUMNS} FROM apps a {APP_JOINS} WHERE a.owner_id = $1 ORDER BY a.slug"
    ))
    .bind(caller.user.id)
    .fetch_all(&state.pool)
    .await?;
    for app in &mut apps {
        app.url = state.routing.app_url(&app.slug);
    }
    Ok(Json(apps))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<App>, ApiError> {
    owned_app(&state, &caller, &slug).await.map(Json)
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct AppPatch {
    repo_url: Option<String>,
    branch: Option<String>,
    port: Option<i32>,
    /// Whether pushes deploy (a git webhook); off, only deploys by hand and previews do.
    auto_deploy: Option<bool>,
    /// Whether pushed tags deploy (a git webhook); branches other than `branch` never do.
    deploy_tags: Option<bool>,
    /// The directory to build (relative, plain names); empty: the repository's root.
    root_dir: Option<String>,
    /// Paths whose changes deploy (a file, or a directory ending in `/`); empty: any change.
    watch_paths: Option<Vec<String>>,
    /// Preview deploys of pull requests into its branch (a connected provider's webhook, or one
    /// added by hand that sends pull request events).
    previews: Option<bool>,
    /// The variables only previews get, over the app's own: replaces them all.
    preview_env: Option<std::collections::BTreeMap<String, String>>,
}

/// A root directory: empty, or up to 200 bytes of `/`-separated plain names (letters, digits,
/// `.`, `_`, `-`; no `.` or `..` component).
pub fn validate_root_dir(dir: &str) -> Result<(), ApiError> {
    let plain = |c: &str| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if dir.is_empty() || (dir.len() <= 200 && dir.split('/').all(plain)) {
        Ok(())
    } else {
        Err(ApiError::Validation {
            field: "root_dir",
            message: "a relative directory of plain names, like services/web".into(),
        })
    }
}

/// Watch paths: at most 20, each a root directory's form (a trailing `/` allowed).
pub fn validate_watch_paths(paths: &[String]) -> Result<(), ApiError> {
    let bad = paths.len() > 20
        || paths.iter().any(|p| {
            let p = p.strip_suffix('/').unwrap_or(p);
            p.is_empty() || validate_root_dir(p).is_err()
        });
    if bad {
        return Err(ApiError::Validation {
            field: "watch_paths",
            message: "at most 20 relative paths of plain names (services/web/, package.json)"
                .into(),
        });
    }
    Ok(())
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<AppPatch>,
) -> Result<Json<App>, ApiError> {
    let app = owned_app(&state, &caller, &slug).await?;
    let repo = body
        .repo_url
        .as_deref()
        .map(|r| crate::repos::check(r, state.allow_private_repos))
        .transpose()?;
    if let Some(b) = &body.branch {
        validate_branch(b)?;
    }
    if let Some(p) = body.port {
        validate_port(p)?;
    }
    if let Some(d) = &body.root_dir {
        validate_root_dir(d)?;
    }
    if let Some(w) = &body.watch_paths {
        validate_watch_paths(w)?;
    }
    if let Some(vars) = &body.preview_env {
        if vars.len() > 100 {
            return Err(ApiError::Validation {
                field: "preview_env",
                message: "at most 100".into(),
            });
        }
        for (k, v) in vars {
            validate_env(k, v)?;
        }
    }
    let mut tx = state.pool.begin().await?;
    if let Some(vars) = &body.preview_env {
        sqlx::query("DELETE FROM preview_env_vars WHERE app_id = $1")
            .bind(app.id)
            .execute(&mut *tx)
            .await?;
        for (k, v) in vars {
            sqlx::query(
                "INSERT INTO preview_env_vars (app_id, key, value_sealed) VALUES ($1, $2, $3)",
            )
            .bind(app.id)
            .bind(k)
            .bind(state.env.seal(v.as_bytes(), app.id))
            .execute(&mut *tx)
            .await?;
        }
    }
    sqlx::query("UPDATE apps SET previews = coalesce($2, previews), auto_deploy = coalesce($3, auto_deploy) WHERE id = $1")
        .bind(app.id)
        .bind(body.previews)
        .bind(body.auto_deploy)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE apps SET root_dir = coalesce($2, root_dir), watch_paths = coalesce($3, watch_paths) WHERE id = $1")
        .bind(app.id)
        .bind(&body.root_dir)
        .bind(&body.watch_paths)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE apps SET branch = coalesce($2, branch), port = coalesce($3, port), deploy_tags = coalesce($4, deploy_tags), updated_at = now() WHERE id = $1")
        .bind(app.id)
        .bind(&body.branch)
        .bind(body.port)
        .bind(body.deploy_tags)
        .execute(&mut *tx)
        .await?;
    if repo.is_some() && app.connection.is_some() {
        // Another repository: the provider's hook on the old one goes, and so does the link.
        super::git::unregister_hooks(&state, app.id).await;
        sqlx::query("UPDATE apps SET git_connection_id = NULL, git_repo = NULL WHERE id = $1")
            .bind(app.id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(repo) = &repo {
        // A new URL replaces the credentials too (none if it has none).
        let sealed = repo.credentials.as_ref().map(|c| state.env.seal(c.as_bytes(), app.id));
        sqlx::query("UPDATE apps SET repo_url = $2, repo_auth_sealed = $3 WHERE id = $1")
            .bind(app.id)
            .bind(&repo.public)
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
    }
    caller
        .audit(
            &mut tx,
            "app.update",
            &format!("app:{slug}"),
            serde_json::json!({
                "repo_url": repo.as_ref().map(|r| &r.public),
                "branch": body.branch,
                "port": body.port,
                "deploy_tags": body.deploy_tags,
                "root_dir": body.root_dir,
                "watch_paths": body.watch_paths,
                "previews": body.previews,
                "auto_deploy": body.auto_deploy,
                "preview_env": body.preview_env.as_ref().map(|v| v.keys().collect::<Vec<_>>()),
            }),
        )
        .await?;
    tx.commit().await?;
    owned_app(&state, &caller, &slug).await.map(Json)
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    let app = owned_app(&state, &caller, &slug).await?;
    remove(&state, app.id).await?;
    caller
        .audit(
            &mut *state.pool.acquire().await?,
            "app.delete",
            &format!("app:{slug}"),
            serde_json::json!({}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes app `id` and what it has: its previews first, the webhooks registered at its
/// provider, its deployments, route and containers (stopped now; a worker that is away stops
/// them when it reports them again, at adoption or with a stats sample).
pub async fn remove(state: &AppState, id: i64) -> Result<(), ApiError> {
    let previews: Vec<i64> = sqlx::query_scalar("SELECT id FROM apps WHERE preview_of = $1")
        .bind(id)
        .fetch_all(&state.pool)
        .await?;
    for preview in previews {
        Box::pin(remove(state, preview)).await?;
    }
    // Hooks registered at the provider go first (the rows would go with the app).
    super::git::unregister_hooks(state, id).await;
    let mut tx = state.pool.begin().await?;
    let running: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "DELETE FROM containers WHERE app_id = $1 RETURNING worker_id, container_id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM apps WHERE id = $1").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    state.logs.remove(id);
    let mut by_worker: std::collections::BTreeMap<uuid::Uuid, Vec<String>> = Default::default();
    for (worker, container) in running {
        by_worker.entry(worker).or_default().push(container);
    }
    for (worker, ids) in by_worker {
        let Some(stop) = crate::containers::stop_message(Ok(ids), worker, "the app was deleted")
        else {
            continue;
        };
        if let Err(e) = state.hub.send(worker, stop) {
            tracing::info!(%worker, error = ?e, "the deleted app's containers stop when the worker reports them");
        }
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct Reveal {
    #[serde(default)]
    reveal: bool,
}

pub async fn env_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    Query(q): Query<Reveal>,
) -> Result<Json<std::collections::BTreeMap<String, String>>, ApiError> {
    let app = owned_app(&state, &caller, &slug).await?;
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT key, value_sealed FROM env_vars WHERE app_id = $1 ORDER BY key")
            .bind(app.id)
            .fetch_all(&state.pool)
            .await?;
    let mut out = std::collections::BTreeMap::new();
    for (key, sealed) in rows {
        let value = if q.reveal {
            let plain = state.env.open(&sealed, app.id).map_err(|e| {
                ApiError::Internal(anyhow::anyhow!("env var {key} of app {}: {e}", app.id))
            })?;
            String::from_utf8_lossy(&plain).into_owned()
        } else {
            "********".to_owned()
        };
        out.insert(key, value);
    }
    Ok(Json(out))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct EnvValue {
    value: String,
}

/// Sets (or replaces) app `app_id`'s variable `key`, sealed.
async fn put_env(
    tx: &mut sqlx::PgConnection,
    state: &AppState,
    app_id: i64,
    key: &str,
    value: &str,
) -> Result<(), sqlx::Error> {
    let sealed = state.env.seal(value.as_bytes(), app_id);
    sqlx::query("INSERT INTO env_vars (app_id, key, value_sealed) VALUES ($1, $2, $3) ON CONFLICT (app_id, key) DO UPDATE SET value_sealed = excluded.value_sealed, updated_at = now()")
        .bind(app_id)
        .bind(key)
        .bind(sealed)
        .execute(tx)
        .await
        .map(drop)
}

pub async fn env_set(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<EnvValue>,
) -> Result<StatusCode, ApiError> {
    validate_env(&key, &body.value)?;
    let app = owned_app(&state, &caller, &slug).await?;
    let mut tx = state.pool.begin().await?;
    put_env(&mut tx, &state, app.id, &key, &body.value).await?;
    // The key is recorded, never the value.
    caller
        .audit(&mut tx, "env.set", &format!("app:{slug}"), serde_json::json!({"key": key}))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A plan an app can be on: what each of its containers may use.
#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct Plan {
    pub name: String,
    /// Thousandths of a CPU.
    pub cpu_millis: i32,
    pub memory_mb: i32,
    pub disk_mb: i32,
}

/// `GET /api/v1/plans`: the plans, smallest first.
pub async fn plans(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<Plan>>, ApiError> {
    let plans = sqlx::query_as::<_, Plan>(
        "SELECT name, cpu_millis, memory_mb, disk_mb FROM plans ORDER BY cpu_millis, memory_mb, name",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(plans))
}

/// The body of `PUT /api/v1/apps/{slug}/env`: every variable the app has, afterwards.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct EnvReplace {
    pub vars: std::collections::BTreeMap<String, String>,
}

/// The most variables an app has.
const MAX_ENV_VARS: usize = 1000;

/// `PUT /api/v1/apps/{slug}/env`: the app's variables become exactly `vars`, in one
/// transaction (the dashboard's `.env` editor). Each is checked as `PUT …/env/{key}` checks it;
/// one bad variable refuses the whole set, naming it, and nothing changes.
pub async fn env_replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<EnvReplace>,
) -> Result<StatusCode, ApiError> {
    if body.vars.len() > MAX_ENV_VARS {
        return Err(ApiError::Validation {
            field: "vars",
            message: format!("at most {MAX_ENV_VARS} variables"),
        });
    }
    for (key, value) in &body.vars {
        validate_env(key, value).map_err(|e| match e {
            ApiError::Validation { message, .. } => {
                ApiError::Validation { field: "vars", message: format!("{key}: {message}") }
            }
            other => other,
        })?;
    }
    let app = owned_app(&state, &caller, &slug).await?;
    let mut tx = state.pool.begin().await?;
    let keys: Vec<&String> = body.vars.keys().collect();
    let removed: Vec<String> = sqlx::query_scalar(
        "DELETE FROM env_vars WHERE app_id = $1 AND NOT (key = ANY($2)) RETURNING key",
    )
    .bind(app.id)
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await?;
    for (key, value) in &body.vars {
        put_env(&mut tx, &state, app.id, key, value).await?;
    }
    // Keys are recorded, never values.
    caller
        .audit(
            &mut tx,
            "env.replace",
            &format!("app:{slug}"),
            serde_json::json!({"keys": keys, "removed": removed}),
        )
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn env_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = owned_app(&state, &caller, &slug).await?;
    let mut tx = state.pool.begin().await?;
    let gone = sqlx::query("DELETE FROM env_vars WHERE app_id = $1 AND key = $2")
        .bind(app.id)
        .bind(&key)
        .execute(&mut *tx)
        .await?;
    if gone.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    caller
        .audit(&mut tx, "env.delete", &format!("app:{slug}"), serde_json::json!({"key": key}))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    lines: Option<usize>,
    #[serde(default)]
    follow: Option<String>,
}

/// `GET /api/v1/apps/{slug}/containers`: the app's containers as their workers last reported
/// them: state, restart count, and the latest resource sample (every 10 s).
pub async fn containers(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Vec<crate::containers::Container>>, ApiError> {
    let app = owned_app(&state, &caller, &slug).await?;
    Ok(Json(crate::containers::of_app(&state.pool, app.id).await?))
}

/// `GET /api/v1/apps/{slug}/logs`: recent runtime lines (`?lines=N`, default 200); with
/// `?follow=1`, a server-sent event stream of them and of every new line until the client leaves.
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let app = owned_app(&state, &caller, &slug).await?;
    let n = q.lines.unwrap_or(200).min(2_000);
    if !q.follow.as_deref().is_some_and(|f| f == "1" || f == "true") {
        return Ok(Json(state.logs.recent(app.id, n)).into_response());
    }
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (recent, rx) = state.logs.follow(app.id, n);
    let event = |e: &crate::logbus::Entry| {
        Event::default().json_data(e).unwrap_or_else(|_| Event::default().data(e.line.clone()))
    };
    let backlog: Vec<Result<Event, std::convert::Infallible>> =
        recent.iter().map(|e| Ok(event(e))).collect();
    let live = futures_util::stream::unfold(rx, move |mut rx| async move {
        match rx.recv().await {
            Ok(e) => Some((Ok(event(&e)), rx)),
            // A slow follower missed lines: say how many, and carry on.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                Some((Ok(Event::default().event("dropped").data(n.to_string())), rx))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    });
    let stream = futures_util::StreamExt::chain(futures_util::stream::iter(backlog), live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// One audit event as the API shows it.
#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: i64,
    pub actor_id: Option<i64>,
    pub action: String,
    pub target: String,
    pub client_ip: Option<String>,
    pub details: serde_json::Value,
    pub at: String,
}

/// `GET /api/v1/audit-events`: the caller's own events (an admin sees everyone's), newest first.
pub async fn audit_events(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AuditEvent>>, ApiError> {
    let events = sqlx::query_as::<_, AuditEvent>(
        "SELECT id, actor_id, action, target, host(client_ip) AS client_ip, details,
                to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at
         FROM audit_events WHERE $1 OR actor_id = $2 ORDER BY id DESC LIMIT 500",
    )
    .bind(caller.user.is_admin)
    .bind(caller.user.id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_env_keys() {
        for ok in ["foo", "my-app-2", "a1b"] {
            assert!(validate_slug(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "-foo", "foo-", "Foo", "fo_o", "admin", &"a".repeat(41)] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
        for ok in ["PATH", "_X", "database_url2"] {
            assert!(validate_env_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1X", "A-B", "A B", "É"] {
            assert!(validate_env_key(bad).is_err(), "{bad}");
        }
    }
}
