//! Cloning tenants' repositories with the real git (issue 12, item A6): hosts that resolve to
//! loopback, private or mesh addresses are refused before any connection; credentials reach the
//! server as an Authorization header, never in the URL git is given.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wh_worker::git::{self, CloneError, RepoPolicy};

/// A loopback listener that counts the connections made to it.
async fn counter() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = listener.accept().await {
            seen.fetch_add(1, SeqCst);
        }
    });
    (port, count)
}

#[tokio::test]
async fn hosts_on_loopback_private_or_mesh_addresses_are_refused_before_connecting() {
    let (port, connections) = counter().await;
    let into = tempfile::tempdir().unwrap();
    let deny = RepoPolicy::default();
    for url in [
        format!("https://127.0.0.1:{port}/o/r.git"),
        format!("https://localhost:{port}/o/r.git"),
        format!("https://127.0.0.7:{port}/o/r.git"),
        // Literals: refused from the address alone, so no packet ever leaves.
        "https://10.50.0.12/o/r.git".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "ssh://git@192.168.1.10/o/r.git".to_owned(),
        "https://[::ffff:10.0.0.1]/o/r.git".to_owned(),
    ] {
        let dir = into.path().join("c");
        let err = git::clone(&url, None, "main", &dir, deny).await.unwrap_err();
        assert!(matches!(err, CloneError::Private { .. }), "{url}: {err}");
    }
    let local = git::clone("/etc", None, "main", &into.path().join("l"), deny).await.unwrap_err();
    assert!(matches!(local, CloneError::Local), "{local}");
    let option =
        git::clone("https://x.test/r", None, "--upload-pack=evil", &into.path().join("o"), deny)
            .await
            .unwrap_err();
    assert!(matches!(option, CloneError::OptionLike), "{option}");
    assert_eq!(connections.load(SeqCst), 0, "a refused host was connected to");
}

/// A TLS listener for `localhost` (its certificate written to `ca`) that keeps the first
/// request head it reads and answers 401.
async fn tls_recorder(ca: &std::path::Path) -> (u16, tokio::sync::oneshot::Receiver<String>) {
    let (server, pem) = wh_testkit::tls::self_signed(&["localhost"]);
    std::fs::write(ca, pem).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            if let Some(tx) = tx.take() {
                let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
            }
            let _ = tls
                .write_all(
                    b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            let _ = tls.shutdown().await;
        }
    });
    (port, rx)
}

#[tokio::test]
async fn credentials_travel_as_a_header_and_never_in_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let (port, head) = tls_recorder(&ca).await;
    // git (a child process) trusts the stand-in forge's certificate.
    std::env::set_var("GIT_SSL_CAINFO", &ca);
    // Loopback is this test's stand-in for the forge, so private hosts are allowed here.
    let allow = RepoPolicy { allow_private: true };
    let url = format!("https://localhost:{port}/o/r.git");
    let err = git::clone(&url, Some("me:s3cret-token"), "main", &dir.path().join("c"), allow)
        .await
        .unwrap_err();
    assert!(matches!(err, CloneError::Git(_)), "{err}");
    assert!(!err.to_string().contains("s3cret"), "the secret is in the error: {err}");
    let head = tokio::time::timeout(Duration::from_secs(10), head).await.unwrap().unwrap();
    let first = head.lines().next().unwrap_or_default();
    assert!(first.starts_with("GET /o/r.git/info/refs?service=git-upload-pack "), "{head}");
    // base64("me:s3cret-token")
    assert!(head.contains("Authorization: Basic bWU6czNjcmV0LXRva2Vu\r\n"), "{head}");
    assert!(!first.contains("s3cret"));
}
