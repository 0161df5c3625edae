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
        // v3: a Go regexp (a v2 template is v2's: `ruleSyntax: v2`, tests/traefik.rs).
        ("wild", r"HostRegexp(`^[a-z0-9-]+\.apps\.test$`)", None),
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

mod incremental {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::config::dynamic::{
        self, Headers, LoadBalancer, Middleware as MiddlewareDef, Router, Server,
        Service as ServiceDef,
    };

    fn router(rule: &str, service: &str, middlewares: &[&str]) -> Router {
        Router {
            rule: rule.into(),
            service: service.into(),
            middlewares: middlewares.iter().map(|m| m.to_string()).collect(),
            ..Router::default()
        }
    }

    fn service(url: &str) -> ServiceDef {
        ServiceDef {
            load_balancer: Some(LoadBalancer {
                servers: vec![Server { url: url.into(), weight: None }],
                ..LoadBalancer::default()
            }),
        }
    }

    fn header_mw(value: &str) -> MiddlewareDef {
        MiddlewareDef {
            headers: Some(Headers {
                custom_request_headers: BTreeMap::from([("x-v".to_owned(), value.to_owned())]),
                ..Headers::default()
            }),
            ..MiddlewareDef::default()
        }
    }

    fn document(
        routers: &[(&str, Router)],
        services: &[(&str, ServiceDef)],
        middlewares: &[(&str, MiddlewareDef)],
    ) -> Arc<Document> {
        let mut doc = Document::default();
        doc.http.routers = routers.iter().map(|(n, r)| (n.to_string(), r.clone())).collect();
        doc.http.services = services.iter().map(|(n, s)| (n.to_string(), s.clone())).collect();
        doc.http.middlewares =
            middlewares.iter().map(|(n, m)| (n.to_string(), m.clone())).collect();
        Arc::new(doc)
    }

    fn by_name<'t>(t: &'t Table, name: &str) -> &'t Arc<Route> {
        t.routes().iter().find(|r| &*r.name == name).unwrap()
    }

    #[test]
    fn only_changed_routers_services_and_middlewares_are_compiled_again() {
        let (metrics, health) = (Arc::new(Metrics::default()), HealthRegistry::default());
        let old = document(
            &[
                ("a", router("Host(`a.test`)", "sa", &[])),
                ("b", router("Host(`b.test`)", "sb", &[])),
                ("c", router("Host(`c.test`)", "sc", &["mw"])),
                ("d", router("Host(`d.test`)", "sc", &[])),
                ("f", router("Host(`f.test`)", "sa", &[])),
                ("skipped", router("Host(`s.test`)", "missing", &[])),
            ],
            &[
                ("sa", service("http://127.0.0.1:1")),
                ("sb", service("http://127.0.0.1:2")),
                ("sc", service("http://127.0.0.1:3")),
            ],
            &[("mw", header_mw("1"))],
        );
        let t1 = compile(old, 1, &metrics, &health);
        assert_eq!(t1.len(), 5);
        let new = document(
            &[
                ("a", router("Host(`a2.test`)", "sa", &[])), // rule changed
                ("b", router("Host(`b.test`)", "sb", &[])),  // its service changed
                ("c", router("Host(`c.test`)", "sc", &["mw"])), // its middleware changed
                ("d", router("Host(`d.test`)", "sc", &[])),  // nothing changed
                ("e", router("Host(`e.test`)", "sc", &[])),  // new, on an unchanged service
                ("skipped", router("Host(`s.test`)", "missing", &[])), // now compiles
            ],
            &[
                ("sa", service("http://127.0.0.1:1")),
                ("sb", service("http://127.0.0.1:20")),
                ("sc", service("http://127.0.0.1:3")),
                ("missing", service("http://127.0.0.1:4")),
            ],
            &[("mw", header_mw("2"))],
        );
        let t2 = recompile(new, 2, &metrics, &health, &t1);
        assert_eq!(t2.generation, 2);
        assert!(t2.warnings.is_empty(), "{:?}", t2.warnings);
        let names: Vec<&str> = t2.routes().iter().map(|r| &*r.name).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e", "skipped"]);

        assert!(Arc::ptr_eq(by_name(&t1, "d"), by_name(&t2, "d")));
        for changed in ["a", "b", "c"] {
            assert!(!Arc::ptr_eq(by_name(&t1, changed), by_name(&t2, changed)), "{changed}");
        }
        // An unchanged service stays one object, its load-balancing state with it; a changed
        // one is new. A router compiled again keeps its metrics.
        assert!(Arc::ptr_eq(&by_name(&t2, "e").service, &by_name(&t1, "d").service));
        assert!(Arc::ptr_eq(&by_name(&t2, "a").service, &by_name(&t1, "a").service));
        assert_eq!(&*by_name(&t2, "b").service.servers[0].url, "http://127.0.0.1:20");
        assert!(Arc::ptr_eq(&by_name(&t2, "c").metrics, &by_name(&t1, "c").metrics));

        let hit = |t: &Table, host: &str| t.lookup(host, "/").map(|r| r.name.to_string());
        assert_eq!(hit(&t2, "a.test"), None);
        assert_eq!(hit(&t2, "a2.test").as_deref(), Some("a"));
        assert_eq!(hit(&t2, "d.test").as_deref(), Some("d"));
        assert_eq!(hit(&t2, "e.test").as_deref(), Some("e"));
        assert_eq!(hit(&t2, "f.test"), None);
        assert_eq!(hit(&t2, "s.test").as_deref(), Some("skipped"));
        assert!(t2.tls_hosts().next().is_none());

        // The removed router's metrics go once no table holds them.
        drop(t1);
        metrics.prune_routes();
        assert!(!metrics.render(None).contains("router=\"f\""));
        assert!(metrics.render(None).contains("router=\"d\""));
    }

    const HOSTS: [&str; 4] = ["h0.test", "h1.test", "x.h2.test", "h3.test"];

    fn arb_router() -> impl Strategy<Value = Router> {
        let rule = prop::sample::select(vec![
            "Host(`h0.test`)",
            "Host(`h1.test`) || Host(`h0.test`)",
            "Host(`h1.test`) && PathPrefix(`/api`)",
            "HostRegexp(`{s:[a-z]+}.h2.test`)",
            "HostRegexp(`^h[0-3]\\.test$`)",
            "PathPrefix(`/api`)",
            "Host(`h3",
        ]);
        let service = prop::sample::select(vec!["s0", "s1", "s2@file", "gone"]);
        let middlewares = prop::sample::subsequence(vec!["m0", "m1"], 0..=2);
        (rule, service, middlewares, prop::option::of(0i64..3)).prop_map(
            |(rule, service, middlewares, priority)| Router {
                priority,
                ..router(rule, service, &middlewares)
            },
        )
    }

    fn arb_document() -> impl Strategy<Value = Arc<Document>> {
        let names = ["r0", "r1", "r2", "r3", "r4"];
        let routers =
            prop::collection::btree_map(prop::sample::select(names.to_vec()), arb_router(), 0..5);
        let url = prop::sample::select(vec!["http://127.0.0.1:1", "http://127.0.0.1:2", "ftp://x"]);
        let services = prop::collection::btree_map(
            prop::sample::select(vec!["s0", "s1", "s2"]),
            url.prop_map(service),
            0..3,
        );
        let middlewares = prop::collection::btree_map(
            prop::sample::select(vec!["m0", "m1"]),
            prop::sample::select(vec!["1", "2"]).prop_map(header_mw),
            0..2,
        );
        (routers, services, middlewares).prop_map(|(r, s, m)| {
            let mut doc = Document::default();
            doc.http.routers = r.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            doc.http.services = s.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            doc.http.middlewares = m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            Arc::new(doc)
        })
    }

    /// `b`, with each router, service and middleware taken from `a` instead where `keep` says
    /// so: a next document that shares much with the previous one, as real updates do.
    fn mix(a: &Document, b: &Document, keep: &[bool]) -> Arc<Document> {
        let mut bits = keep.iter().cycle();
        fn pick<V: Clone>(
            a: &BTreeMap<String, V>,
            b: &BTreeMap<String, V>,
            bits: &mut dyn Iterator<Item = &bool>,
        ) -> BTreeMap<String, V> {
            let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            names
                .into_iter()
                .filter_map(|n| {
                    let from = if *bits.next().unwrap() { a } else { b };
                    from.get(n).map(|v| (n.clone(), v.clone()))
                })
                .collect()
        }
        let mut doc = Document::default();
        doc.http.routers = pick(&a.http.routers, &b.http.routers, &mut bits);
        doc.http.services = pick(&a.http.services, &b.http.services, &mut bits);
        doc.http.middlewares = pick(&a.http.middlewares, &b.http.middlewares, &mut bits);
        Arc::new(doc)
    }

    /// Everything a request could observe of a table.
    fn observe(t: &Table) -> Vec<String> {
        let mut out: Vec<String> = t.warnings.to_vec();
        for r in t.routes() {
            let servers: Vec<&str> = r.service.servers.iter().map(|s| &*s.url).collect();
            out.push(format!(
                "{} {} {} {} {:?} {:?}",
                r.name, r.rule, r.priority, r.service.name, servers, r.middlewares
            ));
        }
        for host in HOSTS {
            for path in ["/", "/api/x"] {
                let hit = t.lookup(host, path).map(|r| r.name.to_string());
                out.push(format!("{host}{path} -> {hit:?}"));
            }
        }
        out
    }

    proptest! {
        /// Whatever the previous document was, recompiling gives the table compiling from
        /// scratch gives, and every route it reused is defined exactly as the new document says.
        #[test]
        fn recompiling_equals_compiling_from_scratch(
            a in arb_document(),
            b in arb_document(),
            keep in prop::collection::vec(any::<bool>(), 1..16),
        ) {
            let b = mix(&a, &b, &keep);
            let (metrics, health) = (Metrics::default(), HealthRegistry::default());
            let previous = compile(a, 1, &metrics, &health);
            let scratch = compile(b.clone(), 2, &Metrics::default(), &HealthRegistry::default());
            let incremental = recompile(b.clone(), 2, &metrics, &health, &previous);
            prop_assert_eq!(observe(&incremental), observe(&scratch));
            for r in incremental.routes() {
                let def = &b.http.routers[&*r.name];
                prop_assert_eq!(&*r.rule, def.rule.as_str());
                prop_assert_eq!(&*r.service.name, dynamic::local_name(&def.service));
                let lb = b.http.services[&*r.service.name].load_balancer.as_ref().unwrap();
                prop_assert_eq!(&*r.service.servers[0].url, lb.servers[0].url.as_str());
            }
        }
    }
}

#[test]
fn entry_points_pick_the_listener() {
    let json = r#"{"http":{"routers":{
        "plain":{"rule":"Host(`a.test`)","entryPoints":["web"],"service":"svc"},
        "secure":{"rule":"Host(`b.test`)","entryPoints":["https"],"service":"svc","tls":{}},
        "both":{"rule":"Host(`c.test`)","service":"svc"},
        "nowhere":{"rule":"Host(`d.test`)","entryPoints":["metrics"],"service":"svc"}},
      "services":{"svc":{"loadBalancer":{"servers":[{"url":"http://127.0.0.1:9"}]}}}}}"#;
    let t = table(json);
    let on = |host: &str, tls: bool, redirect_to_tls: bool| {
        let mut req = matcher::Request::simple(host, "/");
        req.tls = tls;
        req.redirect_to_tls = redirect_to_tls;
        req.only_listener = false;
        t.lookup_request(&req).map(|r| &*r.name)
    };
    assert_eq!(on("a.test", false, false), Some("plain"));
    assert_eq!(on("a.test", true, false), None, "web only");
    assert_eq!(on("b.test", true, false), Some("secure"));
    assert_eq!(on("b.test", false, false), None, "https only, and no TLS listener to go to");
    assert_eq!(on("b.test", false, true), Some("secure"), "matched, to be redirected to HTTPS");
    assert_eq!(
        (on("c.test", false, false), on("c.test", true, false)),
        (Some("both"), Some("both"))
    );
    assert!(
        t.warnings.iter().any(|w| w.contains("nowhere") && w.contains("entryPoints metrics")),
        "{:?}",
        t.warnings
    );
}
