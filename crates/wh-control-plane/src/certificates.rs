//! Certificate outcomes the proxies report ([`wh_wsproto::proxy::CertificateReport`]): each is
//! matched to the app that serves the host (`<slug>.<route domain>`, or a verified custom
//! domain), remembered per host, and becomes a `certificate.issued` or `certificate.failed`
//! event when the host's state changed (a renewal is a new expiry; a failing order retried is
//! not news again). Hosts no app serves are ignored.

use sqlx::PgPool;
use wh_wsproto::proxy::{CertificateOutcome, CertificateReport, MAX_ERROR};

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("host: not a lower-case DNS name")]
    Host,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a report came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// An event was written.
    Event,
    /// Nothing changed.
    Unchanged,
    /// No app serves the host.
    Unknown,
}

/// Records `report`; `route_domain` is the apps' domain (`route.example.com`).
pub async fn record(
    pool: &PgPool,
    route_domain: &str,
    report: &CertificateReport,
) -> Result<Recorded, ReportError> {
    let host = report.host.trim_end_matches('.');
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid {
        return Err(ReportError::Host);
    }
    let slug = host.strip_suffix(route_domain).and_then(|s| s.strip_suffix('.'));
    let mut tx = pool.begin().await?;
    let app: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM apps WHERE slug = $1
         UNION ALL SELECT app_id FROM domains WHERE hostname = $2 AND status = 'verified'
         LIMIT 1",
    )
    .bind(slug.unwrap_or(""))
    .bind(host)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(app) = app else { return Ok(Recorded::Unknown) };
    let (issued, not_after, error) = match &report.outcome {
        CertificateOutcome::Issued { not_after } => (true, Some(*not_after), None),
        CertificateOutcome::Failed { error } => {
            (false, None, Some(error.chars().take(MAX_ERROR).collect::<String>()))
        }
    };
    // One report per host at a time (two proxies reporting at once write one event): the
    // host's lock, taken before its row exists.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('wh-certificate:' || $1))")
        .bind(host)
        .execute(&mut *tx)
        .await?;
    let old: Option<(bool, Option<i64>)> = sqlx::query_as(
        "SELECT issued, extract(epoch FROM not_after)::bigint FROM certificates WHERE hostname = $1",
    )
    .bind(host)
    .fetch_optional(&mut *tx)
    .await?;
    let changed = match old {
        None => true,
        Some((was_issued, was_not_after)) => {
            was_issued != issued || (issued && was_not_after != not_after)
        }
    };
    sqlx::query(
        "INSERT INTO certificates (hostname, app_id, issued, not_after, error)
         VALUES ($1, $2, $3, to_timestamp($4), $5)
         ON CONFLICT (hostname) DO UPDATE SET app_id = $2, issued = $3,
             not_after = coalesce(to_timestamp($4), certificates.not_after), error = $5, updated_at = now()",
    )
    .bind(host)
    .bind(app)
    .bind(issued)
    .bind(not_after.map(|n| n as f64))
    .bind(&error)
    .execute(&mut *tx)
    .await?;
    if changed {
        let (kind, data) = match (issued, not_after) {
            (true, Some(n)) => {
                ("certificate.issued", serde_json::json!({ "hostname": host, "not_after": n }))
            }
            _ => ("certificate.failed", serde_json::json!({ "hostname": host, "error": error })),
        };
        sqlx::query("SELECT wh_event($1, $2, $3)")
            .bind(kind)
            .bind(app)
            .bind(data)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(if changed { Recorded::Event } else { Recorded::Unchanged })
}
