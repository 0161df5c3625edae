//! OAuth 2 authorization-code flow, as each provider speaks it: where the user authorizes
//! ([`authorize_url`], with the scopes WiseHosting needs), the code exchanged for tokens
//! ([`exchange`]), tokens refreshed ([`refresh`]) and revoked on disconnect ([`revoke`]).
//!
//! | provider | authorize | token | revoke |
//! |---|---|---|---|
//! | GitHub | `/login/oauth/authorize` | `/login/oauth/access_token` | `DELETE {api}/applications/{client_id}/grant` |
//! | GitLab | `/oauth/authorize` | `/oauth/token` | `POST /oauth/revoke` |
//! | Bitbucket | `/site/oauth2/authorize` | `/site/oauth2/access_token` (client in Basic auth) | none |
//! | Gitea, Forgejo | `/login/oauth/authorize` | `/login/oauth/access_token` | none |

use base64::Engine;
use bytes::Bytes;
use secrecy::ExposeSecret;

use super::{ForgeConfig, ForgeError, Provider};
use crate::outbound::Client;

/// The scopes asked for: read the account and its repositories (private ones too), manage
/// their webhooks, write commit statuses. Bitbucket takes its scopes from the OAuth consumer's
/// settings, Gitea and Forgejo give OAuth tokens the user's access.
pub fn scopes(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "repo admin:repo_hook read:user",
        Provider::Gitlab => "api",
        Provider::Bitbucket | Provider::Gitea | Provider::Forgejo => "",
    }
}

/// Where to send the user to authorize this control plane.
pub fn authorize_url(forge: &ForgeConfig, redirect_uri: &str, state: &str) -> String {
    let path = match forge.provider {
        Provider::Github | Provider::Gitea | Provider::Forgejo => "/login/oauth/authorize",
        Provider::Gitlab => "/oauth/authorize",
        Provider::Bitbucket => "/site/oauth2/authorize",
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("client_id", &forge.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("state", state);
    let scopes = scopes(forge.provider);
    if !scopes.is_empty() {
        query.append_pair("scope", scopes);
    }
    format!("{}{path}?{}", forge.web_url, query.finish())
}

fn token_path(provider: Provider) -> &'static str {
    match provider {
        Provider::Github | Provider::Gitea | Provider::Forgejo => "/login/oauth/access_token",
        Provider::Gitlab => "/oauth/token",
        Provider::Bitbucket => "/site/oauth2/access_token",
    }
}

/// Tokens a provider granted.
pub struct Grant {
    pub access: String,
    pub refresh: Option<String>,
    /// Seconds the access token lives; None: until revoked.
    pub expires_in: Option<u64>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("refresh", &self.refresh.is_some())
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

fn basic(forge: &ForgeConfig) -> String {
    let pair = format!("{}:{}", forge.client_id, forge.client_secret.expose_secret());
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// The code a provider sent back, exchanged for tokens.
pub async fn exchange(
    client: &Client,
    forge: &ForgeConfig,
    redirect_uri: &str,
    code: &str,
) -> Result<Grant, ForgeError> {
    token_request(
        client,
        forge,
        &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri)],
    )
    .await
}

/// New tokens for a refresh token (GitLab, Bitbucket and Gitea hand out a new refresh token
/// each time; the old one stops working).
pub async fn refresh(
    client: &Client,
    forge: &ForgeConfig,
    refresh_token: &str,
) -> Result<Grant, ForgeError> {
    token_request(
        client,
        forge,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)],
    )
    .await
}

async fn token_request(
    client: &Client,
    forge: &ForgeConfig,
    fields: &[(&str, &str)],
) -> Result<Grant, ForgeError> {
    let provider = forge.provider.as_str();
    let authorization = basic(forge);
    let mut headers =
        vec![("accept", "application/json"), ("content-type", "application/x-www-form-urlencoded")];
    let form = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(fields);
        if forge.provider == Provider::Bitbucket {
            headers.push(("authorization", authorization.as_str()));
        } else {
            form.append_pair("client_id", &forge.client_id)
                .append_pair("client_secret", forge.client_secret.expose_secret());
        }
        form.finish()
    };
    let url = format!("{}{}", forge.web_url, token_path(forge.provider));
    let answer = client
        .send(http::Method::POST, &url, &headers, Bytes::from(form))
        .await
        .map_err(|source| ForgeError::Call { provider, source })?;
    let parsed: Option<TokenAnswer> = serde_json::from_slice(&answer.body).ok();
    let refused = |why: String| ForgeError::Refused { provider, why };
    match parsed {
        // GitHub answers errors with 200 and an `error` field.
        Some(TokenAnswer { error: Some(e), error_description, .. }) => Err(refused(format!(
            "{}{}",
            super::rest::bounded(&e),
            error_description
                .map(|d| format!(": {}", super::rest::bounded(&d)))
                .unwrap_or_default()
        ))),
        Some(TokenAnswer { access_token: Some(access), refresh_token, expires_in, .. })
            if answer.is_success() && !access.is_empty() =>
        {
            Ok(Grant { access, refresh: refresh_token.filter(|r| !r.is_empty()), expires_in })
        }
        _ => Err(refused(format!("the token endpoint answered {}", answer.status))),
    }
}

/// Revokes the grant behind `access_token` where the provider can (GitHub: the whole grant, so
/// the OAuth App disappears from the user's authorized apps; GitLab: the token). True when
/// revoked, false when the provider has no way (Bitbucket, Gitea, Forgejo: the user removes the
/// authorization in the provider's settings).
pub async fn revoke(
    client: &Client,
    forge: &ForgeConfig,
    access_token: &str,
) -> Result<bool, ForgeError> {
    let provider = forge.provider.as_str();
    let (method, url, headers, body) = match forge.provider {
        Provider::Github => (
            http::Method::DELETE,
            format!("{}/applications/{}/grant", forge.api_url, forge.client_id),
            vec![("accept", "application/vnd.github+json"), ("content-type", "application/json")],
            serde_json::json!({"access_token": access_token}).to_string(),
        ),
        Provider::Gitlab => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("client_id", &forge.client_id)
                .append_pair("client_secret", forge.client_secret.expose_secret())
                .append_pair("token", access_token);
            (
                http::Method::POST,
                format!("{}/oauth/revoke", forge.web_url),
                vec![("content-type", "application/x-www-form-urlencoded")],
                form.finish(),
            )
        }
        Provider::Bitbucket | Provider::Gitea | Provider::Forgejo => return Ok(false),
    };
    let authorization = basic(forge);
    let mut headers = headers;
    if forge.provider == Provider::Github {
        headers.push(("authorization", authorization.as_str()));
    }
    let answer = client
        .send(method, &url, &headers, Bytes::from(body))
        .await
        .map_err(|source| ForgeError::Call { provider, source })?;
    // 404 from GitHub: the grant is gone already.
    if answer.is_success() || answer.status == 404 {
        Ok(true)
    } else {
        Err(ForgeError::Status {
            provider,
            what: "revoking the authorization",
            status: answer.status,
            detail: super::rest::bounded(&String::from_utf8_lossy(&answer.body)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn authorize_urls_carry_client_redirect_state_and_scopes() {
        let forge = ForgeConfig::new(
            Provider::Github,
            None,
            None,
            "Iv1.abc".into(),
            SecretString::from("s"),
        )
        .unwrap();
        assert_eq!(
            authorize_url(&forge, "https://wh.example/api/v1/git/github/callback", "st&te"),
            "https://github.com/login/oauth/authorize?client_id=Iv1.abc&redirect_uri=https%3A%2F%2Fwh.example%2Fapi%2Fv1%2Fgit%2Fgithub%2Fcallback&response_type=code&state=st%26te&scope=repo+admin%3Arepo_hook+read%3Auser"
        );
        let bb =
            ForgeConfig::new(Provider::Bitbucket, None, None, "k".into(), SecretString::from("s"))
                .unwrap();
        let url = authorize_url(&bb, "https://wh/cb", "x");
        assert!(url.starts_with("https://bitbucket.org/site/oauth2/authorize?client_id=k&"));
        assert!(!url.contains("scope="));
    }
}
