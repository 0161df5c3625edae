//! HTTPS: TLS termination and certificates from ACME (HTTP-01), replacing Traefik's certResolver.
//!
//! - [`store`]: the certificates in memory (an `ArcSwap` map chosen by SNI; no default
//!   certificate, so an unknown name gets no handshake and learns nothing) and on disk.
//! - [`challenges`]: HTTP-01 tokens of pending orders, answered from memory on the :80 listener.
//! - [`acme`]: the ACME account and one order, via instant-acme.
//! - [`manager`]: which hosts need a certificate, renewal, per-host backoff and the order budget,
//!   persisted in the state dir so a restart neither re-orders nor retries early.
//! - [`clock`]: wall-clock time with an offset tests can move.
//! - [`reports`]: the queue of order outcomes told to the control plane.
//!
//! Only hosts in the routing table (of routers with `tls`) ever get a certificate.

pub mod acme;
pub mod challenges;
pub mod clock;
pub mod manager;
pub mod reports;
pub mod store;
pub mod wildcard;

use std::sync::Arc;

/// The rustls server configuration: TLS 1.2 and 1.3, ALPN h2 and http/1.1, certificates by SNI.
pub fn server_config(store: Arc<store::CertStore>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}
