//! Criterion benches of wh-proxy's hot and config-time paths:
//! route lookup in a 10,000-router table (exact and wildcard), parse + compile + swap of a
//! 10,000-router document (from scratch, and incrementally with one router changed), and the
//! per-request header rewrite.

use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use arc_swap::ArcSwap;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use wh_proxy::config::{Document, Format};
use wh_proxy::headers::{self, Peer};
use wh_proxy::metrics::Metrics;
use wh_proxy::service::HealthRegistry;
use wh_proxy::table::{compile, normalize_host, recompile, Table};

fn document(n: usize, wildcard: bool) -> String {
    let mut routers = serde_json::Map::new();
    let mut services = serde_json::Map::new();
    for i in 0..n {
        let rule = if wildcard {
            format!(r"HostRegexp(`^[a-z0-9-]+\.app-{i}\.route\.example\.com$`)")
        } else {
            format!("Host(`app-{i}.route.example.com`) || Host(`www.customer-{i}.com`)")
        };
        routers.insert(format!("app-{i}"), serde_json::json!({"rule": rule, "service": format!("app-{i}"), "tls": {"certResolver": "le"}}));
        services.insert(
            format!("app-{i}"),
            serde_json::json!({"loadBalancer": {"servers": [{"url": format!("http://10.50.0.{}:{}", i % 250 + 1, 30000 + i % 30000)}]}}),
        );
    }
    serde_json::json!({"http": {"routers": routers, "services": services}}).to_string()
}

fn table(doc: &str) -> Table {
    compile(
        Arc::new(Document::parse(doc.as_bytes(), Format::Json).unwrap()),
        1,
        &Metrics::default(),
        &HealthRegistry::default(),
    )
}

fn lookup(c: &mut Criterion) {
    let exact = table(&document(10_000, false));
    let wild = table(&document(10_000, true));
    c.bench_function("lookup/exact/10k", |b| {
        b.iter(|| {
            let mut buf = [0u8; 256];
            let host =
                normalize_host(black_box(b"App-7777.Route.Example.com:443"), &mut buf).unwrap();
            black_box(exact.lookup(host, "/index.html").map(|r| r.priority))
        })
    });
    c.bench_function("lookup/wildcard/10k", |b| {
        b.iter(|| {
            let mut buf = [0u8; 256];
            let host =
                normalize_host(black_box(b"tenant.app-7777.route.example.com"), &mut buf).unwrap();
            black_box(wild.lookup(host, "/").map(|r| r.priority))
        })
    });
    c.bench_function("lookup/miss/10k", |b| {
        b.iter(|| {
            let mut buf = [0u8; 256];
            let host = normalize_host(black_box(b"nobody.example.org"), &mut buf).unwrap();
            black_box(exact.lookup(host, "/").is_none())
        })
    });
}

fn compile_and_swap(c: &mut Criterion) {
    let doc = document(10_000, false);
    let live = ArcSwap::from_pointee(Table::default());
    let (metrics, health) = (Metrics::default(), HealthRegistry::default());
    let mut group = c.benchmark_group("config");
    group.sample_size(20);
    group.bench_function("parse/10k", |b| {
        b.iter(|| Document::parse(doc.as_bytes(), Format::Json).unwrap())
    });
    let parsed = Arc::new(Document::parse(doc.as_bytes(), Format::Json).unwrap());
    group.bench_function("compile/10k", |b| {
        b.iter(|| compile(parsed.clone(), 2, &metrics, &health))
    });
    // What a deploy sends: the same 10,000 routers with one app's server moved.
    let previous = compile(parsed.clone(), 1, &metrics, &health);
    let moved = doc.replacen("http://10.50.0.1:30000", "http://10.50.0.9:31999", 1);
    assert_ne!(moved, doc);
    let next = Arc::new(Document::parse(moved.as_bytes(), Format::Json).unwrap());
    group.bench_function("recompile/10k/one-changed", |b| {
        b.iter(|| recompile(next.clone(), 2, &metrics, &health, &previous))
    });
    // As the applier does: the new table is live after the swap; the old one is freed elsewhere.
    let (drop_tx, drop_rx) = std::sync::mpsc::channel::<Arc<Table>>();
    let dropper = std::thread::spawn(move || drop_rx.into_iter().for_each(drop));
    group.bench_function("parse+compile+swap/10k", |b| {
        b.iter(|| {
            let parsed = Document::parse(doc.as_bytes(), Format::Json).unwrap();
            let old = live.swap(Arc::new(compile(Arc::new(parsed), 2, &metrics, &health)));
            drop_tx.send(old).unwrap();
        })
    });
    // The running proxy's path: each document differs from the live one by one server.
    let mut flip = false;
    group.bench_function("parse+recompile+swap/10k/one-changed", |b| {
        b.iter(|| {
            flip = !flip;
            let text = if flip { &moved } else { &doc };
            let parsed = Arc::new(Document::parse(text.as_bytes(), Format::Json).unwrap());
            let table = recompile(parsed, 2, &metrics, &health, &live.load());
            drop_tx.send(live.swap(Arc::new(table))).unwrap();
        })
    });
    drop(drop_tx);
    dropper.join().unwrap();
    group.finish();
}

fn header_rewrite(c: &mut Criterion) {
    let peer = Peer::new("203.0.113.9".parse().unwrap(), false);
    let (proto, port, host) = (
        HeaderValue::from_static("https"),
        HeaderValue::from_static("443"),
        HeaderValue::from_static("app.example.com"),
    );
    let mut template = HeaderMap::new();
    for (k, v) in [
        ("host", "app.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-encoding", "gzip, deflate, br"),
        ("connection", "keep-alive"),
        ("x-forwarded-for", "6.6.6.6"),
        ("cookie", "session=abc"),
    ] {
        template.insert(k, HeaderValue::from_static(v));
    }
    c.bench_function("headers/rewrite", |b| {
        b.iter_batched_ref(
            || template.clone(),
            |h| {
                headers::strip_hop_by_hop(h, false);
                headers::set_forwarded(h, &peer, &proto, Some(&host), &port);
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, lookup, compile_and_swap, header_rewrite);
criterion_main!(benches);
