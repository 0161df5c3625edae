//! Custom domains under `/api/v1/apps/{slug}/domains`: add (normalised, validated; answers the
//! DNS records to create), list, verify now, remove. Every change is an audit event.
//!
//! A hostname belongs to whoever proves it: several apps may hold a pending claim on it, each
//! with its own TXT token, and the first to verify takes it (the other claims are dropped). Once
//! verified it is refused to everyone else as "taken", never saying by whom. Pending claims fail
//! after 72 hours.

use axum::extract::State;

use super::params::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{ApiJson, Caller};
use super::ApiError;
use crate::domains;
use crate::AppState;

#[derive(Deserialize, schemars::JsonSchema)]
pub struct NewDomain {
    hostname: String,
}

/// A DNS record the user creates at their provider.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Record {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub value: String,
    /// When to use this record rather than the ones before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

/// The note on A/AAAA records: they replace the CNAME where a name cannot have one.
const INSTEAD_OF_CNAME: &str =
    "instead of the CNAME, where the name cannot have one (an apex such as example.com)";

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Domain {
    pub hostname: String,
    pub status: String,
    /// Verified, but its TXT record was missing at the last daily check (still served).
    pub record_missing: bool,
    pub last_outcome: Option<String>,
    pub reason: Option<String>,
    pub last_checked_at: Option<String>,
    pub token: String,
    pub records: Vec<Record>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    hostname: String,
    status: String,
    record_missing: bool,
    last_outcome: Option<String>,
    reason: Option<String>,
    last_checked_at: Option<String>,
    token: String,
}

const COLUMNS: &str = "d.id, d.hostname, d.status::text AS status, d.record_missing, d.last_outcome, d.reason,
    to_char(d.last_checked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS last_checked_at, d.token";

fn view(state: &AppState, slug: &str, r: Row) -> Domain {
    Domain {
        records: [
            Record {
                kind: "TXT",
                name: domains::txt_name(&r.hostname),
                value: r.token.clone(),
                note: None,
            },
            Record {
                kind: "CNAME",
                name: r.hostname.clone(),
                value: format!("{slug}.{}", state.routing.route_domain),
                note: None,
            },
        ]
        .into_iter()
        .chain(state.routing.proxy_addresses.iter().map(|ip| Record {
            kind: if ip.is_ipv4() { "A" } else { "AAAA" },
            name: r.hostname.clone(),
            value: ip.to_string(),
            note: Some(INSTEAD_OF_CNAME),
        }))
        .collect(),
        hostname: r.hostname,
        status: r.status,
        record_missing: r.record_missing,
        last_outcome: r.last_outcome,
        reason: r.reason,
        last_checked_at: r.last_checked_at,
        token: r.token,
    }
}

fn normalized(state: &AppState, hostname: &str) -> Result<String, ApiError> {
    domains::normalize(hostname, &state.routing.route_domain)
        .map_err(|e| ApiError::Validation { field: "hostname", message: e.0 })
}

async fn one(state: &AppState, app: i64, hostname: &str) -> Result<Row, ApiError> {
    sqlx::query_as::<_, Row>(&format!(
        "SELECT {COLUMNS} FROM domains d WHERE d.app_id = $1 AND d.hostname = $2"
    ))
    .bind(app)
    .bind(hostname)
    .fetch_optional(&state.pool)
    .await?
    .ok_or(ApiError::NotFound)
}

pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<NewDomain>,
) -> Result<Response, ApiError> {
    let app = caller.app_id(&state.pool, &slug).await?;
    let hostname = normalized(&state, &body.hostname)?;
    let mut tx = state.pool.begin().await?;
    let verified_elsewhere: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM domains WHERE hostname = $1 AND status = 'verified' AND app_id <> $2)",
    )
    .bind(&hostname)
    .bind(app)
    .fetch_one(&mut *tx)
    .await?;
    if verified_elsewhere {
        return Err(ApiError::Conflict {
            field: "hostname",
            message: format!("{hostname} is taken"),
        });
    }
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO domains (app_id, hostname, token) VALUES ($1, $2, $3)
         ON CONFLICT (app_id, hostname) DO NOTHING RETURNING id",
    )
    .bind(app)
    .bind(&hostname)
    .bind(domains::new_token())
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        return Err(ApiError::Conflict {
            field: "hostname",
            message: format!("{hostname} is already on this app"),
        });
    }
    caller
        .audit(
            &mut tx,
            "domain.add",
            &format!("app:{slug}"),
            serde_json::json!({"hostname": hostname}),
        )
        .await?;
    tx.commit().await?;
    let row = one(&state, app, &hostname).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &slug, row))).into_response())
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Vec<Domain>>, ApiError> {
    let app = caller.app_id(&state.pool, &slug).await?;
    let rows = sqlx::query_as::<_, Row>(&format!(
        "SELECT {COLUMNS} FROM domains d WHERE d.app_id = $1 ORDER BY d.hostname"
    ))
    .bind(app)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows.into_iter().map(|r| view(&state, &slug, r)).collect()))
}

pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, hostname)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = caller.app_id(&state.pool, &slug).await?;
    let hostname = normalized(&state, &hostname)?;
    let mut tx = state.pool.begin().await?;
    let gone = sqlx::query("DELETE FROM domains WHERE app_id = $1 AND hostname = $2")
        .bind(app)
        .bind(&hostname)
        .execute(&mut *tx)
        .await?;
    if gone.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    caller
        .audit(
            &mut tx,
            "domain.remove",
            &format!("app:{slug}"),
            serde_json::json!({"hostname": hostname}),
        )
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a verification found.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Verification {
    pub hostname: String,
    pub status: String,
    pub outcome: &'static str,
    pub reason: String,
}

pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, hostname)): Path<(String, String)>,
) -> Result<Json<Verification>, ApiError> {
    let app = caller.app_id(&state.pool, &slug).await?;
    let hostname = normalized(&state, &hostname)?;
    let row = one(&state, app, &hostname).await?;
    let outcome = state.dns.check(&hostname, &row.token).await;
    let status = domains::record(&state.pool, row.id, &outcome, &hostname).await?;
    caller
        .audit(
            &mut *state.pool.acquire().await?,
            "domain.verify",
            &format!("app:{slug}"),
            serde_json::json!({"hostname": hostname, "outcome": outcome.code()}),
        )
        .await?;
    Ok(Json(Verification {
        reason: outcome.reason(&hostname),
        outcome: outcome.code(),
        hostname,
        status,
    }))
}
