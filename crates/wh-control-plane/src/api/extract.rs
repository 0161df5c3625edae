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

/// The authenticated caller. Its `Debug` shows neither the session nor its CSRF token.
#[derive(Clone)]
pub struct Caller {
    pub user: User,
    /// The session cookie value, when authenticated by session.
    pub session: Option<String>,
    /// The session's CSRF token, when authenticated by session.
    pub csrf_token: Option<String>,
    pub client_ip: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("user", &self.user)
            .field("session", &self.session.is_some())
            .field("client_ip", &self.client_ip)
            .finish()
    }
}

impl Caller {
    /// The id of the caller's app `slug`; another user's app is `NotFound`, as if it did not
    /// exist.
    pub async fn app_id(&self, pool: &sqlx::PgPool, slug: &str) -> Result<i64, ApiError> {
        sqlx::query_scalar("SELECT id FROM apps WHERE slug = $1 AND owner_id = $2")
            .bind(slug)
            .bind(self.user.id)
            .fetch_optional(pool)
            .await?
            .ok_or(ApiError::NotFound)
    }

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

/// The client's address, when the server recorded it (never fails).
pub struct ClientIp(pub Option<std::net::IpAddr>);

/// The client address the server put in a request's extensions, if any.
pub fn client_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientIp, Self::Rejection> {
        Ok(ClientIp(client_ip(&parts.extensions)))
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
        let client_ip = client_ip(&parts.extensions);
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
            return Ok(Caller { user, session: None, csrf_token: None, client_ip });
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
        Ok(Caller { user, session: Some(session), csrf_token: Some(csrf), client_ip })
    }
}

/// The largest JSON body the API reads.
pub const MAX_JSON: usize = 1 << 20;

/// A JSON body: `Content-Type: application/json` (else 415), at most [`MAX_JSON`] bytes (else
/// 413), well-formed (else a 400 that names the problem), with no NUL byte in any string (else
/// a 422 naming the field).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &AppState) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| {
                let t = t.trim().to_ascii_lowercase();
                t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::UnsupportedMediaType("application/json"));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON).await.map_err(body_error)?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
        if let Some(field) = nul_field(&value, None) {
            return Err(ApiError::nul(field));
        }
        serde_json::from_value(value).map(ApiJson).map_err(|e| {
            ApiError::BadRequest(format!(
                "Failed to deserialize the JSON body into the target type: {e}"
            ))
        })
    }
}

/// 413 for a body over the limit; 400 for one that could not be read (it stopped moving, the
/// client went away).
pub fn body_error(e: axum::Error) -> ApiError {
    let over = std::iter::successors(std::error::Error::source(&e), |s| s.source())
        .any(|s| s.is::<http_body_util::LengthLimitError>());
    if over {
        ApiError::TooLarge(format!("the JSON body is over {MAX_JSON} bytes"))
    } else {
        ApiError::BadRequest(format!("the request body could not be read: {e}"))
    }
}

/// The name of the first member whose string (or key) holds a NUL byte, at any depth; the
/// top-level member names it (`body` for a bare string).
fn nul_field(v: &serde_json::Value, member: Option<&str>) -> Option<String> {
    use serde_json::Value;
    let name = || member.unwrap_or("body").to_owned();
    match v {
        Value::String(s) if s.contains('\0') => Some(name()),
        Value::Array(items) => items.iter().find_map(|i| nul_field(i, member)),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(name());
            }
            nul_field(v, Some(member.unwrap_or(k)))
        }),
        _ => None,
    }
}

/// Refuses a request whose path or query holds an encoded NUL byte (`%00`): 422 naming the
/// query parameter, or `path` (before any handler or database sees it).
pub async fn refuse_nul(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let has_nul = |s: &str| s.as_bytes().windows(3).any(|w| w == b"%00");
    if has_nul(req.uri().path()) {
        return ApiError::nul("path").into_response();
    }
    if let Some(q) = req.uri().query().filter(|q| has_nul(q)) {
        let field = q
            .split('&')
            .find(|kv| has_nul(kv))
            .map(|kv| kv.split('=').next().unwrap_or_default())
            .filter(|k| !k.is_empty() && !has_nul(k))
            .unwrap_or("query");
        return ApiError::nul(field).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_member_holding_a_nul_is_named() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"email": "a@b", "password": "x\u0000y"}"#).unwrap();
        assert_eq!(nul_field(&v, None).as_deref(), Some("password"));
        let nested: serde_json::Value =
            serde_json::from_str(r#"{"tags": [{"name": "\u0000"}]}"#).unwrap();
        assert_eq!(nul_field(&nested, None).as_deref(), Some("tags"));
        let bare: serde_json::Value = serde_json::from_str(r#""\u0000""#).unwrap();
        assert_eq!(nul_field(&bare, None).as_deref(), Some("body"));
        let clean: serde_json::Value = serde_json::from_str(r#"{"a": ["b", 1, null]}"#).unwrap();
        assert_eq!(nul_field(&clean, None), None);
    }
}
