//! Preview deploys of pull requests. An app that asks for them (`previews`, off by default)
//! gets, for each pull or merge request into its branch, an app of its own named
//! `pr-<n>-<slug>` (so it answers at `pr-<n>-<slug>.<route domain>`): the same owner, plan,
//! port, repository, connection and root directory, the app's environment variables with the
//! preview-only ones over them, the request's head commit deployed each time it is opened or
//! updated. Closing or merging the request removes it (`api/hooks.rs` calls the app removal).
//! The plan bounds how many previews an app has at once.
//!
//! Everything here runs in the delivery's transaction: the parent's row is locked first, so two
//! deliveries at once cannot both take the last preview the plan allows.

use crate::api::deployments::DeployTarget;
use crate::api::ApiError;
use crate::githooks::payload::PullRequest;
use crate::secrets::Sealer;

/// A preview's app name.
pub fn name(number: u32, slug: &str) -> String {
    format!("pr-{number}-{slug}")
}

/// Whether `slug` has a preview's form (`pr-<digits>-…`): users cannot pick such names.
pub fn is_preview_name(slug: &str) -> bool {
    slug.strip_prefix("pr-").and_then(|rest| rest.split_once('-')).is_some_and(|(n, rest)| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
    })
}

/// What [`deploy`] did.
#[derive(Debug)]
pub enum Deployed {
    /// The preview app and the deployment of the request's head.
    Queued { app: i64, slug: String, deployment: i64 },
    /// The app has as many previews as its plan allows.
    OverLimit(i32),
}

#[derive(sqlx::FromRow)]
struct Parent {
    owner_id: i64,
    slug: String,
    plan_id: i64,
    port: i32,
    repo_url: String,
    repo_auth_sealed: Option<Vec<u8>>,
    git_connection_id: Option<i64>,
    git_repo: Option<String>,
    root_dir: String,
    max_previews: i32,
}

fn open(env: &Sealer, sealed: &[u8], owner: i64, what: &str) -> Result<Vec<u8>, ApiError> {
    env.open(sealed, owner)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{what} of app {owner}: {e}")))
}

/// Makes or refreshes `parent`'s preview of `pr` and queues a deployment of its head commit.
pub async fn deploy(
    tx: &mut sqlx::PgConnection,
    env: &Sealer,
    parent: i64,
    pr: &PullRequest,
) -> Result<Deployed, ApiError> {
    let p: Parent = sqlx::query_as(
        "SELECT a.owner_id, a.slug, a.plan_id, a.port, a.repo_url, a.repo_auth_sealed, a.git_connection_id,
                a.git_repo, a.root_dir, pl.max_previews
         FROM apps a JOIN plans pl ON pl.id = a.plan_id WHERE a.id = $1 FOR UPDATE OF a",
    )
    .bind(parent)
    .fetch_one(&mut *tx)
    .await?;
    let number = i32::try_from(pr.number).map_err(|_| ApiError::BadRequest("number".into()))?;
    let existing: Option<i64> =
        sqlx::query_scalar("SELECT id FROM apps WHERE preview_of = $1 AND preview_number = $2")
            .bind(parent)
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?;
    let slug = name(pr.number, &p.slug);
    let id = match existing {
        Some(id) => id,
        None => {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM apps WHERE preview_of = $1")
                .bind(parent)
                .fetch_one(&mut *tx)
                .await?;
            if count >= i64::from(p.max_previews) {
                return Ok(Deployed::OverLimit(p.max_previews));
            }
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO apps (owner_id, slug, repo_url, branch, plan_id, port, git_connection_id, git_repo,
                                   root_dir, preview_of, preview_number)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (slug) DO NOTHING RETURNING id",
            )
            .bind(p.owner_id)
            .bind(&slug)
            .bind(&p.repo_url)
            .bind(&pr.head_branch)
            .bind(p.plan_id)
            .bind(p.port)
            .bind(p.git_connection_id)
            .bind(&p.git_repo)
            .bind(&p.root_dir)
            .bind(parent)
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?;
            inserted.ok_or_else(|| ApiError::Conflict {
                field: "name",
                message: format!("an app named {slug} exists already"),
            })?
        }
    };
    // The repository's credentials and the variables, sealed anew for the preview (the
    // owning app's id is the associated data), the app's and then the preview-only ones.
    let auth = match &p.repo_auth_sealed {
        Some(s) => Some(env.seal(&open(env, s, parent, "repository credentials")?, id)),
        None => None,
    };
    sqlx::query(
        "UPDATE apps SET branch = $2, repo_auth_sealed = $3, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(&pr.head_branch)
    .bind(auth)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM env_vars WHERE app_id = $1").bind(id).execute(&mut *tx).await?;
    for table in ["env_vars", "preview_env_vars"] {
        let vars: Vec<(String, Vec<u8>)> =
            sqlx::query_as(&format!("SELECT key, value_sealed FROM {table} WHERE app_id = $1"))
                .bind(parent)
                .fetch_all(&mut *tx)
                .await?;
        for (key, sealed) in vars {
            let value = open(env, &sealed, parent, &format!("variable {key}"))?;
            sqlx::query(
                "INSERT INTO env_vars (app_id, key, value_sealed) VALUES ($1, $2, $3)
                 ON CONFLICT (app_id, key) DO UPDATE SET value_sealed = excluded.value_sealed, updated_at = now()",
            )
            .bind(id)
            .bind(&key)
            .bind(env.seal(&value, id))
            .execute(&mut *tx)
            .await?;
        }
    }
    let target = DeployTarget::by_id(&mut *tx, id).await?.ok_or(ApiError::NotFound)?;
    let source = wh_wsproto::job::Source::Git {
        repo_url: target.repo_url.clone(),
        git_ref: pr.commit.clone(),
        repo_auth: None,
    };
    let job = target.job(source)?;
    let deployment = crate::deployments::create(&mut *tx, id, &pr.head_branch, job).await?;
    sqlx::query(
        "UPDATE deployments SET commit_sha = $2, commit_message = $3, report_status = $4 WHERE id = $1",
    )
    .bind(deployment)
    .bind(&pr.commit)
    .bind(format!("#{}: {}", pr.number, pr.title))
    .bind(p.git_connection_id.is_some())
    .execute(&mut *tx)
    .await?;
    Ok(Deployed::Queued { app: id, slug, deployment })
}

/// `parent`'s preview of request `number`: its id and name, if it has one.
pub async fn find(
    db: impl sqlx::PgExecutor<'_>,
    parent: i64,
    number: u32,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, slug FROM apps WHERE preview_of = $1 AND preview_number = $2")
        .bind(parent)
        .bind(i32::try_from(number).unwrap_or(i32::MAX))
        .fetch_optional(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_names_are_recognised() {
        assert_eq!(name(12, "shop"), "pr-12-shop");
        assert!(is_preview_name("pr-12-shop"));
        for not in ["pr-shop", "pr--x", "pr-12-", "prx-1-a", "shop"] {
            assert!(!is_preview_name(not), "{not}");
        }
    }
}
