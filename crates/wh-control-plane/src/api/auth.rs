//! `POST /api/v1/auth/login`, `POST /api/v1/auth/logout`, `GET /api/v1/me`,
//! `POST /api/v1/tokens`.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::extract::{ApiJson, Caller, ClientIp, SESSION_COOKIE};
use super::ApiError;
use crate::{audit, auth, AppState};

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Login {
    email: String,
    password: String,
}

/// The answer to a sign-in (the session itself travels in the `wh_session` cookie).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct SignedIn {
    pub user: auth::User,
    /// Sent back as `X-CSRF-Token` on every request that changes something.
    pub csrf_token: String,
}

/// A token just created: the only time its secret is shown.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub name: String,
    /// The bearer token; shown once.
    pub token: String,
    pub expires_in_days: Option<i32>,
    pub note: &'static str,
}

fn session_cookie(state: &AppState, value: &str, max_age: i64) -> String {
    let secure = if state.cookie_secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// `POST /api/v1/auth/login`. Besides the per-IP limit, failed sign-ins are counted per
/// account: past 10 in 15 minutes the account answers 429 (the right password too) until the
/// window ends. Every failure is audited with the address and the account named.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    let account: String = body.email.trim().to_lowercase().chars().take(254).collect();
    let now = std::time::Instant::now();
    if let Err(retry) = state.limits.login_failures.peek(&account, now) {
        let why = "too many failed sign-ins for this account; try again later";
        return Err(ApiError::RateLimited(why, retry));
    }
    let signed_in = match auth::login(&state.pool, &body.email, &body.password).await {
        Ok(s) => s,
        Err(auth::CheckError::Busy) => return Err(ApiError::Busy("too many sign-ins at once")),
        Err(auth::CheckError::Db(e)) => return Err(e.into()),
    };
    let Some((user, token, csrf)) = signed_in else {
        tracing::info!("failed sign-in");
        let _ = state.limits.login_failures.check(account.clone(), now);
        audit::record(
            &mut *state.pool.acquire().await?,
            None,
            "auth.login_failed",
            &format!("account:{account}"),
            ip,
            serde_json::json!({"email": account}),
        )
        .await?;
        return Err(ApiError::Unauthorized("wrong email or password"));
    };
    audit::record(
        &mut *state.pool.acquire().await?,
        Some(user.id),
        "auth.login",
        &format!("user:{}", user.id),
        ip,
        serde_json::json!({}),
    )
    .await?;
    let cookie = session_cookie(&state, &token, i64::from(auth::SESSION_DAYS) * 86_400);
    Ok(([(SET_COOKIE, cookie)], Json(SignedIn { user, csrf_token: csrf })).into_response())
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

/// `GET /api/v1/auth/session`: the signed-in user and the session's CSRF token, so that a
/// page loaded again (the dashboard) can go on without signing in. Only for sessions: a
/// bearer token has no CSRF token.
pub async fn session(caller: Caller) -> Result<Json<SignedIn>, ApiError> {
    let csrf_token = caller.csrf_token.ok_or(ApiError::Unauthorized("no session: sign in"))?;
    Ok(Json(SignedIn { user: caller.user, csrf_token }))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct NewToken {
    name: String,
    /// Days until the token expires (1 to 3650); never without.
    #[serde(default)]
    expires_in_days: Option<i32>,
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
    if body.expires_in_days.is_some_and(|d| !(1..=3650).contains(&d)) {
        return Err(ApiError::Validation {
            field: "expires_in_days",
            message: "must be 1 to 3650 days".into(),
        });
    }
    let (id, token) =
        auth::create_expiring_token(&state.pool, caller.user.id, name, body.expires_in_days)
            .await?;
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
        Json(CreatedToken {
            id,
            name: name.to_owned(),
            token,
            expires_in_days: body.expires_in_days,
            note: "shown once; store it now",
        }),
    )
        .into_response())
}

/// `GET /api/v1/tokens`: the caller's tokens (names, dates; never a secret).
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<auth::TokenInfo>>, ApiError> {
    Ok(Json(auth::list_tokens(&state.pool, caller.user.id).await?))
}

/// `DELETE /api/v1/tokens/{id}`: revokes one of the caller's tokens at once.
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    super::params::Path(id): super::params::Path<i64>,
) -> Result<StatusCode, ApiError> {
    if !auth::revoke_token(&state.pool, caller.user.id, id).await? {
        return Err(ApiError::NotFound);
    }
    caller
        .audit(
            &mut *state.pool.acquire().await?,
            "token.revoke",
            &format!("token:{id}"),
            serde_json::json!({}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
