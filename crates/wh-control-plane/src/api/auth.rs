//! `POST /api/v1/auth/login`, `POST /api/v1/auth/logout`, `GET /api/v1/me`,
//! `POST /api/v1/tokens`.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::extract::{ApiJson, Caller, SESSION_COOKIE};
use super::ApiError;
use crate::{audit, auth, AppState};

#[derive(Deserialize)]
pub struct Login {
    email: String,
    password: String,
}

fn session_cookie(state: &AppState, value: &str, max_age: i64) -> String {
    let secure = if state.cookie_secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    let Some((user, token, csrf)) = auth::login(&state.pool, &body.email, &body.password).await?
    else {
        tracing::info!("failed sign-in");
        return Err(ApiError::Unauthorized("wrong email or password"));
    };
    audit::record(
        &mut *state.pool.acquire().await?,
        Some(user.id),
        "auth.login",
        &format!("user:{}", user.id),
        None,
        serde_json::json!({}),
    )
    .await?;
    let cookie = session_cookie(&state, &token, i64::from(auth::SESSION_DAYS) * 86_400);
    Ok(([(SET_COOKIE, cookie)], Json(serde_json::json!({"user": user, "csrf_token": csrf})))
        .into_response())
}

pub async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    if let Some(session) = &caller.session {
        auth::logout(&state.pool, session).await?;
    }
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, session_cookie(&state, "", 0))]).into_response())
}

pub async fn me(caller: Caller) -> Json<auth::User> {
    Json(caller.user)
}

#[derive(Deserialize)]
pub struct NewToken {
    name: String,
}

pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<Response, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::Validation {
            field: "name",
            message: "a name of 1 to 100 characters is required".into(),
        });
    }
    let token = auth::create_api_token(&state.pool, caller.user.id, name).await?;
    caller
        .audit(
            &mut *state.pool.acquire().await?,
            "token.create",
            &format!("token:{name}"),
            serde_json::json!({}),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"name": name, "token": token, "note": "shown once; store it now"})),
    )
        .into_response())
}
