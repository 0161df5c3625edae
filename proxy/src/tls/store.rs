//! Certificates by host: in memory for the handshake, as PEM files in the state dir.
//!
//! The handshake path is one `ArcSwap` load and one hash lookup. A name with no certificate,
//! or no SNI at all, resolves to nothing and the handshake fails: there is no default
//! certificate, so a scanner learns no host names from us.
//!
//! On disk: `<state>/certs/<host>/cert.pem` and `key.pem`, mode 0600, written to a temporary
//! file, fsynced and renamed, so a crash never leaves half a certificate.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::util::FastMap;

/// A certificate ready for handshakes, with its validity (Unix seconds).
#[derive(Debug)]
pub struct Cert {
    pub key: Arc<CertifiedKey>,
    pub not_before: i64,
    pub not_after: i64,
    /// DER of the leaf, for ACME renewal information.
    pub leaf_der: Vec<u8>,
}

/// An operator-provided wildcard certificate (`*.route.example.com`).
#[derive(Debug)]
pub struct Wildcard {
    /// The part after `*.`, lower-case.
    pub suffix: Box<str>,
    pub cert: Cert,
}

/// All certificates, swapped whole on every change.
#[derive(Debug)]
pub struct CertStore {
    by_host: ArcSwap<FastMap<Box<str>, Arc<Cert>>>,
    wildcard: ArcSwap<Option<Wildcard>>,
    write: Mutex<()>,
    dir: PathBuf,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        let mut buf = [0u8; 256];
        let host = crate::table::normalize_host(name.as_bytes(), &mut buf)?;
        if let Some(cert) = self.by_host.load().get(host) {
            return Some(cert.key.clone());
        }
        let wildcard = self.wildcard.load();
        let w = (**wildcard).as_ref()?;
        covers(&w.suffix, host).then(|| w.cert.key.clone())
    }
}

/// True when `*.suffix` covers `host` (exactly one more label).
pub fn covers(suffix: &str, host: &str) -> bool {
    host.strip_suffix(suffix)
        .and_then(|h| h.strip_suffix('.'))
        .is_some_and(|label| !label.is_empty() && !label.contains('.'))
}

impl CertStore {
    /// A store persisting under `state_dir/certs`.
    pub fn new(state_dir: &Path) -> CertStore {
        CertStore {
            by_host: ArcSwap::from_pointee(FastMap::default()),
            wildcard: ArcSwap::from_pointee(None),
            write: Mutex::new(()),
            dir: state_dir.join("certs"),
        }
    }

    /// The certificate of `host`, if any.
    pub fn get(&self, host: &str) -> Option<Arc<Cert>> {
        self.by_host.load().get(host).cloned()
    }

    /// Every host with a certificate.
    pub fn hosts(&self) -> Vec<(Box<str>, Arc<Cert>)> {
        self.by_host.load().iter().map(|(h, c)| (h.clone(), c.clone())).collect()
    }

    /// The wildcard certificate's suffix, if one is loaded.
    pub fn wildcard_suffix(&self) -> Option<String> {
        (**self.wildcard.load()).as_ref().map(|w| w.suffix.to_string())
    }

    /// The wildcard certificate's expiry, if one is loaded.
    pub fn wildcard_not_after(&self) -> Option<i64> {
        (**self.wildcard.load()).as_ref().map(|w| w.cert.not_after)
    }

    pub fn set_wildcard(&self, wildcard: Option<Wildcard>) {
        self.wildcard.store(Arc::new(wildcard));
    }

    /// Loads every certificate found on disk; returns how many. Unreadable entries are logged
    /// and skipped (they will be re-ordered).
    pub fn load_from_disk(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return 0 };
        let mut loaded = FastMap::default();
        for entry in entries.flatten() {
            let host = entry.file_name().to_string_lossy().into_owned();
            let (cert, key) = (entry.path().join("cert.pem"), entry.path().join("key.pem"));
            match std::fs::read(&cert).and_then(|c| Ok((c, std::fs::read(&key)?))) {
                Ok((c, k)) => match parse(&c, &k) {
                    Ok(parsed) => {
                        loaded.insert(host.into_boxed_str(), Arc::new(parsed));
                    }
                    Err(e) => tracing::warn!(%host, error = %e, "stored certificate unusable"),
                },
                Err(e) => tracing::warn!(%host, error = %e, "stored certificate unreadable"),
            }
        }
        let n = loaded.len();
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.by_host.store(Arc::new(loaded));
        n
    }

    /// Stores a new certificate for `host` on disk, then makes it live.
    pub fn install(
        &self,
        host: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Arc<Cert>, CertError> {
        let cert = Arc::new(parse(cert_pem.as_bytes(), key_pem.as_bytes())?);
        let dir = self.dir.join(host);
        let write = |path: PathBuf, bytes: &[u8]| {
            write_private(&path, bytes).map_err(|source| CertError::Write { path, source })
        };
        std::fs::create_dir_all(&dir)
            .map_err(|source| CertError::Write { path: dir.clone(), source })?;
        write(dir.join("key.pem"), key_pem.as_bytes())?;
        write(dir.join("cert.pem"), cert_pem.as_bytes())?;
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = FastMap::clone(&self.by_host.load());
        next.insert(host.into(), cert.clone());
        self.by_host.store(Arc::new(next));
        Ok(cert)
    }

    /// Forgets `host` and deletes its files.
    pub fn remove(&self, host: &str) {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = FastMap::clone(&self.by_host.load());
        next.remove(host);
        self.by_host.store(Arc::new(next));
        let _ = std::fs::remove_dir_all(self.dir.join(host));
    }
}

/// Why a certificate and key pair cannot be used or stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("certificate PEM: {0}")]
    CertPem(rustls::pki_types::pem::Error),
    #[error("no certificate in PEM")]
    NoCert,
    #[error("key PEM: {0}")]
    KeyPem(rustls::pki_types::pem::Error),
    #[error("key: {0}")]
    Key(rustls::Error),
    /// x509-parser's error borrows nothing but is not `'static` through nom; its text.
    #[error("certificate: {0}")]
    X509(String),
    #[error("{path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes `bytes` to `path` with mode 0600: temp file, fsync, rename.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Parses a PEM chain and key into a handshake-ready [`Cert`].
pub fn parse(cert_pem: &[u8], key_pem: &[u8]) -> Result<Cert, CertError> {
    let chain: Vec<_> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(CertError::CertPem)?;
    let leaf = chain.first().ok_or(CertError::NoCert)?.clone();
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(CertError::KeyPem)?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(CertError::Key)?;
    let (_, x509) =
        x509_parser::parse_x509_certificate(&leaf).map_err(|e| CertError::X509(e.to_string()))?;
    let validity = x509.validity();
    let cert = Cert {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        leaf_der: leaf.to_vec(),
        key: Arc::new(CertifiedKey::new(chain, signing)),
    };
    Ok(cert)
}

/// The DNS names a certificate is valid for (subject alternative names).
pub fn dns_names(leaf_der: &[u8]) -> Vec<String> {
    let Ok((_, x509)) = x509_parser::parse_x509_certificate(leaf_der) else { return Vec::new() };
    let Ok(Some(san)) = x509.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_covers_exactly_one_label() {
        assert!(covers("route.example.com", "foo.route.example.com"));
        assert!(!covers("route.example.com", "a.foo.route.example.com"));
        assert!(!covers("route.example.com", "route.example.com"));
        assert!(!covers("route.example.com", "fooroute.example.com"));
    }

    #[test]
    fn install_persists_0600_and_reloads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        let c = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let installed =
            store.install("a.test", &c.cert.pem(), &c.signing_key.serialize_pem()).unwrap();
        assert!(installed.not_after > installed.not_before);
        assert_eq!(dns_names(&installed.leaf_der), vec!["a.test".to_owned()]);
        let mode = std::fs::metadata(dir.path().join("certs/a.test/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = CertStore::new(dir.path());
        assert_eq!(again.load_from_disk(), 1);
        assert!(again.get("a.test").is_some());
        again.remove("a.test");
        assert!(!dir.path().join("certs/a.test").exists());
        assert!(parse(b"garbage", b"garbage").is_err());
    }
}
