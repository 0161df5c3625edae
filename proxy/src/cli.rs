//! Command line, environment (`WH_PROXY_*`) and optional TOML file, resolved into [`Settings`].
//!
//! Precedence: command line, then environment, then the TOML file, then defaults. Every
//! problem is reported as one message naming the setting; `main` exits with 64 on it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::config::duration;
use crate::headers::TrustedProxies;

/// A secret string (`secrecy`): its `Debug` prints `[REDACTED]`, its memory is zeroed on drop.
pub use secrecy::SecretString as Secret;

/// wh-proxy: WiseHosting's ingress proxy.
#[derive(Debug, Default, Parser, Deserialize)]
#[command(name = "wh-proxy", version, about)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Args {
    /// Optional TOML file with any of these settings (kebab-case keys).
    #[arg(long, env = "WH_PROXY_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Where routes come from: file, http (poll) or watch (long-poll).
    #[arg(long, env = "WH_PROXY_PROVIDER")]
    pub provider: Option<String>,
    /// Routes file (JSON or YAML) for --provider file.
    #[arg(long, env = "WH_PROXY_ROUTES")]
    pub routes: Option<PathBuf>,
    /// Control plane proxy-config URL for --provider http|watch.
    #[arg(long, env = "WH_PROXY_CONFIG_URL")]
    pub config_url: Option<String>,
    /// Bearer token for --config-url.
    #[arg(long, env = "WH_PROXY_CONFIG_TOKEN", hide_env_values = true)]
    pub config_token: Option<Secret>,
    /// File holding the bearer token.
    #[arg(long, env = "WH_PROXY_CONFIG_TOKEN_FILE")]
    pub config_token_file: Option<PathBuf>,
    /// Public HTTP listener [default: 0.0.0.0:80].
    #[arg(long, env = "WH_PROXY_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// HTTPS listener, or `off` [default: 0.0.0.0:443].
    #[arg(long, env = "WH_PROXY_HTTPS_ADDR")]
    pub https_addr: Option<String>,
    /// ACME directory: a URL, `production` or `staging` (Let's Encrypt) [default: production].
    #[arg(long, env = "WH_PROXY_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// PEM file with the root to trust for the ACME directory (tests, private CAs).
    #[arg(long, env = "WH_PROXY_ACME_CA_BUNDLE")]
    pub acme_ca_bundle: Option<PathBuf>,
    /// Contact e-mail for the ACME account.
    #[arg(long, env = "WH_PROXY_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// Concurrent certificate orders [default: 4].
    #[arg(long, env = "WH_PROXY_ACME_CONCURRENCY")]
    pub acme_concurrency: Option<usize>,
    /// Operator-provided wildcard certificate (PEM chain) for *.route.<domain>.
    #[arg(long, env = "WH_PROXY_WILDCARD_CERT")]
    pub wildcard_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "WH_PROXY_WILDCARD_KEY")]
    pub wildcard_key: Option<PathBuf>,
    /// Admin listener: /metrics, /healthz, /routes, /certs [default: 127.0.0.1:8082].
    #[arg(long, env = "WH_PROXY_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    /// State directory: last-known-good config [default: /var/lib/wh-proxy].
    #[arg(long, env = "WH_PROXY_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Poll interval of the http provider [default: 5s].
    #[arg(long, env = "WH_PROXY_POLL_INTERVAL")]
    pub poll_interval: Option<String>,
    /// Runtime worker threads [default: one per core].
    #[arg(long, env = "WH_PROXY_THREADS")]
    pub threads: Option<usize>,
    /// Log output: json, plain or off [default: plain].
    #[arg(long, env = "WH_PROXY_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// One line per request: on or off [default: on].
    #[arg(long, env = "WH_PROXY_ACCESS_LOG")]
    pub access_log: Option<String>,
    /// Peers whose X-Forwarded-* headers are trusted (CIDRs, comma-separated).
    #[arg(long, env = "WH_PROXY_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Percent-encoded characters a request path may carry, refused otherwise (comma-separated:
    /// slash, backslash, null, semicolon, percent, question-mark, hash, or all) [default: none].
    #[arg(long, env = "WH_PROXY_ALLOW_ENCODED_CHARS")]
    pub allow_encoded_chars: Option<String>,
    /// A keep-alive connection with no request in flight is closed after this [default: 90s].
    #[arg(long, env = "WH_PROXY_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// A request body that sends no byte for this long is cut [default: 60s].
    #[arg(long, env = "WH_PROXY_BODY_IDLE_TIMEOUT")]
    pub body_idle_timeout: Option<String>,
    /// Maximum concurrent client connections [default: 100000].
    #[arg(long, env = "WH_PROXY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Time a client has to send its request headers [default: 10s].
    #[arg(long, env = "WH_PROXY_HEADER_TIMEOUT")]
    pub header_timeout: Option<String>,
    /// Largest request header block in bytes [default: 65536].
    #[arg(long, env = "WH_PROXY_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Drain time for in-flight requests on SIGTERM [default: 30s].
    #[arg(long, env = "WH_PROXY_GRACE_PERIOD")]
    pub grace_period: Option<String>,
    /// Apply configs even when they remove most routes.
    #[arg(long, env = "WH_PROXY_ALLOW_MASS_REMOVAL")]
    pub allow_mass_removal: Option<bool>,
    /// Largest fraction of routes one update may remove [default: 0.5].
    #[arg(long, env = "WH_PROXY_MAX_REMOVAL_FRACTION")]
    pub max_removal_fraction: Option<f64>,
    /// The rule syntax of routers without `ruleSyntax`: v3, or v2 for Traefik v2 configs
    /// (Traefik's `core.defaultRuleSyntax`) [default: v3].
    #[arg(long, env = "WH_PROXY_DEFAULT_RULE_SYNTAX")]
    pub default_rule_syntax: Option<String>,
    /// Entry point names served by the plain listener (comma-separated) [default: web,http].
    #[arg(long, env = "WH_PROXY_ENTRY_POINTS_WEB")]
    pub entry_points_web: Option<String>,
    /// Entry point names served by the TLS listener [default: websecure,https].
    #[arg(long, env = "WH_PROXY_ENTRY_POINTS_WEBSECURE")]
    pub entry_points_websecure: Option<String>,
}

impl Args {
    /// A proxy following a control plane's proxy-config endpoint: plain HTTP on `http_addr`, no
    /// HTTPS, admin on an ephemeral loopback port, one thread, no access log. What `wh dev`
    /// embeds and the end-to-end tests run; callers change the rest with struct update syntax.
    /// Unlike parsing, it reads no `WH_PROXY_*` environment variable.
    pub fn following(
        config_url: String,
        token: &str,
        state_dir: PathBuf,
        http_addr: SocketAddr,
    ) -> Args {
        Args {
            provider: Some("watch".into()),
            config_url: Some(config_url),
            config_token: Some(Secret::from(token)),
            state_dir: Some(state_dir),
            http_addr: Some(http_addr),
            https_addr: Some("off".into()),
            admin_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            threads: Some(1),
            access_log: Some("off".into()),
            ..Args::default()
        }
    }
}

/// Where routes come from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Http { url: String, token: Option<Secret>, watch: bool },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Plain,
    Off,
}

/// TLS settings; absent when `--https-addr off`.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub https_addr: SocketAddr,
    pub acme_directory: String,
    pub acme_ca_bundle: Option<PathBuf>,
    pub acme_email: Option<String>,
    pub acme_concurrency: usize,
    pub wildcard: Option<(PathBuf, PathBuf)>,
}

/// Fully resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: Source,
    pub http_addr: SocketAddr,
    pub tls: Option<TlsSettings>,
    pub admin_addr: SocketAddr,
    pub state_dir: PathBuf,
    pub poll_interval: Duration,
    pub threads: Option<usize>,
    pub log_format: LogFormat,
    pub access_log: bool,
    pub trusted: TrustedProxies,
    pub encoded_chars: crate::target::EncodedChars,
    pub idle_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub max_header_bytes: usize,
    pub grace_period: Duration,
    pub allow_mass_removal: bool,
    pub max_removal_fraction: f64,
    pub default_rule_syntax: crate::config::rule::Syntax,
    pub entry_points: crate::config::dynamic::EntryPointNames,
}

/// Why the command line, environment or TOML file is unusable (exit code 64).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    #[error("--config {}: {source}", path.display())]
    ConfigRead { path: PathBuf, source: std::io::Error },
    #[error("--config {}: {source}", path.display())]
    ConfigParse { path: PathBuf, source: toml::de::Error },
    #[error("--config-token-file {}: {source}", path.display())]
    TokenFile { path: PathBuf, source: std::io::Error },
    #[error("--{flag}: invalid duration `{value}` (e.g. 5s, 250ms)")]
    Duration { flag: &'static str, value: String },
    #[error("--provider {provider} needs {needs}")]
    Needs { provider: String, needs: &'static str },
    #[error("--{flag} must be {allowed}, not `{value}`")]
    OneOf { flag: &'static str, allowed: &'static str, value: String },
    #[error("--max-removal-fraction must be between 0 and 1")]
    RemovalFraction,
    #[error("--threads must be at least 1")]
    Threads,
    #[error("--https-addr must be an address or `off`, not `{0}`")]
    HttpsAddr(String),
    #[error("--wildcard-cert and --wildcard-key go together")]
    WildcardPair,
    #[error("--trusted-proxies: {0}")]
    TrustedProxies(#[from] crate::headers::TrustedProxyError),
    #[error("--allow-encoded-chars: {0}")]
    EncodedChars(#[from] crate::target::UnknownEncodedChar),
}

impl SettingsError {
    fn one_of(flag: &'static str, allowed: &'static str, value: &str) -> SettingsError {
        SettingsError::OneOf { flag, allowed, value: value.to_owned() }
    }
}

impl Settings {
    /// Resolves the command line (and environment) plus the TOML file it names.
    pub fn from_args(args: Args) -> Result<Settings, SettingsError> {
        let file: Args = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| SettingsError::ConfigRead { path: path.clone(), source })?;
                toml::from_str(&text)
                    .map_err(|source| SettingsError::ConfigParse { path: path.clone(), source })?
            }
            None => Args::default(),
        };
        macro_rules! pick {
            ($f:ident) => {
                args.$f.clone().or(file.$f.clone())
            };
        }
        let dur = |v: Option<String>, flag: &'static str, default: u64| match v {
            Some(s) => {
                duration::parse(&s).ok_or(SettingsError::Duration { flag, value: s.clone() })
            }
            None => Ok(Duration::from_secs(default)),
        };
        let provider = pick!(provider).unwrap_or_else(|| "file".into());
        let source = match provider.as_str() {
            "file" => {
                Source::File(pick!(routes).ok_or(SettingsError::Needs {
                    provider: "file".into(),
                    needs: "--routes FILE",
                })?)
            }
            "http" | "watch" => {
                let url = pick!(config_url).ok_or_else(|| SettingsError::Needs {
                    provider: provider.clone(),
                    needs: "--config-url URL",
                })?;
                let token = match (pick!(config_token), pick!(config_token_file)) {
                    (Some(t), _) => Some(t),
                    (None, Some(path)) => Some(Secret::from(
                        std::fs::read_to_string(&path)
                            .map_err(|source| SettingsError::TokenFile {
                                path: path.clone(),
                                source,
                            })?
                            .trim()
                            .to_owned(),
                    )),
                    (None, None) => None,
                };
                Source::Http { url, token, watch: provider == "watch" }
            }
            other => return Err(SettingsError::one_of("provider", "file, http or watch", other)),
        };
        let log_format = match pick!(log_format).as_deref().unwrap_or("plain") {
            "json" => LogFormat::Json,
            "plain" => LogFormat::Plain,
            "off" => LogFormat::Off,
            other => return Err(SettingsError::one_of("log-format", "json, plain or off", other)),
        };
        let access_log = match pick!(access_log).as_deref().unwrap_or("on") {
            "on" | "true" => true,
            "off" | "false" => false,
            other => return Err(SettingsError::one_of("access-log", "on or off", other)),
        };
        let max_removal_fraction = pick!(max_removal_fraction).unwrap_or(0.5);
        if !(0.0..=1.0).contains(&max_removal_fraction) {
            return Err(SettingsError::RemovalFraction);
        }
        let threads = pick!(threads);
        if threads == Some(0) {
            return Err(SettingsError::Threads);
        }
        let tls = match pick!(https_addr).as_deref().unwrap_or("0.0.0.0:443") {
            "off" => None,
            addr => Some(TlsSettings {
                https_addr: addr.parse().map_err(|_| SettingsError::HttpsAddr(addr.to_owned()))?,
                acme_directory: pick!(acme_directory).unwrap_or_else(|| "production".into()),
                acme_ca_bundle: pick!(acme_ca_bundle),
                acme_email: pick!(acme_email),
                acme_concurrency: pick!(acme_concurrency).unwrap_or(4).max(1),
                wildcard: match (pick!(wildcard_cert), pick!(wildcard_key)) {
                    (Some(c), Some(k)) => Some((c, k)),
                    (None, None) => None,
                    _ => return Err(SettingsError::WildcardPair),
                },
            }),
        };
        Ok(Settings {
            source,
            tls,
            http_addr: pick!(http_addr).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 80))),
            admin_addr: pick!(admin_addr)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8082))),
            state_dir: pick!(state_dir).unwrap_or_else(|| PathBuf::from("/var/lib/wh-proxy")),
            poll_interval: dur(pick!(poll_interval), "poll-interval", 5)?,
            threads,
            log_format,
            access_log,
            trusted: TrustedProxies::parse(&pick!(trusted_proxies).unwrap_or_default())?,
            encoded_chars: crate::target::EncodedChars::parse(
                &pick!(allow_encoded_chars).unwrap_or_default(),
            )?,
            idle_timeout: dur(pick!(idle_timeout), "idle-timeout", 90)?,
            body_idle_timeout: dur(pick!(body_idle_timeout), "body-idle-timeout", 60)?,
            max_connections: pick!(max_connections).unwrap_or(100_000).max(1),
            header_timeout: dur(pick!(header_timeout), "header-timeout", 10)?,
            max_header_bytes: pick!(max_header_bytes).unwrap_or(64 * 1024).max(1024),
            grace_period: dur(pick!(grace_period), "grace-period", 30)?,
            allow_mass_removal: pick!(allow_mass_removal).unwrap_or(false),
            max_removal_fraction,
            entry_points: {
                let names = |v: Option<String>, default: Vec<String>| match v {
                    None => default,
                    Some(v) => v
                        .split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(String::from)
                        .collect(),
                };
                let d = crate::config::dynamic::EntryPointNames::default();
                crate::config::dynamic::EntryPointNames {
                    plain: names(pick!(entry_points_web), d.plain),
                    tls: names(pick!(entry_points_websecure), d.tls),
                }
            },
            default_rule_syntax: match pick!(default_rule_syntax) {
                None => crate::config::rule::Syntax::V3,
                Some(word) => crate::config::rule::Syntax::parse(&word).ok_or_else(|| {
                    SettingsError::one_of("default-rule-syntax", "v3 or v2", &word)
                })?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let mut full = vec!["wh-proxy"];
        full.extend(args);
        Settings::from_args(Args::try_parse_from(full).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_errors() {
        let s = parse(&["--routes", "r.json"]).unwrap();
        assert_eq!(s.http_addr.port(), 80);
        assert_eq!(s.poll_interval, Duration::from_secs(5));
        assert!(parse(&[]).unwrap_err().contains("--routes"));
        assert!(parse(&["--provider", "http"]).unwrap_err().contains("--config-url"));
        assert!(parse(&["--routes", "r", "--poll-interval", "soon"])
            .unwrap_err()
            .contains("poll-interval"));
        assert!(parse(&["--routes", "r", "--log-format", "xml"])
            .unwrap_err()
            .contains("log-format"));
        assert!(parse(&["--routes", "r", "--trusted-proxies", "x"])
            .unwrap_err()
            .contains("trusted"));
    }

    #[test]
    fn toml_file_fills_in_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, "provider = \"http\"\nconfig-url = \"http://127.0.0.1:1/x\"\nconfig-token = \"s3cret\"\nhttp-addr = \"127.0.0.1:8000\"\n").unwrap();
        let s =
            parse(&["--config", path.to_str().unwrap(), "--http-addr", "127.0.0.1:9000"]).unwrap();
        assert_eq!(s.http_addr.port(), 9000);
        assert!(matches!(&s.source, Source::Http { watch: false, .. }));
        assert!(!format!("{s:?}").contains("s3cret"), "token leaked into Debug output");
        std::fs::write(&path, "nonsense = 1\n").unwrap();
        assert!(parse(&["--config", path.to_str().unwrap()]).unwrap_err().contains("nonsense"));
    }
}
