//! The router rule language, as Traefik writes it.
//!
//! ```text
//! expr    := or
//! or      := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | "(" expr ")" | matcher
//! matcher := NAME "(" string ("," string)* ")"      NAME: Host HostRegexp Path PathPrefix
//! string  := `...` | "..."
//! ```
//!
//! Several arguments mean "any of them" (Traefik v2's `Host(`a`, `b`)`). Host names are
//! lower-cased here so matching needs no case folding. The parser is total: any input yields a
//! rule or a [`RuleError`] naming the position and the problem, never a panic.

use std::fmt;

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Host(String),
    HostRegexp(String),
    Path(String),
    PathPrefix(String),
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

/// Parses `input` into a [`Rule`].
pub fn parse(input: &str) -> Result<Rule, RuleError> {
    let mut p = Parser { s: input.as_bytes(), pos: 0, depth: 0 };
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
        let name = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        if name.is_empty() {
            return Err(self.err("expected a matcher such as Host(`example.com`)"));
        }
        let make: fn(String) -> Rule = match name {
            "Host" => |a| Rule::Host(a.to_ascii_lowercase()),
            "HostRegexp" => Rule::HostRegexp,
            "Path" => Rule::Path,
            "PathPrefix" => Rule::PathPrefix,
            other => {
                self.pos = start;
                return Err(self.err(format!("unsupported matcher `{other}`")));
            }
        };
        if !self.eat("(") {
            return Err(self.err(format!("expected `(` after {name}")));
        }
        let mut alternatives = vec![make(self.string()?)];
        while self.eat(",") {
            alternatives.push(make(self.string()?));
        }
        if !self.eat(")") {
            return Err(self.err(format!("expected `)` to close {name}(")));
        }
        let mut rule = alternatives.remove(0);
        for alt in alternatives {
            rule = Rule::Or(Box::new(rule), Box::new(alt));
        }
        Ok(rule)
    }

    fn string(&mut self) -> Result<String, RuleError> {
        self.skip_ws();
        let quote = match self.s.get(self.pos) {
            Some(q @ (b'`' | b'"')) => *q,
            _ => return Err(self.err("expected a `quoted` or \"quoted\" argument")),
        };
        let start = self.pos + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote)
            .ok_or_else(|| self.err("unterminated string"))?;
        self.pos = start + len + 1;
        let value = std::str::from_utf8(&self.s[start..start + len])
            .map_err(|_| self.err("argument is not UTF-8"))?;
        if value.is_empty() {
            return Err(self.err("empty argument"));
        }
        Ok(value.to_owned())
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Host(h) => write!(f, "Host(`{h}`)"),
            Rule::HostRegexp(h) => write!(f, "HostRegexp(`{h}`)"),
            Rule::Path(p) => write!(f, "Path(`{p}`)"),
            Rule::PathPrefix(p) => write!(f, "PathPrefix(`{p}`)"),
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
        Box::new(Rule::Host(h.into()))
    }

    #[test]
    fn precedence_and_grouping() {
        assert_eq!(
            parse("Host(`a`) || Host(`b`) && PathPrefix(`/x`)").unwrap(),
            Rule::Or(
                host("a"),
                Box::new(Rule::And(host("b"), Box::new(Rule::PathPrefix("/x".into()))))
            )
        );
        assert_eq!(
            parse("(Host(`a`) || Host(`b`)) && !Path(`/p`)").unwrap(),
            Rule::And(
                Box::new(Rule::Or(host("a"), host("b"))),
                Box::new(Rule::Not(Box::new(Rule::Path("/p".into()))))
            )
        );
    }

    #[test]
    fn traefik_documentation_examples_parse() {
        for rule in [
            "Host(`example.com`)",
            "Host(`example.com`) && Path(`/traefik`)",
            "Host(`traefik.io`) || (Host(`containo.us`) && Path(`/traefik`))",
            "HostRegexp(`^.+\\.example\\.com$`)",
            "HostRegexp(`{subdomain:[a-z]+}.example.com`)",
            "Host(`example.com`) && PathPrefix(`/products`)",
            "!Host(`example.com`)",
            "Host(\"example.org\")",
            "Host(`a.example.com`, `b.example.com`)",
            "PathPrefix(`/`)",
        ] {
            parse(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        }
    }

    #[test]
    fn hosts_are_lowercased() {
        assert_eq!(parse("Host(`Foo.Example.COM`)").unwrap(), Rule::Host("foo.example.com".into()));
    }

    #[test]
    fn errors_name_the_problem() {
        for (bad, what) in [
            ("Host(`a`", "expected `)`"),
            ("Hots(`a`)", "unsupported matcher `Hots`"),
            ("Host(a)", "quoted"),
            ("Host(`a`) ||", "expected a matcher"),
            ("Host(`a`) Host(`b`)", "trailing"),
            ("Host(``)", "empty"),
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
        }

        #[test]
        fn display_round_trips(hosts in proptest::collection::vec("[a-z0-9]{1,10}(\\.[a-z]{2,5})?", 1..5)) {
            let text = hosts.iter().map(|h| format!("Host(`{h}`)")).collect::<Vec<_>>().join(" || ");
            let rule = parse(&text).unwrap();
            prop_assert_eq!(parse(&rule.to_string()).unwrap(), rule);
        }
    }
}
