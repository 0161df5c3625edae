//! Deployments under `/api/v1`: create (queued, with its job, in one transaction), list, show,
//! cancel. Only the app's owner sees them.

use axum::extract::State;

use super::params::{Path, Query};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use wh_wsproto::job::{DeployJob, Source};

use super::extract::Caller;
use super::ApiError;
use wh_wsproto::archive;

use crate::{deployments, AppState};

#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct Deployment {
    pub id: i64,
    pub app: String,
    pub git_ref: String,
    pub state: String,
    pub error: Option<String>,
    pub worker_id: Option<uuid::Uuid>,
    /// The commit built (git sources), once known.
    pub commit_sha: Option<String>,
    /// The pushed commit's message (first line) and author, for a deploy a webhook started.
    pub commit_message: Option<String>,
    pub commit_author: Option<String>,
    /// The deployment this one redeploys (a rollback).
    pub rollback_of: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str =
    "d.id, a.slug AS app, d.git_ref, d.state::text AS state, d.error, d.worker_id, d.commit_sha, d.commit_message, d.commit_author, d.rollback_of,
    to_char(d.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at,
    to_char(d.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS updated_at";

/// What to deploy: a ref of the app's repository (default: its branch), or, with
/// `rollback_to`, an earlier deployment again: its image when the worker still has it, else
/// its commit rebuilt. Not both.
#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    #[serde(default, rename = "ref")]
    git_ref: Option<String>,
    /// The id of an earlier deployment of this app that went live.
    #[serde(default)]
    rollback_to: Option<i64>,
}

/// A rollback's target as the database has it.
#[derive(sqlx::FromRow)]
struct Target {
    git_ref: String,
    commit_sha: Option<String>,
    state: String,
    image_of: Option<i64>,
    has_source: bool,
}

/// An app as deploying it needs: where its source is, its port and its plan's limits.
pub struct DeployTarget {
    pub id: i64,
    pub slug: String,
    pub repo_url: String,
    pub branch: String,
    pub port: i32,
    pub deploy_tags: bool,
    pub auto_deploy: bool,
    pub root_dir: String,
    pub watch_paths: Vec<String>,
    limits: wh_wsproto::job::Limits,
}

#[derive(sqlx::FromRow)]
struct TargetRow {
    id: i64,
    slug: String,
    repo_url: String,
    branch: String,
    port: i32,
    deploy_tags: bool,
    auto_deploy: bool,
    root_dir: String,
    watch_paths: Vec<String>,
    memory_mb: i32,
    cpu_millis: i32,
    disk_mb: i32,
}

const TARGET: &str = "SELECT a.id, a.slug, a.repo_url, a.branch, a.port, a.deploy_tags, a.auto_deploy, a.root_dir, a.watch_paths, p.memory_mb, p.cpu_millis, p.disk_mb
    FROM apps a JOIN plans p ON p.id = a.plan_id";

impl DeployTarget {
    fn from_row(r: TargetRow) -> DeployTarget {
        DeployTarget {
            id: r.id,
            slug: r.slug,
            repo_url: r.repo_url,
            branch: r.branch,
            port: r.port,
            deploy_tags: r.deploy_tags,
            auto_deploy: r.auto_deploy,
            root_dir: r.root_dir,
            watch_paths: r.watch_paths,
            limits: wh_wsproto::job::Limits {
                memory_mb: u64::try_from(r.memory_mb).unwrap_or(0),
                cpu_millis: u64::try_from(r.cpu_millis).unwrap_or(0),
                disk_mb: u64::try_from(r.disk_mb).ok().filter(|mb| *mb > 0),
            },
        }
    }

    /// `owner`'s app `slug`.
    pub async fn owned(
        pool: &sqlx::PgPool,
        slug: &str,
        owner: i64,
    ) -> Result<Option<DeployTarget>, sqlx::Error> {
        let row: Option<TargetRow> =
            sqlx::query_as(&format!("{TARGET} WHERE a.slug = $1 AND a.owner_id = $2"))
                .bind(slug)
                .bind(owner)
                .fetch_optional(pool)
                .await?;
        Ok(row.map(DeployTarget::from_row))
    }

    /// The app `id`, whoever owns it (a verified webhook names it).
    pub async fn by_id(
        db: impl sqlx::PgExecutor<'_>,
        id: i64,
    ) -> Result<Option<DeployTarget>, sqlx::Error> {
        let row: Option<TargetRow> = sqlx::query_as(&format!("{TARGET} WHERE a.id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?;
        Ok(row.map(DeployTarget::from_row))
    }

    /// The job that deploys `source` for this app (its id is set when it is queued).
    pub fn job(&self, source: Source) -> Result<DeployJob, ApiError> {
        let port = u16::try_from(self.port)
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("app port {}", self.port)))?;
        Ok(DeployJob {
            app: self.slug.clone(),
            deployment_id: 0,
            port,
            limits: self.limits,
            source,
            root_dir: self.root_dir.clone(),
            env: Default::default(),
        })
    }
}

/// How many uploads are checked at once.
static UPLOAD_CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// `POST /api/v1/apps/{slug}/deployments`: a JSON body `{"ref": …}` (or none) deploys a git
/// ref of the app's repository, `{"rollback_to": N}` deployment N again ([`rollback_source`]);
/// a `Content-Type: application/gzip` body is an uploaded source archive (`wh deploy
/// --path`), checked ([`archive::check`]) and kept with the deployment until it ends.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let upload =
        headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(
            |t| matches!(t, "application/gzip" | "application/x-gzip" | "application/x-tar+gzip"),
        );
    let limits = archive::Limits::default();
    let limit = if upload { limits.max_compressed } else { 64 << 10 };
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge(format!("the request body is over {limit} bytes")))?;
    let target =
        DeployTarget::owned(&state.pool, &slug, caller.user.id).await?.ok_or(ApiError::NotFound)?;
    let (app_id, repo_url, branch) = (target.id, target.repo_url.clone(), target.branch.clone());
    let (git_ref, job_source, source, rollback) = if upload {
        // Each check costs up to a core and 16 MiB; more uploads than this wait their turn.
        let _turn = UPLOAD_CHECKS.acquire().await.map_err(|e| ApiError::Internal(e.into()))?;
        let checked = body.clone();
        let summary = tokio::task::spawn_blocking(move || archive::check(&checked, &limits))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .map_err(|e| match e {
                archive::ArchiveError::TooLarge(..) | archive::ArchiveError::UnpacksTooLarge(_) => {
                    ApiError::TooLarge(e.to_string())
                }
                other => ApiError::Validation { field: "source", message: other.to_string() },
            })?;
        use sha2::Digest;
        let sha = hex::encode(sha2::Sha256::digest(&body));
        tracing::info!(app = %slug, files = summary.files, bytes = summary.unpacked_bytes, "source uploaded");
        (format!("upload:{}", &sha[..12]), Source::Upload, Some((body, sha)), None)
    } else {
        // The body is optional: no body deploys the app's branch.
        let body: NewDeployment = if body.iter().all(u8::is_ascii_whitespace) {
            NewDeployment::default()
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?
        };
        if let Some(target) = body.rollback_to {
            if body.git_ref.is_some() {
                return Err(ApiError::Validation {
                    field: "rollback_to",
                    message: "give a ref or rollback_to, not both".into(),
                });
            }
            let (git_ref, source, commit) =
                rollback_source(&state, app_id, &repo_url, target).await?;
            (git_ref, source, None, Some((target, commit)))
        } else {
            if repo_url.is_empty() {
                return Err(ApiError::Validation {
                    field: "ref",
                    message: "this app has no repository; upload its source (wh deploy --path DIR)"
                        .into(),
                });
            }
            let git_ref = body.git_ref.unwrap_or(branch);
            if !crate::repos::valid_ref_name(&git_ref) {
                return Err(ApiError::Validation {
                    field: "ref",
                    message: "must be a branch, tag or commit".into(),
                });
            }
            let job_source = Source::Git { repo_url, git_ref: git_ref.clone(), repo_auth: None };
            (git_ref, job_source, None, None)
        }
    };
    let job = target.job(job_source)?;
    let mut tx = state.pool.begin().await?;
    let id = deployments::create(&mut tx, app_id, &git_ref, job).await?;
    if let Some((of, commit)) = &rollback {
        sqlx::query("UPDATE deployments SET rollback_of = $2, commit_sha = $3 WHERE id = $1")
            .bind(id)
            .bind(of)
            .bind(commit)
            .execute(&mut *tx)
            .await?;
    }
    if let Some((archive, sha)) = source {
        sqlx::query(
            "INSERT INTO deployment_sources (deployment_id, archive, sha256) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(archive.as_ref())
        .bind(&sha)
        .execute(&mut *tx)
        .await?;
    }
    caller
        .audit(
            &mut tx,
            "deployment.create",
            &format!("app:{slug}"),
            serde_json::json!({"deployment": id, "ref": git_ref, "rollback_to": rollback.as_ref().map(|r| r.0)}),
        )
        .await?;
    tx.commit().await?;
    let d = owned(&state, &caller, id).await?;
    Ok((StatusCode::CREATED, Json(d)).into_response())
}

/// What deploying `target` (a deployment of app `app_id`) again means: its git ref for the
/// record, its image (or its commit rebuilt), and its commit.
async fn rollback_source(
    state: &AppState,
    app_id: i64,
    repo_url: &str,
    target: i64,
) -> Result<(String, Source, Option<String>), ApiError> {
    let found = sqlx::query_as::<_, Target>(
        "SELECT d.git_ref, d.commit_sha, d.state::text AS state, d.image_of,
                (a.repo_url <> '' AND d.git_ref NOT LIKE 'upload:%') AS has_source
         FROM deployments d JOIN apps a ON a.id = d.app_id WHERE d.id = $1 AND d.app_id = $2",
    )
    .bind(target)
    .bind(app_id)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::Validation {
        field: "rollback_to",
        message: format!("this app has no deployment {target}"),
    })?;
    if !matches!(found.state.as_str(), "live" | "superseded") {
        return Err(ApiError::Validation {
            field: "rollback_to",
            message: format!(
                "deployment {target} is {}: only one that went live can be deployed again",
                found.state
            ),
        });
    }
    // Its image, wherever that came from; else its commit, which a git app can rebuild.
    let rebuild = found.has_source.then(|| {
        Box::new(Source::Git {
            repo_url: repo_url.to_owned(),
            git_ref: found.commit_sha.clone().unwrap_or_else(|| found.git_ref.clone()),
            repo_auth: None,
        })
    });
    let source = Source::Image { image_of: found.image_of.unwrap_or(target), rebuild };
    Ok((found.git_ref, source, found.commit_sha))
}

async fn owned(state: &AppState, caller: &Caller, id: i64) -> Result<Deployment, ApiError> {
    sqlx::query_as::<_, Deployment>(&format!("SELECT {COLUMNS} FROM deployments d JOIN apps a ON a.id = d.app_id WHERE d.id = $1 AND a.owner_id = $2"))
        .bind(id)
        .bind(caller.user.id)
        .fetch_optional(&state.pool)
        .await?
        .ok_or(ApiError::NotFound)
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Vec<Deployment>>, ApiError> {
    let rows = sqlx::query_as::<_, Deployment>(&format!(
        "SELECT {COLUMNS} FROM deployments d JOIN apps a ON a.id = d.app_id WHERE a.slug = $1 AND a.owner_id = $2 ORDER BY d.id DESC LIMIT 100"
    ))
    .bind(&slug)
    .bind(caller.user.id)
    .fetch_all(&state.pool)
    .await?;
    if rows.is_empty() {
        // Distinguish "no deployments yet" from "not your app".
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM apps WHERE slug = $1 AND owner_id = $2)",
        )
        .bind(&slug)
        .bind(caller.user.id)
        .fetch_one(&state.pool)
        .await?;
        if !exists {
            return Err(ApiError::NotFound);
        }
    }
    Ok(Json(rows))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Deployment>, ApiError> {
    owned(&state, &caller, id).await.map(Json)
}

/// `?from=` of the build log: a byte offset into all the output the build has had.
#[derive(Debug, serde::Deserialize)]
pub struct LogFrom {
    from: Option<u64>,
}

/// `GET /api/v1/deployments/{id}/build-log`: the build output kept with the deployment (its
/// last MiB). With `?from=N`, only what came after byte N of all the output; `X-Log-Offset`
/// answers the offset to ask from next, and `X-Log-Skipped` how many bytes after N are no
/// longer kept.
pub async fn build_log(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<LogFrom>,
) -> Result<Response, ApiError> {
    owned(&state, &caller, id).await?;
    let from = q.from.map_or(0, |f| i64::try_from(f).unwrap_or(i64::MAX));
    // `start`: the offset of the first byte still kept.
    let (total, start, text): (i64, i64, Vec<u8>) = sqlx::query_as(
        "SELECT build_log_total, build_log_total - octet_length(build_log), \
                substring(convert_to(build_log, 'UTF8') \
                          FROM (LEAST(GREATEST($2 - (build_log_total - octet_length(build_log)), 0), 2147483646) + 1)::int) \
         FROM deployments WHERE id = $1",
    )
    .bind(id)
    .bind(from)
    .fetch_one(&state.pool)
    .await?;
    let skipped = (start - from).max(0);
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (HeaderName::from_static("x-log-offset"), total.to_string()),
            (HeaderName::from_static("x-log-skipped"), skipped.to_string()),
        ],
        String::from_utf8_lossy(&text).into_owned(),
    )
        .into_response())
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Deployment>, ApiError> {
    let d = owned(&state, &caller, id).await?;
    let Some(held) = deployments::cancel(&state.pool, id).await? else {
        return Err(ApiError::Conflict {
            field: "state",
            message: format!("deployment is already {}", d.state),
        });
    };
    // The worker stops the build or container now (and at its next heartbeat if this is lost).
    for h in held {
        let Ok(worker) = h.claimed_by.parse::<uuid::Uuid>() else { continue };
        let stop = wh_wsproto::messages::JobCancel {
            job_id: h.job_id,
            attempt: h.attempt,
            reason: "the deployment was cancelled".into(),
        };
        if let Err(e) = state.hub.send(worker, wh_wsproto::Message::JobCancel(stop)) {
            tracing::info!(%worker, error = %e, "the worker hears of the cancel at its next heartbeat");
        }
    }
    caller
        .audit(
            &mut *state.pool.acquire().await?,
            "deployment.cancel",
            &format!("app:{}", d.app),
            serde_json::json!({"deployment": id}),
        )
        .await?;
    owned(&state, &caller, id).await.map(Json)
}
