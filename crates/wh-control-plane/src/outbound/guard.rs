//! The SSRF guard on every call the control plane makes for a user (webhooks, notification
//! channels, SMTP): which URLs may be called (https unless the operator allows http; ports 80,
//! 443 and 1024–65535, and 25/465/587 for SMTP), and which address is dialled — every address
//! the name resolves to is judged by [`wh_wsproto::addr::forbidden`] and the one checked is the
//! one connected to, so a second resolution can never swap in another.
//!
//! It never follows a redirect (the client does not) and never consults `HTTP(S)_PROXY`: the
//! client dials directly.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
pub use wh_wsproto::addr::Cidr;

use super::resolve::Resolve;

/// What a call is for: which ports it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Http,
    Smtp,
}

/// Why a call for a user was refused before a byte was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    #[error("only https:// URLs may be called")]
    Scheme,
    #[error("port {0} may not be called (80, 443 and 1024-65535 may)")]
    Port(u16),
    #[error("{host} resolves to {ip}, which is {why}")]
    Address { host: String, ip: IpAddr, why: &'static str },
    #[error("{0} has no address")]
    NoAddress(String),
    #[error("cannot resolve {host}: {why}")]
    Resolve { host: String, why: String },
}

/// The operator's settings and the resolver.
#[derive(Clone)]
pub struct Guard {
    /// `http://` allowed too (`WH_OUTBOUND_ALLOW_HTTP`).
    pub allow_http: bool,
    /// Ranges a user's calls may reach although they are special (`WH_OUTBOUND_ALLOW_CIDRS`).
    pub allow: Vec<Cidr>,
    pub resolver: Arc<dyn Resolve>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("allow_http", &self.allow_http)
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

/// An entry of `WH_OUTBOUND_ALLOW_CIDRS` that is not a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an address or a CIDR (a.b.c.d[/n] or x::y[/n])")]
pub struct BadCidr(pub String);

/// A comma-separated list of CIDRs; the one that does not parse is the error.
pub fn parse_cidrs(text: &str) -> Result<Vec<Cidr>, BadCidr> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Cidr::parse(s).ok_or_else(|| BadCidr(s.to_owned())))
        .collect()
}

impl Guard {
    /// Whether `scheme` may be called (`https`, or `http` when the operator allows it).
    pub fn check_scheme(&self, tls: bool) -> Result<(), Refused> {
        if tls || self.allow_http {
            Ok(())
        } else {
            Err(Refused::Scheme)
        }
    }

    /// Whether `port` may be called for `what`.
    pub fn check_port(port: u16, what: Use) -> Result<(), Refused> {
        let ok = matches!(port, 80 | 443 | 1024..)
            || (what == Use::Smtp && matches!(port, 25 | 465 | 587));
        if ok {
            Ok(())
        } else {
            Err(Refused::Port(port))
        }
    }

    /// The address to dial for `host:port`: every address it resolves to must be allowed (one
    /// bad address refuses the name: a resolver could hand out either), and the first is it.
    pub async fn address(&self, host: &str, port: u16, what: Use) -> Result<SocketAddr, Refused> {
        Guard::check_port(port, what)?;
        let addrs = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => self
                .resolver
                .resolve(host, port)
                .await
                .map_err(|e| Refused::Resolve { host: host.to_owned(), why: e.to_string() })?,
        };
        for a in &addrs {
            if let Some(why) = wh_wsproto::addr::forbidden(a.ip(), &self.allow) {
                return Err(Refused::Address { host: host.to_owned(), ip: a.ip(), why });
            }
        }
        addrs.first().copied().ok_or_else(|| Refused::NoAddress(host.to_owned()))
    }

    /// Connects to the checked address of `host:port` within `timeout`.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        what: Use,
        timeout: Duration,
    ) -> Result<TcpStream, super::OutboundError> {
        let addr = self.address(host, port, what).await?;
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| wh_http::client::DialError::ConnectTimeout)?
            .map_err(wh_http::client::DialError::Connect)?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_cidr_lists() {
        assert!(Guard::check_port(443, Use::Http).is_ok());
        assert!(Guard::check_port(8443, Use::Http).is_ok());
        assert_eq!(Guard::check_port(22, Use::Http), Err(Refused::Port(22)));
        assert_eq!(Guard::check_port(25, Use::Http), Err(Refused::Port(25)));
        assert!(Guard::check_port(587, Use::Smtp).is_ok());
        assert!(Guard::check_port(6379, Use::Http).is_ok(), "any unprivileged port");
        assert_eq!(parse_cidrs(" 127.0.0.0/8, ::1/128 ").unwrap().len(), 2);
        assert_eq!(parse_cidrs("127.0.0.1/x"), Err(BadCidr("127.0.0.1/x".into())));
        assert_eq!(parse_cidrs("127.0.0.2").unwrap()[0].prefix, 32, "a bare address is a /32");
        assert!(parse_cidrs("").unwrap().is_empty());
    }
}
