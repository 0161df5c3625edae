//! Webhooks (`/api/v1/webhooks`) and notification channels (`/api/v1/notifications`) over
//! HTTP: add one (a webhook's secret is in the answer, once), list, change its events or
//! re-enable it, remove it, rotate a webhook's secret, send a test through the same path as
//! every event (answered with the first attempt), and read its latest deliveries.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::{ApiJson, Caller};
use super::params::Path;
use super::ApiError;
use crate::webhooks::targets::{
    self, DeliveryView, NewTarget, TargetError, TargetKind, TargetView,
};
use crate::AppState;

impl From<TargetError> for ApiError {
    fn from(e: TargetError) -> Self {
        match e {
            TargetError::Url(m) => ApiError::Validation { field: "url", message: m },
            TargetError::Events(m) => ApiError::Validation { field: "events", message: m },
            TargetError::Limit => ApiError::Conflict { field: "url", message: e.to_string() },
            TargetError::Database(e) => ApiError::Internal(e.into()),
        }
    }
}

/// A new webhook or channel.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTargetBody {
    /// A webhook's https URL, or a channel's Shoutrrr URL (`discord://token@id`, …).
    pub url: String,
    /// Only this app's events; absent: every app of yours.
    pub app: Option<String>,
    /// The events to send (absent or empty: all of them).
    #[serde(default)]
    pub events: Vec<String>,
}

/// A created target; `secret` (webhooks only) is shown this once.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct CreatedTarget {
    pub target: TargetView,
    /// `whsec_…`: verify deliveries with it (Standard Webhooks).
    pub secret: Option<String>,
}

/// What may change of a target.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetPatch {
    pub events: Option<Vec<String>>,
    /// `true` re-enables a disabled target (its failure count starts again).
    pub enabled: Option<bool>,
}

/// A webhook's new secret; the previous one keeps signing alongside for 24 hours.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct RotatedSecret {
    pub secret: String,
    pub previous_valid_until: Option<String>,
}

fn noun(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Webhook => "webhook",
        TargetKind::Channel => "notification",
    }
}

async fn create(
    state: &AppState,
    caller: &Caller,
    kind: TargetKind,
    body: NewTargetBody,
) -> Result<(StatusCode, Json<CreatedTarget>), ApiError> {
    let app_id = match &body.app {
        Some(slug) => Some(caller.app_id(&state.pool, slug).await?),
        None => None,
    };
    let mut tx = state.pool.begin().await?;
    let created = targets::create(
        &mut tx,
        state.dispatcher.keys(),
        state.dispatcher.guard(),
        caller.user.id,
        NewTarget { kind, url: body.url, app_id, events: body.events },
    )
    .await?;
    // The audit entry names the target, never its URL (it carries tokens).
    caller
        .audit(
            &mut tx,
            &format!("{}.create", noun(kind)),
            &format!("notify_target:{}", created.id),
            serde_json::json!({ "app": body.app }),
        )
        .await?;
    tx.commit().await?;
    let target = targets::get(&state.pool, caller.user.id, kind, created.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((StatusCode::CREATED, Json(CreatedTarget { target, secret: created.secret })))
}

async fn update(
    state: &AppState,
    caller: &Caller,
    kind: TargetKind,
    id: i64,
    body: TargetPatch,
) -> Result<Json<TargetView>, ApiError> {
    let mut tx = state.pool.begin().await?;
    if !targets::update(&mut tx, caller.user.id, kind, id, body.events.clone(), body.enabled)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    caller
        .audit(
            &mut tx,
            &format!("{}.update", noun(kind)),
            &format!("notify_target:{id}"),
            serde_json::json!({ "events": body.events, "enabled": body.enabled }),
        )
        .await?;
    tx.commit().await?;
    targets::get(&state.pool, caller.user.id, kind, id).await?.ok_or(ApiError::NotFound).map(Json)
}

async fn remove(
    state: &AppState,
    caller: &Caller,
    kind: TargetKind,
    id: i64,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    if !targets::remove(&mut tx, caller.user.id, kind, id).await? {
        return Err(ApiError::NotFound);
    }
    caller
        .audit(
            &mut tx,
            &format!("{}.delete", noun(kind)),
            &format!("notify_target:{id}"),
            serde_json::json!({}),
        )
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test and waits (20 s at most) for its first attempt.
async fn test(
    state: &AppState,
    caller: &Caller,
    kind: TargetKind,
    id: i64,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let target =
        targets::get(&state.pool, caller.user.id, kind, id).await?.ok_or(ApiError::NotFound)?;
    if !target.enabled {
        return Err(ApiError::Conflict {
            field: "enabled",
            message: "the target is disabled: enable it first".into(),
        });
    }
    let delivery = state.dispatcher.send_test(id).await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let found = targets::deliveries(&state.pool, id).await?;
        let this = found.into_iter().find(|d| d.id == delivery);
        match this {
            Some(d) if !d.tries.is_empty() => return Ok((StatusCode::OK, Json(d))),
            Some(d) if tokio::time::Instant::now() >= deadline => {
                return Ok((StatusCode::ACCEPTED, Json(d)))
            }
            None => return Err(ApiError::NotFound),
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

async fn deliveries(
    state: &AppState,
    caller: &Caller,
    kind: TargetKind,
    id: i64,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    targets::get(&state.pool, caller.user.id, kind, id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(targets::deliveries(&state.pool, id).await?))
}

macro_rules! handlers {
    ($kind:expr, $list:ident, $add:ident, $get:ident, $patch:ident, $delete:ident, $test:ident, $deliveries:ident) => {
        /// The caller's targets of this kind.
        pub async fn $list(
            State(state): State<AppState>,
            caller: Caller,
        ) -> Result<Json<Vec<TargetView>>, ApiError> {
            Ok(Json(targets::list(&state.pool, caller.user.id, $kind).await?))
        }
        pub async fn $add(
            State(state): State<AppState>,
            caller: Caller,
            ApiJson(body): ApiJson<NewTargetBody>,
        ) -> Result<(StatusCode, Json<CreatedTarget>), ApiError> {
            create(&state, &caller, $kind, body).await
        }
        pub async fn $get(
            State(state): State<AppState>,
            caller: Caller,
            Path(id): Path<i64>,
        ) -> Result<Json<TargetView>, ApiError> {
            targets::get(&state.pool, caller.user.id, $kind, id)
                .await?
                .ok_or(ApiError::NotFound)
                .map(Json)
        }
        pub async fn $patch(
            State(state): State<AppState>,
            caller: Caller,
            Path(id): Path<i64>,
            ApiJson(body): ApiJson<TargetPatch>,
        ) -> Result<Json<TargetView>, ApiError> {
            update(&state, &caller, $kind, id, body).await
        }
        pub async fn $delete(
            State(state): State<AppState>,
            caller: Caller,
            Path(id): Path<i64>,
        ) -> Result<StatusCode, ApiError> {
            remove(&state, &caller, $kind, id).await
        }
        pub async fn $test(
            State(state): State<AppState>,
            caller: Caller,
            Path(id): Path<i64>,
        ) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
            test(&state, &caller, $kind, id).await
        }
        pub async fn $deliveries(
            State(state): State<AppState>,
            caller: Caller,
            Path(id): Path<i64>,
        ) -> Result<Json<Vec<DeliveryView>>, ApiError> {
            deliveries(&state, &caller, $kind, id).await
        }
    };
}

handlers!(
    TargetKind::Webhook,
    list_webhooks,
    add_webhook,
    get_webhook,
    patch_webhook,
    delete_webhook,
    test_webhook,
    webhook_deliveries
);
handlers!(
    TargetKind::Channel,
    list_channels,
    add_channel,
    get_channel,
    patch_channel,
    delete_channel,
    test_channel,
    channel_deliveries
);

/// `POST /api/v1/webhooks/{id}/rotate`.
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<RotatedSecret>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let secret = targets::rotate(&mut tx, state.dispatcher.keys(), caller.user.id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    caller
        .audit(&mut tx, "webhook.rotate", &format!("notify_target:{id}"), serde_json::json!({}))
        .await?;
    tx.commit().await?;
    let view = targets::get(&state.pool, caller.user.id, TargetKind::Webhook, id).await?;
    Ok(Json(RotatedSecret {
        secret,
        previous_valid_until: view.and_then(|v| v.previous_secret_until),
    }))
}
