//! The GitHub App, the alternative to a GitHub OAuth App: the operator creates it once through
//! GitHub's manifest flow ([`manifest`]; GitHub hands back its id, private key and secrets for
//! the code, [`convert`]), users install it on their accounts or organizations and pick the
//! repositories it may see. Installing asks the user to authorize too, so the control plane can
//! check with the user's token ([`user_installations`]) that the installation is theirs before
//! it becomes a connection. No user token is kept: an installation's token (an hour, scoped to
//! the installation's repositories) is minted when one is needed ([`installation_token`], from a
//! JWT signed with the App's key) and never stored. The App has one webhook for every
//! installation (`POST /api/v1/hooks/github-app`), so no hook is registered per repository.
//!
//! The private key, client secret and webhook secret are sealed (`wh/oauth/v1`, the row id).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

use super::{ForgeConfig, ForgeError, Forges, Provider, Repo};
use crate::outbound::Client;

const PROVIDER: &str = "github";

/// The App as stored.
pub struct GithubApp {
    pub id: i64,
    pub app_id: i64,
    pub slug: String,
    pub html_url: String,
    pub client_id: String,
    secrets: Secrets,
}

impl std::fmt::Debug for GithubApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubApp")
            .field("app_id", &self.app_id)
            .field("slug", &self.slug)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize, Deserialize)]
struct Secrets {
    pem: String,
    client_secret: String,
    webhook_secret: String,
}

impl GithubApp {
    /// The secret GitHub signs the App's webhook deliveries with.
    pub fn webhook_secret(&self) -> &[u8] {
        self.secrets.webhook_secret.as_bytes()
    }

    /// The App as an OAuth client (installing it asks the user to authorize it).
    fn oauth(&self, forges: &Forges) -> ForgeConfig {
        ForgeConfig {
            client_id: self.client_id.clone(),
            client_secret: secrecy::SecretString::from(self.secrets.client_secret.clone()),
            ..forge(forges)
        }
    }
}

/// The manifest GitHub creates the App from: its webhook, where GitHub sends the operator back
/// (`redirect_url`) and the user after installing (`callback_urls`, with an authorization code),
/// and the least it needs: read the code and metadata, read pull requests, write commit
/// statuses; events push and pull_request.
pub fn manifest(forges: &Forges, name: &str) -> serde_json::Value {
    let base = &forges.public_url;
    json!({
        "name": name,
        "url": base,
        "hook_attributes": {"url": format!("{base}/api/v1/hooks/github-app"), "active": true},
        "redirect_url": format!("{base}/api/v1/git/github-app/created"),
        "callback_urls": [format!("{base}/api/v1/git/github-app/installed")],
        "request_oauth_on_install": true,
        "public": false,
        "default_permissions": {"contents": "read", "metadata": "read", "pull_requests": "read", "statuses": "write"},
        "default_events": ["push", "pull_request"],
    })
}

/// Where the manifest is posted: the user's settings, or an organization's.
pub fn new_app_url(forges: &Forges, organization: Option<&str>, state: &str) -> String {
    match organization {
        Some(org) => {
            format!("{}/organizations/{org}/settings/apps/new?state={state}", forges.github_web)
        }
        None => format!("{}/settings/apps/new?state={state}", forges.github_web),
    }
}

#[derive(Deserialize)]
struct Conversion {
    id: i64,
    slug: String,
    html_url: String,
    client_id: String,
    client_secret: String,
    webhook_secret: Option<String>,
    pem: String,
}

fn refused(why: String) -> ForgeError {
    ForgeError::Refused { provider: PROVIDER, why }
}

/// One call to GitHub's API (`authorization` a full header value); the answer's JSON when 2xx.
async fn call(
    client: &Client,
    method: http::Method,
    url: &str,
    authorization: Option<&str>,
    body: String,
    what: &'static str,
) -> Result<serde_json::Value, ForgeError> {
    let mut headers =
        vec![("accept", "application/vnd.github+json"), ("x-github-api-version", "2022-11-28")];
    if let Some(a) = authorization {
        headers.push(("authorization", a));
    }
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    let answer = client
        .send(method, url, &headers, Bytes::from(body))
        .await
        .map_err(|source| ForgeError::Call { provider: PROVIDER, source })?;
    if !answer.is_success() {
        return Err(ForgeError::Status {
            provider: PROVIDER,
            what,
            status: answer.status,
            detail: super::rest::bounded(&String::from_utf8_lossy(&answer.body)),
        });
    }
    serde_json::from_slice(&answer.body).map_err(|e| ForgeError::Answer {
        provider: PROVIDER,
        what,
        why: e.to_string(),
    })
}

/// The App GitHub made from the manifest, for the `code` it sent the operator back with;
/// stored (replacing an earlier one on the same GitHub). Returns its slug.
pub async fn convert(pool: &PgPool, forges: &Forges, code: &str) -> Result<String, ForgeError> {
    if code.is_empty()
        || code.len() > 200
        || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(refused("the manifest code is malformed".into()));
    }
    let url = format!("{}/app-manifests/{code}/conversions", forges.github_api);
    let what = "the App's conversion";
    let v = call(&forges.client, http::Method::POST, &url, None, String::new(), what).await?;
    let c: Conversion = serde_json::from_value(v).map_err(|e| ForgeError::Answer {
        provider: PROVIDER,
        what: "the App's conversion",
        why: e.to_string(),
    })?;
    jsonwebtoken::EncodingKey::from_rsa_pem(c.pem.as_bytes()).map_err(|_| ForgeError::Answer {
        provider: PROVIDER,
        what: "the App's conversion",
        why: "the private key is not RSA PEM".into(),
    })?;
    let secrets = Secrets {
        pem: c.pem,
        client_secret: c.client_secret,
        webhook_secret: c.webhook_secret.unwrap_or_default(),
    };
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM github_apps WHERE base_url = $1")
        .bind(&forges.github_web)
        .execute(&mut *tx)
        .await?;
    let id: i64 =
        sqlx::query_scalar("SELECT nextval('github_apps_id_seq')").fetch_one(&mut *tx).await?;
    let sealed = forges.sealer.seal(&serde_json::to_vec(&secrets).expect("secrets serialize"), id);
    sqlx::query(
        "INSERT INTO github_apps (id, base_url, app_id, slug, html_url, client_id, secrets_sealed)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(&forges.github_web)
    .bind(c.id)
    .bind(super::rest::bounded(&c.slug))
    .bind(super::rest::bounded(&c.html_url))
    .bind(super::rest::bounded(&c.client_id))
    .bind(sealed)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(c.slug)
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    app_id: i64,
    slug: String,
    html_url: String,
    client_id: String,
    secrets_sealed: Vec<u8>,
}

/// The App on this control plane's GitHub, if the operator created one.
pub async fn load(pool: &PgPool, forges: &Forges) -> Result<Option<GithubApp>, ForgeError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, app_id, slug, html_url, client_id, secrets_sealed FROM github_apps WHERE base_url = $1",
    )
    .bind(&forges.github_web)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let opened = forges.sealer.open(&r.secrets_sealed, r.id)?;
    let secrets: Secrets =
        serde_json::from_slice(&opened).map_err(|_| crate::secrets::SecretError::Format)?;
    Ok(Some(GithubApp {
        id: r.id,
        app_id: r.app_id,
        slug: r.slug,
        html_url: r.html_url,
        client_id: r.client_id,
        secrets,
    }))
}

/// A JWT the App authenticates as itself with: issued a minute ago (clock drift), good for
/// nine minutes (GitHub takes at most ten).
pub fn jwt(app: &GithubApp) -> Result<String, ForgeError> {
    #[derive(serde::Serialize)]
    struct Claims {
        iat: u64,
        exp: u64,
        iss: String,
    }
    let now = u64::try_from(crate::now_ms() / 1000).unwrap_or(0);
    let claims =
        Claims { iat: now.saturating_sub(60), exp: now + 540, iss: app.app_id.to_string() };
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(app.secrets.pem.as_bytes())
        .map_err(|_| ForgeError::Sealed(crate::secrets::SecretError::Format))?;
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key)
        .map_err(|_| ForgeError::Sealed(crate::secrets::SecretError::Format))
}

/// A fresh token of `installation` (GitHub's lasts an hour); never stored. With `only`, it
/// may read that one repository's contents and nothing else (what a clone needs: a worker that
/// holds it reaches no other repository of the installation).
pub async fn installation_token(
    forges: &Forges,
    app: &GithubApp,
    installation: i64,
    only: Option<&str>,
) -> Result<String, ForgeError> {
    let authorization = format!("Bearer {}", jwt(app)?);
    let url = format!("{}/app/installations/{installation}/access_tokens", forges.github_api);
    let what = "an installation token";
    let body = match only.and_then(|full| full.split_once('/')) {
        Some((_, name)) => {
            json!({"repositories": [name], "permissions": {"contents": "read"}}).to_string()
        }
        None => String::new(),
    };
    let v =
        call(&forges.client, http::Method::POST, &url, Some(&authorization), body, what).await?;
    v["token"].as_str().filter(|t| !t.is_empty()).map(str::to_owned).ok_or(ForgeError::Answer {
        provider: PROVIDER,
        what: "an installation token",
        why: "no token".into(),
    })
}

/// The user token for the `code` GitHub sent back after an installation (the App as an OAuth
/// client); used once, to see which installations are the user's.
pub async fn user_token(
    forges: &Forges,
    app: &GithubApp,
    code: &str,
) -> Result<String, ForgeError> {
    let redirect = format!("{}/api/v1/git/github-app/installed", forges.public_url);
    super::oauth::exchange(&forges.client, &app.oauth(forges), &redirect, code)
        .await
        .map(|g| g.access)
}

/// The installations the user of `token` can reach: id and account.
pub async fn user_installations(
    forges: &Forges,
    token: &str,
) -> Result<Vec<(i64, String)>, ForgeError> {
    #[derive(Deserialize)]
    struct Account {
        login: String,
    }
    #[derive(Deserialize)]
    struct Installation {
        id: i64,
        account: Account,
    }
    #[derive(Deserialize)]
    struct Page {
        installations: Vec<Installation>,
    }
    let url = format!("{}/user/installations?per_page=100", forges.github_api);
    let bearer = format!("Bearer {token}");
    let what = "the user's installations";
    let v =
        call(&forges.client, http::Method::GET, &url, Some(&bearer), String::new(), what).await?;
    let page: Page = serde_json::from_value(v).map_err(|e| ForgeError::Answer {
        provider: PROVIDER,
        what: "the user's installations",
        why: e.to_string(),
    })?;
    Ok(page
        .installations
        .into_iter()
        .map(|i| (i.id, super::rest::bounded(&i.account.login)))
        .collect())
}

/// A page of the repositories an installation may see (with its token), filtered by `search`.
pub async fn repositories(
    forges: &Forges,
    token: &str,
    page: u32,
    search: &str,
) -> Result<(Vec<Repo>, bool), ForgeError> {
    #[derive(Deserialize)]
    struct Page {
        repositories: Vec<serde_json::Value>,
    }
    let per = super::rest::PER_PAGE;
    let url = format!(
        "{}/installation/repositories?per_page={per}&page={}",
        forges.github_api,
        page.max(1)
    );
    let bearer = format!("Bearer {token}");
    let what = "the installation's repositories";
    let v =
        call(&forges.client, http::Method::GET, &url, Some(&bearer), String::new(), what).await?;
    let p: Page = serde_json::from_value(v).map_err(|e| ForgeError::Answer {
        provider: PROVIDER,
        what: "the installation's repositories",
        why: e.to_string(),
    })?;
    let more = p.repositories.len() as u32 >= per;
    let needle = search.to_lowercase();
    let forge = forge(forges);
    let repos = p
        .repositories
        .into_iter()
        .filter_map(|r| super::rest::repo_of(&forge, r).ok())
        .filter(|r| needle.is_empty() || r.full_name.to_lowercase().contains(&needle))
        .collect();
    Ok((repos, more))
}

/// The GitHub a control plane's App lives on, as a forge (for the REST calls made with an
/// installation's token).
pub fn forge(forges: &Forges) -> ForgeConfig {
    ForgeConfig {
        provider: Provider::Github,
        web_url: forges.github_web.clone(),
        api_url: forges.github_api.clone(),
        client_id: String::new(),
        client_secret: secrecy::SecretString::from(String::new()),
    }
}
