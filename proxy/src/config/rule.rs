//! The router rule language, as Traefik writes it, in both of Traefik's syntaxes.
//!
//! ```text
//! expr    := or
//! or      := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | "(" expr ")" | matcher
//! matcher := NAME "(" [string ("," string)*] ")"
//! string  := `raw` | "Go string with \escapes"
//! ```
//!
//! Matcher names are case-insensitive. **v3** (the default): `Host`, `HostRegexp`, `Path`,
//! `PathPrefix`, `PathRegexp`, `Method` and `ClientIP` take one argument, `Header` and
//! `HeaderRegexp` two, `Query` and `QueryRegexp` one or two; `Host(`*.example.com`)` matches
//! one label, `Host(`*`)` every host; regexps are Go's, unanchored, matched against the
//! lower-cased host. **v2** (`ruleSyntax: v2`): `Host`/`HostHeader`, `HostRegexp`, `Path`,
//! `PathPrefix`, `Method` and `ClientIP` take any number of arguments (any of them), `Headers`
//! and `HeadersRegexp` a name and a value, `Query` `key=value` pairs; `HostRegexp`, `Path`,
//! `PathPrefix` and `Query` values are gorilla/mux templates (`{name:regexp}`, braces nest), the
//! rest literal. Arguments are checked as Traefik checks them (ASCII hosts, paths starting with
//! `/`, valid CIDRs and regexps). Everything is decided here, so the request path only
//! compares. The parser is total: any input yields a rule or a [`RuleError`] naming the
//! position and the problem, never a panic.

use std::fmt;

/// Which of Traefik's rule syntaxes a router's rule is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Syntax {
    #[default]
    V3,
    V2,
}

impl Syntax {
    /// `v3` or `v2` (a router's `ruleSyntax`, or the default setting).
    pub fn parse(word: &str) -> Option<Syntax> {
        match word.to_ascii_lowercase().as_str() {
            "v3" => Some(Syntax::V3),
            "v2" => Some(Syntax::V2),
            _ => None,
        }
    }
}

/// What a `Host` argument matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// This host (lower-case, without a trailing dot).
    Exact(String),
    /// `*.<suffix>`: one label, then the suffix.
    OneLabel(String),
    /// `*`: every request that has a host.
    Any,
}

/// A `Path`/`PathPrefix` argument: a literal, or (v2 templates) a regexp, anchored at the start
/// (and for `Path` at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Literal(String),
    Regex(String),
}

/// An IPv4 or IPv6 range of a `ClientIP` argument (a bare address is a /32 or /128): the
/// workspace's one address-range type.
pub use wh_wsproto::addr::Cidr;

/// How a regexp of a rule is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Sensitive,
    Insensitive,
}

/// A parsed rule. Regexps are in the `regex` crate's syntax already (Go's translated), so
/// compiling them cannot change their meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Host(HostPattern),
    HostRegexp(String, Case),
    Path(PathPattern),
    PathPrefix(PathPattern),
    PathRegexp(String),
    /// Upper-case methods, any of them.
    Method(Vec<String>),
    /// A header (lower-case name) with exactly this value among its values; an empty value
    /// (v2) only asks for the header.
    Header(String, String),
    HeaderRegexp(String, String),
    /// A query parameter with this value among its values (v3 `Query(`k`)`: the empty value).
    Query(String, String),
    /// A query parameter with a value matching the regexp.
    QueryRegexp(String, String),
    ClientIP(Vec<Cidr>),
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
    Not(Box<Rule>),
}

/// Why a rule did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule error at byte {at}: {what}")]
pub struct RuleError {
    pub at: usize,
    pub what: String,
}

/// Rules nest at most this deep, so a hostile config cannot overflow the stack.
const MAX_DEPTH: usize = 64;
/// The longest regexp source a rule may compile to (Traefik has no limit; ours bounds memory).
const MAX_PATTERN: usize = 4096;

/// Parses `input` in v3 syntax.
pub fn parse(input: &str) -> Result<Rule, RuleError> {
    parse_with(input, Syntax::V3)
}

/// Parses `input` in `syntax`.
pub fn parse_with(input: &str, syntax: Syntax) -> Result<Rule, RuleError> {
    let mut p = Parser { s: input.as_bytes(), pos: 0, depth: 0, syntax };
    let rule = p.or()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(p.err("unexpected trailing input"));
    }
    Ok(rule)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
    syntax: Syntax,
}

impl Parser<'_> {
    fn err(&self, what: impl Into<String>) -> RuleError {
        RuleError { at: self.pos, what: what.into() }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.skip_ws();
        if self.s[self.pos..].starts_with(tok.as_bytes()) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Rule, RuleError> {
        let mut left = self.and()?;
        while self.eat("||") {
            let right = self.and()?;
            left = Rule::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Rule, RuleError> {
        let mut left = self.unary()?;
        while self.eat("&&") {
            let right = self.unary()?;
            left = Rule::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Rule, RuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("rule nests too deeply"));
        }
        let r = if self.eat("!") {
            self.unary().map(|r| Rule::Not(Box::new(r)))
        } else if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.err("expected `)`"));
            }
            Ok(inner)
        } else {
            self.matcher()
        };
        self.depth -= 1;
        r
    }

    fn matcher(&mut self) -> Result<Rule, RuleError> {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_alphanumeric() {
            self.pos += 1;
        }
        let name = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("").to_owned();
        if name.is_empty() {
            return Err(self.err("expected a matcher such as Host(`example.com`)"));
        }
        if !self.eat("(") {
            return Err(self.err(format!("expected `(` after {name}")));
        }
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push(self.string()?);
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return Err(self.err(format!("expected `,` or `)` in {name}(")));
                }
            }
        }
        let at = start;
        let bad = |what: String| RuleError { at, what: format!("{name}: {what}") };
        match self.syntax {
            Syntax::V3 => v3(&name, args).map_err(bad),
            Syntax::V2 => v2(&name, args).map_err(bad),
        }
    }

    fn string(&mut self) -> Result<String, RuleError> {
        self.skip_ws();
        match self.s.get(self.pos) {
            Some(b'`') => {
                let start = self.pos + 1;
                let len = self.s[start..]
                    .iter()
                    .position(|&c| c == b'`')
                    .ok_or_else(|| self.err("unterminated string"))?;
                self.pos = start + len + 1;
                std::str::from_utf8(&self.s[start..start + len])
                    .map(str::to_owned)
                    .map_err(|_| self.err("argument is not UTF-8"))
            }
            Some(b'"') => {
                let start = self.pos + 1;
                let mut end = start;
                loop {
                    match self.s.get(end) {
                        None => return Err(self.err("unterminated string")),
                        Some(b'"') => break,
                        Some(b'\\') => end += 2,
                        Some(_) => end += 1,
                    }
                }
                let raw = &self.s[start..end.min(self.s.len())];
                self.pos = end + 1;
                go_unquote(raw).map_err(|what| RuleError { at: start, what })
            }
            _ => Err(self.err("expected a `quoted` or \"quoted\" argument")),
        }
    }
}

/// The value of a Go interpreted string literal's body (`\n`, `\t`, `\"`, `\\`, `\xHH`,
/// `\uHHHH`, `\UHHHHHHHH`, octal `\NNN`, …).
fn go_unquote(raw: &[u8]) -> Result<String, String> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    let hex =
        |s: &[u8]| -> Option<u32> { u32::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok() };
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            if c == b'\n' {
                return Err("a line break in a \"string\"".into());
            }
            out.push(c);
            i += 1;
            continue;
        }
        let esc = *raw.get(i + 1).ok_or("a `\\` at the end of a string")?;
        i += 2;
        let simple = match esc {
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\\' => Some(b'\\'),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let (len, radix_char) = match esc {
            b'x' => (2, true),
            b'u' => (4, true),
            b'U' => (8, true),
            b'0'..=b'7' => (2, false),
            other => return Err(format!("unknown escape `\\{}`", other as char)),
        };
        let digits = raw.get(i..i + len).ok_or("a short escape")?;
        i += len;
        if !radix_char {
            let text = [&[esc][..], digits].concat();
            let v = u32::from_str_radix(std::str::from_utf8(&text).unwrap_or("x"), 8)
                .map_err(|_| "an invalid octal escape".to_string())?;
            out.push(u8::try_from(v).map_err(|_| "an octal escape over 255".to_string())?);
        } else if esc == b'x' {
            out.push(hex(digits).ok_or("an invalid \\x escape")? as u8);
        } else {
            let ch = hex(digits).and_then(char::from_u32).ok_or("an invalid \\u escape")?;
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
    }
    String::from_utf8(out).map_err(|_| "the string is not UTF-8".into())
}

fn count(args: &[String], allowed: &[usize]) -> Result<(), String> {
    if allowed.contains(&args.len()) {
        Ok(())
    } else {
        let want: Vec<String> = allowed.iter().map(|n| n.to_string()).collect();
        Err(format!("got {} arguments, expected {}", args.len(), want.join(" or ")))
    }
}

fn ascii_host(h: &str) -> Result<(), String> {
    if h.is_empty() {
        return Err("an empty host".into());
    }
    if !h.is_ascii() {
        return Err(format!("`{h}` is not ASCII (use its punycode form)"));
    }
    Ok(())
}

fn path_arg(p: &str) -> Result<(), String> {
    if p.starts_with('/') {
        Ok(())
    } else {
        Err(format!("path `{p}` does not start with `/`"))
    }
}

fn cidrs(args: &[String]) -> Result<Vec<Cidr>, String> {
    args.iter()
        .map(|a| Cidr::parse(a.trim()).ok_or_else(|| format!("`{a}` is not an IP address or CIDR")))
        .collect()
}

/// A Go regexp in the `regex` crate's syntax (a `{` that starts no repetition is literal in
/// Go, an error here), checked to compile.
pub fn go_regex(pattern: &str) -> Result<String, String> {
    let b = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' => {
                let end = (i + 2).min(b.len());
                out.push_str(&pattern[i..end]);
                i = end;
                continue;
            }
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'{' if !in_class => {
                // `{n}`, `{n,}`, `{n,m}` after something to repeat: a repetition, copied whole.
                let rest = &pattern[i + 1..];
                let rep = rest.find('}').filter(|&c| {
                    let inner = &rest[..c];
                    let (a, z) = inner.split_once(',').unwrap_or((inner, "0"));
                    i > 0
                        && !a.is_empty()
                        && a.bytes().all(|x| x.is_ascii_digit())
                        && z.bytes().all(|x| x.is_ascii_digit())
                });
                match rep {
                    Some(c) => {
                        out.push_str(&pattern[i..i + c + 2]);
                        i += c + 2;
                    }
                    None => {
                        out.push_str("\\{");
                        i += 1;
                    }
                }
                continue;
            }
            b'}' if !in_class => {
                out.push_str("\\}");
                i += 1;
                continue;
            }
            _ => {}
        }
        let ch = pattern[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    if out.len() > MAX_PATTERN {
        return Err(format!("a regexp longer than {MAX_PATTERN} bytes"));
    }
    regex_syntax::Parser::new()
        .parse(&out)
        .map_err(|e| format!("invalid regexp `{pattern}`: {}", first_line(&e.to_string())))?;
    Ok(out)
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_owned()
}

/// `Header`/`HeaderRegexp` (v3) and `Headers`/`HeadersRegexp` (v2): a header name and a
/// value (a Go regexp when `regexp`).
fn header(mut args: Vec<String>, regexp: bool) -> Result<Rule, String> {
    count(&args, &[2])?;
    if args[0].is_empty() || args[1].is_empty() {
        return Err("a header name and a value".into());
    }
    let name = args[0].to_ascii_lowercase();
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("`{}` is not a header name", args[0]));
    }
    let value = args.remove(1);
    Ok(if regexp { Rule::HeaderRegexp(name, go_regex(&value)?) } else { Rule::Header(name, value) })
}

fn v3(name: &str, mut args: Vec<String>) -> Result<Rule, String> {
    let lower = name.to_ascii_lowercase();
    let one = |args: &[String]| count(args, &[1]);
    Ok(match lower.as_str() {
        "host" => {
            one(&args)?;
            let h = args.remove(0);
            if h == "*" {
                Rule::Host(HostPattern::Any)
            } else {
                ascii_host(&h)?;
                let h = h.to_ascii_lowercase();
                let h = h.strip_suffix('.').map(str::to_owned).unwrap_or(h);
                match h.strip_prefix("*.") {
                    Some(rest) if !rest.is_empty() => {
                        Rule::Host(HostPattern::OneLabel(rest.into()))
                    }
                    _ => Rule::Host(HostPattern::Exact(h)),
                }
            }
        }
        "hostregexp" => {
            one(&args)?;
            ascii_host(&args[0])?;
            Rule::HostRegexp(go_regex(&args[0])?, Case::Sensitive)
        }
        "path" | "pathprefix" => {
            one(&args)?;
            path_arg(&args[0])?;
            let p = PathPattern::Literal(args.remove(0));
            if lower == "path" {
                Rule::Path(p)
            } else {
                Rule::PathPrefix(p)
            }
        }
        "pathregexp" => {
            one(&args)?;
            if args[0].is_empty() {
                return Err("an empty regexp".into());
            }
            Rule::PathRegexp(go_regex(&args[0])?)
        }
        "method" => {
            one(&args)?;
            if args[0].is_empty() {
                return Err("an empty method".into());
            }
            Rule::Method(vec![args[0].to_ascii_uppercase()])
        }
        "header" => header(args, false)?,
        "headerregexp" => header(args, true)?,
        "query" | "queryregexp" => {
            count(&args, &[1, 2])?;
            if args[0].is_empty() {
                return Err("an empty query parameter name".into());
            }
            if args.len() == 2 && args[1].is_empty() {
                return Err("an empty value (leave it out to match a parameter without one)".into());
            }
            let key = args.remove(0);
            match (lower.as_str(), args.pop()) {
                ("queryregexp", Some(re)) => Rule::QueryRegexp(key, go_regex(&re)?),
                (_, value) => Rule::Query(key, value.unwrap_or_default()),
            }
        }
        "clientip" => {
            one(&args)?;
            Rule::ClientIP(cidrs(&args)?)
        }
        "headers" | "headersregexp" | "hostheader" => {
            return Err(format!(
                "{name} is v2 syntax (use ruleSyntax: v2, or Header/HeaderRegexp/Host)"
            ))
        }
        _ => return Err("unsupported matcher".into()),
    })
}

/// Any of `alternatives`.
fn any(mut alternatives: Vec<Rule>) -> Rule {
    let mut rule = alternatives.remove(0);
    for alt in alternatives {
        rule = Rule::Or(Box::new(rule), Box::new(alt));
    }
    rule
}

/// A gorilla/mux template (`{name}` or `{name:regexp}`, braces nesting in the regexp) as a
/// regexp anchored at the start, and at the end when `whole`; `default` is the pattern of a
/// variable without one.
pub fn gorilla_template(tpl: &str, default: &str, whole: bool) -> Result<String, String> {
    let mut out = String::from("^");
    let mut rest = tpl;
    while let Some(open) = rest.find('{') {
        out.push_str(&regex_syntax::escape(&rest[..open]));
        let mut depth = 0usize;
        let mut close = None;
        for (i, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(open + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let close = close.ok_or_else(|| format!("unbalanced braces in `{tpl}`"))?;
        let inner = &rest[open + 1..close];
        let (var, pattern) = match inner.split_once(':') {
            Some((v, p)) => (v, p),
            None => (inner, default),
        };
        if var.is_empty() && pattern.is_empty() {
            return Err(format!("an empty variable in `{tpl}`"));
        }
        out.push_str("(?:");
        out.push_str(&go_regex(pattern)?);
        out.push(')');
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("unbalanced braces in `{tpl}`"));
    }
    out.push_str(&regex_syntax::escape(rest));
    if whole {
        out.push('$');
    }
    if out.len() > MAX_PATTERN {
        return Err(format!("a template longer than {MAX_PATTERN} bytes"));
    }
    regex_syntax::Parser::new()
        .parse(&out)
        .map_err(|e| format!("invalid template `{tpl}`: {}", first_line(&e.to_string())))?;
    Ok(out)
}

fn v2(name: &str, args: Vec<String>) -> Result<Rule, String> {
    let lower = name.to_ascii_lowercase();
    let some = |args: &[String]| {
        if args.is_empty() || args.iter().any(|a| a.is_empty()) {
            Err("at least one non-empty argument".to_string())
        } else {
            Ok(())
        }
    };
    Ok(match lower.as_str() {
        "host" | "hostheader" => {
            some(&args)?;
            let mut alts = Vec::new();
            for h in &args {
                ascii_host(h)?;
                let h = h.to_ascii_lowercase();
                alts.push(Rule::Host(HostPattern::Exact(
                    h.strip_suffix('.').map(str::to_owned).unwrap_or(h),
                )));
            }
            any(alts)
        }
        "hostregexp" => {
            some(&args)?;
            let mut alts = Vec::new();
            for h in &args {
                ascii_host(h)?;
                alts.push(Rule::HostRegexp(gorilla_template(h, "[^.]+", true)?, Case::Insensitive));
            }
            any(alts)
        }
        "path" | "pathprefix" => {
            some(&args)?;
            let mut alts = Vec::new();
            for p in &args {
                path_arg(p)?;
                let pattern = if p.contains('{') {
                    PathPattern::Regex(gorilla_template(p, "[^/]+", lower == "path")?)
                } else {
                    PathPattern::Literal(p.clone())
                };
                alts.push(if lower == "path" {
                    Rule::Path(pattern)
                } else {
                    Rule::PathPrefix(pattern)
                });
            }
            any(alts)
        }
        "method" => {
            some(&args)?;
            Rule::Method(args.iter().map(|m| m.to_ascii_uppercase()).collect())
        }
        "headers" => header(args, false)?,
        "headersregexp" => header(args, true)?,
        "query" => {
            some(&args)?;
            let mut all: Option<Rule> = None;
            for q in &args {
                let (key, value) =
                    q.split_once('=').ok_or_else(|| format!("`{q}` is not key=value"))?;
                if key.is_empty() {
                    return Err(format!("`{q}` has no key"));
                }
                let one = if value.contains('{') {
                    Rule::QueryRegexp(key.into(), gorilla_template(value, ".*", true)?)
                } else {
                    Rule::Query(key.into(), value.into())
                };
                all = Some(match all {
                    None => one,
                    Some(prev) => Rule::And(Box::new(prev), Box::new(one)),
                });
            }
            all.ok_or("at least one key=value")?
        }
        "clientip" => {
            some(&args)?;
            Rule::ClientIP(cidrs(&args)?)
        }
        _ => return Err("unsupported matcher".into()),
    })
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Host(HostPattern::Exact(h)) => write!(f, "Host(`{h}`)"),
            Rule::Host(HostPattern::OneLabel(h)) => write!(f, "Host(`*.{h}`)"),
            Rule::Host(HostPattern::Any) => write!(f, "Host(`*`)"),
            Rule::HostRegexp(h, _) => write!(f, "HostRegexp(`{h}`)"),
            Rule::Path(PathPattern::Literal(p)) => write!(f, "Path(`{p}`)"),
            Rule::PathPrefix(PathPattern::Literal(p)) => write!(f, "PathPrefix(`{p}`)"),
            Rule::Path(PathPattern::Regex(p))
            | Rule::PathPrefix(PathPattern::Regex(p))
            | Rule::PathRegexp(p) => write!(f, "PathRegexp(`{p}`)"),
            Rule::Method(m) => write!(f, "Method(`{}`)", m.join("`, `")),
            Rule::Header(k, v) => write!(f, "Header(`{k}`, `{v}`)"),
            Rule::HeaderRegexp(k, v) => write!(f, "HeaderRegexp(`{k}`, `{v}`)"),
            Rule::Query(k, v) if v.is_empty() => write!(f, "Query(`{k}`)"),
            Rule::Query(k, v) => write!(f, "Query(`{k}`, `{v}`)"),
            Rule::QueryRegexp(k, v) => write!(f, "QueryRegexp(`{k}`, `{v}`)"),
            Rule::ClientIP(c) => {
                let list: Vec<String> =
                    c.iter().map(|c| format!("{}/{}", c.network, c.prefix)).collect();
                write!(f, "ClientIP(`{}`)", list.join("`, `"))
            }
            Rule::And(a, b) => write!(f, "({a} && {b})"),
            Rule::Or(a, b) => write!(f, "({a} || {b})"),
            Rule::Not(a) => write!(f, "!{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn host(h: &str) -> Box<Rule> {
        Box::new(Rule::Host(HostPattern::Exact(h.into())))
    }

    #[test]
    fn precedence_and_grouping() {
        assert_eq!(
            parse("Host(`a`) || Host(`b`) && PathPrefix(`/x`)").unwrap(),
            Rule::Or(
                host("a"),
                Box::new(Rule::And(
                    host("b"),
                    Box::new(Rule::PathPrefix(PathPattern::Literal("/x".into())))
                ))
            )
        );
        assert_eq!(
            parse("(Host(`a`) || Host(`b`)) && !Path(`/p`)").unwrap(),
            Rule::And(
                Box::new(Rule::Or(host("a"), host("b"))),
                Box::new(Rule::Not(Box::new(Rule::Path(PathPattern::Literal("/p".into())))))
            )
        );
    }

    #[test]
    fn names_are_case_insensitive_and_v2_has_its_own() {
        for rule in ["PathPrefix(`/a`)", "pathprefix(`/a`)", "PATHPREFIX(`/a`)", "Pathprefix(`/a`)"]
        {
            assert_eq!(parse(rule).unwrap(), Rule::PathPrefix(PathPattern::Literal("/a".into())));
        }
        assert!(parse("Headers(`a`, `b`)").unwrap_err().what.contains("v2 syntax"));
        assert_eq!(
            parse_with("Headers(`X-A`, `b`)", Syntax::V2).unwrap(),
            Rule::Header("x-a".into(), "b".into())
        );
        assert_eq!(
            parse_with("Host(`a`, `b`)", Syntax::V2).unwrap(),
            Rule::Or(host("a"), host("b"))
        );
        assert!(parse("Host(`a`, `b`)").unwrap_err().what.contains("expected 1"));
    }

    #[test]
    fn hosts_wildcards_and_go_strings() {
        assert_eq!(parse("Host(`Foo.Example.COM.`)").unwrap(), *host("foo.example.com"));
        assert_eq!(parse("Host(`*`)").unwrap(), Rule::Host(HostPattern::Any));
        assert_eq!(
            parse("Host(`*.example.com`)").unwrap(),
            Rule::Host(HostPattern::OneLabel("example.com".into()))
        );
        assert!(parse("Host(`🦭.com`)").unwrap_err().what.contains("ASCII"));
        assert_eq!(parse(r#"Host("ex\x61mple.com")"#).unwrap(), *host("example.com"));
        assert_eq!(
            parse(r#"PathPrefix("/a\"b")"#).unwrap(),
            Rule::PathPrefix(PathPattern::Literal("/a\"b".into()))
        );
        assert!(parse(r#"Host("a\qb")"#).unwrap_err().what.contains("unknown escape"));
    }

    #[test]
    fn go_regexps_and_gorilla_templates() {
        assert_eq!(go_regex("http{secure:s?}").unwrap(), r"http\{secure:s?\}");
        assert_eq!(go_regex("[a-z]{2,3}").unwrap(), "[a-z]{2,3}");
        assert!(go_regex("(example").is_err());
        assert_eq!(
            gorilla_template("{sub:[a-z]{2,3}}.example.com", "[^.]+", true).unwrap(),
            r"^(?:[a-z]{2,3})\.example\.com$"
        );
        assert_eq!(gorilla_template("/css-{n}", "[^/]+", false).unwrap(), r"^/css\-(?:[^/]+)");
        assert!(gorilla_template("{test", "[^.]+", true).is_err());
    }

    #[test]
    fn traefik_documentation_examples_parse() {
        for rule in [
            "Host(`example.com`)",
            "Host(`example.com`) && Path(`/traefik`)",
            "Host(`traefik.io`) || (Host(`containo.us`) && Path(`/traefik`))",
            "HostRegexp(`^.+\\.example\\.com$`)",
            "Host(`example.com`) && PathPrefix(`/products`)",
            "!Host(`example.com`)",
            "Host(\"example.org\")",
            "PathPrefix(`/`)",
            "ClientIP(`10.76.105.11/24`)",
            "Method(`GET`) && Header(`X-Api`, `1`) && Query(`mobile`, `true`)",
            "PathRegexp(`\\.(jpeg|jpg|png)$`)",
        ] {
            parse(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        }
        parse_with("HostRegexp(`{subdomain:[a-z]+}.example.com`)", Syntax::V2).unwrap();
    }

    #[test]
    fn errors_name_the_problem() {
        for (bad, what) in [
            ("Host(`a`", "expected `,` or `)`"),
            ("Hots(`a`)", "unsupported matcher"),
            ("Host(a)", "quoted"),
            ("Host(`a`) ||", "expected a matcher"),
            ("Host(`a`) Host(`b`)", "trailing"),
            ("Host(``)", "empty"),
            ("Path(`css`)", "does not start with `/`"),
            ("ClientIP(`1`)", "not an IP address"),
            ("Query(`q`, ``)", "empty value"),
            ("", "expected a matcher"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.what.contains(what), "{bad}: {e}");
        }
        assert!(parse(&"(".repeat(10_000)).unwrap_err().what.contains("deeply"));
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse(&s);
            let _ = parse_with(&s, Syntax::V2);
        }

        #[test]
        fn display_round_trips(hosts in proptest::collection::vec("[a-z0-9]{1,10}(\\.[a-z]{2,5})?", 1..5)) {
            let text = hosts.iter().map(|h| format!("Host(`{h}`)")).collect::<Vec<_>>().join(" || ");
            let rule = parse(&text).unwrap();
            prop_assert_eq!(parse(&rule.to_string()).unwrap(), rule);
        }
    }
}
