//! Telling the control plane how certificate orders went (`POST /v1/traefik/certificates` next
//! to the config URL, with the config token), so that its users hear of `certificate.issued`
//! and `certificate.failed`: the reports [`crate::tls::reports`] queued, each tried a few times
//! with backoff, every attempt within the provider's timeout.

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wh_wsproto::proxy::{CertificateReport, CERTIFICATES_PATH};

use super::http::HttpProvider;

const ATTEMPTS: u32 = 4;

/// The reports URL: the config URL's scheme and authority, [`CERTIFICATES_PATH`].
fn url(provider: &HttpProvider) -> Uri {
    let mut parts = provider.url.clone().into_parts();
    parts.path_and_query = Some(CERTIFICATES_PATH.parse().expect("a valid path"));
    Uri::from_parts(parts).unwrap_or_else(|_| provider.url.clone())
}

/// Sends queued reports until `stop`.
pub async fn run(
    mut rx: mpsc::Receiver<CertificateReport>,
    provider: HttpProvider,
    stop: CancellationToken,
) {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(provider.timeout));
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let uri = url(&provider);
    loop {
        let report = tokio::select! {
            _ = stop.cancelled() => return,
            r = rx.recv() => match r { Some(r) => r, None => return },
        };
        let body = Bytes::from(serde_json::to_vec(&report).expect("a report serialises"));
        for attempt in 0..ATTEMPTS {
            let mut req = Request::post(uri.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))
                .expect("a valid request");
            if let Some(auth) = &provider.authorization {
                req.headers_mut().insert(AUTHORIZATION, auth.clone());
            }
            let sent = tokio::time::timeout(provider.timeout, client.request(req)).await;
            match sent {
                Ok(Ok(resp)) if resp.status().is_success() => break,
                Ok(Ok(resp)) if resp.status().is_client_error() => {
                    tracing::warn!(status = %resp.status(), host = %report.host, "the control plane refused a certificate report");
                    break;
                }
                other => {
                    let why = match other {
                        Ok(Ok(resp)) => resp.status().to_string(),
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "timed out".into(),
                    };
                    tracing::warn!(error = %why, attempt, host = %report.host, "certificate report not delivered");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1 << attempt)) => {}
                    }
                }
            }
        }
    }
}
