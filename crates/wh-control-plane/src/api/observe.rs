//! Every API request runs inside a `request` span (method, route template, a request id), so
//! whatever a handler logs — an internal error's cause above all — carries its request; and is
//! counted by route template and status ([`crate::metrics::Metrics::request`]).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::AppState;

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // The template, never the raw path: the label set stays bounded whatever clients send.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().clone();
    let mut id = [0u8; 8];
    let _ = getrandom::fill(&mut id);
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        request_id = %hex::encode(id),
    );
    let response = next.run(req).instrument(span).await;
    state.metrics.request(&route, method.as_str(), response.status().as_u16());
    response
}
