//! The admin listener (loopback by default): `/metrics` (Prometheus), `/healthz`, `/routes`,
//! `/certs`.
//! Never on the public listener, so the route list does not leak to the internet.
//!
//! Answers are rendered on a blocking thread: with 10,000 routes `/metrics` is 15 MB of text
//! (about 100 ms) and `/routes` 1.7 MB, and this listener shares its runtime thread with an
//! accept loop, whose connections would stall at every Prometheus scrape.

use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::body::RespBody;
use crate::state::ProxyState;

/// Serves the admin endpoints until `stop`.
pub async fn serve(listener: TcpListener, proxy: Arc<ProxyState>, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(_) => continue,
            },
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let proxy = proxy.clone();
                let path = req.uri().path().to_owned();
                async move {
                    let answer = tokio::task::spawn_blocking(move || handle(&proxy, &path))
                        .await
                        .unwrap_or_else(|_| {
                            text(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "failed\n".into())
                        });
                    Ok::<_, std::convert::Infallible>(answer)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn handle(proxy: &ProxyState, path: &str) -> Response<RespBody> {
    let (status, ctype, body) = match path {
        "/metrics" => {
            let certs = proxy.certs.as_ref().map(|c| c.collector());
            (StatusCode::OK, crate::metrics::CONTENT_TYPE, proxy.metrics.render(certs))
        }
        "/certs" => match &proxy.certs {
            Some(certs) => (StatusCode::OK, "application/json", certs.report().to_string()),
            None => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "HTTPS is off (--https-addr off)\n".to_owned(),
            ),
        },
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/routes" => (StatusCode::OK, "application/json", routes_json(proxy)),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_owned()),
    };
    text(status, ctype, body)
}

fn text(status: StatusCode, ctype: &'static str, body: String) -> Response<RespBody> {
    let mut resp = Response::new(RespBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}

fn routes_json(proxy: &ProxyState) -> String {
    let table = proxy.table.load();
    let now = crate::util::monotonic_ms();
    let routes: Vec<_> = table
        .routes()
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": &*r.name,
                "rule": &*r.rule,
                "priority": r.priority,
                "tls": r.tls,
                "service": &*r.service.name,
                "servers": r.service.servers.iter().map(|s| serde_json::json!({
                    "url": &*s.url,
                    "available": s.health.is_available(now),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "generation": table.generation,
        "routes": routes,
        "warnings": &*table.warnings,
    })
    .to_string()
}
