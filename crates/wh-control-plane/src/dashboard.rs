//! Serving the dashboard (`dashboard/dist`, built by Vite) at `/` from the control plane's own
//! binary: embedded in release builds, read from disk in debug builds (rust-embed).
//!
//! Any GET or HEAD outside `/api` and `/v1` is the dashboard's: a file when one has that path,
//! else `index.html` (the single-page app routes in the browser). `index.html` is never cached;
//! Vite's hashed files under `assets/` are immutable for a year; a precompressed `.br` or `.gz`
//! twin is served when the client accepts it. Every answer carries a Content-Security-Policy
//! that allows only this origin (no inline script, no framing), `Referrer-Policy` and
//! `X-Content-Type-Options`. Without a built dashboard the answer is a page saying how to
//! build it.

use std::borrow::Cow;

use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    REFERRER_POLICY, VARY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// Where the built dashboard is found.
pub trait Assets: Send + Sync + 'static {
    /// The file at `path` (relative, no leading `/`), if there is one.
    fn get(&self, path: &str) -> Option<Cow<'static, [u8]>>;
}

/// `dashboard/dist`, embedded at build time (release) or read at run time (debug).
#[derive(rust_embed::Embed)]
#[folder = "../../dashboard/dist"]
#[allow_missing = true]
struct Dist;

/// The real assets ([`Dist`]).
pub struct Built;

impl Assets for Built {
    fn get(&self, path: &str) -> Option<Cow<'static, [u8]>> {
        <Dist as rust_embed::Embed>::get(path).map(|f| f.data)
    }
}

/// Served when `dashboard/dist` holds no `index.html`.
const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
<title>WiseHosting</title><h1>The dashboard is not built</h1>\
<p>The API works (<code>/api/v1</code>). To serve the dashboard here, build it and rebuild the \
control plane:</p><pre>cd dashboard &amp;&amp; npm ci &amp;&amp; npm run build</pre></html>\n";

/// Only this origin, no inline script or style, never in a frame.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Whether a request is the dashboard's rather than the API's.
pub fn is_dashboard_request(method: &Method, path: &str) -> bool {
    let api = ["/api", "/v1"].iter().any(|p| path == *p || path.starts_with(&format!("{p}/")));
    (method == Method::GET || method == Method::HEAD) && !api
}

/// The answer for `uri` from `assets`.
pub fn serve(assets: &dyn Assets, uri: &Uri, headers: &HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    // A path that names no file (and has no extension) is a route of the app: its index.
    let (name, file) = match (path.is_empty(), assets.get(path)) {
        (false, Some(file)) if !path.ends_with('/') => (path, Some(file)),
        _ if has_extension(path) => (path, None),
        _ => ("index.html", assets.get("index.html")),
    };
    let Some(file) = file else {
        if name == "index.html" {
            return respond(
                StatusCode::OK,
                "text/html; charset=utf-8",
                "no-cache",
                None,
                Cow::Borrowed(NOT_BUILT.as_bytes()),
            );
        }
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no-cache",
            None,
            Cow::Borrowed(b"not found\n".as_slice()),
        );
    };
    let cache = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let accepts = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
    for (encoding, suffix) in [("br", ".br"), ("gzip", ".gz")] {
        if accepts_encoding(accepts, encoding) {
            if let Some(packed) = assets.get(&format!("{name}{suffix}")) {
                return respond(StatusCode::OK, content_type(name), cache, Some(encoding), packed);
            }
        }
    }
    respond(StatusCode::OK, content_type(name), cache, None, file)
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    cache: &'static str,
    encoding: Option<&'static str>,
    body: Cow<'static, [u8]>,
) -> Response {
    let mut resp = (status, body.into_owned()).into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(e) = encoding {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    resp
}

fn has_extension(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|last| last.contains('.'))
}

/// Whether `accept` (an `Accept-Encoding` value) takes `encoding` (not with `q=0`).
fn accepts_encoding(accept: &str, encoding: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let refused = parts.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0");
        name.eq_ignore_ascii_case(encoding) && !refused
    })
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fake(HashMap<&'static str, &'static [u8]>);

    impl Assets for Fake {
        fn get(&self, path: &str) -> Option<Cow<'static, [u8]>> {
            self.0.get(path).map(|b| Cow::Borrowed(*b))
        }
    }

    fn fake() -> Fake {
        Fake(HashMap::from([
            ("index.html", b"<html>app</html>".as_slice()),
            ("assets/app-1a2b.js", b"js".as_slice()),
            ("assets/app-1a2b.js.br", b"brotli".as_slice()),
            ("favicon.ico", b"ico".as_slice()),
        ]))
    }

    fn get(assets: &dyn Assets, path: &str, accept: &str) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(accept).unwrap());
        serve(assets, &path.parse().unwrap(), &headers)
    }

    #[test]
    fn files_routes_caching_compression_and_headers() {
        let a = fake();
        let index = get(&a, "/", "");
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(index.headers()[CACHE_CONTROL], "no-cache");
        assert_eq!(index.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        let csp = index.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(index.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(index.headers()[REFERRER_POLICY], "no-referrer");
        // An app route is the index; a missing file is a 404, not the index.
        assert_eq!(
            get(&a, "/apps/hello/deployments", "").headers()[CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(get(&a, "/assets/gone-9f9f.js", "").status(), StatusCode::NOT_FOUND);
        let js = get(&a, "/assets/app-1a2b.js", "gzip, br");
        assert_eq!(js.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(js.headers()[CONTENT_ENCODING], "br");
        assert_eq!(js.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        let plain = get(&a, "/assets/app-1a2b.js", "gzip, br;q=0");
        assert!(plain.headers().get(CONTENT_ENCODING).is_none(), "br refused with q=0");
        assert_eq!(get(&a, "/favicon.ico", "").headers()[CONTENT_TYPE], "image/x-icon");
    }

    #[test]
    fn without_a_build_every_page_says_how_to_build_it() {
        let none = Fake(HashMap::new());
        let resp = get(&none, "/apps", "");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    }

    #[test]
    fn the_api_keeps_its_paths() {
        for path in ["/api", "/api/v1/apps", "/v1/workers/ws", "/v1"] {
            assert!(!is_dashboard_request(&Method::GET, path), "{path}");
        }
        assert!(is_dashboard_request(&Method::GET, "/"));
        assert!(is_dashboard_request(&Method::HEAD, "/apps/api"));
        assert!(is_dashboard_request(&Method::GET, "/apix"));
        assert!(!is_dashboard_request(&Method::POST, "/apps"));
    }
}
