//! The one error type of the HTTP API: `{"error": {"code", "message", "field"?}}` with the
//! right status. Internal errors become a generic 500; their cause is logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An API error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A path or query parameter that does not parse (400, naming `path` or `query`).
    #[error("bad {field}: {message}")]
    BadInput { field: &'static str, message: String },
    /// No such route.
    #[error("no such route")]
    NoRoute,
    /// The route exists, not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("conflict on {field}: {message}")]
    Conflict { field: &'static str, message: String },
    #[error("not found")]
    NotFound,
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("invalid {field}: {message}")]
    Validation { field: &'static str, message: String },
    /// A NUL byte in a text field, a path segment or a query parameter (Postgres text cannot
    /// hold one, and no name or value of ours needs one).
    #[error("invalid {field}: contains a NUL byte")]
    NulByte { field: String },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(&'static str),
    /// Over a limit (what it says); retry after this long.
    #[error("rate limited: {0}")]
    RateLimited(&'static str, std::time::Duration),
    /// Overloaded for now (503 + Retry-After).
    #[error("busy: {0}")]
    Busy(&'static str),
    /// A service called on the caller's behalf (a git provider) failed (502, saying how).
    #[error("upstream: {0}")]
    Upstream(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// 422 for a NUL byte in `field`.
    pub fn nul(field: impl Into<String>) -> ApiError {
        ApiError::NulByte { field: field.into() }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<crate::gitproviders::ForgeError> for ApiError {
    fn from(e: crate::gitproviders::ForgeError) -> Self {
        use crate::gitproviders::ForgeError;
        match e {
            ForgeError::NotConfigured(_) => {
                ApiError::Validation { field: "provider", message: e.to_string() }
            }
            ForgeError::Database(e) => ApiError::Internal(e.into()),
            ForgeError::Sealed(_) => ApiError::Internal(e.into()),
            other => ApiError::Upstream(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, field) = match &self {
            ApiError::BadRequest(why) => {
                (StatusCode::BAD_REQUEST, "bad_request", why.clone(), None)
            }
            ApiError::BadInput { field, message } => {
                (StatusCode::BAD_REQUEST, "bad_request", message.clone(), Some(*field))
            }
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "not_found", "no such route".into(), None),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take this method".into(),
                None,
            ),
            ApiError::Forbidden(why) => (StatusCode::FORBIDDEN, "forbidden", why.to_string(), None),
            ApiError::Conflict { field, message } => {
                (StatusCode::CONFLICT, "conflict", message.clone(), Some(*field))
            }
            ApiError::Unauthorized(why) => {
                (StatusCode::UNAUTHORIZED, "unauthorized", why.to_string(), None)
            }
            ApiError::NotFound => {
                (StatusCode::NOT_FOUND, "not_found", "not found".to_owned(), None)
            }
            ApiError::TooLarge(why) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_large", why.clone(), None)
            }
            ApiError::Validation { field, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid", message.clone(), Some(*field))
            }
            ApiError::NulByte { field } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "must not contain a NUL byte".to_owned(),
                Some(field.as_str()),
            ),
            ApiError::RateLimited(why, _) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited", why.to_string(), None)
            }
            ApiError::Busy(why) => (StatusCode::SERVICE_UNAVAILABLE, "busy", why.to_string(), None),
            ApiError::Upstream(why) => (StatusCode::BAD_GATEWAY, "upstream", why.clone(), None),
            ApiError::UnsupportedMediaType(want) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("expected Content-Type: {want}"),
                None,
            ),
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".to_owned(), None)
            }
        };
        let mut body = serde_json::json!({"error": {"code": code, "message": message}});
        if let Some(f) = field {
            body["error"]["field"] = f.into();
        }
        let retry = match &self {
            ApiError::RateLimited(_, after) => Some(after.as_secs().max(1)),
            ApiError::Busy(_) => Some(1),
            _ => None,
        };
        match retry {
            Some(secs) => {
                (status, [(axum::http::header::RETRY_AFTER, secs.to_string())], Json(body))
                    .into_response()
            }
            None => (status, Json(body)).into_response(),
        }
    }
}
