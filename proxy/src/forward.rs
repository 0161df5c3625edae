//! The request path: route lookup, middlewares, server choice, header rewrite, forwarding,
//! upgrades, error mapping and the access log.
//!
//! This is the hottest code in WiseHosting. It takes no lock, looks the route up without
//! allocating, streams bodies both ways without buffering, and does everything that can be done
//! once per configuration in [`crate::table::compile`] instead.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use crate::body::RespBody;
use crate::error::{respond, ProxyError};
use crate::headers::{self, Peer};
use crate::middleware;
use crate::state::ProxyState;
use crate::table::Route;
use crate::tls::challenges;
use crate::upgrade;
use crate::upstream::ClientSettings;
use crate::upstream::{ConnectError, Lease, Pool, PooledBody, ReqBody};

/// Per accept loop: the listener's facts and its own upstream connection pool. Each accept loop
/// runs on its own single-threaded runtime (thread per core, as nginx's workers), so a pooled
/// upstream connection is only ever driven by the thread that uses it.
pub struct ListenerContext {
    pub proto: HeaderValue,
    pub port: HeaderValue,
    pub https: bool,
    pool: Arc<Pool>,
}

impl ListenerContext {
    pub fn new(addr: SocketAddr, https: bool, client: &ClientSettings) -> ListenerContext {
        ListenerContext {
            proto: HeaderValue::from_static(if https { "https" } else { "http" }),
            port: HeaderValue::from(addr.port()),
            https,
            pool: Pool::new(client.clone()),
        }
    }
}

impl ProxyState {
    /// Serves one request from `peer` arriving on `listener`; `slot` is its place among its
    /// connection's request bodies in progress (HTTP/2), held until its body is sent.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        peer: &Peer,
        listener: &ListenerContext,
        slot: Option<wh_http::conn::BodySlot>,
    ) -> Response<RespBody> {
        let started = Instant::now();
        let table = self.table.load_full();
        let method = req.method().clone();
        let log_path = if self.access_log { Some(req.uri().path().to_owned()) } else { None };
        let mut host_buf = [0u8; 256];
        let target = self.target(&mut req, &mut host_buf);
        if !listener.https {
            if let Some(token) = req.uri().path().strip_prefix(challenges::PREFIX) {
                // Never forwarded to an app, whatever the routing table says.
                return self.challenge(token);
            }
        }
        let routing = crate::target::routing_path(req.uri().path());
        let route = match &target {
            Ok((host, _)) => table.lookup_request(&crate::table::matcher::Request {
                host,
                path: &routing,
                method: req.method().as_str(),
                query: req.uri().query().unwrap_or(""),
                headers: Some(req.headers()),
                client_ip: Some(peer.ip),
                tls: listener.https,
                redirect_to_tls: !listener.https && self.https_port.is_some(),
                only_listener: self.https_port.is_none(),
            }),
            Err(_) => None,
        };
        let host = target.as_ref().ok().map(|(h, _)| *h);

        let (resp, upstream) = match (target, route) {
            (Err(e), _) => (respond(&e), None),
            (Ok(_), None) => {
                self.metrics.unrouted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (respond(&ProxyError::NoRoute), None)
            }
            (Ok((_, host)), Some(route))
                if route.tls && !listener.https && self.https_port.is_some() =>
            {
                let port = self.https_port.filter(|p| *p != 443).map(|p| p.to_string());
                let resp =
                    middleware::redirect(&req, host.as_ref(), "https", port.as_deref(), true, true)
                        .unwrap_or_else(|e| respond(&e));
                route.metrics.record(resp.status().as_u16(), started.elapsed());
                (resp, None)
            }
            (Ok((_, forward_host)), Some(route)) => {
                let (resp, upstream) =
                    match self.forward(req, forward_host, route, peer, listener, slot).await {
                        Ok(ok) => ok,
                        Err(e) => {
                            if e.is_upstream() {
                                route
                                    .metrics
                                    .upstream_errors
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            tracing::debug!(router = %route.name, error = %e, "request failed");
                            (respond(&e), None)
                        }
                    };
                route.metrics.record(resp.status().as_u16(), started.elapsed());
                (resp, upstream)
            }
        };
        if let Some(path) = log_path {
            access_log(&method, host.unwrap_or("-"), &path, peer, &resp, started, route, upstream);
        }
        resp
    }

    /// The request-target rules ([`crate::target`]): the host to route on (into `buf`) and the
    /// `Host` to forward, with the request's path cleaned in place.
    fn target<'b>(
        &self,
        req: &mut Request<Incoming>,
        buf: &'b mut [u8; 256],
    ) -> Result<(&'b str, Option<HeaderValue>), ProxyError> {
        if req.method() == Method::CONNECT {
            return Err(ProxyError::MethodNotAllowed);
        }
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let (host_header, second) = (hosts.next(), hosts.next());
        if second.is_some() {
            return Err(ProxyError::BadRequest("more than one Host header"));
        }
        // An absolute-form target's authority (and HTTP/2's `:authority`) wins over `Host`
        // (RFC 9112 §3.2.2, RFC 9113 §8.3.1), unless its host is empty (`http://@/`), as in
        // Traefik.
        let from_uri = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .filter(|a| !a.rsplit_once('@').map_or(*a, |(_, h)| h).is_empty())
            .map(str::as_bytes);
        let (name, forward_host) = match from_uri.or(host_header.map(HeaderValue::as_bytes)) {
            // HTTP/1.0 needs no Host: such a request is routed by the rules without a host
            // condition (and reaches the server under the server's own name).
            None if req.version() <= Version::HTTP_10 => ("", None),
            None => return Err(ProxyError::BadRequest("missing Host header")),
            Some(raw) => {
                let auth = crate::target::authority(raw, buf)
                    .ok_or(ProxyError::BadRequest("invalid Host header: not host[:port]"))?;
                let forward_host = if auth.canonical && from_uri.is_none() {
                    host_header.cloned()
                } else {
                    let value = match auth.port {
                        Some(p) if auth.name.contains(':') => format!("[{}]:{p}", auth.name),
                        Some(p) => format!("{}:{p}", auth.name),
                        None if auth.name.contains(':') => format!("[{}]", auth.name),
                        None => auth.name.to_owned(),
                    };
                    HeaderValue::from_str(&value).ok()
                };
                (auth.name, forward_host)
            }
        };
        let path = req.uri().path();
        if path == "*" {
            if req.method() != Method::OPTIONS {
                return Err(ProxyError::BadRequest("`*` is a target for OPTIONS only"));
            }
        } else {
            let cleaned = crate::target::clean_path(path, &self.encoded)
                .map_err(|e| ProxyError::BadRequest(path_error_text(e)))?;
            if let std::borrow::Cow::Owned(clean) = cleaned {
                let pq = match req.uri().query() {
                    Some(q) => format!("{clean}?{q}"),
                    None => clean,
                };
                let pq = PathAndQuery::try_from(pq)
                    .map_err(|_| ProxyError::BadRequest("invalid path"))?;
                *req.uri_mut() = Uri::from(pq);
            }
        }
        Ok((name, forward_host))
    }

    fn challenge(&self, token: &str) -> Response<RespBody> {
        match self.challenges.get(token) {
            Some(key_authorization) => {
                let mut resp = Response::new(RespBody::full(key_authorization.as_bytes().to_vec()));
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                resp
            }
            None => respond(&ProxyError::NoRoute),
        }
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        original_host: Option<HeaderValue>,
        route: &Route,
        peer: &Peer,
        listener: &ListenerContext,
        slot: Option<wh_http::conn::BodySlot>,
    ) -> Result<(Response<RespBody>, Option<usize>), ProxyError> {
        if req.headers().contains_key(header::TRANSFER_ENCODING)
            && req.headers().contains_key(header::CONTENT_LENGTH)
        {
            return Err(ProxyError::BadRequest("both Content-Length and Transfer-Encoding"));
        }
        let upgrade = upgrade::requested(&req);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        // Decided before the hop-by-hop headers (Transfer-Encoding among them) are stripped.
        // A request without a body can be retried on another server if the connection fails.
        let bodyless = body_is_empty(&parts, &body);
        // Hop-by-hop headers go first, and the proxy's own headers are set next: a client's
        // `Connection: close, X-Forwarded-For` (or a header a middleware sets) must not remove
        // what is added after it (Traefik's CVE-2021-32813).
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        headers::set_forwarded(
            &mut parts.headers,
            peer,
            &listener.proto,
            original_host.as_ref(),
            &listener.port,
        );
        if parts.version == Version::HTTP_2 {
            headers::join_cookies(&mut parts.headers);
        }
        let mut req = Request::from_parts(parts, ());
        // The Origin of a CORS request and the codings the client accepts, for the response
        // side's middlewares (kept only when the route has some).
        let keep = |name| {
            (!route.middlewares.is_empty()).then(|| req.headers().get(name).cloned()).flatten()
        };
        let (origin, accept_encoding) = (keep(header::ORIGIN), keep(header::ACCEPT_ENCODING));
        let method = req.method().clone();
        if let Some(resp) = middleware::on_request(
            &route.middlewares,
            &mut req,
            original_host.as_ref(),
            listener.https,
            peer,
        )? {
            return Ok((resp, None));
        }
        let (mut parts, ()) = req.into_parts();
        let service = &route.service;
        let path =
            parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        // A bodyless request with an idempotent method may go out again when a pooled
        // connection turns out to be closed by the server (RFC 9110 §9.2.2).
        let replayable = bodyless && parts.method.is_idempotent();
        let retry_parts = (bodyless && service.servers.len() > 1)
            .then(|| (parts.method.clone(), parts.headers.clone()));
        let mut body = Some(if bodyless {
            ReqBody::Empty
        } else {
            ReqBody::incoming(body, self.body_idle, slot)
        });
        parts.version = Version::HTTP_11;

        // Origin-form: the connection already says which server.
        let uri = Uri::from(path);
        let mut tried = None;
        loop {
            let idx = service.pick(tried).ok_or(ProxyError::NoHealthyServer)?;
            let server = &service.servers[idx];
            let mut up = Request::new(body.take().unwrap_or(ReqBody::Empty));
            *up.method_mut() = parts.method.clone();
            *up.uri_mut() = uri.clone();
            *up.headers_mut() = match &retry_parts {
                Some((_, h)) => h.clone(),
                None => std::mem::take(&mut parts.headers),
            };
            let host = if service.pass_host_header { original_host.clone() } else { None };
            up.headers_mut()
                .insert(header::HOST, host.unwrap_or_else(|| server.host_header.clone()));

            let result = tokio::time::timeout(
                service.response_header_timeout,
                send(&listener.pool, &server.target, up, replayable),
            )
            .await;
            match result {
                Err(_) => return Err(ProxyError::UpstreamTimeout),
                Ok(Ok((mut resp, lease))) => {
                    server.health.record_success();
                    // hyper's read buffer bounds a head only to about twice its size.
                    let head: usize =
                        resp.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
                    if head > listener.pool.max_response_header_bytes() {
                        return Err(ProxyError::UpstreamUnreachable(format!(
                            "response header block of {head} bytes"
                        )));
                    }
                    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                        if let Some(client_upgrade) = client_upgrade {
                            let upstream_upgrade = hyper::upgrade::on(&mut resp);
                            self.tracker.spawn(upgrade::tunnel(client_upgrade, upstream_upgrade));
                        }
                        drop(lease); // the connection is the tunnel's now
                        let (parts, _) = resp.into_parts();
                        return Ok((Response::from_parts(parts, RespBody::empty()), Some(idx)));
                    }
                    let (mut rparts, rbody) = resp.into_parts();
                    // The upstream's HTTP version is its own business; the client keeps its own
                    // (an HTTP/1.0 backend must not turn a keep-alive client connection into 1.0).
                    rparts.version = Version::HTTP_11;
                    // The body was framed by Transfer-Encoding: a Content-Length beside it is
                    // stale (RFC 9112 §6.3) and would cut the body short at the client.
                    if rparts.headers.contains_key(header::TRANSFER_ENCODING) {
                        rparts.headers.remove(header::CONTENT_LENGTH);
                    }
                    headers::strip_hop_by_hop(&mut rparts.headers, false);
                    middleware::on_response(
                        &route.middlewares,
                        &mut rparts.headers,
                        listener.https,
                        origin.as_ref(),
                    );
                    let body = PooledBody::new(rbody, Some(lease));
                    let coding = middleware::compression(
                        &route.middlewares,
                        accept_encoding.as_ref(),
                        &method,
                        rparts.status,
                        &rparts.headers,
                    );
                    let body = match coding.map(|c| (c, crate::body::encoder::Encoder::new(c))) {
                        Some((coding, Ok(encoder))) => {
                            rparts.headers.insert(header::CONTENT_ENCODING, coding.token());
                            rparts.headers.remove(header::CONTENT_LENGTH);
                            rparts.headers.remove(header::ACCEPT_RANGES);
                            rparts
                                .headers
                                .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
                            RespBody::compressed(body, encoder)
                        }
                        _ => RespBody::upstream(body),
                    };
                    return Ok((Response::from_parts(rparts, body), Some(idx)));
                }
                Ok(Err(SendError::Connect(e))) => {
                    server.health.record_failure();
                    if retry_parts.is_some() && tried.is_none() {
                        tried = Some(idx);
                        continue;
                    }
                    return Err(match e {
                        ConnectError::Timeout => ProxyError::UpstreamTimeout,
                        e => ProxyError::UpstreamUnreachable(error_text(&e)),
                    });
                }
                Ok(Err(SendError::Request(e))) => {
                    match client_body_failed(&e) {
                        Some(wh_http::body::BodyError::Idle(_)) => {
                            return Err(ProxyError::ClientTimeout)
                        }
                        Some(_) => return Err(ProxyError::BadRequest("malformed request body")),
                        None => {}
                    }
                    if error_chain_has(&e, std::io::ErrorKind::TimedOut) {
                        return Err(ProxyError::UpstreamTimeout);
                    }
                    return Err(ProxyError::UpstreamUnreachable(error_text(&e)));
                }
            }
        }
    }
}

/// See [`send`]: the shortest pool idle time after which a request is copied for a replay.
const REPLAY_AFTER_IDLE: std::time::Duration = std::time::Duration::from_millis(1);

/// Why a request got no response.
enum SendError {
    /// No connection: the server is down or unreachable (counts against its health).
    Connect(ConnectError),
    /// The connection failed while the request was sent or the response awaited.
    Request(hyper::Error),
}

/// Sends `req` to `target` on a pooled connection, or a new one.
///
/// A pooled connection may have been closed by the server an instant ago (its keep-alive
/// timeout racing our reuse, Node's 5 s for one). If hyper hands the request back unsent, it
/// goes out once more on a new connection; if it was sent and the connection closed before any
/// response, it goes out again only when `replayable` (bodyless and idempotent), as Go's
/// transport does, and only from a connection idle for at least [`REPLAY_AFTER_IDLE`]: servers
/// close idle connections after seconds, and a connection reused within the millisecond (every
/// one under load) need not have its request copied first.
async fn send(
    pool: &Arc<Pool>,
    target: &crate::upstream::Target,
    req: Request<ReqBody>,
    replayable: bool,
) -> Result<(Response<Incoming>, Lease), SendError> {
    let mut lease = pool.checkout(target).await.map_err(SendError::Connect)?;
    let idled = lease.idle_for.is_some_and(|d| d >= REPLAY_AFTER_IDLE);
    let replay = (idled && replayable).then(|| {
        let mut copy = Request::new(ReqBody::Empty);
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.headers_mut() = req.headers().clone();
        copy
    });
    let again = match lease.send(req).await {
        Ok(resp) => return Ok((resp, lease)),
        Err(mut e) => match (e.take_message(), replay) {
            (Some(req), _) if lease.idle_for.is_some() => req,
            (None, Some(copy)) if closed_before_response(e.error()) => copy,
            _ => return Err(SendError::Request(e.into_error())),
        },
    };
    let mut fresh = pool.connect(target).await.map_err(SendError::Connect)?;
    match fresh.send(again).await {
        Ok(resp) => Ok((resp, fresh)),
        Err(e) => Err(SendError::Request(e.into_error())),
    }
}

/// The request failed because the client's own body did (bad chunked framing, more bytes
/// than declared, the client gone, or silent past the body idle timeout): hyper reports the
/// body's error as a user error. The client's fault, never the upstream's.
fn client_body_failed(e: &hyper::Error) -> Option<&crate::upstream::ClientBodyError> {
    use std::error::Error as _;
    if !e.is_user() {
        return None;
    }
    e.source()?.downcast_ref::<crate::upstream::ClientBodyError>()
}

fn path_error_text(e: crate::target::PathError) -> &'static str {
    use crate::target::PathError;
    match e {
        PathError::NotAbsolute => "the path must start with /",
        PathError::BadEscape => "malformed percent-encoding in the path",
        _ => "an encoded character that is not allowed in the path",
    }
}

/// The connection went away before a response began: closed, reset, or never ready.
fn closed_before_response(e: &hyper::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    e.is_incomplete_message()
        || e.is_canceled()
        || [ConnectionReset, BrokenPipe, ConnectionAborted]
            .into_iter()
            .any(|k| error_chain_has(e, k))
}

fn body_is_empty(parts: &http::request::Parts, body: &Incoming) -> bool {
    use http_body::Body as _;
    if body.is_end_stream() {
        return true;
    }
    parts.version < Version::HTTP_2
        && !parts.headers.contains_key(header::TRANSFER_ENCODING)
        && parts.headers.get(header::CONTENT_LENGTH).is_none_or(|v| v.as_bytes() == b"0")
}

fn error_chain_has(e: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == kind {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        s.push_str(": ");
        s.push_str(&err.to_string());
        cur = err.source();
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn access_log(
    method: &Method,
    host: &str,
    path: &str,
    peer: &Peer,
    resp: &Response<RespBody>,
    started: Instant,
    route: Option<&Route>,
    upstream: Option<usize>,
) {
    use http_body::Body as _;
    let bytes = resp.body().size_hint().exact().map_or(-1, |b| b as i64);
    tracing::info!(
        target: "access",
        client = %peer.ip,
        host,
        method = method.as_str(),
        path,
        status = resp.status().as_u16(),
        bytes,
        duration_us = started.elapsed().as_micros() as u64,
        router = route.map_or("-", |r| &r.name),
        upstream = route.zip(upstream).map_or("-", |(r, i)| &r.service.servers[i].url),
    );
}
