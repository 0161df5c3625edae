//! Settings from flags and the environment. Secrets can also come from `*_FILE` variables and
//! are held as `secrecy` secrets from the moment they are parsed: their `Debug` prints
//! `[REDACTED]` (`ServeArgs` and `Config` included) and their memory is zeroed when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// A secret as bytes (from its variable or a file).
pub type Secret = SecretSlice<u8>;

/// A secret from text.
pub fn secret_bytes(text: &str) -> Secret {
    Secret::from(text.as_bytes().to_vec())
}

/// Flags of `wh-control-plane serve` (every one also from the environment).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// API listener.
    #[arg(long, env = "WH_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Optional second listener for the worker and proxy endpoints (e.g. the mesh address
    /// 10.50.0.1:8081); when set, WH_LISTEN serves only the user API.
    #[arg(long, env = "WH_INTERNAL_LISTEN")]
    pub internal_listen: Option<SocketAddr>,
    /// Admin listener for `/metrics` (Prometheus/OpenMetrics) and `/healthz`; `off` for none.
    /// Keep it on loopback or the mesh: it is not authenticated.
    #[arg(long, env = "WH_ADMIN_LISTEN", default_value = "127.0.0.1:8083")]
    pub admin_listen: String,
    /// Postgres connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// JWT signing secret for worker tokens (at least 32 bytes).
    #[arg(long, env = "WH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,
    /// File holding the JWT secret.
    #[arg(long, env = "WH_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// 32 random bytes, base64: the master key secrets at rest are derived from.
    #[arg(long, env = "WH_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<SecretString>,
    /// File holding the master key.
    #[arg(long, env = "WH_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Mark session cookies Secure (turn off only for plain-HTTP localhost).
    #[arg(long, env = "WH_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,
    /// Bearer token the ingress proxy presents for /v1/traefik/*.
    #[arg(long, env = "WH_PROXY_TOKEN", hide_env_values = true)]
    pub proxy_token: Option<SecretString>,
    /// File holding the proxy token.
    #[arg(long, env = "WH_PROXY_TOKEN_FILE")]
    pub proxy_token_file: Option<PathBuf>,
    /// Domain apps are served under: <slug>.<route domain>.
    #[arg(long, env = "WH_ROUTE_DOMAIN", default_value = "route.localhost")]
    pub route_domain: String,
    /// Route apps over HTTPS (ACME certificates, `websecure`); off only for local development,
    /// where the proxy serves plain HTTP.
    #[arg(long, env = "WH_ROUTE_TLS", default_value_t = true, action = clap::ArgAction::Set)]
    pub route_tls: bool,
    /// The proxy's public port, when apps are reached on a non-default one (URLs shown to users).
    #[arg(long, env = "WH_ROUTE_PORT")]
    pub route_port: Option<u16>,
    /// The proxy's public IP addresses (comma-separated): offered as A/AAAA records for custom
    /// domains that cannot have a CNAME (apex names).
    #[arg(long, env = "WH_PROXY_ADDRESSES", value_delimiter = ',')]
    pub proxy_addresses: Vec<std::net::IpAddr>,
    /// DNS servers that verify custom domains (ip:port, comma-separated) [default: public
    /// resolvers 1.1.1.1, 8.8.8.8, 1.0.0.1, 8.8.4.4].
    #[arg(long, env = "WH_DNS_SERVERS", value_delimiter = ',')]
    pub dns_servers: Vec<SocketAddr>,
    /// Lifetime of worker JWTs, in seconds.
    #[arg(long, env = "WH_JWT_TTL_SECS", default_value_t = 900)]
    pub jwt_ttl_secs: u64,
    /// Accept repository URLs on loopback, private and mesh addresses (development only; the
    /// workers' `WH_ALLOW_PRIVATE_REPOS` decides what they clone).
    #[arg(long, env = "WH_ALLOW_PRIVATE_REPOS")]
    pub allow_private_repos: bool,
    /// Seconds requests in flight get to finish at shutdown before they are closed.
    #[arg(long, env = "WH_DRAIN_SECS", default_value_t = 30)]
    pub drain_secs: u64,
    /// Ranges webhooks and notification channels may reach although they are private or
    /// special (comma-separated CIDRs; e.g. an internal chat server's network).
    #[arg(long, env = "WH_OUTBOUND_ALLOW_CIDRS", default_value = "")]
    pub outbound_allow_cidrs: String,
    /// Let webhooks and channels use plain http:// (and SMTP without TLS).
    #[arg(long, env = "WH_OUTBOUND_ALLOW_HTTP")]
    pub outbound_allow_http: bool,
    /// The DNS servers webhook and channel hosts are resolved with (default: the system's).
    #[arg(long, env = "WH_OUTBOUND_DNS", value_delimiter = ',')]
    pub outbound_dns: Vec<SocketAddr>,
    #[command(flatten)]
    pub git: GitProviderArgs,
}

/// The git providers users may connect: an OAuth application the operator registered at each
/// (README, "Git providers"). A provider without a client id is not offered.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GitProviderArgs {
    /// The control plane's public address, e.g. https://wh.example.com: OAuth redirects,
    /// webhook URLs and the links in commit statuses start with it.
    #[arg(long, env = "WH_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[arg(long, env = "WH_GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,
    #[arg(long, env = "WH_GITHUB_CLIENT_SECRET", hide_env_values = true)]
    pub github_client_secret: Option<SecretString>,
    /// GitHub Enterprise Server's address (default https://github.com).
    #[arg(long, env = "WH_GITHUB_URL")]
    pub github_url: Option<String>,
    #[arg(long, env = "WH_GITHUB_API_URL")]
    pub github_api_url: Option<String>,
    #[arg(long, env = "WH_GITLAB_CLIENT_ID")]
    pub gitlab_client_id: Option<String>,
    #[arg(long, env = "WH_GITLAB_CLIENT_SECRET", hide_env_values = true)]
    pub gitlab_client_secret: Option<SecretString>,
    /// A self-managed GitLab's address (default https://gitlab.com).
    #[arg(long, env = "WH_GITLAB_URL")]
    pub gitlab_url: Option<String>,
    #[arg(long, env = "WH_BITBUCKET_CLIENT_ID")]
    pub bitbucket_client_id: Option<String>,
    #[arg(long, env = "WH_BITBUCKET_CLIENT_SECRET", hide_env_values = true)]
    pub bitbucket_client_secret: Option<SecretString>,
    #[arg(long, env = "WH_GITEA_CLIENT_ID")]
    pub gitea_client_id: Option<String>,
    #[arg(long, env = "WH_GITEA_CLIENT_SECRET", hide_env_values = true)]
    pub gitea_client_secret: Option<SecretString>,
    /// The Gitea instance's address (required with a Gitea client id).
    #[arg(long, env = "WH_GITEA_URL")]
    pub gitea_url: Option<String>,
    #[arg(long, env = "WH_FORGEJO_CLIENT_ID")]
    pub forgejo_client_id: Option<String>,
    #[arg(long, env = "WH_FORGEJO_CLIENT_SECRET", hide_env_values = true)]
    pub forgejo_client_secret: Option<SecretString>,
    /// The Forgejo instance's address (default https://codeberg.org).
    #[arg(long, env = "WH_FORGEJO_URL")]
    pub forgejo_url: Option<String>,
}

impl GitProviderArgs {
    /// The configured providers, and the public URL they need.
    pub fn resolve(self) -> Result<(Vec<crate::gitproviders::ForgeConfig>, String), ConfigError> {
        use crate::gitproviders::{ForgeConfig, Provider};
        let entries = [
            (
                Provider::Github,
                self.github_client_id,
                self.github_client_secret,
                self.github_url,
                self.github_api_url,
            ),
            (
                Provider::Gitlab,
                self.gitlab_client_id,
                self.gitlab_client_secret,
                self.gitlab_url,
                None,
            ),
            (
                Provider::Bitbucket,
                self.bitbucket_client_id,
                self.bitbucket_client_secret,
                None,
                None,
            ),
            (Provider::Gitea, self.gitea_client_id, self.gitea_client_secret, self.gitea_url, None),
            (
                Provider::Forgejo,
                self.forgejo_client_id,
                self.forgejo_client_secret,
                self.forgejo_url,
                None,
            ),
        ];
        let mut forges = Vec::new();
        for (provider, id, secret, web, api) in entries {
            let Some(id) = id.filter(|i| !i.is_empty()) else { continue };
            let name = provider.as_str().to_ascii_uppercase();
            let secret = secret
                .filter(|s| !s.expose_secret().is_empty())
                .ok_or_else(|| ConfigError(format!("WH_{name}_CLIENT_SECRET is not set")))?;
            forges.push(ForgeConfig::new(provider, web.as_deref(), api.as_deref(), id, secret)?);
        }
        let public_url = self.public_url.unwrap_or_default().trim_end_matches('/').to_owned();
        let valid = public_url.starts_with("https://") || public_url.starts_with("http://");
        if !forges.is_empty() && !valid {
            return Err(ConfigError(
                "WH_PUBLIC_URL (https://…) is needed to connect git providers".into(),
            ));
        }
        Ok((forges, public_url))
    }
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub internal_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// May carry a password.
    pub database_url: SecretString,
    pub jwt_secret: Secret,
    pub jwt_ttl: Duration,
    pub proxy_token: Secret,
    pub route_domain: String,
    pub route_tls: bool,
    pub route_port: Option<u16>,
    pub proxy_addresses: Vec<std::net::IpAddr>,
    pub dns: crate::domains::DnsSettings,
    pub master_key: crate::secrets::MasterKey,
    pub cookie_secure: bool,
    pub allow_private_repos: bool,
    /// The API server's connection limits and drain.
    pub http: crate::httpserve::HttpLimits,
    /// Git providers users may connect, and the public URL they reach the control plane at.
    pub git_providers: Vec<crate::gitproviders::ForgeConfig>,
    pub public_url: String,
    /// What webhooks and notification channels may reach.
    pub outbound_allow: Vec<crate::outbound::guard::Cidr>,
    pub outbound_allow_http: bool,
    pub outbound_dns: Vec<SocketAddr>,
}

/// A configuration problem; `main` exits with 64 on it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    pub fn from_args(args: ServeArgs) -> Result<Config, ConfigError> {
        let database_url =
            args.database_url.ok_or_else(|| ConfigError("DATABASE_URL is not set".into()))?;
        let jwt_secret = secret(args.jwt_secret, args.jwt_secret_file, "WH_JWT_SECRET")?;
        if jwt_secret.expose_secret().len() < 32 {
            return Err(ConfigError("WH_JWT_SECRET must be at least 32 bytes".into()));
        }
        if args.jwt_ttl_secs < 60 {
            return Err(ConfigError("WH_JWT_TTL_SECS must be at least 60".into()));
        }
        let proxy_token = secret(args.proxy_token, args.proxy_token_file, "WH_PROXY_TOKEN")?;
        if proxy_token.expose_secret().len() < 16 {
            return Err(ConfigError("WH_PROXY_TOKEN must be at least 16 characters".into()));
        }
        let master = secret(args.master_key, args.master_key_file, "WH_MASTER_KEY")?;
        let master_key = crate::secrets::MasterKey::from_base64(&String::from_utf8_lossy(
            master.expose_secret(),
        ))
        .map_err(|e| ConfigError(e.to_string()))?;
        let (git_providers, public_url) = args.git.resolve()?;
        let outbound_allow = crate::outbound::guard::parse_cidrs(&args.outbound_allow_cidrs)
            .map_err(|e| ConfigError(format!("WH_OUTBOUND_ALLOW_CIDRS: {e}")))?;
        Ok(Config {
            outbound_allow,
            outbound_allow_http: args.outbound_allow_http,
            outbound_dns: args.outbound_dns,
            git_providers,
            public_url,
            master_key,
            cookie_secure: args.cookie_secure,
            allow_private_repos: args.allow_private_repos,
            http: crate::httpserve::HttpLimits {
                drain: Duration::from_secs(args.drain_secs),
                ..Default::default()
            },
            listen: args.listen,
            internal_listen: args.internal_listen,
            admin_listen: match args.admin_listen.as_str() {
                "off" => None,
                addr => Some(addr.parse().map_err(|_| {
                    ConfigError(format!(
                        "WH_ADMIN_LISTEN must be an address or `off`, not `{addr}`"
                    ))
                })?),
            },
            database_url,
            jwt_secret,
            jwt_ttl: Duration::from_secs(args.jwt_ttl_secs),
            proxy_token,
            route_domain: args.route_domain.trim_matches('.').to_ascii_lowercase(),
            route_tls: args.route_tls,
            route_port: args.route_port,
            proxy_addresses: args.proxy_addresses,
            dns: crate::domains::DnsSettings {
                servers: if args.dns_servers.is_empty() {
                    crate::domains::DnsSettings::default().servers
                } else {
                    args.dns_servers
                },
                ..Default::default()
            },
        })
    }
}

/// A secret from its variable or its `_FILE` variable (trailing newline trimmed).
fn secret(
    value: Option<SecretString>,
    file: Option<PathBuf>,
    name: &str,
) -> Result<Secret, ConfigError> {
    match (value, file) {
        (Some(v), _) if !v.expose_secret().is_empty() => Ok(secret_bytes(v.expose_secret())),
        (_, Some(path)) => std::fs::read(&path)
            .map(|mut b| {
                while b.last().is_some_and(|c| c.is_ascii_whitespace()) {
                    b.pop();
                }
                Secret::from(b)
            })
            .map_err(|e| ConfigError(format!("{name}_FILE {}: {e}", path.display()))),
        _ => Err(ConfigError(format!("{name} (or {name}_FILE) is not set"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn secrets_never_print_neither_as_flags_nor_resolved() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let cli = Cli::try_parse_from([
            "wh-control-plane",
            "--database-url",
            "postgres://wh:db-password-here@127.0.0.1/wh",
            "--jwt-secret",
            "jwt-secret-jwt-secret-jwt-secret-xyz",
            "--proxy-token",
            "proxy-token-0123456789",
            "--master-key",
            key,
        ])
        .unwrap();
        let flags = format!("{:?}", cli.serve);
        let config = Config::from_args(cli.serve).unwrap();
        let resolved = format!("{config:?}");
        for shown in [flags, resolved] {
            for secret in ["db-password-here", "jwt-secret-jwt", "proxy-token-0123", key] {
                assert!(!shown.contains(secret), "{secret} printed in {shown}");
            }
        }
        assert_eq!(config.jwt_secret.expose_secret(), b"jwt-secret-jwt-secret-jwt-secret-xyz");
    }
}
