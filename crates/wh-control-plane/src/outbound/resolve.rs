//! Name resolution for calls made for a user: the system's resolvers (`/etc/resolv.conf` and
//! `/etc/hosts`), or the servers the operator names (`WH_OUTBOUND_DNS`), through hickory.
//! [`Fixed`] maps names to addresses without DNS (tests standing in for public services).

use std::collections::HashMap;
use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;

/// Resolves a host name to the addresses to dial.
pub trait Resolve: Send + Sync {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>>;
}

/// DNS through hickory.
pub struct Dns(TokioResolver);

impl Dns {
    /// The system's configuration, or exactly `servers` when given.
    pub fn new(servers: &[SocketAddr]) -> std::io::Result<Dns> {
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio().map_err(std::io::Error::other)?
        } else {
            let mut group = NameServerConfigGroup::new();
            for addr in servers {
                group.merge(NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true));
            }
            let config = ResolverConfig::from_parts(None, vec![], group);
            let mut opts = ResolverOpts::default();
            opts.ndots = 0;
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
        };
        let opts = builder.options_mut();
        opts.timeout = std::time::Duration::from_secs(3);
        opts.attempts = 1;
        Ok(Dns(builder.build()))
    }
}

impl Resolve for Dns {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>> {
        Box::pin(async move {
            // Fully qualified: no search domain is tried.
            let name = format!("{}.", host.trim_end_matches('.'));
            let found = self.0.lookup_ip(name).await.map_err(std::io::Error::other)?;
            Ok(found.iter().map(|ip| SocketAddr::new(ip, port)).collect())
        })
    }
}

/// Names mapped to addresses, ports included (a test's stand-in for `discord.com:443` listens
/// on a loopback port); an unknown name does not resolve.
#[derive(Debug, Default, Clone)]
pub struct Fixed(pub HashMap<String, SocketAddr>);

impl Resolve for Fixed {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>> {
        let found = self.0.get(&host.to_ascii_lowercase()).copied();
        Box::pin(async move {
            found
                .map(|a| vec![a])
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
        })
    }
}
