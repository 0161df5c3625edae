//! Header rewriting between client and upstream: hop-by-hop removal and `X-Forwarded-*`.
//!
//! Per-connection values (the peer's address as a header value) are computed once per
//! connection by the caller; nothing here formats strings per request except when appending to a
//! trusted proxy's `X-Forwarded-For`.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that say where a request came from or what it asked for, as set by a proxy in
/// front. From a peer outside `--trusted-proxies` they are lies, and apps trust some of them
/// (`X-Original-URL` rewrites the path in IIS and Symfony): removed. The X-Forwarded-For
/// family is overwritten with the proxy's own values instead.
static UNTRUSTED: [HeaderName; 10] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-forwarded-ssl"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("x-forwarded-method"),
];

/// Who is on the other end of the connection, precomputed per connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub ip: IpAddr,
    pub ip_header: HeaderValue,
    /// The peer is a proxy we trust: its `X-Forwarded-*` headers are kept and extended.
    pub trusted: bool,
}

impl Peer {
    pub fn new(ip: IpAddr, trusted: bool) -> Peer {
        let ip_header =
            HeaderValue::from_str(&ip.to_string()).expect("an IP address is a valid header value");
        Peer { ip, ip_header, trusted }
    }
}

/// Removes hop-by-hop headers: `Connection` and every header it names, `Keep-Alive`,
/// `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, and `Upgrade` unless `keep_upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            if !(keep_upgrade && name == header::UPGRADE) {
                headers.remove(&name);
            }
        }
        headers.remove(header::CONNECTION);
    }
    for name in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Sets `X-Forwarded-For/Proto/Host/Port` and `X-Real-IP`. From an untrusted peer, any incoming
/// values (and `Forwarded`) are discarded first, so a client cannot spoof its address.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: &Peer,
    proto: &HeaderValue,
    host: Option<&HeaderValue>,
    port: &HeaderValue,
) {
    if peer.trusted {
        let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prior) if !prior.is_empty() => {
                HeaderValue::from_str(&format!("{prior}, {}", peer.ip)).ok()
            }
            _ => None,
        };
        if !headers.contains_key(&X_REAL_IP) {
            headers.insert(X_REAL_IP.clone(), peer.ip_header.clone());
        }
        headers.insert(X_FORWARDED_FOR.clone(), xff.unwrap_or_else(|| peer.ip_header.clone()));
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO.clone(), proto.clone());
        }
        if !headers.contains_key(&X_FORWARDED_HOST) {
            if let Some(h) = host {
                headers.insert(X_FORWARDED_HOST.clone(), h.clone());
            }
        }
        if !headers.contains_key(&X_FORWARDED_PORT) {
            headers.insert(X_FORWARDED_PORT.clone(), port.clone());
        }
        return;
    }
    for name in &UNTRUSTED {
        headers.remove(name);
    }
    headers.insert(X_FORWARDED_FOR.clone(), peer.ip_header.clone());
    headers.insert(X_REAL_IP.clone(), peer.ip_header.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), proto.clone());
    headers.insert(X_FORWARDED_PORT.clone(), port.clone());
    match host {
        Some(h) => headers.insert(X_FORWARDED_HOST.clone(), h.clone()),
        None => headers.remove(&X_FORWARDED_HOST),
    };
}

/// HTTP/2 may split `cookie` into several fields; HTTP/1.1 allows one, joined with `; `
/// (RFC 9113 §8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut all = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (all.next(), all.next()) else { return };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// An entry of `--trusted-proxies` that is not an address or a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustedProxyError {
    #[error("invalid trusted proxy `{0}`")]
    Address(String),
    #[error("invalid prefix length in `{0}`")]
    PrefixLength(String),
}

/// A list of trusted networks (`10.50.0.0/24`, `127.0.0.1`, `::1/128`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses comma- or space-separated CIDRs; the error names the bad entry.
    pub fn parse(list: &str) -> Result<TrustedProxies, TrustedProxyError> {
        let mut nets = Vec::new();
        for item in list.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, len) = match item.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (item, None),
            };
            let ip: IpAddr =
                addr.parse().map_err(|_| TrustedProxyError::Address(item.to_owned()))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(l) => l
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or_else(|| TrustedProxyError::PrefixLength(item.to_owned()))?,
                None => max,
            };
            nets.push((ip, len));
        }
        Ok(TrustedProxies(nets))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.iter().any(|(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, hv("close, x-secret"));
        h.insert("x-secret", hv("1"));
        h.insert("keep-alive", hv("timeout=5"));
        h.insert(header::TE, hv("trailers"));
        h.insert(header::UPGRADE, hv("websocket"));
        h.insert("proxy-authorization", hv("x"));
        h.insert("x-keep", hv("yes"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-keep"], "yes");
    }

    #[test]
    fn upgrade_survives_when_asked() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, hv("Upgrade"));
        h.insert(header::UPGRADE, hv("websocket"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
    }

    #[test]
    fn spoofed_forwarded_headers_are_overwritten_unless_trusted() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, hv("6.6.6.6"));
        h.insert(&X_REAL_IP, hv("6.6.6.6"));
        h.insert("forwarded", hv("for=6.6.6.6"));
        let peer = Peer::new("127.0.0.9".parse().unwrap(), false);
        set_forwarded(&mut h, &peer, &hv("http"), Some(&hv("a.test")), &hv("80"));
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.9");
        assert_eq!(h[&X_REAL_IP], "127.0.0.9");
        assert_eq!(h[&X_FORWARDED_HOST], "a.test");
        assert!(!h.contains_key("forwarded"));

        let mut h = HeaderMap::new();
        for name in &UNTRUSTED {
            h.insert(name, hv("/admin"));
        }
        set_forwarded(&mut h, &peer, &hv("http"), None, &hv("80"));
        for name in &UNTRUSTED {
            assert!(!h.contains_key(name), "{name} from an untrusted peer was kept");
        }

        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, hv("1.2.3.4"));
        let trusted = Peer::new("127.0.0.9".parse().unwrap(), true);
        set_forwarded(&mut h, &trusted, &hv("http"), None, &hv("80"));
        assert_eq!(h[&X_FORWARDED_FOR], "1.2.3.4, 127.0.0.9");
    }

    #[test]
    fn h2_cookies_are_joined_for_http1() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, hv("a=1"));
        h.append(header::COOKIE, hv("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().collect::<Vec<_>>(), ["a=1; b=2"]);
    }

    #[test]
    fn trusted_networks() {
        let t = TrustedProxies::parse("10.50.0.0/24, 127.0.0.1 ::1").unwrap();
        assert!(t.contains("10.50.0.77".parse().unwrap()));
        assert!(!t.contains("10.50.1.1".parse().unwrap()));
        assert!(t.contains("127.0.0.1".parse().unwrap()));
        assert!(t.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(t.contains("::1".parse().unwrap()));
        assert!(!t.contains("127.0.0.2".parse().unwrap()));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("nope").is_err());
        assert!(TrustedProxies::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
    }
}
