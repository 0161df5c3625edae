//! Path and query parameters with errors in our format: axum's `Path` and `Query` answer a bad
//! value with `text/plain`; these answer `{"error": {"code": "bad_request", "field": "path" |
//! "query", …}}` with the same status (400).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// Path parameters (`/apps/{slug}`), deserialized like axum's `Path`.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

/// Query parameters, deserialized like axum's `Query`.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(ApiError::BadInput { field: "path", message: e.body_text() }),
        }
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(ApiError::BadInput { field: "query", message: e.body_text() }),
        }
    }
}
