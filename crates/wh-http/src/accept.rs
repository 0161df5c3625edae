//! [`accept`]: the next connection of a listener, riding out accept errors. `EMFILE` and its
//! kin are transient (a descriptor frees up), so the listener backs off 50 ms and tries again
//! instead of spinning or giving up.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// The next connection on `listener`; a failed accept is logged and retried after 50 ms.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(pair) => return pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
