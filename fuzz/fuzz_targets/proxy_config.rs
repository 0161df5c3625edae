//! wh-proxy's untrusted-input parsers on arbitrary bytes: the dynamic configuration (JSON and
//! YAML), compiling it into a routing table (from scratch, and incrementally against the table of
//! the JSON reading of the same bytes), the rule language, and a lookup. Must never panic.
#![no_main]

use std::sync::Arc;

use wh_proxy::config::{rule, Document, Format};
use wh_proxy::metrics::Metrics;
use wh_proxy::service::HealthRegistry;
use wh_proxy::table::{compile, normalize_host, recompile, Table};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rule::parse(text);
    }
    let (metrics, health) = (Metrics::default(), HealthRegistry::default());
    let mut previous: Option<Table> = None;
    for format in [Format::Json, Format::Yaml] {
        if let Ok(doc) = Document::parse(data, format) {
            let doc = Arc::new(doc);
            let table = match &previous {
                Some(p) => recompile(doc, 2, &metrics, &health, p),
                None => compile(doc, 1, &metrics, &health),
            };
            let mut buf = [0u8; 256];
            if let Some(host) = normalize_host(data.get(..data.len().min(64)).unwrap_or_default(), &mut buf) {
                let _ = table.lookup(host, "/");
            }
            previous = Some(table);
        }
    }
});
