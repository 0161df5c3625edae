//! The request target: which host and which path a request is for, validated and normalised
//! before anything routes on them (and forwarded in that form).
//!
//! - Host ([`authority`]): `host[:port]`, where host is a DNS name (letters, digits, `-`, `_`,
//!   `.`) or a bracketed IPv6 literal and port is 1–5 digits up to 65535. Anything else
//!   (`a.test:80@evil.example`, `a.test:/x`, `[a.test]@evil`) is refused, never routed on a
//!   prefix of it. The name is lowercased and loses a trailing dot.
//! - Path ([`clean_path`]), as Traefik's "request path" rules: percent-escapes of unreserved
//!   characters are decoded and the others upper-cased; escapes of `/ \ NUL ; % ? #` are
//!   refused unless allowed ([`EncodedChars`]); `.` and `..` segments are removed and repeated
//!   slashes merged. Routing and the upstream both see the cleaned path, so a middleware meant
//!   for `/api` cannot be skipped with `/%61pi` or `//api`, nor reached with `/api/../admin`.
//!
//! - Routing path ([`routing_path`]): what rules match, as Traefik's: the cleaned path with
//!   every escape decoded but those of RFC 3986's reserved characters and `%`.
//!
//! All are allocation-free for the common case: an already clean target is borrowed.

use std::borrow::Cow;

/// A validated `Host` / `:authority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority<'r, 'b> {
    /// Lowercase, no trailing dot; an IPv6 literal without its brackets.
    pub name: &'b str,
    /// The port as sent (digits only), if any.
    pub port: Option<&'r str>,
    /// The raw value was already in normal form (it can be forwarded as it came).
    pub canonical: bool,
}

/// Parses `raw` as `host[:port]` into `buf`; `None` if it is anything else.
pub fn authority<'r, 'b>(raw: &'r [u8], buf: &'b mut [u8; 256]) -> Option<Authority<'r, 'b>> {
    let (host, rest, bracketed) = if raw.first() == Some(&b'[') {
        let end = raw.iter().position(|&c| c == b']')?;
        let inner = &raw[1..end];
        let ok = !inner.is_empty()
            && inner.contains(&b':')
            && inner.iter().all(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.'));
        if !ok {
            return None;
        }
        (inner, &raw[end + 1..], true)
    } else {
        match raw.iter().position(|&c| c == b':') {
            Some(colon) => (&raw[..colon], &raw[colon..], false),
            None => (raw, &raw[raw.len()..], false),
        }
    };
    let port = match rest {
        [] => None,
        [b':', digits @ ..] => {
            let ok = (1..=5).contains(&digits.len())
                && digits.iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(digits).ok()?.parse::<u32>().ok()? <= 65535;
            if !ok {
                return None;
            }
            Some(std::str::from_utf8(digits).ok()?)
        }
        _ => return None,
    };
    let (host, dotted) = match host.strip_suffix(b".") {
        Some(h) if !bracketed => (h, true),
        _ => (host, false),
    };
    if host.is_empty() || host.len() > buf.len() {
        return None;
    }
    let mut canonical = !dotted;
    for (dst, &src) in buf.iter_mut().zip(host) {
        let allowed = src.is_ascii_alphanumeric()
            || matches!(src, b'-' | b'.' | b'_')
            || (bracketed && src == b':');
        if !allowed {
            return None;
        }
        canonical &= !src.is_ascii_uppercase();
        *dst = src.to_ascii_lowercase();
    }
    let name = std::str::from_utf8(&buf[..host.len()]).ok()?;
    Some(Authority { name, port, canonical })
}

/// An entry of `--allow-encoded-chars` that names no character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown encoded character `{0}`")]
pub struct UnknownEncodedChar(pub String);

/// Which percent-encoded reserved characters a path may carry (Traefik's
/// `encodedCharacters`): all refused by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodedChars {
    pub slash: bool,
    pub backslash: bool,
    pub null: bool,
    pub semicolon: bool,
    pub percent: bool,
    pub question_mark: bool,
    pub hash: bool,
}

impl EncodedChars {
    /// Every encoded character allowed (`--allow-encoded-chars all`).
    pub const ALL: EncodedChars = EncodedChars {
        slash: true,
        backslash: true,
        null: true,
        semicolon: true,
        percent: true,
        question_mark: true,
        hash: true,
    };

    /// Parses a comma-separated list of `slash, backslash, null, semicolon, percent,
    /// question-mark, hash` or `all`; the error names the unknown entry.
    pub fn parse(list: &str) -> Result<EncodedChars, UnknownEncodedChar> {
        let mut e = EncodedChars::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.to_ascii_lowercase().as_str() {
                "all" => e = EncodedChars::ALL,
                "slash" => e.slash = true,
                "backslash" => e.backslash = true,
                "null" => e.null = true,
                "semicolon" => e.semicolon = true,
                "percent" => e.percent = true,
                "question-mark" | "questionmark" => e.question_mark = true,
                "hash" => e.hash = true,
                other => return Err(UnknownEncodedChar(other.to_owned())),
            }
        }
        Ok(e)
    }

    fn allows(&self, byte: u8) -> bool {
        match byte {
            b'/' => self.slash,
            b'\\' => self.backslash,
            0 => self.null,
            b';' => self.semicolon,
            b'%' => self.percent,
            b'?' => self.question_mark,
            b'#' => self.hash,
            _ => true,
        }
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("the path must start with /")]
    NotAbsolute,
    #[error("malformed percent-encoding in the path")]
    BadEscape,
    #[error("an encoded character that is not allowed in the path")]
    EncodedCharacter,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The cleaned form of `path` (no query), borrowed when it is clean already.
pub fn clean_path<'a>(path: &'a str, allowed: &EncodedChars) -> Result<Cow<'a, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Fast path: nothing to decode, no empty or dot segment.
    let suspicious = bytes.contains(&b'%')
        || bytes.windows(2).any(|w| w == b"//" || w == b"/.")
        || bytes.ends_with(b"/.");
    if !suspicious {
        return Ok(Cow::Borrowed(path));
    }
    // 1. Escapes: refuse the forbidden ones, decode unreserved ones, upper-case the rest.
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (Some(h), Some(l)) =
                (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
            else {
                return Err(PathError::BadEscape);
            };
            let byte = h << 4 | l;
            if !allowed.allows(byte) {
                return Err(PathError::EncodedCharacter);
            }
            if is_unreserved(byte) {
                decoded.push(byte);
            } else {
                decoded.push(b'%');
                decoded.extend_from_slice(format!("{byte:02X}").as_bytes());
            }
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    // 2. Segments: merge empty ones, drop `.`, pop on `..` (RFC 3986 §5.2.4).
    let trailing = decoded.ends_with(b"/")
        || decoded.ends_with(b"/.")
        || decoded.ends_with(b"/..")
        || decoded == b"/";
    let mut out: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut clean = String::with_capacity(decoded.len());
    for seg in &out {
        clean.push('/');
        // Every byte is ASCII or was in the (UTF-8) input unchanged.
        clean.push_str(&String::from_utf8_lossy(seg));
    }
    if clean.is_empty() || trailing && !clean.ends_with('/') {
        clean.push('/');
    }
    Ok(Cow::Owned(clean))
}

/// Escapes Traefik's routing path keeps: RFC 3986's reserved characters, and `%`.
const RESERVED_ESCAPES: [&str; 19] = [
    "%3A", "%2F", "%3F", "%23", "%5B", "%5D", "%40", "%21", "%24", "%26", "%27", "%28", "%29",
    "%2A", "%2B", "%2C", "%3B", "%3D", "%25",
];

/// The path rules see (Traefik's "routing path"): `path` with each escape decoded unless it
/// is one of [`RESERVED_ESCAPES`]; borrowed when there is nothing to decode (or decoding would
/// not be UTF-8).
pub fn routing_path(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            // Three ASCII bytes: a char boundary on both sides.
            let esc = &path[i..i + 3];
            match u8::from_str_radix(&esc[1..], 16) {
                Ok(v) if !RESERVED_ESCAPES.contains(&esc) => out.push(v),
                _ => out.extend_from_slice(esc.as_bytes()),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(path),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn routing_paths_decode_all_but_reserved_escapes() {
        use super::routing_path;
        assert_eq!(routing_path("/a/b"), "/a/b");
        assert_eq!(routing_path("/%7Bpath:css%7D"), "/{path:css}");
        assert_eq!(routing_path("/a%2Fb%3Fc%25"), "/a%2Fb%3Fc%25");
        assert_eq!(routing_path("/%C3%A9t%C3%A9"), "/été");
        assert_eq!(routing_path("/%FF"), "/%FF", "not UTF-8: left as it was");
        assert_eq!(routing_path("/%é%"), "/%é%");
    }

    use super::*;
    use proptest::prelude::*;

    fn auth(raw: &str) -> Option<(String, Option<String>, bool)> {
        let mut buf = [0u8; 256];
        authority(raw.as_bytes(), &mut buf)
            .map(|a| (a.name.to_owned(), a.port.map(str::to_owned), a.canonical))
    }

    #[test]
    fn a_host_is_a_name_and_a_numeric_port_and_nothing_else() {
        assert_eq!(auth("a.route.test"), Some(("a.route.test".into(), None, true)));
        assert_eq!(
            auth("A.Route.Test:8080"),
            Some(("a.route.test".into(), Some("8080".into()), false))
        );
        assert_eq!(auth("a.test."), Some(("a.test".into(), None, false)));
        assert_eq!(auth("[::1]:443"), Some(("::1".into(), Some("443".into()), true)));
        assert_eq!(auth("127.0.0.1:80"), Some(("127.0.0.1".into(), Some("80".into()), true)));
        for bad in [
            "a.route.test:80@evil.example",
            "a.route.test:/evil.example/x",
            "[a.route.test]@evil.example",
            "[::1]@evil",
            "a.test:",
            "a.test:65536",
            "a.test:123456",
            "a.test:-1",
            "a b",
            "a/b",
            "a@b",
            "",
            ":80",
            "[]",
            "a:1:2",
        ] {
            assert_eq!(auth(bad), None, "{bad}");
        }
        assert_eq!(auth(&"a".repeat(300)), None);
    }

    fn clean(p: &str) -> Result<String, PathError> {
        clean_path(p, &EncodedChars::default()).map(Cow::into_owned)
    }

    #[test]
    fn paths_are_cleaned_as_traefik_does() {
        assert_eq!(clean("/api/users").unwrap(), "/api/users");
        assert_eq!(clean("/api/../admin").unwrap(), "/admin");
        assert_eq!(clean("/%61pi").unwrap(), "/api");
        assert_eq!(clean("//api").unwrap(), "/api");
        assert_eq!(clean("/a/./b/").unwrap(), "/a/b/");
        assert_eq!(clean("/a/b/..").unwrap(), "/a/");
        assert_eq!(clean("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(clean("/a%2e%2e/b").unwrap(), "/a../b");
        assert_eq!(clean("/%2e%2e/x").unwrap(), "/x", "encoded dots are dots");
        assert_eq!(clean("/caf%c3%a9").unwrap(), "/caf%C3%A9");
        assert_eq!(clean("/").unwrap(), "/");
        assert_eq!(clean("/.").unwrap(), "/");
        for refused in ["/a%2fb", "/a%2Fb", "/a%5cb", "/a%00", "/a%3b", "/a%25", "/a%3F", "/a%23"] {
            assert_eq!(clean(refused), Err(PathError::EncodedCharacter), "{refused}");
        }
        assert_eq!(clean("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(clean("/a%2"), Err(PathError::BadEscape));
        assert_eq!(clean("*"), Err(PathError::NotAbsolute));
        let slash = EncodedChars { slash: true, ..Default::default() };
        assert_eq!(clean_path("/a%2fb", &slash).unwrap(), "/a%2Fb");
        assert!(matches!(clean_path("/plain", &slash).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn the_encoded_characters_setting_parses() {
        assert_eq!(EncodedChars::parse("").unwrap(), EncodedChars::default());
        assert_eq!(EncodedChars::parse("all").unwrap(), EncodedChars::ALL);
        let e = EncodedChars::parse("slash, question-mark").unwrap();
        assert!(e.slash && e.question_mark && !e.hash);
        assert!(EncodedChars::parse("slashes").is_err());
    }

    proptest! {
        #[test]
        fn a_cleaned_path_is_clean_and_stays_the_same(p in "/[a-z./%0-9A-F]{0,40}") {
            if let Ok(c) = clean_path(&p, &EncodedChars::ALL) {
                prop_assert!(c.starts_with('/'));
                prop_assert!(!c.contains("//"));
                prop_assert!(!c.split('/').any(|s| s == "." || s == ".."));
                let again = clean_path(&c, &EncodedChars::ALL).unwrap();
                prop_assert_eq!(again.as_ref(), c.as_ref());
            }
        }

        #[test]
        fn hosts_never_panic(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut buf = [0u8; 256];
            let _ = authority(&raw, &mut buf);
        }
    }
}
