//! The serde model of Traefik's dynamic configuration (the part wh-proxy understands).
//!
//! Unknown fields are ignored, as Traefik's providers do, so a control plane may send more than
//! we use. A document that does not parse at all is an error and changes nothing; problems inside
//! a router are reported per router at compile time instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    #[serde(default)]
    pub http: Http,
    /// The syntax of routers without `ruleSyntax` (a setting of the proxy, not of the document).
    #[serde(skip)]
    pub default_syntax: super::rule::Syntax,
    /// Which entry point names the proxy's listeners stand for (a setting of the proxy).
    #[serde(skip)]
    pub entry_points: EntryPointNames,
}

/// The entry point names routers may give, for each of the proxy's two listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPointNames {
    /// The plain-HTTP listener (Traefik's `web`; Coolify's `http`).
    pub plain: Vec<String>,
    /// The TLS listener (`websecure`; `https`).
    pub tls: Vec<String>,
}

impl Default for EntryPointNames {
    fn default() -> Self {
        EntryPointNames {
            plain: vec!["web".into(), "http".into()],
            tls: vec!["websecure".into(), "https".into()],
        }
    }
}

/// `http:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Http {
    #[serde(default)]
    pub routers: BTreeMap<String, Router>,
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    #[serde(default)]
    pub middlewares: BTreeMap<String, Middleware>,
}

/// `http.routers.<name>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Router {
    #[serde(default)]
    pub rule: String,
    /// `v3` or `v2`; absent: the proxy's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "rulesyntax")]
    pub rule_syntax: Option<String>,
    #[serde(default)]
    pub service: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(alias = "entrypoints")]
    pub entry_points: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub middlewares: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// `tls:` of a router; its presence (even empty) means the router is served over HTTPS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "certresolver")]
    pub cert_resolver: Option<String>,
}

/// `http.services.<name>`; only `loadBalancer` is supported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "loadbalancer")]
    pub load_balancer: Option<LoadBalancer>,
}

/// `loadBalancer:` of a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    #[serde(default)]
    pub servers: Vec<Server>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "passhostheader")]
    pub pass_host_header: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "healthcheck")]
    pub health_check: Option<HealthCheck>,
    /// wh-proxy extension: how long to wait for the upstream's response headers (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "responseheadertimeout")]
    pub response_header_timeout: Option<String>,
}

/// One upstream server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// Active health check of a service's servers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    #[serde(default)]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// `http.middlewares.<name>`: exactly one of the supported kinds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Middleware {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "redirectscheme")]
    pub redirect_scheme: Option<RedirectScheme>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "stripprefix")]
    pub strip_prefix: Option<StripPrefix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "stripprefixregex")]
    pub strip_prefix_regex: Option<StripPrefixRegex>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "addprefix")]
    pub add_prefix: Option<AddPrefix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "replacepath")]
    pub replace_path: Option<ReplacePath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "replacepathregex")]
    pub replace_path_regex: Option<ReplacePathRegex>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "redirectregex")]
    pub redirect_regex: Option<RedirectRegex>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Chain>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "basicauth")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default, alias = "ratelimit", skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// `compress: {}` (or `true`, as labels write it) with its options.
    #[serde(default, deserialize_with = "compress_spec", skip_serializing_if = "Option::is_none")]
    pub compress: Option<Compress>,
    /// `ipWhiteList` is its Traefik v2 name.
    #[serde(default, alias = "ipWhiteList", skip_serializing_if = "Option::is_none")]
    #[serde(alias = "ipallowlist", alias = "ipwhitelist")]
    pub ip_allow_list: Option<IpAllowList>,
    /// Middlewares wh-proxy does not implement, kept to name them when a router is skipped.
    #[serde(flatten, default, skip_serializing)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average: Option<u64>,
    /// A duration (`1s`, `1m`) or a number of seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    #[serde(default, alias = "sourcecriterion", skip_serializing_if = "Option::is_none")]
    pub source_criterion: Option<SourceCriterion>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceCriterion {
    #[serde(default, alias = "ipstrategy", skip_serializing_if = "Option::is_none")]
    pub ip_strategy: Option<IpStrategy>,
    #[serde(default, alias = "requestheadername", skip_serializing_if = "Option::is_none")]
    pub request_header_name: Option<String>,
    #[serde(default, alias = "requesthost")]
    pub request_host: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compress {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(alias = "excludedcontenttypes")]
    pub excluded_content_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(alias = "includedcontenttypes")]
    pub included_content_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "minresponsebodybytes")]
    pub min_response_body_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encodings: Vec<String>,
}

/// `compress: true` is `compress: {}`; `false` is none.
fn compress_spec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Compress>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Spec {
        Flag(bool),
        Options(Compress),
    }
    Ok(match Option::<Spec>::deserialize(d)? {
        None | Some(Spec::Flag(false)) => None,
        Some(Spec::Flag(true)) => Some(Compress::default()),
        Some(Spec::Options(c)) => Some(c),
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "usersfile")]
    pub users_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    #[serde(default)]
    #[serde(alias = "removeheader")]
    pub remove_header: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "headerfield")]
    pub header_field: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StripPrefixRegex {
    #[serde(default)]
    pub regex: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AddPrefix {
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplacePath {
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplacePathRegex {
    #[serde(default)]
    pub regex: String,
    #[serde(default)]
    pub replacement: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RedirectRegex {
    #[serde(default)]
    pub regex: String,
    #[serde(default)]
    pub replacement: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    #[serde(default)]
    pub middlewares: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpAllowList {
    #[serde(default)]
    #[serde(alias = "sourcerange")]
    pub source_range: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "ipstrategy")]
    pub ip_strategy: Option<IpStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "rejectstatuscode")]
    pub reject_status_code: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    #[serde(default, rename = "excludedIPs", skip_serializing_if = "Vec::is_empty")]
    #[serde(alias = "excludedips")]
    pub excluded_ips: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RedirectScheme {
    #[serde(default)]
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Headers {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[serde(alias = "customrequestheaders")]
    pub custom_request_headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[serde(alias = "customresponseheaders")]
    pub custom_response_headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "stsseconds")]
    pub sts_seconds: Option<i64>,
    #[serde(default)]
    #[serde(alias = "stsincludesubdomains")]
    pub sts_include_subdomains: bool,
    #[serde(default)]
    #[serde(alias = "stspreload")]
    pub sts_preload: bool,
    /// STS on plain-HTTP responses too.
    #[serde(default, rename = "forceSTSHeader", alias = "forceStsHeader")]
    #[serde(alias = "forcestsheader")]
    pub force_sts_header: bool,
    #[serde(default)]
    pub frame_deny: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[serde(alias = "customframeoptionsvalue")]
    pub custom_frame_options_value: String,
    #[serde(default)]
    #[serde(alias = "contenttypenosniff")]
    pub content_type_nosniff: bool,
    #[serde(default)]
    #[serde(alias = "browserxssfilter")]
    pub browser_xss_filter: bool,
    #[serde(
        default,
        rename = "customBrowserXSSValue",
        alias = "customBrowserXssValue",
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(alias = "custombrowserxssvalue")]
    pub custom_browser_xss_value: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[serde(alias = "referrerpolicy")]
    pub referrer_policy: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[serde(alias = "permissionspolicy")]
    pub permissions_policy: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[serde(alias = "contentsecuritypolicy")]
    pub content_security_policy: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(alias = "accesscontrolalloworiginlist")]
    pub access_control_allow_origin_list: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(alias = "accesscontrolalloworiginlistregex")]
    pub access_control_allow_origin_list_regex: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(alias = "accesscontrolallowmethods")]
    pub access_control_allow_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(alias = "accesscontrolallowheaders")]
    pub access_control_allow_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(alias = "accesscontrolexposeheaders")]
    pub access_control_expose_headers: Vec<String>,
    #[serde(default)]
    #[serde(alias = "accesscontrolallowcredentials")]
    pub access_control_allow_credentials: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(alias = "accesscontrolmaxage")]
    pub access_control_max_age: Option<i64>,
    #[serde(default)]
    #[serde(alias = "addvaryheader")]
    pub add_vary_header: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StripPrefix {
    #[serde(default)]
    pub prefixes: Vec<String>,
}

/// Serialisation of a document on the wire or on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// Picks the format from a content type or file name; JSON unless it says YAML.
    pub fn detect(hint: &str) -> Format {
        let h = hint.to_ascii_lowercase();
        if h.contains("yaml") || h.ends_with(".yml") {
            Format::Yaml
        } else {
            Format::Json
        }
    }
}

/// Why a document was rejected as a whole.
#[derive(Debug, thiserror::Error)]
#[error("invalid dynamic configuration: {0}")]
pub struct ParseError(String);

impl Document {
    /// Parses a whole document. JSON input is also accepted when `Yaml` is given (YAML is a
    /// superset), and a YAML body sent as JSON is retried as YAML.
    pub fn parse(bytes: &[u8], format: Format) -> Result<Document, ParseError> {
        match format {
            Format::Json => serde_json::from_slice(bytes).or_else(|json_err| {
                serde_saphyr::from_slice(bytes).map_err(|_| ParseError(json_err.to_string()))
            }),
            Format::Yaml => serde_saphyr::from_slice(bytes).map_err(|e| ParseError(e.to_string())),
        }
    }

    /// Names of the routers, for the mass-removal guard.
    pub fn router_names(&self) -> impl Iterator<Item = &str> {
        self.http.routers.keys().map(String::as_str)
    }
}

/// Strips a `@provider` suffix from a reference (`app-foo@http` → `app-foo`).
pub fn local_name(reference: &str) -> &str {
    reference.split_once('@').map_or(reference, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_control_plane_example() {
        let doc = Document::parse(
            br#"{"http":{"routers":{"app-foo":{"entryPoints":["websecure"],
               "rule":"Host(`foo.route.example.com`) || Host(`www.customer.com`)",
               "service":"app-foo","tls":{"certResolver":"le"}}},
             "services":{"app-foo":{"loadBalancer":{"servers":[{"url":"http://10.50.0.12:31001"}],
               "passHostHeader":true}}}}}"#,
            Format::Json,
        )
        .unwrap();
        let r = &doc.http.routers["app-foo"];
        assert_eq!(r.service, "app-foo");
        assert_eq!(r.tls.as_ref().unwrap().cert_resolver.as_deref(), Some("le"));
        let lb = doc.http.services["app-foo"].load_balancer.as_ref().unwrap();
        assert_eq!(lb.servers[0].url, "http://10.50.0.12:31001");
    }

    #[test]
    fn yaml_parses_and_garbage_does_not() {
        let yaml = "http:\n  routers:\n    r:\n      rule: Host(`a.test`)\n      service: s\n  services:\n    s:\n      loadBalancer:\n        servers:\n          - url: http://127.0.0.1:1\n";
        let doc = Document::parse(yaml.as_bytes(), Format::Yaml).unwrap();
        assert_eq!(doc.http.routers["r"].rule, "Host(`a.test`)");
        assert!(Document::parse(b"{not json", Format::Json).is_err());
        assert!(Document::parse(b"[1,2]", Format::Json).is_err());
    }

    #[test]
    fn yaml_anchors_and_merge_keys_work_and_alias_bombs_are_refused() {
        // Hand-written Traefik files share settings with anchors and `<<` merge keys.
        let yaml = "x-lb: &lb\n  passHostHeader: false\n  servers:\n    - url: http://127.0.0.1:1\nhttp:\n  routers:\n    r:\n      rule: Host(`a.test`)\n      service: s\n  services:\n    s:\n      loadBalancer:\n        <<: *lb\n";
        let doc = Document::parse(yaml.as_bytes(), Format::Yaml).unwrap();
        let lb = doc.http.services["s"].load_balancer.as_ref().unwrap();
        assert_eq!(lb.servers[0].url, "http://127.0.0.1:1");
        // Nine levels of nine aliases each expand to 9^9 nodes: the parser's budget refuses it
        // instead of spending the memory.
        let aliases = |levels: usize| {
            let mut doc = String::from("a0: &a0 [x]\n");
            for level in 1..=levels {
                let prev = format!("*a{}", level - 1);
                let items = [prev.as_str(); 9].join(", ");
                doc.push_str(&format!("a{level}: &a{level} [{items}]\n"));
            }
            doc + "http: {}\n"
        };
        assert!(Document::parse(aliases(2).as_bytes(), Format::Yaml).is_ok());
        let refused = Document::parse(aliases(9).as_bytes(), Format::Yaml).unwrap_err();
        assert!(refused.to_string().contains("budget"), "{refused}");
    }

    #[test]
    fn provider_suffix_is_stripped() {
        assert_eq!(local_name("app-foo@http"), "app-foo");
        assert_eq!(local_name("plain"), "plain");
    }
}
