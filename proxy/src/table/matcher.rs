//! A compiled router rule: the rule's tree with host regexps compiled, evaluated per request.

use regex::Regex;

use crate::config::rule::Rule;

/// A compiled rule. Hosts are lower-case; the host handed to [`Matcher::matches`] is too.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Host(Box<str>),
    HostRegexp(Regex),
    Path(Box<str>),
    PathPrefix(Box<str>),
    And(Box<Matcher>, Box<Matcher>),
    Or(Box<Matcher>, Box<Matcher>),
    Not(Box<Matcher>),
}

impl Matcher {
    /// Compiles `rule`; fails only on an invalid host regexp.
    pub(crate) fn compile(rule: &Rule) -> Result<Matcher, MatcherError> {
        Ok(match rule {
            Rule::Host(h) => Matcher::Host(h.as_str().into()),
            Rule::HostRegexp(re) => Matcher::HostRegexp(host_regex(re)?),
            Rule::Path(p) => Matcher::Path(p.as_str().into()),
            Rule::PathPrefix(p) => Matcher::PathPrefix(p.as_str().into()),
            Rule::And(a, b) => {
                Matcher::And(Box::new(Self::compile(a)?), Box::new(Self::compile(b)?))
            }
            Rule::Or(a, b) => Matcher::Or(Box::new(Self::compile(a)?), Box::new(Self::compile(b)?)),
            Rule::Not(a) => Matcher::Not(Box::new(Self::compile(a)?)),
        })
    }

    pub(crate) fn matches(&self, host: &str, path: &str) -> bool {
        match self {
            Matcher::Host(h) => **h == *host,
            Matcher::HostRegexp(re) => re.is_match(host),
            Matcher::Path(p) => **p == *path,
            Matcher::PathPrefix(p) => path.starts_with(&**p),
            Matcher::And(a, b) => a.matches(host, path) && b.matches(host, path),
            Matcher::Or(a, b) => a.matches(host, path) || b.matches(host, path),
            Matcher::Not(a) => !a.matches(host, path),
        }
    }
}

/// A rule that parses but cannot be compiled.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MatcherError {
    #[error("invalid HostRegexp `{pattern}`: {source}")]
    HostRegexp { pattern: String, source: Box<regex::Error> },
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
        Rule::Host(h) => HostSet::Exact(vec![h.as_str().into()]),
        Rule::HostRegexp(re) => match literal_suffix(re) {
            Some(s) => HostSet::Suffix(vec![s.into()]),
            None => HostSet::Wildcard,
        },
        Rule::Path(_) | Rule::PathPrefix(_) | Rule::Not(_) => HostSet::Any,
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
    }
}

/// Translates Traefik v2's `{name:re}` / `{name}` syntax into a regex; v3 regexps pass through.
/// Matching is case-insensitive and, for the v2 form, anchored.
fn host_regex(pattern: &str) -> Result<Regex, MatcherError> {
    let source = match v2_to_regex(pattern) {
        Some(re) => re,
        None => pattern.to_owned(),
    };
    regex::RegexBuilder::new(&source)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| MatcherError::HostRegexp { pattern: pattern.into(), source: Box::new(e) })
}

fn v2_to_regex(pattern: &str) -> Option<String> {
    if !pattern.contains('{') {
        return None;
    }
    let mut out = String::from("^");
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&regex::escape(&rest[..open]));
        let close = rest[open..].find('}')? + open;
        let inner = &rest[open + 1..close];
        match inner.split_once(':') {
            Some((_, re)) => {
                out.push_str("(?:");
                out.push_str(re);
                out.push(')');
            }
            None => out.push_str("[^.]+"),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(&regex::escape(rest));
    out.push('$');
    Some(out)
}

/// The literal suffix after the first label, when a host regexp is "anything.literal":
/// `{sub:[a-z]+}.example.com` or `^[^.]+\.example\.com$` → `example.com`.
fn literal_suffix(pattern: &str) -> Option<String> {
    let after_first_label = if pattern.starts_with('{') {
        let close = pattern.find('}')?;
        pattern[close + 1..].strip_prefix('.')?
    } else {
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
            '\\' if pattern.starts_with('^') => match chars.next() {
                Some('.') => suffix.push('.'),
                _ => return None,
            },
            '.' if !pattern.starts_with('^') => suffix.push('.'),
            c if c.is_ascii_alphanumeric() || c == '-' => suffix.push(c.to_ascii_lowercase()),
            _ => return None,
        }
    }
    (!suffix.is_empty() && suffix.contains('.')).then_some(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rule::parse;

    fn m(rule: &str) -> Matcher {
        Matcher::compile(&parse(rule).unwrap()).unwrap()
    }

    #[test]
    fn v2_and_v3_host_regexps() {
        let v2 = m("HostRegexp(`{sub:[a-z0-9-]+}.apps.example.com`)");
        assert!(v2.matches("foo.apps.example.com", "/"));
        assert!(!v2.matches("foo.apps.example.com.evil.org", "/"));
        assert!(!v2.matches("apps.example.com", "/"));
        let v3 = m(r"HostRegexp(`^[^.]+\.apps\.example\.com$`)");
        assert!(v3.matches("bar.apps.example.com", "/"));
        assert!(!v3.matches("x.bar.apps.example.com", "/"));
        let v2_plain = m("HostRegexp(`{name}.example.org`)");
        assert!(v2_plain.matches("q.example.org", "/"));
    }

    #[test]
    fn host_sets() {
        let hs = |r: &str| host_set(&parse(r).unwrap());
        assert_eq!(hs("Host(`a`) || Host(`b`)"), HostSet::Exact(vec!["a".into(), "b".into()]));
        assert_eq!(hs("Host(`a`) && PathPrefix(`/x`)"), HostSet::Exact(vec!["a".into()]));
        assert_eq!(hs("PathPrefix(`/x`)"), HostSet::Any);
        assert_eq!(hs("Host(`a`) || PathPrefix(`/x`)"), HostSet::Any);
        assert_eq!(
            hs("HostRegexp(`{s:[a-z]+}.example.com`)"),
            HostSet::Suffix(vec!["example.com".into()])
        );
        assert_eq!(
            hs(r"HostRegexp(`^.+\.example\.com$`)"),
            HostSet::Suffix(vec!["example.com".into()])
        );
        assert_eq!(hs("HostRegexp(`^(a|b)\\.x\\.com$`)"), HostSet::Suffix(vec!["x.com".into()]));
        assert_eq!(hs("HostRegexp(`^a|b\\.x\\.com$`)"), HostSet::Wildcard);
        assert_eq!(hs("HostRegexp(`^[a-z]+\\.(x|y)\\.com$`)"), HostSet::Wildcard);
        assert_eq!(hs("!Host(`a`)"), HostSet::Any);
    }
}
