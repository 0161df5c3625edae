//! Which addresses a call made for a user may reach (the SSRF guard's address rule): every
//! address a name resolves to must be public — none of the special-purpose ranges below, and
//! no IPv4 address hidden in an IPv6 one (IPv4-mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96`,
//! 6to4 `2002::/16`) that is not. An operator's allow-list (`WH_OUTBOUND_ALLOW_CIDRS`) is
//! consulted first. Both the worker (before it clones a tenant's repository) and the control
//! plane's outbound client (webhooks, notification channels) judge addresses by this one rule;
//! resolving, pinning the checked address and refusing redirects are the callers' part.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `a.b.c.d[/n]` or `x::y[/n]` (a bare address is a /32 or /128).
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    /// Whether `ip` is in the range; an IPv4-mapped IPv6 address is judged as its IPv4 one.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

const V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private (the mesh and the build network)"),
    ("100.64.0.0/10", "shared address space"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
];

const V6: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
    ("100::/64", "discard"),
    ("2001:db8::/32", "documentation"),
];

/// The IPv4 address an IPv6 one carries, if it is of a form that carries one.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0xffff]
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0])
    {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    None
}

/// Why `ip` may not be reached (the range it is in), or None when it may.
pub fn forbidden(ip: IpAddr, allowed: &[Cidr]) -> Option<&'static str> {
    if allowed.iter().any(|c| c.contains(ip)) {
        return None;
    }
    let table = if ip.is_ipv4() { V4 } else { V6 };
    for (range, why) in table {
        let cidr = Cidr::parse(range).expect("the table's ranges parse");
        if cidr.contains(ip) {
            return Some(why);
        }
    }
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).and_then(|v4| forbidden(IpAddr::V4(v4), allowed)),
        IpAddr::V4(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_special_range_is_refused_and_public_addresses_are_not() {
        for bad in [
            "0.1.2.3",
            "10.50.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.19.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "100::1",
            "2001:db8::1",
            // IPv4 hidden in IPv6.
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:0a32:0001::1",
        ] {
            assert!(forbidden(ip(bad), &[]).is_some(), "{bad} must be refused");
        }
        for good in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
            "172.32.0.1",
        ] {
            assert_eq!(forbidden(ip(good), &[]), None, "{good} is public");
        }
        assert_eq!(
            forbidden(ip("::ffff:169.254.169.254"), &[]),
            Some("link-local (cloud metadata)")
        );
    }

    #[test]
    fn the_operator_allow_list_comes_first() {
        let allow = [Cidr::parse("10.60.0.0/16").unwrap()];
        assert_eq!(forbidden(ip("10.60.3.4"), &allow), None);
        assert!(forbidden(ip("10.50.0.1"), &allow).is_some(), "the mesh stays refused");
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("nonsense"), None);
        assert_eq!(Cidr::parse("10.0.0.1/"), None);
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(one.prefix, 32);
        assert!(one.contains(ip("::ffff:127.0.0.1")), "mapped IPv6 is its IPv4");
    }

    proptest! {
        /// An IPv4 address is refused exactly when its IPv4-mapped IPv6 form is.
        #[test]
        fn mapped_addresses_are_judged_as_their_ipv4(a in any::<u32>()) {
            let v4 = Ipv4Addr::from(a);
            prop_assert_eq!(forbidden(IpAddr::V4(v4), &[]).is_some(), forbidden(IpAddr::V6(v4.to_ipv6_mapped()), &[]).is_some());
        }
    }
}
