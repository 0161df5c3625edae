//! Loopback ports for test servers.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// A port on 127.0.0.1 that was free a moment ago (the OS picked it).
///
/// There is a small window in which another process could take it; components that bind it
/// report a clear error if that happens.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 must work on a test machine")
}

/// Waits until something accepts TCP connections on `addr`, or fails after `timeout`.
pub fn wait_for_port(addr: SocketAddr, what: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(Error::NotReady(format!("{what} on {addr}")))
}
