//! A compiled router rule: the rule's tree with its regexps compiled, evaluated per request
//! against a [`Request`] (borrowed parts of the request: nothing is allocated to match).

use std::net::IpAddr;

use regex::Regex;

use crate::config::rule::{Case, Cidr, HostPattern, PathPattern, Rule};

/// What a rule looks at, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Lower-case, without the port; empty when the request has none.
    pub host: &'a str,
    pub path: &'a str,
    pub method: &'a str,
    /// The raw query, without `?`.
    pub query: &'a str,
    pub headers: Option<&'a http::HeaderMap>,
    /// The address the connection came from.
    pub client_ip: Option<IpAddr>,
    /// It came in on the TLS listener.
    pub tls: bool,
    /// It came in on the plain listener of a proxy that also has a TLS one: routers served
    /// only over TLS still match, to be redirected there.
    pub redirect_to_tls: bool,
    /// The proxy has no TLS listener: the plain one serves every entry point.
    pub only_listener: bool,
}

impl<'a> Request<'a> {
    /// A request of only a host and a path, on a proxy's only listener (what most lookups
    /// and tests need).
    pub fn simple(host: &'a str, path: &'a str) -> Request<'a> {
        Request {
            host,
            path,
            method: "GET",
            query: "",
            headers: None,
            client_ip: None,
            tls: false,
            redirect_to_tls: false,
            only_listener: true,
        }
    }
}

/// A compiled rule. Hosts are lower-case; so is the host of the [`Request`].
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Host(Box<str>),
    HostOneLabel(Box<str>),
    AnyHost,
    HostRegexp(Regex),
    Path(Box<str>),
    PathPrefix(Box<str>),
    PathRegexp(Regex),
    Method(Box<[Box<str>]>),
    Header(http::HeaderName, Box<str>),
    HeaderRegexp(http::HeaderName, Regex),
    Query(Box<str>, Box<str>),
    QueryRegexp(Box<str>, Regex),
    ClientIP(Box<[Cidr]>),
    And(Box<Matcher>, Box<Matcher>),
    Or(Box<Matcher>, Box<Matcher>),
    Not(Box<Matcher>),
}

fn regex(pattern: &str, case: Case) -> Result<Regex, MatcherError> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(case == Case::Insensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| MatcherError::Regexp { pattern: pattern.into(), source: Box::new(e) })
}

/// Whether `host` (without a trailing dot) is one label followed by `.suffix`.
fn one_label(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len() + 1
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        && !host[..host.len() - suffix.len() - 1].contains('.')
}

/// Whether the raw `query` has `key` with a value for which `test` holds (percent-decoded
/// as Go's `url.ParseQuery` does; only a value that needs decoding is allocated).
fn query_has(query: &str, key: &str, test: impl Fn(&str) -> bool) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == key && test(&v))
}

impl Matcher {
    /// Compiles `rule`; fails only on a regexp the engine refuses (too large).
    pub(crate) fn compile(rule: &Rule) -> Result<Matcher, MatcherError> {
        Ok(match rule {
            Rule::Host(HostPattern::Exact(h)) => Matcher::Host(h.as_str().into()),
            Rule::Host(HostPattern::OneLabel(s)) => Matcher::HostOneLabel(s.as_str().into()),
            Rule::Host(HostPattern::Any) => Matcher::AnyHost,
            Rule::HostRegexp(re, case) => Matcher::HostRegexp(regex(re, *case)?),
            Rule::Path(PathPattern::Literal(p)) => Matcher::Path(p.as_str().into()),
            Rule::PathPrefix(PathPattern::Literal(p)) => Matcher::PathPrefix(p.as_str().into()),
            Rule::Path(PathPattern::Regex(re))
            | Rule::PathPrefix(PathPattern::Regex(re))
            | Rule::PathRegexp(re) => Matcher::PathRegexp(regex(re, Case::Sensitive)?),
            Rule::Method(m) => Matcher::Method(m.iter().map(|m| m.as_str().into()).collect()),
            Rule::Header(name, value) => Matcher::Header(header_name(name)?, value.as_str().into()),
            Rule::HeaderRegexp(name, re) => {
                Matcher::HeaderRegexp(header_name(name)?, regex(re, Case::Sensitive)?)
            }
            Rule::Query(k, v) => Matcher::Query(k.as_str().into(), v.as_str().into()),
            Rule::QueryRegexp(k, re) => {
                Matcher::QueryRegexp(k.as_str().into(), regex(re, Case::Sensitive)?)
            }
            Rule::ClientIP(c) => Matcher::ClientIP(c.clone().into_boxed_slice()),
            Rule::And(a, b) => {
                Matcher::And(Box::new(Self::compile(a)?), Box::new(Self::compile(b)?))
            }
            Rule::Or(a, b) => Matcher::Or(Box::new(Self::compile(a)?), Box::new(Self::compile(b)?)),
            Rule::Not(a) => Matcher::Not(Box::new(Self::compile(a)?)),
        })
    }

    /// Whether the rule matches a request with only `host` and `path`.
    #[cfg(test)]
    pub(crate) fn matches(&self, host: &str, path: &str) -> bool {
        self.eval(&Request::simple(host, path))
    }

    pub(crate) fn eval(&self, r: &Request<'_>) -> bool {
        let host = r.host.strip_suffix('.').unwrap_or(r.host);
        match self {
            Matcher::Host(h) => !host.is_empty() && **h == *host,
            Matcher::HostOneLabel(s) => one_label(host, s),
            Matcher::AnyHost => true,
            Matcher::HostRegexp(re) => re.is_match(r.host),
            Matcher::Path(p) => **p == *r.path,
            Matcher::PathPrefix(p) => r.path.starts_with(&**p),
            Matcher::PathRegexp(re) => re.is_match(r.path),
            Matcher::Method(m) => m.iter().any(|m| **m == *r.method),
            Matcher::Header(name, value) => r.headers.is_some_and(|h| {
                h.get_all(name).iter().any(|v| {
                    if value.is_empty() {
                        true
                    } else {
                        v.as_bytes() == value.as_bytes()
                    }
                })
            }),
            Matcher::HeaderRegexp(name, re) => r.headers.is_some_and(|h| {
                h.get_all(name).iter().any(|v| v.to_str().is_ok_and(|v| re.is_match(v)))
            }),
            Matcher::Query(k, v) => query_has(r.query, k, |x| x == &**v),
            Matcher::QueryRegexp(k, re) => query_has(r.query, k, |x| re.is_match(x)),
            Matcher::ClientIP(c) => r.client_ip.is_some_and(|ip| c.iter().any(|c| c.contains(ip))),
            Matcher::And(a, b) => a.eval(r) && b.eval(r),
            Matcher::Or(a, b) => a.eval(r) || b.eval(r),
            Matcher::Not(a) => !a.eval(r),
        }
    }
}

fn header_name(name: &str) -> Result<http::HeaderName, MatcherError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| MatcherError::Header { name: name.into() })
}

/// A rule that parses but cannot be compiled.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MatcherError {
    #[error("invalid regexp `{pattern}`: {source}")]
    Regexp { pattern: String, source: Box<regex::Error> },
    #[error("invalid header name `{name}`")]
    Header { name: String },
}

/// How a rule constrains the request's host, which decides the bucket its router goes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostSet {
    /// The rule can only match one of these exact hosts.
    Exact(Vec<Box<str>>),
    /// It can only match hosts ending in `.<suffix>` (one of these).
    Suffix(Vec<Box<str>>),
    /// It constrains the host with some other regexp.
    Wildcard,
    /// It does not constrain the host.
    Any,
}

/// The bucket for `rule`: which hosts can possibly match it.
pub(crate) fn host_set(rule: &Rule) -> HostSet {
    match rule {
        Rule::Host(HostPattern::Exact(h)) => HostSet::Exact(vec![h.as_str().into()]),
        Rule::Host(HostPattern::OneLabel(s)) => HostSet::Suffix(vec![s.as_str().into()]),
        Rule::Host(HostPattern::Any) => HostSet::Any,
        Rule::HostRegexp(re, _) => match literal_suffix(re) {
            Some(s) => HostSet::Suffix(vec![s.into()]),
            None => HostSet::Wildcard,
        },
        Rule::Or(a, b) => match (host_set(a), host_set(b)) {
            (HostSet::Exact(mut x), HostSet::Exact(y)) => {
                x.extend(y);
                HostSet::Exact(x)
            }
            (HostSet::Suffix(mut x), HostSet::Suffix(y)) => {
                x.extend(y);
                HostSet::Suffix(x)
            }
            (HostSet::Any, _) | (_, HostSet::Any) => HostSet::Any,
            _ => HostSet::Wildcard,
        },
        // A conjunction is at least as narrow as its narrowest side.
        Rule::And(a, b) => match (host_set(a), host_set(b)) {
            (x @ HostSet::Exact(_), _) | (_, x @ HostSet::Exact(_)) => x,
            (x @ HostSet::Suffix(_), _) | (_, x @ HostSet::Suffix(_)) => x,
            (HostSet::Any, HostSet::Any) => HostSet::Any,
            _ => HostSet::Wildcard,
        },
        _ => HostSet::Any,
    }
}

/// The literal suffix after the first label, when a host regexp is "anything.literal":
/// `{sub:[a-z]+}.example.com` or `^[^.]+\.example\.com$` → `example.com`.
fn literal_suffix(pattern: &str) -> Option<String> {
    let after_first_label = {
        let body = pattern.strip_prefix('^')?.strip_suffix('$')?;
        let dot = body.find(r"\.")?;
        // A top-level alternation in the first label (`^a|b\.x$`) escapes the suffix.
        let mut depth = 0i32;
        for c in body[..dot].chars() {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                '|' if depth == 0 => return None,
                _ => {}
            }
        }
        &body[dot + 2..]
    };
    let mut suffix = String::new();
    let mut chars = after_first_label.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('.') => suffix.push('.'),
                Some('-') => suffix.push('-'),
                _ => return None,
            },
            c if c.is_ascii_alphanumeric() || c == '-' => suffix.push(c.to_ascii_lowercase()),
            _ => return None,
        }
    }
    (!suffix.is_empty() && suffix.contains('.')).then_some(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rule::{parse, parse_with, Syntax};

    fn m(rule: &str) -> Matcher {
        Matcher::compile(&parse(rule).unwrap()).unwrap()
    }

    fn m2(rule: &str) -> Matcher {
        Matcher::compile(&parse_with(rule, Syntax::V2).unwrap()).unwrap()
    }

    #[test]
    fn v2_templates_and_v3_regexps() {
        let v2 = m2("HostRegexp(`{sub:[a-z0-9-]+}.apps.example.com`)");
        assert!(v2.matches("foo.apps.example.com", "/"));
        assert!(!v2.matches("foo.apps.example.com.evil.org", "/"));
        assert!(!v2.matches("apps.example.com", "/"));
        let nested = m2("HostRegexp(`{sub:[a-z]{2,3}}.example.com`)");
        assert!(nested.matches("ab.example.com", "/") && !nested.matches("abcd.example.com", "/"));
        let v3 = m(r"HostRegexp(`^[^.]+\.apps\.example\.com$`)");
        assert!(v3.matches("bar.apps.example.com", "/"));
        assert!(!v3.matches("x.bar.apps.example.com", "/"));
        // v3: unanchored and case-sensitive, over the lower-cased host.
        assert!(m("HostRegexp(`example`)").matches("www.example.org", "/"));
        assert!(!m("HostRegexp(`^EXAMPLE`)").matches("example.com", "/"));
    }

    #[test]
    fn hosts_wildcards_and_trailing_dots() {
        assert!(m("Host(`example.com.`)").matches("example.com", "/"));
        assert!(m("Host(`example.com`)").matches("example.com.", "/"));
        let w = m("Host(`*.example.com`)");
        assert!(w.matches("a.example.com", "/"));
        assert!(!w.matches("a.b.example.com", "/") && !w.matches("example.com", "/"));
        assert!(m("Host(`*`)").matches("anything", "/"));
    }

    #[test]
    fn request_matchers() {
        let mut headers = http::HeaderMap::new();
        headers.append("x-forwarded-proto", "http".parse().unwrap());
        headers.append("x-forwarded-proto", "https".parse().unwrap());
        let r = Request {
            host: "example.com",
            path: "/a",
            method: "POST",
            query: "q=traefik&mobile&x=a%20b",
            headers: Some(&headers),
            client_ip: Some("192.168.1.7".parse().unwrap()),
            tls: false,
            redirect_to_tls: false,
            only_listener: false,
        };
        for (rule, want) in [
            ("Header(`X-Forwarded-Proto`, `https`)", true),
            ("HeaderRegexp(`X-Forwarded-Proto`, `^ws`)", false),
            ("Method(`post`)", true),
            ("Query(`q`, `traefik`)", true),
            ("Query(`mobile`)", true),
            ("Query(`q`)", false),
            ("Query(`x`, `a b`)", true),
            ("QueryRegexp(`q`, `^tra`)", true),
            ("ClientIP(`192.168.1.0/24`)", true),
            ("ClientIP(`::1`)", false),
            ("PathRegexp(`^/[a-z]$`)", true),
        ] {
            assert_eq!(m(rule).eval(&r), want, "{rule}");
        }
    }

    #[test]
    fn host_sets() {
        let hs = |r: &str| host_set(&parse(r).unwrap());
        let hs2 = |r: &str| host_set(&parse_with(r, Syntax::V2).unwrap());
        assert_eq!(hs("Host(`a`) || Host(`b`)"), HostSet::Exact(vec!["a".into(), "b".into()]));
        assert_eq!(hs("Host(`a`) && PathPrefix(`/x`)"), HostSet::Exact(vec!["a".into()]));
        assert_eq!(hs("PathPrefix(`/x`)"), HostSet::Any);
        assert_eq!(hs("Host(`a`) || PathPrefix(`/x`)"), HostSet::Any);
        assert_eq!(hs("Host(`*.example.com`)"), HostSet::Suffix(vec!["example.com".into()]));
        assert_eq!(hs("Host(`*`)"), HostSet::Any);
        assert_eq!(
            hs2("HostRegexp(`{s:[a-z]+}.example.com`)"),
            HostSet::Suffix(vec!["example.com".into()])
        );
        assert_eq!(
            hs(r"HostRegexp(`^.+\.example\.com$`)"),
            HostSet::Suffix(vec!["example.com".into()])
        );
        assert_eq!(hs("HostRegexp(`^(a|b)\\.x\\.com$`)"), HostSet::Suffix(vec!["x.com".into()]));
        assert_eq!(hs("HostRegexp(`^a|b\\.x\\.com$`)"), HostSet::Wildcard);
        assert_eq!(hs("HostRegexp(`^[a-z]+\\.(x|y)\\.com$`)"), HostSet::Wildcard);
        assert_eq!(hs("HostRegexp(`example.com`)"), HostSet::Wildcard, "v3 is unanchored");
        assert_eq!(hs("!Host(`a`)"), HostSet::Any);
    }
}
