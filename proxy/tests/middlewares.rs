//! Traefik's middlewares through a real wh-proxy to a real backend: the path family
//! (addPrefix, replacePath, replacePathRegex, stripPrefixRegex), redirectRegex, chain,
//! ipAllowList (the connection, ipStrategy depth and excluded IPs), headers in full (security
//! headers, STS, CORS preflight and simple requests); unsupported or broken ones skip their
//! router with the reason.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};

/// A document of `routers` (name → {rule, middlewares}) to `backend`, and `middlewares`.
fn doc(backend: &Backend, routers: Value, middlewares: Value) -> String {
    let mut rs = serde_json::Map::new();
    for (name, r) in routers.as_object().unwrap() {
        let mut r = r.clone();
        r["service"] = json!("svc");
        rs.insert(name.clone(), r);
    }
    json!({"http": {
        "routers": rs,
        "services": {"svc": {"loadBalancer": {"servers": [{"url": backend.url()}]}}},
        "middlewares": middlewares,
    }})
    .to_string()
}

async fn send(
    p: &TestProxy,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, hyper::HeaderMap, String) {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", p.addr))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client().request(req.body(full("")).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, h, String::from_utf8_lossy(&body).into_owned())
}

fn seen<'h>(h: &'h hyper::HeaderMap, name: &str) -> &'h str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn the_path_family_redirect_regex_and_chains() {
    let b = Backend::start("b").await;
    let routers = json!({
        "add": {"rule": "Host(`add.test`)", "middlewares": ["add"]},
        "replace": {"rule": "Host(`replace.test`)", "middlewares": ["replace"]},
        "regex": {"rule": "Host(`regex.test`)", "middlewares": ["regex"]},
        "strip": {"rule": "Host(`strip.test`)", "middlewares": ["strip"]},
        "redirect": {"rule": "Host(`redirect.test`)", "middlewares": ["redirect"]},
        "chained": {"rule": "Host(`chain.test`)", "middlewares": ["both@file"]},
        "looping": {"rule": "Host(`loop.test`)", "middlewares": ["loop-a"]},
        "unsupported": {"rule": "Host(`auth.test`)", "middlewares": ["auth"]},
    });
    let mws = json!({
        "add": {"addPrefix": {"prefix": "/api"}},
        "replace": {"replacePath": {"path": "/fixed"}},
        "regex": {"replacePathRegex": {"regex": "^/old/(.*)", "replacement": "/new/$1"}},
        "strip": {"stripPrefixRegex": {"regex": ["/v[0-9]+"]}},
        "redirect": {"redirectRegex": {"regex": "^http://redirect.test/(.*)", "replacement": "https://example.com/${1}", "permanent": true}},
        "both": {"chain": {"middlewares": ["add", "custom"]}},
        "custom": {"headers": {"customRequestHeaders": {"X-Custom": "chained"}}},
        "loop-a": {"chain": {"middlewares": ["loop-b"]}},
        "loop-b": {"chain": {"middlewares": ["loop-a"]}},
        "auth": {"digestAuth": {"users": ["u:r:h"]}},
    });
    let p = TestProxy::start(&doc(&b, routers, mws), &[]).await;

    let (s, h, _) = send(&p, "GET", "add.test", "/users?x=1", &[]).await;
    assert_eq!((s, seen(&h, "x-seen-path")), (200, "/api/users?x=1"));
    let (_, h, _) = send(&p, "GET", "replace.test", "/anything?q=2", &[]).await;
    assert_eq!(seen(&h, "x-seen-path"), "/fixed?q=2");
    assert_eq!(seen(&h, "x-seen-replaced"), "/anything");
    let (_, h, _) = send(&p, "GET", "regex.test", "/old/a/b", &[]).await;
    assert_eq!((seen(&h, "x-seen-path"), seen(&h, "x-seen-replaced")), ("/new/a/b", "/old/a/b"));
    let (_, h, _) = send(&p, "GET", "regex.test", "/other", &[]).await;
    assert_eq!((seen(&h, "x-seen-path"), seen(&h, "x-seen-replaced")), ("/other", ""));
    let (_, h, _) = send(&p, "GET", "strip.test", "/v2/users", &[]).await;
    assert_eq!((seen(&h, "x-seen-path"), seen(&h, "x-seen-prefix")), ("/users", "/v2"));
    let (_, h, _) = send(&p, "GET", "strip.test", "/users/v2", &[]).await;
    assert_eq!(seen(&h, "x-seen-path"), "/users/v2", "only a prefix is stripped");
    let (s, h, _) = send(&p, "GET", "redirect.test", "/a/b?c=d", &[]).await;
    assert_eq!((s, seen(&h, "location")), (301, "https://example.com/a/b?c=d"));
    let (s, _, _) = send(&p, "POST", "redirect.test", "/a", &[]).await;
    assert_eq!(s, 308, "a POST keeps its method");
    let (_, h, _) = send(&p, "GET", "chain.test", "/x", &[]).await;
    assert_eq!((seen(&h, "x-seen-path"), seen(&h, "x-seen-custom")), ("/api/x", "chained"));
    let before = b.hits.load(Ordering::Relaxed);
    assert_eq!(
        send(&p, "GET", "loop.test", "/", &[]).await.0,
        404,
        "a looping chain skips its router"
    );
    assert_eq!(send(&p, "GET", "auth.test", "/", &[]).await.0, 404, "an unsupported one too");
    assert_eq!(b.hits.load(Ordering::Relaxed), before);

    // The reasons, as /routes and the log give them.
    let table = wh_proxy::table::compile(
        Arc::new(
            wh_proxy::config::Document::parse(
                doc(
                    &b,
                    json!({
                        "looping": {"rule": "Host(`loop.test`)", "middlewares": ["loop-a"]},
                        "unsupported": {"rule": "Host(`auth.test`)", "middlewares": ["auth"]},
                        "badregex": {"rule": "Host(`x.test`)", "middlewares": ["bad"]},
                    }),
                    json!({
                        "loop-a": {"chain": {"middlewares": ["loop-b"]}},
                        "loop-b": {"chain": {"middlewares": ["loop-a"]}},
                        "auth": {"digestAuth": {"users": ["u:r:h"]}},
                        "bad": {"replacePathRegex": {"regex": "(", "replacement": "/"}},
                    }),
                )
                .as_bytes(),
                wh_proxy::config::Format::Json,
            )
            .unwrap(),
        ),
        1,
        &wh_proxy::metrics::Metrics::default(),
        &wh_proxy::service::HealthRegistry::default(),
    );
    let warnings = table.warnings.join("\n");
    assert!(warnings.contains("refers back to itself"), "{warnings}");
    assert!(warnings.contains("`digestAuth` is not supported"), "{warnings}");
    assert!(warnings.contains("replacePathRegex.regex"), "{warnings}");
}

#[tokio::test]
async fn ip_allow_lists_judge_the_connection_or_the_forwarded_chain() {
    let b = Backend::start("b").await;
    let routers = json!({
        "local": {"rule": "Host(`local.test`)", "middlewares": ["loopback"]},
        "mesh": {"rule": "Host(`mesh.test`)", "middlewares": ["mesh"]},
        "depth1": {"rule": "Host(`depth1.test`)", "middlewares": ["depth1"]},
        "depth2": {"rule": "Host(`depth2.test`)", "middlewares": ["depth2"]},
        "excluded": {"rule": "Host(`excluded.test`)", "middlewares": ["excluded"]},
    });
    let mws = json!({
        "loopback": {"ipAllowList": {"sourceRange": ["127.0.0.1/32", "::1"]}},
        "mesh": {"ipWhiteList": {"sourceRange": ["10.50.0.0/24"]}},
        "depth1": {"ipAllowList": {"sourceRange": ["10.0.0.0/8"], "ipStrategy": {"depth": 1}}},
        "depth2": {"ipAllowList": {"sourceRange": ["10.0.0.0/8"], "ipStrategy": {"depth": 2}}},
        "excluded": {"ipAllowList": {"sourceRange": ["203.0.113.0/24"], "ipStrategy": {"excludedIPs": ["10.1.2.3"]}}},
    });
    // The test client is a trusted proxy: the X-Forwarded-For it sends is kept.
    let p = TestProxy::start(&doc(&b, routers, mws), &["--trusted-proxies", "127.0.0.1/32"]).await;
    assert_eq!(send(&p, "GET", "local.test", "/", &[]).await.0, 200);
    let (s, _, body) = send(&p, "GET", "mesh.test", "/", &[]).await;
    assert_eq!((s, body.as_str()), (403, "Forbidden"));
    let xff = [("x-forwarded-for", "203.0.113.9, 10.1.2.3")];
    assert_eq!(
        send(&p, "GET", "depth1.test", "/", &xff).await.0,
        200,
        "10.1.2.3 is 1 from the right"
    );
    assert_eq!(
        send(&p, "GET", "depth2.test", "/", &xff).await.0,
        403,
        "203.0.113.9 is 2 from the right"
    );
    assert_eq!(send(&p, "GET", "depth1.test", "/", &[]).await.0, 403, "no forwarded chain");
    assert_eq!(send(&p, "GET", "excluded.test", "/", &xff).await.0, 200);
    // From a peer that is not trusted, the chain it sends is not believed.
    let untrusted = TestProxy::start(&doc(&b, json!({"depth1": {"rule": "Host(`depth1.test`)", "middlewares": ["depth1"]}}), json!({
        "depth1": {"ipAllowList": {"sourceRange": ["10.0.0.0/8"], "ipStrategy": {"depth": 1}}},
    })), &[]).await;
    assert_eq!(send(&untrusted, "GET", "depth1.test", "/", &xff).await.0, 403);
}

#[tokio::test]
async fn headers_in_full_security_sts_and_cors() {
    let b = Backend::start("b").await;
    let routers = json!({
        "secure": {"rule": "Host(`secure.test`)", "middlewares": ["secure"]},
        "forced": {"rule": "Host(`forced.test`)", "middlewares": ["forced"]},
        "cors": {"rule": "Host(`cors.test`)", "middlewares": ["cors"]},
    });
    let mws = json!({
        "secure": {"headers": {
            "frameDeny": true, "contentTypeNosniff": true, "browserXssFilter": true,
            "referrerPolicy": "same-origin", "permissionsPolicy": "camera=()",
            "contentSecurityPolicy": "default-src 'self'",
            "stsSeconds": 31536000, "stsIncludeSubdomains": true, "stsPreload": true,
            "customResponseHeaders": {"X-Powered-By": "", "X-App": "shop"},
        }},
        "forced": {"headers": {"stsSeconds": 60, "forceSTSHeader": true}},
        "cors": {"headers": {
            "accessControlAllowOriginList": ["https://app.example.com"],
            "accessControlAllowOriginListRegex": ["^https://[a-z0-9]+\\.preview\\.example\\.com$"],
            "accessControlAllowMethods": ["GET", "POST"],
            "accessControlAllowHeaders": ["Content-Type", "Authorization"],
            "accessControlExposeHeaders": ["X-Request-Id"],
            "accessControlAllowCredentials": true,
            "accessControlMaxAge": 600,
            "addVaryHeader": true,
        }},
    });
    let p = TestProxy::start(&doc(&b, routers, mws), &[]).await;
    let (s, h, _) = send(&p, "GET", "secure.test", "/", &[]).await;
    assert_eq!(s, 200);
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("x-xss-protection", "1; mode=block"),
        ("referrer-policy", "same-origin"),
        ("permissions-policy", "camera=()"),
        ("content-security-policy", "default-src 'self'"),
        ("x-app", "shop"),
    ] {
        assert_eq!(seen(&h, name), value, "{name}");
    }
    assert!(h.get("strict-transport-security").is_none(), "no STS over plain HTTP");
    let (_, h, _) = send(&p, "GET", "forced.test", "/", &[]).await;
    assert_eq!(seen(&h, "strict-transport-security"), "max-age=60");

    // A preflight is answered by the proxy; the backend never sees it.
    let before = b.hits.load(Ordering::Relaxed);
    let (s, h, _) = send(
        &p,
        "OPTIONS",
        "cors.test",
        "/api",
        &[("origin", "https://app.example.com"), ("access-control-request-method", "POST")],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(seen(&h, "access-control-allow-origin"), "https://app.example.com");
    assert_eq!(seen(&h, "access-control-allow-methods"), "GET,POST");
    assert_eq!(seen(&h, "access-control-allow-headers"), "Content-Type,Authorization");
    assert_eq!(seen(&h, "access-control-allow-credentials"), "true");
    assert_eq!(seen(&h, "access-control-max-age"), "600");
    assert_eq!(b.hits.load(Ordering::Relaxed), before);
    let (_, h, _) =
        send(&p, "GET", "cors.test", "/", &[("origin", "https://pr7.preview.example.com")]).await;
    assert_eq!(seen(&h, "access-control-allow-origin"), "https://pr7.preview.example.com");
    assert_eq!(seen(&h, "access-control-expose-headers"), "X-Request-Id");
    assert_eq!(seen(&h, "vary"), "Origin");
    let (_, h, _) = send(&p, "GET", "cors.test", "/", &[("origin", "https://evil.example")]).await;
    assert!(h.get("access-control-allow-origin").is_none(), "an origin not listed gets nothing");
}

#[tokio::test]
async fn basic_auth_with_inline_users_and_an_htpasswd_file() {
    use base64::Engine as _;
    let b = Backend::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    // `openssl passwd -apr1 -salt saltsalt password`, and SHA-1 of "password".
    std::fs::write(&file, "# users\ncarol:$apr1$saltsalt$yAAkm4libquA.ZWLHbSBq/\ndave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    let routers = json!({"auth": {"rule": "Host(`auth.test`)", "middlewares": ["auth"]}});
    let mws = json!({"auth": {"basicAuth": {
        // OpenBSD's bcrypt test vector: the password is U*U.
        "users": ["bob:$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"],
        "usersFile": file.display().to_string(),
        "realm": "shop",
        "removeHeader": true,
        "headerField": "X-WebAuth-User",
    }}});
    let p = TestProxy::start(&doc(&b, routers, mws), &[]).await;
    let basic = |c: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(c));
    let before = b.hits.load(Ordering::Relaxed);
    let (s, h, _) = send(&p, "GET", "auth.test", "/", &[]).await;
    assert_eq!((s, seen(&h, "www-authenticate")), (401, "Basic realm=\"shop\""));
    let (s, _, _) =
        send(&p, "GET", "auth.test", "/", &[("authorization", &basic("bob:wrong"))]).await;
    assert_eq!(s, 401);
    assert_eq!(b.hits.load(Ordering::Relaxed), before, "nothing unauthenticated reached the app");
    for creds in ["bob:U*U", "carol:password", "dave:password"] {
        let (s, _, body) =
            send(&p, "GET", "auth.test", "/headers", &[("authorization", &basic(creds))]).await;
        assert_eq!(s, 200, "{creds}");
        let seen: Value = serde_json::from_str(&body).unwrap();
        assert!(seen.get("authorization").is_none(), "removeHeader: {seen}");
        assert_eq!(seen["x-webauth-user"], creds.split(':').next().unwrap());
    }
}

#[tokio::test]
async fn compress_negotiates_zstd_brotli_gzip_and_leaves_what_it_must() {
    use std::io::Read as _;
    let b = Backend::start("b").await;
    let routers = json!({
        "c": {"rule": "Host(`c.test`)", "middlewares": ["gz"]},
        "html": {"rule": "Host(`html.test`)", "middlewares": ["html-only"]},
    });
    let mws = json!({
        "gz": {"compress": true},
        "html-only": {"compress": {"includedContentTypes": ["text/html"]}},
    });
    let p = TestProxy::start(&doc(&b, routers, mws), &[]).await;
    let raw_get = |host: &'static str, path: &'static str, accept: &'static str| {
        let addr = p.addr;
        async move {
            let req = hyper::Request::get(format!("http://{addr}{path}"))
                .header("host", host)
                .header("accept-encoding", accept)
                .body(full(""))
                .unwrap();
            let resp = client().request(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            (
                parts.status.as_u16(),
                parts.headers,
                body.collect().await.unwrap().to_bytes().to_vec(),
            )
        }
    };
    let want = vec![b'x'; 200_000];
    for (accept, coding) in
        [("gzip", "gzip"), ("gzip, br", "br"), ("br;q=0.5, zstd", "zstd"), ("*", "zstd")]
    {
        let (s, h, body) = raw_get("c.test", "/download?bytes=200000", accept).await;
        assert_eq!((s, seen(&h, "content-encoding")), (200, coding), "{accept}");
        assert!(h.get("content-length").is_none());
        assert_eq!(seen(&h, "vary"), "Accept-Encoding");
        assert!(body.len() < 10_000, "{coding}: {} bytes", body.len());
        let mut back = Vec::new();
        match coding {
            "gzip" => {
                flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut back).map(drop).unwrap()
            }
            "br" => {
                brotli::Decompressor::new(&body[..], 4096).read_to_end(&mut back).map(drop).unwrap()
            }
            _ => back = zstd::stream::decode_all(&body[..]).unwrap(),
        }
        assert_eq!(back, want, "{coding}");
    }
    // No Accept-Encoding, a small body, a HEAD, a content type not included: as it came.
    let (_, h, body) = raw_get("c.test", "/download?bytes=200000", "identity").await;
    assert!(h.get("content-encoding").is_none() && body.len() == 200_000);
    let (_, h, body) = raw_get("c.test", "/", "gzip").await;
    assert!(h.get("content-encoding").is_none() && body == b"b", "under 1024 bytes");
    let (_, h, _) = raw_get("html.test", "/download?bytes=200000", "gzip").await;
    assert!(h.get("content-encoding").is_none(), "not text/html");
    let req = hyper::Request::head(format!("http://{}/download?bytes=5000", p.addr))
        .header("host", "c.test")
        .header("accept-encoding", "gzip")
        .body(full(""))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert!(resp.headers().get("content-encoding").is_none(), "HEAD");
}

#[tokio::test]
async fn rate_limits_by_client_address_or_header_with_retry_after() {
    let b = Backend::start("b").await;
    let routers = json!({
        "ip": {"rule": "Host(`ip.test`)", "middlewares": ["per-ip"]},
        "key": {"rule": "Host(`key.test`)", "middlewares": ["per-key"]},
        "off": {"rule": "Host(`off.test`)", "middlewares": ["unlimited"]},
    });
    let mws = json!({
        "per-ip": {"rateLimit": {"average": 2, "period": "1m", "burst": 3}},
        "per-key": {"rateLimit": {"average": 1, "period": 60, "sourceCriterion": {"requestHeaderName": "X-Api-Key"}}},
        "unlimited": {"rateLimit": {"average": 0}},
    });
    let p = TestProxy::start(&doc(&b, routers, mws), &[]).await;
    for _ in 0..3 {
        assert_eq!(send(&p, "GET", "ip.test", "/", &[]).await.0, 200, "the burst");
    }
    let (s, h, body) = send(&p, "GET", "ip.test", "/", &[]).await;
    assert_eq!((s, body.as_str()), (429, "Too Many Requests"));
    let retry: u64 = seen(&h, "retry-after").parse().unwrap();
    assert!((1..=30).contains(&retry), "2 a minute: the next in at most 30 s, said {retry}");
    assert_eq!(send(&p, "GET", "key.test", "/", &[("x-api-key", "a")]).await.0, 200);
    assert_eq!(send(&p, "GET", "key.test", "/", &[("x-api-key", "a")]).await.0, 429);
    assert_eq!(
        send(&p, "GET", "key.test", "/", &[("x-api-key", "b")]).await.0,
        200,
        "its own budget"
    );
    for _ in 0..20 {
        assert_eq!(send(&p, "GET", "off.test", "/", &[]).await.0, 200);
    }
}
