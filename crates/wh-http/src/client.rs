//! Dialling out: the one place WiseHosting's clients (the `wh` CLI, the worker's channel to the
//! control plane, the test kit) parse a base URL, build their rustls configuration and open a
//! TCP or TLS stream, each wait bounded by a timeout.
//!
//! It owns how trust is chosen (the system's roots, or exactly the PEM roots given) and how a
//! host name becomes a TLS server name. It never sends a request: callers speak HTTP (or the
//! WebSocket handshake) over the stream it returns.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream to a server, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a base URL or a trust anchor was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("invalid URL `{url}`: {why}")]
    Url { url: String, why: String },
    #[error("URL `{0}` must be http:// or https://")]
    Scheme(String),
    #[error("URL `{0}` has no host")]
    NoHost(String),
    #[error("no certificate in the PEM roots")]
    NoRoots,
    #[error("PEM roots: {0}")]
    Pem(String),
    #[error("root certificate: {0}")]
    Root(#[from] rustls::Error),
}

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("`{0}` is not a valid TLS server name")]
    ServerName(String),
    #[error("TLS handshake timed out")]
    TlsTimeout,
    #[error("TLS: {0}")]
    Tls(std::io::Error),
}

/// Which roots a TLS connection trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The operating system's roots.
    System,
    /// Exactly these roots (a private CA, pebble in tests).
    Roots(Arc<rustls::RootCertStore>),
}

impl Trust {
    /// Exactly the certificates of a PEM bundle.
    pub fn from_pem(pem: &[u8]) -> Result<Trust, ConfigError> {
        Ok(Trust::Roots(Arc::new(roots_from_pem(pem)?)))
    }

    fn roots(&self) -> Arc<rustls::RootCertStore> {
        match self {
            Trust::System => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    // A system bundle may carry a certificate rustls cannot use; the rest stand.
                    let _ = roots.add(cert);
                }
                Arc::new(roots)
            }
            Trust::Roots(roots) => roots.clone(),
        }
    }
}

/// The certificates of a PEM bundle, as DER.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::Pem(e.to_string()))
}

/// A root store of exactly the certificates of a PEM bundle; an empty bundle is an error, since
/// trusting nothing is never what a caller meant.
pub fn roots_from_pem(pem: &[u8]) -> Result<rustls::RootCertStore, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs_from_pem(pem)? {
        roots.add(cert)?;
    }
    if roots.is_empty() {
        return Err(ConfigError::NoRoots);
    }
    Ok(roots)
}

/// A client configuration on the workspace's one crypto provider (ring), trusting `trust` and
/// offering `alpn` (empty: no ALPN).
pub fn client_config(trust: &Trust, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(trust.roots())
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A server named by a base URL (`http(s)://host[:port]`), and how to reach it.
#[derive(Clone)]
pub struct Target {
    /// The host without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// Present for https.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Target {
    /// Parses a base URL; an https one trusts `trust` and offers `alpn`.
    pub fn parse(url: &str, trust: &Trust, alpn: &[&[u8]]) -> Result<Target, ConfigError> {
        let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| ConfigError::Url {
            url: url.into(),
            why: e.to_string(),
        })?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(ConfigError::Scheme(url.into())),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ConfigError::NoHost(url.into()))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target { host, port, tls: tls.then(|| client_config(trust, alpn)) })
    }

    /// `host:port` for a `Host` header, IPv6 bracketed, the default port left out.
    pub fn authority(&self) -> String {
        let host =
            if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.tls.is_some() { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Connects (TCP_NODELAY) and, for https, completes the TLS handshake; each step within
    /// `timeout`.
    pub async fn dial(&self, timeout: Duration) -> Result<Box<dyn Io>, DialError> {
        let tcp =
            tokio::time::timeout(timeout, TcpStream::connect((self.host.as_str(), self.port)))
                .await
                .map_err(|_| DialError::ConnectTimeout)?
                .map_err(DialError::Connect)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(config) => tls_over(tcp, config, &self.host, timeout).await,
        }
    }
}

/// Completes a TLS handshake as a client over `io` (a stream already connected, or one a
/// protocol such as SMTP's STARTTLS has just upgraded) for server name `host`, within
/// `timeout`.
pub async fn tls_over<S>(
    io: S,
    config: &Arc<rustls::ClientConfig>,
    host: &str,
    timeout: Duration,
) -> Result<Box<dyn Io>, DialError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| DialError::ServerName(host.to_owned()))?;
    let tls = tokio::time::timeout(
        timeout,
        tokio_rustls::TlsConnector::from(config.clone()).connect(name, io),
    )
    .await
    .map_err(|_| DialError::TlsTimeout)?
    .map_err(DialError::Tls)?;
    Ok(Box::new(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse_with_their_default_ports() {
        let t = Target::parse("http://127.0.0.1:8080", &Trust::System, &[]).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls.is_some()), ("127.0.0.1", 8080, false));
        assert_eq!(t.authority(), "127.0.0.1:8080");
        let t = Target::parse("https://[::1]", &Trust::System, &[b"http/1.1"]).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert_eq!(t.authority(), "[::1]");
        assert_eq!(t.tls.unwrap().alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(matches!(
            Target::parse("ftp://x", &Trust::System, &[]),
            Err(ConfigError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("not a url", &Trust::System, &[]),
            Err(ConfigError::Url { .. })
        ));
    }

    #[test]
    fn pem_roots_must_hold_a_certificate() {
        assert!(matches!(roots_from_pem(b""), Err(ConfigError::NoRoots)));
        let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(roots_from_pem(garbage).is_err());
        let cert = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let roots = roots_from_pem(cert.cert.pem().as_bytes()).unwrap();
        assert_eq!(roots.len(), 1);
    }

    #[tokio::test]
    async fn a_refused_connect_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let t = Target::parse(&format!("http://127.0.0.1:{port}"), &Trust::System, &[]).unwrap();
        assert!(matches!(t.dial(Duration::from_secs(5)).await, Err(DialError::Connect(_))));
    }
}
