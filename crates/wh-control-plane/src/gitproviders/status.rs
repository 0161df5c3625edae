//! Deployment states reported back to the provider as commit statuses (GitHub and Gitea commit
//! statuses, GitLab commit statuses, Bitbucket build statuses), each linking to the deployment's
//! page (a live preview: to the preview itself). A deployment of a pushed commit of a connected app is marked `report_status` when it
//! is made; the reporter posts each state it has not reported yet, in order of deployments, and
//! stops once a final state is reported. A failed report is tried again with a doubling wait
//! (up to an hour), ten times; nothing is lost across a restart, since what is left to report
//! is in the rows themselves.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::rest::{self, CommitState, CommitStatus};
use super::{connections, ForgeError, Forges};

/// Reports given up after this many failures in a row.
pub const MAX_FAILURES: i32 = 10;

#[derive(sqlx::FromRow)]
struct Due {
    id: i64,
    state: String,
    commit_sha: Option<String>,
    git_repo: Option<String>,
    git_connection_id: Option<i64>,
    report_failures: i32,
    slug: String,
    preview: bool,
}

/// A deployment state as a commit state, a description, and whether it is the last to report.
fn commit_state(state: &str) -> (CommitState, &'static str, bool) {
    match state {
        "queued" => (CommitState::Pending, "Queued", false),
        "building" => (CommitState::Pending, "Building", false),
        "starting" | "healthy" => (CommitState::Pending, "Starting", false),
        "live" => (CommitState::Success, "Live", true),
        "failed" => (CommitState::Failure, "The deployment failed", true),
        "superseded" => (CommitState::Cancelled, "Superseded by a newer deployment", true),
        _ => (CommitState::Cancelled, "Cancelled", true),
    }
}

/// Every `every`, reports what is due. Returns (to its supervisor) only when the database fails.
pub async fn run(
    pool: PgPool,
    forges: Arc<Forges>,
    routing: Arc<crate::Routing>,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = report_due(&pool, &forges, &routing).await {
            tracing::warn!(error = %e, "commit statuses not reported");
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Posts every state due now; how many were reported.
pub async fn report_due(
    pool: &PgPool,
    forges: &Forges,
    routing: &crate::Routing,
) -> Result<usize, sqlx::Error> {
    let due: Vec<Due> = sqlx::query_as(
        "SELECT d.id, d.state::text AS state, d.commit_sha, a.git_repo, a.git_connection_id, d.report_failures,
                a.slug, a.preview_of IS NOT NULL AS preview
         FROM deployments d JOIN apps a ON a.id = d.app_id
         WHERE d.report_status AND (d.report_after IS NULL OR d.report_after <= now())
           AND d.reported_state IS DISTINCT FROM d.state::text
         ORDER BY d.id LIMIT 50",
    )
    .fetch_all(pool)
    .await?;
    let mut reported = 0;
    for d in due {
        let (state, description, last) = commit_state(&d.state);
        let (Some(sha), Some(repo), Some(connection)) =
            (&d.commit_sha, &d.git_repo, d.git_connection_id)
        else {
            // The app lost its connection or repository: nothing to report to.
            sqlx::query("UPDATE deployments SET report_status = false WHERE id = $1")
                .bind(d.id)
                .execute(pool)
                .await?;
            continue;
        };
        // A live preview links to itself: the pull request shows where to look.
        let link = match (d.preview, d.state.as_str()) {
            (true, "live") => routing.app_url(&d.slug),
            _ => forges.deployment_url(d.id),
        };
        let status = CommitStatus { sha, state, target_url: &link, description };
        let outcome = post(forges, pool, connection, repo, status).await;
        match outcome {
            Ok(()) => {
                // Guarded by the state reported: a state that moved on meanwhile is reported next.
                sqlx::query(
                    "UPDATE deployments SET reported_state = $2, report_failures = 0, report_after = NULL,
                         report_status = report_status AND NOT $3 WHERE id = $1",
                )
                .bind(d.id)
                .bind(&d.state)
                .bind(last)
                .execute(pool)
                .await?;
                reported += 1;
            }
            Err(e) => {
                let failures = d.report_failures + 1;
                tracing::warn!(deployment = d.id, failures, error = %e, "commit status not reported");
                let wait = 2f64.powi(failures.min(12)).min(3600.0);
                sqlx::query(
                    "UPDATE deployments SET report_failures = $2, report_after = now() + make_interval(secs => $3),
                         report_status = $2 < $4 WHERE id = $1",
                )
                .bind(d.id)
                .bind(failures)
                .bind(wait)
                .bind(MAX_FAILURES)
                .execute(pool)
                .await?;
            }
        }
    }
    Ok(reported)
}

async fn post(
    forges: &Forges,
    pool: &PgPool,
    connection: i64,
    repo: &str,
    status: CommitStatus<'_>,
) -> Result<(), ForgeError> {
    let (c, token) = connections::access_token(pool, forges, connection).await?;
    let forge = forges.forge_of(&c)?;
    rest::post_status(&forges.client, &forge, &token, repo, status).await
}
