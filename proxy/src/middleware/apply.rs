//! Applying a router's middlewares to a request and its response, in router order (a chain's
//! members in its order): redirects, refusals (`ipAllowList`) and CORS preflights answer
//! instead of forwarding; `headers` sets or removes headers; the path family rewrites the path
//! (`X-Forwarded-Prefix` for stripped prefixes, `X-Replaced-Path` for replaced paths).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::uri::Uri;
use http::{HeaderName, Method, Request, Response, StatusCode};

use super::Middleware;
use crate::body::RespBody;
use crate::error::ProxyError;
use crate::headers;

/// Runs the request-side middlewares; `Some` is the response to send instead of forwarding (a
/// redirect, a refusal, a CORS preflight answer). `host` is the validated `Host`; `https` is
/// the listener's; `peer` the connection's (after [`headers::set_forwarded`]).
pub(crate) fn on_request(
    middlewares: &[Arc<Middleware>],
    req: &mut Request<()>,
    host: Option<&HeaderValue>,
    https: bool,
    peer: &headers::Peer,
) -> Result<Option<Response<RespBody>>, ProxyError> {
    for mw in middlewares {
        match &**mw {
            Middleware::RedirectScheme { scheme, port, permanent } => {
                let current = if https { "https" } else { "http" };
                if **scheme != *current {
                    return redirect(req, host, scheme, port.as_deref(), *permanent, false)
                        .map(Some);
                }
            }
            Middleware::RedirectRegex { regex, replacement, permanent } => {
                let scheme = if https { "https" } else { "http" };
                let host = host.and_then(|h| h.to_str().ok()).unwrap_or("");
                let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let url = format!("{scheme}://{host}{pq}");
                if regex.is_match(&url) {
                    let to = regex.replace_all(&url, &**replacement);
                    let location = HeaderValue::from_str(&to)
                        .map_err(|_| ProxyError::BadRequest("the redirect is not a valid URL"))?;
                    return Ok(Some(redirect_to(req, location, *permanent, false)));
                }
            }
            Middleware::Headers { request, cors, .. } => {
                if let Some(cors) = cors {
                    if let Some(resp) = preflight(cors, req) {
                        return Ok(Some(resp));
                    }
                }
                for (name, value) in request.iter() {
                    match value {
                        Some(v) => req.headers_mut().insert(name.clone(), v.clone()),
                        None => req.headers_mut().remove(name),
                    };
                }
            }
            Middleware::StripPrefix { prefixes } => strip_prefix(req, prefixes)?,
            // Response-side only (see `compression`).
            Middleware::Compress(_) | Middleware::Nothing => {}
            Middleware::RateLimit { limit, depth, excluded } => {
                use super::rate_limit::Source;
                let ip;
                let key: &[u8] = match &limit.source {
                    Source::ClientIp => {
                        ip = client_ip(req, peer, *depth, excluded).map(|ip| ip.to_string());
                        ip.as_deref().unwrap_or("").as_bytes()
                    }
                    Source::Header(name) => {
                        req.headers().get(name).map_or(&b""[..], |v| v.as_bytes())
                    }
                    Source::Host => host.map_or(&b""[..], |h| h.as_bytes()),
                };
                if let Err(wait) = limit.take(key, std::time::Instant::now()) {
                    let mut resp = Response::new(RespBody::full(&b"Too Many Requests"[..]));
                    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                        resp.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    return Ok(Some(resp));
                }
            }
            Middleware::StripPrefixRegex { regexes } => {
                let path = req.uri().path().to_owned();
                let found = regexes.iter().find_map(|re| {
                    re.find(&path)
                        .filter(|m| !m.as_str().is_empty() && path.starts_with(m.as_str()))
                });
                if let Some(m) = found {
                    let prefix = m.as_str().to_owned();
                    set_path(req, &leading_slash(&path[prefix.len()..]))?;
                    let value = HeaderValue::from_str(&prefix)
                        .map_err(|_| ProxyError::BadRequest("invalid path"))?;
                    req.headers_mut().insert(headers::X_FORWARDED_PREFIX.clone(), value);
                }
            }
            Middleware::AddPrefix { prefix } => {
                let path = format!("{prefix}{}", req.uri().path());
                set_path(req, &leading_slash(&path))?;
            }
            Middleware::ReplacePath { path } => {
                replaced(req)?;
                set_path(req, path)?;
            }
            Middleware::ReplacePathRegex { regex, replacement } => {
                let path = req.uri().path().to_owned();
                if regex.is_match(&path) {
                    let new = regex.replace_all(&path, &**replacement).into_owned();
                    replaced(req)?;
                    set_path(req, &leading_slash(&new))?;
                }
            }
            Middleware::IpAllowList { ranges, depth, excluded, reject } => {
                let ip = client_ip(req, peer, *depth, excluded);
                if !ip.is_some_and(|ip| ranges.iter().any(|r| r.contains(ip))) {
                    let mut resp = Response::new(RespBody::full(
                        reject.canonical_reason().unwrap_or("Forbidden").as_bytes().to_vec(),
                    ));
                    *resp.status_mut() = *reject;
                    return Ok(Some(resp));
                }
            }
            Middleware::Chain { middlewares } => {
                if let Some(resp) = on_request(middlewares, req, host, https, peer)? {
                    return Ok(Some(resp));
                }
            }
            Middleware::BasicAuth(auth) => {
                let Some(user) = auth.check(req.headers().get(header::AUTHORIZATION)) else {
                    let mut resp = Response::new(RespBody::full(&b"401 Unauthorized\n"[..]));
                    *resp.status_mut() = StatusCode::UNAUTHORIZED;
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, auth.challenge.clone());
                    return Ok(Some(resp));
                };
                if auth.remove_header {
                    req.headers_mut().remove(header::AUTHORIZATION);
                }
                if let Some(field) = &auth.header_field {
                    if let Ok(v) = HeaderValue::from_str(&user) {
                        req.headers_mut().insert(field.clone(), v);
                    }
                }
            }
        }
    }
    Ok(None)
}

/// The client address an `ipAllowList` judges: the connection's (depth 0, no exclusions), the
/// `depth`-th from the right of `X-Forwarded-For` as the client sent it, or the rightmost one
/// not `excluded`. `X-Forwarded-For` is as [`headers::set_forwarded`] left it: a trusted
/// proxy's list with the peer appended, or just the peer.
fn client_ip(
    req: &Request<()>,
    peer: &headers::Peer,
    depth: usize,
    excluded: &[crate::config::rule::Cidr],
) -> Option<std::net::IpAddr> {
    if depth == 0 && excluded.is_empty() {
        return Some(peer.ip);
    }
    let xff: Vec<&str> = req
        .headers()
        .get_all(headers::X_FORWARDED_FOR.clone())
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // What the client sent: without the peer the proxy appended.
    let sent = &xff[..xff.len().saturating_sub(1)];
    let parse = |s: &str| s.parse::<std::net::IpAddr>().ok();
    if depth > 0 {
        return sent.len().checked_sub(depth).and_then(|i| parse(sent[i]));
    }
    sent.iter().rev().filter_map(|s| parse(s)).find(|ip| !excluded.iter().any(|c| c.contains(*ip)))
}

/// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) answered
/// here, as Traefik does.
fn preflight(cors: &super::Cors, req: &Request<()>) -> Option<Response<RespBody>> {
    if req.method() != Method::OPTIONS
        || !req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let origin = req.headers().get(header::ORIGIN)?;
    let mut resp = Response::new(RespBody::empty());
    let h = resp.headers_mut();
    if let Some(allowed) = allowed_origin(cors, origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    }
    if cors.credentials {
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    if let Some(v) = &cors.methods {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
    }
    if let Some(v) = &cors.headers {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
    if let Some(v) = &cors.max_age {
        h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
    }
    Some(resp)
}

/// The `Access-Control-Allow-Origin` for `origin`: `*`, the origin itself when listed or
/// matching a regexp, or none.
fn allowed_origin(cors: &super::Cors, origin: &HeaderValue) -> Option<HeaderValue> {
    let o = origin.to_str().ok()?;
    if cors.origins.iter().any(|a| &**a == "*") {
        // With credentials a browser refuses `*`: the origin is echoed instead.
        return Some(if cors.credentials { origin.clone() } else { HeaderValue::from_static("*") });
    }
    let listed = cors.origins.iter().any(|a| a.eq_ignore_ascii_case(o))
        || cors.origin_regexes.iter().any(|r| r.is_match(o));
    listed.then(|| origin.clone())
}

fn leading_slash(p: &str) -> String {
    if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    }
}

/// `X-Replaced-Path`: the path before a replacement.
fn replaced(req: &mut Request<()>) -> Result<(), ProxyError> {
    let old = HeaderValue::from_str(req.uri().path())
        .map_err(|_| ProxyError::BadRequest("invalid path"))?;
    req.headers_mut().insert(HeaderName::from_static("x-replaced-path"), old);
    Ok(())
}

/// Replaces the request's path, keeping its query.
fn set_path(req: &mut Request<()>, path: &str) -> Result<(), ProxyError> {
    let pq = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(pq.parse().map_err(|_| ProxyError::BadRequest("invalid path"))?);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| ProxyError::BadRequest("invalid path"))?;
    Ok(())
}

/// Runs the response-side middlewares: custom response headers, security headers (STS on
/// HTTPS, or forced), CORS for a request with `Origin`.
pub(crate) fn on_response(
    middlewares: &[Arc<Middleware>],
    headers: &mut http::HeaderMap,
    https: bool,
    origin: Option<&HeaderValue>,
) {
    for mw in middlewares {
        match &**mw {
            Middleware::Headers { response, security, sts, cors, .. } => {
                for (name, value) in security.iter() {
                    headers.insert(name.clone(), value.clone());
                }
                if let Some((value, forced)) = sts {
                    if https || *forced {
                        headers.insert(header::STRICT_TRANSPORT_SECURITY, value.clone());
                    }
                }
                if let (Some(cors), Some(origin)) = (cors, origin) {
                    if let Some(allowed) = allowed_origin(cors, origin) {
                        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
                        if cors.credentials {
                            headers.insert(
                                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                                HeaderValue::from_static("true"),
                            );
                        }
                        if let Some(v) = &cors.expose {
                            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
                        }
                    }
                    if cors.vary {
                        headers.append(header::VARY, HeaderValue::from_static("Origin"));
                    }
                }
                for (name, value) in response.iter() {
                    match value {
                        Some(v) => headers.insert(name.clone(), v.clone()),
                        None => headers.remove(name),
                    };
                }
            }
            Middleware::Chain { middlewares } => on_response(middlewares, headers, https, origin),
            _ => {}
        }
    }
}

/// A redirect to `scheme` on the same host and path. `host` is the validated one
/// ([`crate::target`]), never a raw `Host` that lost to the target's authority. `keep_method`
/// forces 307/308 (the HTTP → HTTPS redirect keeps POSTs POSTs); otherwise GET and HEAD get
/// 301/302, as in Traefik.
pub(crate) fn redirect<B>(
    req: &Request<B>,
    host: Option<&HeaderValue>,
    scheme: &str,
    port: Option<&str>,
    permanent: bool,
    keep_method: bool,
) -> Result<Response<RespBody>, ProxyError> {
    let host =
        host.and_then(|h| h.to_str().ok()).ok_or(ProxyError::BadRequest("missing Host header"))?;
    let bare = strip_port(host);
    let authority = match port {
        Some(p) if !(scheme == "https" && p == "443" || scheme == "http" && p == "80") => {
            format!("{bare}:{p}")
        }
        _ => bare.to_owned(),
    };
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = HeaderValue::from_str(&format!("{scheme}://{authority}{pq}"))
        .map_err(|_| ProxyError::BadRequest("invalid Host header"))?;
    Ok(redirect_to(req, location, permanent, keep_method))
}

/// A redirect of `req` to `location`: 301/302 for GET and HEAD unless `keep_method`, else
/// 307/308.
fn redirect_to<B>(
    req: &Request<B>,
    location: HeaderValue,
    permanent: bool,
    keep_method: bool,
) -> Response<RespBody> {
    let get_like = !keep_method && matches!(*req.method(), Method::GET | Method::HEAD);
    let status = match (permanent, get_like) {
        (true, true) => StatusCode::MOVED_PERMANENTLY,
        (true, false) => StatusCode::PERMANENT_REDIRECT,
        (false, true) => StatusCode::FOUND,
        (false, false) => StatusCode::TEMPORARY_REDIRECT,
    };
    let mut resp = Response::new(RespBody::empty());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::LOCATION, location);
    resp
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && (host.starts_with('[') || !host[..i].contains(':')) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

fn strip_prefix(req: &mut Request<()>, prefixes: &[Box<str>]) -> Result<(), ProxyError> {
    let path = req.uri().path();
    let Some(prefix) = prefixes.iter().find(|p| path.starts_with(&***p)) else {
        return Ok(());
    };
    let rest = &path[prefix.len()..];
    let new_path = if rest.starts_with('/') { rest.to_owned() } else { format!("/{rest}") };
    let pq = match req.uri().query() {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(pq.parse().map_err(|_| ProxyError::BadRequest("invalid path"))?);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| ProxyError::BadRequest("invalid path"))?;
    let prefix_value = HeaderValue::from_str(prefix.trim_end_matches('/'))
        .map_err(|e| ProxyError::Internal(e.to_string()))?;
    req.headers_mut().insert(headers::X_FORWARDED_PREFIX.clone(), prefix_value);
    Ok(())
}

/// The coding the first `compress` of `middlewares` (chains included) chooses for a response,
/// if any.
pub(crate) fn compression(
    middlewares: &[Arc<Middleware>],
    accept: Option<&HeaderValue>,
    method: &Method,
    status: StatusCode,
    headers: &http::HeaderMap,
) -> Option<super::compress::Encoding> {
    for mw in middlewares {
        match &**mw {
            Middleware::Compress(c) => return c.choose(accept, method, status, headers),
            Middleware::Chain { middlewares } => {
                if let Some(e) = compression(middlewares, accept, method, status, headers) {
                    return Some(e);
                }
            }
            _ => {}
        }
    }
    None
}
