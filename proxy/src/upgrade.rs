//! Upgraded connections (WebSocket and any other `Upgrade`): whether a request asks for one,
//! and the byte tunnel between client and upstream once both sides switched protocols.

use http::{header, Request, Version};
use hyper_util::rt::TokioIo;

/// An HTTP/1.1 request with `Upgrade` and `Connection: upgrade` (HTTP/2 has no upgrades).
pub(crate) fn requested<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req.headers().get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
        })
}

/// Copies bytes both ways between an upgraded client and upstream until either side closes.
/// It holds no reference to the routing table, so it outlives any number of swaps.
pub(crate) async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %e, "upgraded connection ended with an error");
    }
}
