//! Git providers a user connects by OAuth (GitHub OAuth Apps, GitLab, Bitbucket Cloud, Gitea and
//! Forgejo/Codeberg): which ones the operator configured ([`Forges`], [`ForgeConfig`]), how each
//! provider's OAuth and REST API is spoken ([`oauth`], [`rest`]: one function per operation, a
//! `match` on the provider inside), the connections and their tokens in the database
//! ([`connections`]: sealed with the `wh/oauth/v1` key, refreshed before expiry), the GitHub
//! App made through the manifest flow and its installations ([`github_app`]), and commit
//! statuses reported back ([`status`]).
//!
//! Tokens never leave this module in clear except as a clone credential in a deploy job's
//! assignment (over the signed channel) and in the `Authorization` header of a call to the
//! provider they came from. They are never logged.

pub mod connections;
pub mod github_app;
pub mod oauth;
pub mod rest;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::SecretString;

use crate::config::ConfigError;
pub use crate::githooks::Provider;
use crate::outbound::{Client, OutboundError};
use crate::secrets::{Sealer, SecretError};

/// One provider as the operator configured it.
#[derive(Debug, Clone)]
pub struct ForgeConfig {
    pub provider: Provider,
    /// Where users sign in and authorize (`https://github.com`, `https://gitlab.example.com`).
    pub web_url: String,
    /// The REST API's base (`https://api.github.com`, `{web}/api/v4`, `{web}/api/v1`).
    pub api_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

impl ForgeConfig {
    /// A provider at `web_url` (None: its public service — github.com, gitlab.com,
    /// bitbucket.org, codeberg.org for Forgejo; Gitea has none), its API where that provider
    /// puts it unless `api_url` says otherwise.
    pub fn new(
        provider: Provider,
        web_url: Option<&str>,
        api_url: Option<&str>,
        client_id: String,
        client_secret: SecretString,
    ) -> Result<ForgeConfig, ConfigError> {
        let web = match (web_url, provider) {
            (Some(u), _) => u.trim_end_matches('/').to_owned(),
            (None, Provider::Github) => "https://github.com".into(),
            (None, Provider::Gitlab) => "https://gitlab.com".into(),
            (None, Provider::Bitbucket) => "https://bitbucket.org".into(),
            (None, Provider::Forgejo) => "https://codeberg.org".into(),
            (None, Provider::Gitea) => return Err(ConfigError("Gitea needs its base URL".into())),
        };
        if !(web.starts_with("https://") || web.starts_with("http://")) {
            return Err(ConfigError(format!(
                "{}: `{web}` must be an http(s) URL",
                provider.as_str()
            )));
        }
        let api = match (api_url, provider) {
            (Some(u), _) => u.trim_end_matches('/').to_owned(),
            (None, Provider::Github) if web == "https://github.com" => {
                "https://api.github.com".into()
            }
            // GitHub Enterprise Server.
            (None, Provider::Github) => format!("{web}/api/v3"),
            (None, Provider::Gitlab) => format!("{web}/api/v4"),
            (None, Provider::Bitbucket) if web == "https://bitbucket.org" => {
                "https://api.bitbucket.org/2.0".into()
            }
            (None, Provider::Bitbucket) => format!("{web}/2.0"),
            (None, Provider::Gitea | Provider::Forgejo) => format!("{web}/api/v1"),
        };
        Ok(ForgeConfig { provider, web_url: web, api_url: api, client_id, client_secret })
    }
}

/// The providers this control plane can connect to, and what talking to them needs.
#[derive(Clone)]
pub struct Forges {
    by_provider: BTreeMap<Provider, Arc<ForgeConfig>>,
    /// The control plane's public address (`https://wh.example.com`): OAuth redirects, webhook
    /// URLs and the links statuses carry start with it.
    pub public_url: String,
    pub client: Client,
    /// Seals the tokens (`wh/oauth/v1`).
    pub sealer: Arc<Sealer>,
    /// The GitHub a GitHub App lives on: the GitHub OAuth App's, else github.com.
    pub github_web: String,
    pub github_api: String,
}

impl std::fmt::Debug for Forges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forges")
            .field("providers", &self.by_provider.keys().collect::<Vec<_>>())
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Forges {
    pub fn new(
        configs: Vec<ForgeConfig>,
        public_url: &str,
        client: Client,
        sealer: Arc<Sealer>,
    ) -> Forges {
        let github = configs.iter().find(|c| c.provider == Provider::Github);
        let (github_web, github_api) = match github {
            Some(g) => (g.web_url.clone(), g.api_url.clone()),
            None => ("https://github.com".into(), "https://api.github.com".into()),
        };
        Forges {
            by_provider: configs.into_iter().map(|c| (c.provider, Arc::new(c))).collect(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            client,
            sealer,
            github_web,
            github_api,
        }
    }

    /// The provider's configuration, if the operator gave one.
    pub fn get(&self, provider: Provider) -> Result<&ForgeConfig, ForgeError> {
        self.by_provider.get(&provider).map(|c| &**c).ok_or(ForgeError::NotConfigured(provider))
    }

    pub fn configured(&self) -> impl Iterator<Item = &ForgeConfig> {
        self.by_provider.values().map(|c| &**c)
    }

    /// Where a provider sends the user back after authorizing.
    pub fn redirect_uri(&self, provider: Provider) -> String {
        format!("{}/api/v1/git/{}/callback", self.public_url, provider.as_str())
    }

    /// The forge connection `c`'s REST calls go to: its provider's, or for a GitHub App
    /// installation the App's GitHub.
    pub fn forge_of(&self, c: &connections::Connection) -> Result<ForgeConfig, ForgeError> {
        match c.installation_id {
            Some(_) => Ok(github_app::forge(self)),
            None => Ok(self.get(c.provider)?.clone()),
        }
    }

    /// The page of deployment `id` in the dashboard.
    pub fn deployment_url(&self, id: i64) -> String {
        format!("{}/deployments/{id}", self.public_url)
    }
}

/// Starts the supervised background work of connected providers: token refreshes (every
/// minute) and commit status reports (every second; a GitHub App needs no configured provider).
pub fn spawn(
    pool: &sqlx::PgPool,
    forges: &Arc<Forges>,
    routing: &Arc<crate::Routing>,
    stop: &tokio_util::sync::CancellationToken,
) {
    spawn_every(pool, forges, routing, stop, std::time::Duration::from_secs(1));
}

/// [`spawn`] with statuses reported every `status_every` (tests use less).
pub fn spawn_every(
    pool: &sqlx::PgPool,
    forges: &Arc<Forges>,
    routing: &Arc<crate::Routing>,
    stop: &tokio_util::sync::CancellationToken,
    status_every: std::time::Duration,
) {
    tokio::spawn(wh_cmd::supervise("git-token-refresh", stop.clone(), {
        let (pool, forges, stop) = (pool.clone(), forges.clone(), stop.clone());
        move || {
            let every = std::time::Duration::from_secs(60);
            connections::run_refresher(pool.clone(), forges.clone(), every, stop.clone())
        }
    }));
    tokio::spawn(wh_cmd::supervise("git-commit-status", stop.clone(), {
        let (pool, forges, stop) = (pool.clone(), forges.clone(), stop.clone());
        let routing = routing.clone();
        move || {
            status::run(pool.clone(), forges.clone(), routing.clone(), status_every, stop.clone())
        }
    }));
}

/// `user:token` to clone the repository of `deployment`'s app with, when the app was made from
/// a connected provider's repository: the connection's access token (refreshed first if it is
/// about to expire; through the GitHub App, a token that reads that one repository only). It
/// goes only into the deploy job's assignment.
pub async fn clone_credentials(
    pool: &sqlx::PgPool,
    forges: &Forges,
    deployment: i64,
) -> Result<Option<String>, ForgeError> {
    let row: Option<(Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT a.git_connection_id, a.git_repo FROM deployments d JOIN apps a ON a.id = d.app_id WHERE d.id = $1",
    )
    .bind(deployment)
    .fetch_optional(pool)
    .await?;
    let Some((Some(connection), repo)) = row else { return Ok(None) };
    let (c, token) = connections::token_for(pool, forges, connection, repo.as_deref()).await?;
    Ok(Some(format!("{}:{token}", rest::clone_user(c.provider))))
}

/// A repository at a provider, as the repository picker shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Repo {
    /// `owner/name` (a GitLab project path may have more levels).
    pub full_name: String,
    pub private: bool,
    /// The https clone URL, without credentials.
    pub clone_url: String,
    /// Empty for an empty repository.
    pub default_branch: String,
    pub web_url: String,
}

/// The account a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub login: String,
    pub id: String,
}

/// Why talking to a provider did not work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForgeError {
    #[error("{} is not configured on this control plane", .0.as_str())]
    NotConfigured(Provider),
    #[error("calling {provider}: {source}")]
    Call {
        provider: &'static str,
        #[source]
        source: OutboundError,
    },
    #[error("{provider} answered {status} to {what}: {detail}")]
    Status { provider: &'static str, what: &'static str, status: u16, detail: String },
    #[error("{provider}'s answer to {what} is not what its API documents: {why}")]
    Answer { provider: &'static str, what: &'static str, why: String },
    #[error("{provider} refused the authorization: {why}")]
    Refused { provider: &'static str, why: String },
    #[error("the connection's tokens cannot be opened: {0}")]
    Sealed(#[from] SecretError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A repository name as providers spell it: `owner/name`, a few more `/`-separated levels for
/// GitLab groups, each level of letters, digits, `.`, `_` and `-` (never `.` or `..`), at most
/// 300 bytes. Everything built into a provider's URL passes this first.
pub fn valid_repo_name(name: &str) -> bool {
    let level = |l: &str| {
        !l.is_empty()
            && l != "."
            && l != ".."
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let levels = name.split('/').count();
    name.len() <= 300 && (2..=8).contains(&levels) && name.split('/').all(level)
}

/// `provider:owner/name` (`github:me/site`; `codeberg:` is Forgejo's).
pub fn parse_repo_ref(text: &str) -> Option<(Provider, &str)> {
    let (provider, name) = text.split_once(':')?;
    let provider = Provider::parse(provider)?;
    valid_repo_name(name).then_some((provider, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_are_plain_levels() {
        for ok in ["me/site", "group/sub/project", "a.b/c-d_e"] {
            assert!(valid_repo_name(ok), "{ok}");
        }
        for bad in ["me", "me/../x", "me/.", "/me/x", "me/x/", "me/x?y", "me/x y", "me%2Fx/y"] {
            assert!(!valid_repo_name(bad), "{bad}");
        }
        assert_eq!(parse_repo_ref("codeberg:me/x"), Some((Provider::Forgejo, "me/x")));
        assert_eq!(parse_repo_ref("github:me/x"), Some((Provider::Github, "me/x")));
        assert_eq!(parse_repo_ref("svn:me/x"), None);
        assert_eq!(parse_repo_ref("github:me"), None);
    }

    #[test]
    fn api_addresses_follow_each_provider() {
        let cfg = |p, web: Option<&str>| {
            ForgeConfig::new(p, web, None, "id".into(), SecretString::from("s")).map(|c| c.api_url)
        };
        assert_eq!(cfg(Provider::Github, None).unwrap(), "https://api.github.com");
        assert_eq!(cfg(Provider::Github, Some("https://ghe.x")).unwrap(), "https://ghe.x/api/v3");
        assert_eq!(cfg(Provider::Gitlab, Some("https://gl.x/")).unwrap(), "https://gl.x/api/v4");
        assert_eq!(cfg(Provider::Bitbucket, None).unwrap(), "https://api.bitbucket.org/2.0");
        assert_eq!(cfg(Provider::Forgejo, None).unwrap(), "https://codeberg.org/api/v1");
        assert!(cfg(Provider::Gitea, None).is_err());
        assert!(cfg(Provider::Gitea, Some("ftp://g")).is_err());
    }
}
