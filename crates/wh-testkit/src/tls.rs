//! A TLS server identity for tests: a self-signed certificate for the names given, as the
//! rustls server configuration that presents it (on the workspace's one crypto provider) and
//! the certificate's PEM, for the client side to trust.

use std::sync::Arc;

/// A server configuration presenting a fresh self-signed certificate for `names`, and that
/// certificate as PEM.
pub fn self_signed(names: &[&str]) -> (Arc<rustls::ServerConfig>, String) {
    let cert =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("rcgen makes a certificate");
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .expect("rcgen's key is DER");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("the certificate and key match");
    (Arc::new(config), cert.cert.pem())
}
