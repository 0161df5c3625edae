//! Request extractors: who is calling ([`Caller`]) and JSON bodies with errors in our format
//! ([`ApiJson`]).
//!
//! A caller is a personal API token (`Authorization: Bearer wht_…`) or a session cookie
//! (`wh_session`). Cookie-authenticated requests that change something must carry the
//! session's CSRF token in `X-CSRF-Token` (compared in constant time); token-authenticated ones
//! need not, since a browser never sends our bearer token on its own.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::Method;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::auth::{self, User};
use crate::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "wh_session";

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// The session cookie value, when authenticated by session.
    pub session: Option<String>,
    pub client_ip: Option<std::net::IpAddr>,
}

impl Caller {
    /// Records `action` on `target` in the audit trail as this caller, from their address.
    pub async fn audit(
        &self,
        conn: &mut sqlx::PgConnection,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        crate::audit::record(conn, Some(self.user.id), action, target, self.client_ip, details)
            .await
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let client_ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(token) = bearer {
            let user = auth::token_user(&state.pool, token)
                .await?
                .ok_or(ApiError::Unauthorized("invalid API token"))?;
            return Ok(Caller { user, session: None, client_ip });
        }
        let session = cookie(parts, SESSION_COOKIE)
            .ok_or(ApiError::Unauthorized("sign in first"))?
            .to_owned();
        let (user, csrf) = auth::session_user(&state.pool, &session)
            .await?
            .ok_or(ApiError::Unauthorized("session expired"))?;
        if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let given =
                parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
            if !crate::constant_time_eq(given.as_bytes(), csrf.as_bytes()) {
                return Err(ApiError::Forbidden("missing or wrong X-CSRF-Token"));
            }
        }
        Ok(Caller { user, session: Some(session), client_ip })
    }
}

/// A JSON body; malformed JSON is a 400 that names the problem.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}
