//! pebble and its mock DNS: the directory over TLS trusting only the generated certificate.

use wh_testkit::http;
use wh_testkit::pebble::{Pebble, PebbleOptions};

#[tokio::test]
async fn directory_is_served_over_tls_trusting_only_the_generated_cert() {
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    let resp =
        http::get(&pebble.directory_url(), &pebble.directory_roots().unwrap()).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let dir: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(dir["newOrder"].as_str().unwrap().starts_with("https://localhost:"), "{dir}");
    assert!(dir["newAccount"].is_string());

    // Trusting nothing (an empty root store) must fail the handshake.
    assert!(http::get(&pebble.directory_url(), &[]).await.is_err());

    let root = pebble.root_ca_pem().await.unwrap();
    assert!(root.contains("BEGIN CERTIFICATE"), "{root}");
}

#[tokio::test]
async fn mock_dns_answers_the_records_it_was_given() {
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    pebble.add_a("app.example.test", &["127.0.0.7"]).await.unwrap();
    pebble.set_txt("_wisehosting.app.example.test", "token-123").await.unwrap();

    let a = dns_query(pebble.dns_addr(), "app.example.test", 1).await;
    assert!(a.windows(4).any(|w| w == [127, 0, 0, 7]), "A answer lacks 127.0.0.7: {a:?}");
    let txt = dns_query(pebble.dns_addr(), "_wisehosting.app.example.test", 16).await;
    assert!(txt.windows(9).any(|w| w == b"token-123"), "TXT answer lacks the token: {txt:?}");

    pebble.clear_txt("_wisehosting.app.example.test").await.unwrap();
    let gone = dns_query(pebble.dns_addr(), "_wisehosting.app.example.test", 16).await;
    assert!(!gone.windows(9).any(|w| w == b"token-123"), "TXT still answered after clear");
}

/// One DNS question over UDP; returns the raw answer (ANCOUNT checked by the caller's search).
async fn dns_query(server: std::net::SocketAddr, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&q, server).await.unwrap();
    let mut buf = vec![0u8; 1500];
    let (n, _) = tokio::time::timeout(std::time::Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("mock DNS did not answer")
        .unwrap();
    buf.truncate(n);
    assert_eq!(&buf[..2], &[0x12, 0x34], "answer to another query");
    buf
}
