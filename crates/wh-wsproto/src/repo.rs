//! Repository URLs, as both sides must read them: the control plane refuses what it must not
//! store (credentials in clear, local paths, private addresses written as literals) and splits
//! credentials off to seal them; the worker refuses what it must not clone from (hosts that
//! resolve to private, loopback, link-local or mesh addresses) and pins the address it checked.
//! No I/O here: resolving a name is the caller's.

use std::net::IpAddr;

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `https://host[:port]/path`
    Https,
    /// `ssh://[user@]host[:port]/path`
    Ssh,
    /// `user@host:path` (scp-like ssh)
    Scp,
    /// A path on the worker host, or `file://` (development and tests only).
    Local,
}

/// A parsed repository URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl {
    pub transport: Transport,
    /// The host name or address (IPv6 without brackets); empty for [`Transport::Local`].
    pub host: String,
    pub port: u16,
    /// `user:token` or `token` of an https URL: a secret, split off by [`RepoUrl::parse`].
    pub credentials: Option<String>,
    /// The URL without its credentials: what is stored, shown and cloned.
    pub public: String,
}

/// Why a repository URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RepoUrlError {
    #[error("must be an https://, ssh:// or git@host:path URL of at most 500 characters, without spaces")]
    Form,
    #[error("an ssh URL cannot carry a password; use an https URL with a token, or a deploy key")]
    SshPassword,
    #[error("`{0}` is not a valid port")]
    Port(String),
}

impl RepoUrl {
    /// Parses `url`. Credentials of an https URL (`https://user:token@host/…`) are split off
    /// into [`RepoUrl::credentials`]; an ssh URL with a password is refused.
    pub fn parse(url: &str) -> Result<RepoUrl, RepoUrlError> {
        if url.is_empty()
            || url.len() > 500
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(RepoUrlError::Form);
        }
        if let Some(rest) = url.strip_prefix("https://") {
            return Self::with_authority(Transport::Https, "https://", rest, 443);
        }
        if let Some(rest) = url.strip_prefix("ssh://") {
            return Self::with_authority(Transport::Ssh, "ssh://", rest, 22);
        }
        if url.starts_with("file://") || url.starts_with('/') || url.starts_with("./") {
            return Ok(RepoUrl {
                transport: Transport::Local,
                host: String::new(),
                port: 0,
                credentials: None,
                public: url.to_owned(),
            });
        }
        // scp-like: user@host:path, with no scheme and the colon before any slash.
        if let Some((user_host, path)) = url.split_once(':') {
            if let Some((user, host)) = user_host.rsplit_once('@') {
                let plain = |s: &str| {
                    !s.is_empty()
                        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                };
                if plain(user) && plain(host) && !path.is_empty() {
                    return Ok(RepoUrl {
                        transport: Transport::Scp,
                        host: host.to_ascii_lowercase(),
                        port: 22,
                        credentials: None,
                        public: url.to_owned(),
                    });
                }
            }
        }
        Err(RepoUrlError::Form)
    }

    fn with_authority(
        transport: Transport,
        scheme: &str,
        rest: &str,
        default_port: u16,
    ) -> Result<RepoUrl, RepoUrlError> {
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => return Err(RepoUrlError::Form),
        };
        if path.len() < 2 || authority.contains(['?', '#', '\\']) {
            return Err(RepoUrlError::Form);
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)?;
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| RepoUrlError::Port(p.into()))?,
        };
        if host.is_empty()
            || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b))
        {
            return Err(RepoUrlError::Form);
        }
        let host = host.to_ascii_lowercase();
        let shown_host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        let shown_port = if port == default_port { String::new() } else { format!(":{port}") };
        let (credentials, user) = match (transport, userinfo) {
            (_, None) => (None, String::new()),
            (Transport::Https, Some(u)) if !u.is_empty() => (Some(u.to_owned()), String::new()),
            (Transport::Ssh, Some(u)) if u.contains(':') => return Err(RepoUrlError::SshPassword),
            (Transport::Ssh, Some(u)) if !u.is_empty() => (None, format!("{u}@")),
            _ => return Err(RepoUrlError::Form),
        };
        Ok(RepoUrl {
            transport,
            public: format!("{scheme}{user}{shown_host}{shown_port}{path}"),
            host,
            port,
            credentials,
        })
    }

    /// The host as a literal address, if it is one.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// Whether the host is `localhost` or a name below it (which always resolve locally).
    pub fn is_localhost(&self) -> bool {
        self.host == "localhost" || self.host.ends_with(".localhost")
    }
}

/// `host[:port]` or `[v6][:port]`.
fn split_host_port(s: &str) -> Result<(&str, Option<&str>), RepoUrlError> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(RepoUrlError::Form)?;
        return match after {
            "" => Ok((host, None)),
            _ => after.strip_prefix(':').map(|p| (host, Some(p))).ok_or(RepoUrlError::Form),
        };
    }
    Ok(match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    })
}

/// Whether a connection to `ip` may be made on a tenant's behalf: not in any of the
/// special-purpose ranges of [`crate::addr::forbidden`] (the mesh is 10.50.0.0/24).
pub fn is_public(ip: IpAddr) -> bool {
    crate::addr::forbidden(ip, &[]).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_off_and_the_rest_kept() {
        let u = RepoUrl::parse("https://me:tok3n@Git.Example.com/o/r.git").unwrap();
        assert_eq!(u.credentials.as_deref(), Some("me:tok3n"));
        assert_eq!(u.public, "https://git.example.com/o/r.git");
        assert_eq!(
            (u.transport, u.host.as_str(), u.port),
            (Transport::Https, "git.example.com", 443)
        );
        let t = RepoUrl::parse("https://ghp_x@github.com:8443/o/r").unwrap();
        assert_eq!(
            (t.credentials.as_deref(), t.public.as_str()),
            (Some("ghp_x"), "https://github.com:8443/o/r")
        );
        let ssh = RepoUrl::parse("ssh://git@example.com:2222/o/r.git").unwrap();
        assert_eq!(
            (ssh.public.as_str(), ssh.port, ssh.credentials),
            ("ssh://git@example.com:2222/o/r.git", 2222, None)
        );
        assert_eq!(RepoUrl::parse("ssh://git:pw@example.com/r"), Err(RepoUrlError::SshPassword));
        let scp = RepoUrl::parse("git@github.com:o/r.git").unwrap();
        assert_eq!((scp.transport, scp.host.as_str()), (Transport::Scp, "github.com"));
        let v6 = RepoUrl::parse("https://[::1]:8080/r").unwrap();
        assert_eq!((v6.host.as_str(), v6.literal_ip()), ("::1", Some("::1".parse().unwrap())));
        assert_eq!(RepoUrl::parse("/srv/repo").unwrap().transport, Transport::Local);
        for bad in [
            "",
            "http://x/y",
            "https://",
            "https://host",
            "https://ho st/r",
            "https://h:99999/r",
            "ftp://x/y",
            "https://h/r\n",
            "https://@h/r",
            "https://h:/r",
        ] {
            assert!(RepoUrl::parse(bad).is_err(), "{bad:?}");
        }
        assert!(RepoUrl::parse("https://localhost/r").unwrap().is_localhost());
    }

    #[test]
    fn private_loopback_link_local_and_mesh_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.50.0.12",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["140.82.112.3", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_never_keeps_credentials_in_the_public_form(s in ".{0,80}") {
            if let Ok(u) = RepoUrl::parse(&s) {
                if let Some(c) = &u.credentials {
                    let with_at = format!("{}@", c);
                    proptest::prop_assert!(!u.public.contains(&with_at));
                }
            }
        }
    }
}
