use std::sync::Arc;

use super::*;
use crate::config::{Document, Format};
use crate::metrics::Metrics;
use crate::service::HealthRegistry;

fn table(json: &str) -> Table {
    let doc = Document::parse(json.as_bytes(), Format::Json).unwrap();
    compile(Arc::new(doc), 1, &Metrics::default(), &HealthRegistry::default())
}

fn doc(routers: &[(&str, &str, Option<i64>)]) -> String {
    let routers: Vec<String> = routers
        .iter()
        .map(|(name, rule, prio)| {
            let prio = prio.map(|p| format!(",\"priority\":{p}")).unwrap_or_default();
            format!(
                "\"{name}\":{{\"rule\":{},\"service\":\"svc\"{prio}}}",
                serde_json::to_string(rule).unwrap()
            )
        })
        .collect();
    format!(
        "{{\"http\":{{\"routers\":{{{}}},\"services\":{{\"svc\":{{\"loadBalancer\":{{\"servers\":[{{\"url\":\"http://127.0.0.1:9\"}}]}}}}}}}}}}",
        routers.join(",")
    )
}

fn route<'t>(t: &'t Table, raw_host: &str, path: &str) -> Option<&'t str> {
    let mut buf = [0u8; 256];
    let host = normalize_host(raw_host.as_bytes(), &mut buf)?;
    t.lookup(host, path).map(|r| &*r.name)
}

#[test]
fn exact_hosts_case_and_port() {
    let t = table(&doc(&[
        ("a", "Host(`a.example.com`) || Host(`www.customer.com`)", None),
        ("b", "Host(`b.example.com`)", None),
    ]));
    assert_eq!(route(&t, "a.example.com", "/"), Some("a"));
    assert_eq!(route(&t, "WWW.Customer.COM:8080", "/x"), Some("a"));
    assert_eq!(route(&t, "b.example.com.", "/"), Some("b"));
    assert_eq!(route(&t, "c.example.com", "/"), None);
    assert_eq!(route(&t, "[::1]:80", "/"), None);
}

#[test]
fn path_prefix_priority_defaults_to_rule_length() {
    let t = table(&doc(&[
        ("root", "Host(`a.test`)", None),
        ("api", "Host(`a.test`) && PathPrefix(`/api`)", None),
        ("v2", "Host(`a.test`) && PathPrefix(`/api/v2`)", None),
        ("forced", "Host(`a.test`) && Path(`/x`)", Some(1)),
    ]));
    assert_eq!(route(&t, "a.test", "/"), Some("root"));
    assert_eq!(route(&t, "a.test", "/api/x"), Some("api"));
    assert_eq!(route(&t, "a.test", "/api/v2/x"), Some("v2"));
    // Priority 1 loses to the catch-all host router even though it matches more precisely.
    assert_eq!(route(&t, "a.test", "/x"), Some("root"));
}

#[test]
fn host_regexp_and_generic_rules() {
    let t = table(&doc(&[
        ("wild", "HostRegexp(`{sub:[a-z0-9-]+}.apps.test`)", None),
        ("v3", r"HostRegexp(`^(foo|bar)\.other\.test$`)", None),
        // As in Traefik, the longer regexp rule outranks a short Host rule unless told otherwise.
        ("exact", "Host(`special.apps.test`)", Some(500)),
        ("any", "PathPrefix(`/.well-known/x`)", Some(1000)),
    ]));
    assert_eq!(route(&t, "one.apps.test", "/"), Some("wild"));
    assert_eq!(route(&t, "special.apps.test", "/"), Some("exact"));
    assert_eq!(route(&t, "bar.other.test", "/"), Some("v3"));
    assert_eq!(route(&t, "baz.other.test", "/"), None);
    assert_eq!(route(&t, "anything.test", "/.well-known/x/y"), Some("any"));
    assert_eq!(route(&t, "one.apps.test", "/.well-known/x/y"), Some("any"));
}

#[test]
fn bad_routers_are_skipped_with_a_named_reason() {
    let json = r#"{"http":{"routers":{
        "good":{"rule":"Host(`ok.test`)","service":"svc@http"},
        "badrule":{"rule":"Host(`x","service":"svc"},
        "nosvc":{"rule":"Host(`n.test`)","service":"missing"},
        "badmw":{"rule":"Host(`m.test`)","service":"svc","middlewares":["nope"]},
        "badurl":{"rule":"Host(`u.test`)","service":"broken"}},
      "services":{"svc":{"loadBalancer":{"servers":[{"url":"http://127.0.0.1:9"}]}},
                  "broken":{"loadBalancer":{"servers":[{"url":"ftp://x"}]}}}}}"#;
    let t = table(json);
    assert_eq!(t.len(), 1);
    assert_eq!(route(&t, "ok.test", "/"), Some("good"));
    let w = t.warnings.join("\n");
    for name in ["badrule", "nosvc", "badmw", "badurl"] {
        assert!(w.contains(&format!("router `{name}` skipped")), "{w}");
    }
    assert!(w.contains("missing") && w.contains("not defined"), "{w}");
}

#[test]
fn ten_thousand_routers_compile_and_resolve() {
    let routers: Vec<(String, String)> = (0..10_000)
        .map(|i| (format!("app-{i}"), format!("Host(`app-{i}.route.example.com`)")))
        .collect();
    let refs: Vec<(&str, &str, Option<i64>)> =
        routers.iter().map(|(n, r)| (n.as_str(), r.as_str(), None)).collect();
    let t = table(&doc(&refs));
    assert_eq!(t.len(), 10_000);
    assert_eq!(route(&t, "app-9999.route.example.com", "/"), Some("app-9999"));
    assert_eq!(route(&t, "app-10000.route.example.com", "/"), None);
}

#[test]
fn normalize_host_rejects_junk() {
    let mut buf = [0u8; 256];
    assert_eq!(normalize_host(b"", &mut buf), None);
    assert_eq!(normalize_host(b"a b", &mut buf), None);
    assert_eq!(normalize_host(&[b'a'; 300], &mut buf), None);
    assert_eq!(normalize_host(b"A.B:1", &mut buf), Some("a.b"));
}
