//! Loopback ports for test servers, and a [`Cable`] a test can cut to stand in for an outage.

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

/// A TCP relay to `target` standing in for the network path to a server, which a test can cut
/// and mend: [`Cable::cut`] closes every relayed connection and refuses new ones (the listener
/// is closed, so connecting fails at once); [`Cable::mend`] listens on the same address again.
/// [`Cable::freeze`] stands in for a half-open path instead: connections stay open, and nothing
/// passes either way (nor is any new connection relayed) until the cable is cut.
pub struct Cable {
    addr: SocketAddr,
    target: SocketAddr,
    live: Option<(tokio::task::JoinHandle<()>, tokio::sync::watch::Sender<Path>)>,
}

/// What the relay does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Relay,
    Frozen,
    Cut,
}

impl Cable {
    /// Relays 127.0.0.1:<a free port> to `target`.
    pub async fn start(target: SocketAddr) -> Result<Cable> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut cable = Cable { addr: listener.local_addr()?, target, live: None };
        cable.listen(listener);
        Ok(cable)
    }

    /// Where clients connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn listen(&mut self, listener: tokio::net::TcpListener) {
        let (cut, watch) = tokio::sync::watch::channel(Path::Relay);
        let target = self.target;
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    // Held silently while frozen; dropped (closed) when cut.
                    let silent = |mut watch: tokio::sync::watch::Receiver<Path>| async move {
                        let _ = watch.wait_for(|p| *p == Path::Cut).await;
                    };
                    if *watch.borrow() == Path::Frozen {
                        return silent(watch).await;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.changed() => {
                            if *watch.borrow() == Path::Frozen {
                                silent(watch).await;
                            }
                        }
                    }
                });
            }
        });
        self.live = Some((accept, cut));
    }

    /// Closes every relayed connection and stops listening.
    pub fn cut(&mut self) {
        if let Some((accept, cut)) = self.live.take() {
            accept.abort();
            let _ = cut.send(Path::Cut);
        }
    }

    /// Stops relaying while keeping every connection open: a half-open path (a silent peer
    /// whose TCP connection never closes).
    pub fn freeze(&mut self) {
        if let Some((_, path)) = &self.live {
            let _ = path.send(Path::Frozen);
        }
    }

    /// Listens on the same address again (waiting up to 5 s for the cut listener, whose task
    /// is aborted asynchronously, to release it).
    pub async fn mend(&mut self) -> Result<()> {
        if self.live.is_some() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.listen(listener);
        Ok(())
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        self.cut();
    }
}
