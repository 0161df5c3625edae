//! The providers' REST APIs, the calls WiseHosting makes with a user's token: who the account
//! is, its repositories (a page at a time, optionally searched), one repository, push webhooks
//! registered and removed, and commit statuses. Each answer is read into our own types; only
//! the fields used are read, and a repository name is checked ([`super::valid_repo_name`])
//! before it goes into a URL.
//!
//! | | GitHub | GitLab | Bitbucket | Gitea / Forgejo |
//! |---|---|---|---|---|
//! | account | `GET /user` | `GET /user` | `GET /user` | `GET /user` |
//! | repositories | `GET /user/repos` | `GET /projects?membership=true` | `GET /repositories?role=member` | `GET /user/repos` |
//! | hook | `POST /repos/{r}/hooks` | `POST /projects/{id}/hooks` | `POST /repositories/{r}/hooks` | `POST /repos/{r}/hooks` |
//! | status | `POST /repos/{r}/statuses/{sha}` | `POST /projects/{id}/statuses/{sha}` | `POST /repositories/{r}/commit/{sha}/statuses/build` | `POST /repos/{r}/statuses/{sha}` |

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Account, ForgeConfig, ForgeError, Provider, Repo};
use crate::outbound::Client;

/// Repositories per page of the picker.
pub const PER_PAGE: u32 = 30;

/// At most 300 characters of a provider's text, control characters dropped.
pub fn bounded(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// The user name git sends with the token as its password, per provider.
pub fn clone_user(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "x-access-token",
        Provider::Bitbucket => "x-token-auth",
        Provider::Gitlab | Provider::Gitea | Provider::Forgejo => "oauth2",
    }
}

/// `name` as one path segment (GitLab addresses a project by its URL-encoded path).
fn encoded(name: &str) -> String {
    form_urlencoded::byte_serialize(name.as_bytes()).collect()
}

/// The repository's path in the provider's API.
fn repo_path(provider: Provider, name: &str) -> String {
    match provider {
        Provider::Github | Provider::Gitea | Provider::Forgejo => format!("/repos/{name}"),
        Provider::Gitlab => format!("/projects/{}", encoded(name)),
        Provider::Bitbucket => format!("/repositories/{name}"),
    }
}

/// One authorized call; the answer's JSON (`null` for an empty body) when it is a 2xx.
async fn call(
    client: &Client,
    forge: &ForgeConfig,
    token: &str,
    method: http::Method,
    path: &str,
    body: Option<Value>,
    what: &'static str,
) -> Result<Value, ForgeError> {
    let provider = forge.provider.as_str();
    let authorization = format!("Bearer {token}");
    let accept = match forge.provider {
        Provider::Github => "application/vnd.github+json",
        _ => "application/json",
    };
    let mut headers = vec![("authorization", authorization.as_str()), ("accept", accept)];
    if forge.provider == Provider::Github {
        headers.push(("x-github-api-version", "2022-11-28"));
    }
    let body = match body {
        Some(v) => {
            headers.push(("content-type", "application/json"));
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let url = format!("{}{path}", forge.api_url);
    let answer = client
        .send(method, &url, &headers, body)
        .await
        .map_err(|source| ForgeError::Call { provider, source })?;
    if !answer.is_success() {
        return Err(ForgeError::Status {
            provider,
            what,
            status: answer.status,
            detail: bounded(&String::from_utf8_lossy(&answer.body)),
        });
    }
    if answer.body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&answer.body).map_err(|e| ForgeError::Answer {
        provider,
        what,
        why: e.to_string(),
    })
}

fn read<T: serde::de::DeserializeOwned>(
    forge: &ForgeConfig,
    what: &'static str,
    v: Value,
) -> Result<T, ForgeError> {
    serde_json::from_value(v).map_err(|e| ForgeError::Answer {
        provider: forge.provider.as_str(),
        what,
        why: e.to_string(),
    })
}

/// A JSON id, number or string.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(bounded(s)),
        _ => None,
    }
}

/// Who the token belongs to.
pub async fn account(
    client: &Client,
    forge: &ForgeConfig,
    token: &str,
) -> Result<Account, ForgeError> {
    let what = "the account";
    let v = call(client, forge, token, http::Method::GET, "/user", None, what).await?;
    let (login, id) = match forge.provider {
        Provider::Github | Provider::Gitea | Provider::Forgejo => (&v["login"], &v["id"]),
        Provider::Gitlab => (&v["username"], &v["id"]),
        Provider::Bitbucket => {
            let name = if v["username"].is_string() { &v["username"] } else { &v["nickname"] };
            (name, &v["account_id"])
        }
    };
    match (login.as_str(), id_text(id)) {
        (Some(login), Some(id)) if !login.is_empty() => Ok(Account { login: bounded(login), id }),
        _ => Err(ForgeError::Answer {
            provider: forge.provider.as_str(),
            what,
            why: "no login or id".into(),
        }),
    }
}

#[derive(Deserialize)]
struct GithubRepo {
    full_name: String,
    #[serde(default)]
    private: bool,
    clone_url: String,
    #[serde(default)]
    default_branch: Option<String>,
    html_url: String,
}

#[derive(Deserialize)]
struct GitlabProject {
    path_with_namespace: String,
    #[serde(default)]
    visibility: Option<String>,
    http_url_to_repo: String,
    #[serde(default)]
    default_branch: Option<String>,
    web_url: String,
}

#[derive(Deserialize)]
struct BitbucketLink {
    href: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct BitbucketLinks {
    #[serde(default)]
    clone: Vec<BitbucketLink>,
    html: BitbucketLink,
}

#[derive(Deserialize)]
struct BitbucketBranch {
    name: String,
}

#[derive(Deserialize)]
struct BitbucketRepo {
    full_name: String,
    #[serde(default)]
    is_private: bool,
    links: BitbucketLinks,
    #[serde(default)]
    mainbranch: Option<BitbucketBranch>,
}

#[derive(Deserialize)]
struct BitbucketPage {
    values: Vec<Value>,
    #[serde(default)]
    next: Option<String>,
}

/// An https URL without a user part (Bitbucket's clone links carry the user's name).
fn without_user(url: &str) -> String {
    match url.strip_prefix("https://").and_then(|rest| rest.split_once('@')) {
        Some((user, rest)) if !user.contains('/') => format!("https://{rest}"),
        _ => url.to_owned(),
    }
}

/// A repository as the provider describes it, read and checked.
pub fn repo_of(forge: &ForgeConfig, v: Value) -> Result<Repo, ForgeError> {
    let what = "a repository";
    let repo = match forge.provider {
        Provider::Github | Provider::Gitea | Provider::Forgejo => {
            let r: GithubRepo = read(forge, what, v)?;
            Repo {
                full_name: r.full_name,
                private: r.private,
                clone_url: r.clone_url,
                default_branch: r.default_branch.unwrap_or_default(),
                web_url: r.html_url,
            }
        }
        Provider::Gitlab => {
            let r: GitlabProject = read(forge, what, v)?;
            Repo {
                full_name: r.path_with_namespace,
                private: r.visibility.as_deref() != Some("public"),
                clone_url: r.http_url_to_repo,
                default_branch: r.default_branch.unwrap_or_default(),
                web_url: r.web_url,
            }
        }
        Provider::Bitbucket => {
            let r: BitbucketRepo = read(forge, what, v)?;
            let https = r.links.clone.iter().find(|l| l.name.as_deref() == Some("https"));
            Repo {
                full_name: r.full_name,
                private: r.is_private,
                clone_url: https.map(|l| without_user(&l.href)).unwrap_or_default(),
                default_branch: r.mainbranch.map(|b| b.name).unwrap_or_default(),
                web_url: r.links.html.href,
            }
        }
    };
    if !super::valid_repo_name(&repo.full_name) || !repo.clone_url.starts_with("https://") {
        return Err(ForgeError::Answer {
            provider: forge.provider.as_str(),
            what,
            why: format!(
                "`{}` is not a repository WiseHosting can clone",
                bounded(&repo.full_name)
            ),
        });
    }
    Ok(repo)
}

/// A page of the repositories the account can reach, theirs and their organizations' and
/// groups', most recently changed first; `search` narrows them by name. The bool: whether
/// there are more pages. GitHub, Gitea and Forgejo list repositories without a search, so
/// there `search` filters each page (a page may then show fewer than [`PER_PAGE`]).
pub async fn repositories(
    client: &Client,
    forge: &ForgeConfig,
    token: &str,
    page: u32,
    search: &str,
) -> Result<(Vec<Repo>, bool), ForgeError> {
    let what = "the repository list";
    let page = page.max(1);
    let url = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        let path = match forge.provider {
            Provider::Github => {
                query
                    .append_pair("per_page", &PER_PAGE.to_string())
                    .append_pair("page", &page.to_string())
                    .append_pair("sort", "updated")
                    .append_pair("affiliation", "owner,collaborator,organization_member");
                "/user/repos"
            }
            Provider::Gitea | Provider::Forgejo => {
                query
                    .append_pair("limit", &PER_PAGE.to_string())
                    .append_pair("page", &page.to_string());
                "/user/repos"
            }
            Provider::Gitlab => {
                query
                    .append_pair("membership", "true")
                    .append_pair("simple", "true")
                    .append_pair("order_by", "last_activity_at")
                    .append_pair("per_page", &PER_PAGE.to_string())
                    .append_pair("page", &page.to_string());
                if !search.is_empty() {
                    query.append_pair("search", search);
                }
                "/projects"
            }
            Provider::Bitbucket => {
                query
                    .append_pair("role", "member")
                    .append_pair("sort", "-updated_on")
                    .append_pair("pagelen", &PER_PAGE.to_string())
                    .append_pair("page", &page.to_string());
                if !search.is_empty() {
                    let quoted = search.replace('\\', "\\\\").replace('"', "\\\"");
                    query.append_pair("q", &format!("name ~ \"{quoted}\""));
                }
                "/repositories"
            }
        };
        format!("{path}?{}", query.finish())
    };
    let v = call(client, forge, token, http::Method::GET, &url, None, what).await?;
    let (items, more) = match forge.provider {
        Provider::Bitbucket => {
            let p: BitbucketPage = read(forge, what, v)?;
            let more = p.next.is_some();
            (p.values, more)
        }
        _ => {
            let items: Vec<Value> = read(forge, what, v)?;
            let more = items.len() as u32 >= PER_PAGE;
            (items, more)
        }
    };
    let needle = search.to_lowercase();
    let mut repos = Vec::with_capacity(items.len());
    for item in items {
        // One repository the provider describes oddly does not hide the others.
        let Ok(repo) = repo_of(forge, item) else { continue };
        let filters =
            matches!(forge.provider, Provider::Github | Provider::Gitea | Provider::Forgejo);
        if filters && !needle.is_empty() && !repo.full_name.to_lowercase().contains(&needle) {
            continue;
        }
        repos.push(repo);
    }
    Ok((repos, more))
}

/// One repository by name.
pub async fn repository(
    client: &Client,
    forge: &ForgeConfig,
    token: &str,
    name: &str,
) -> Result<Repo, ForgeError> {
    let path = repo_path(forge.provider, name);
    let v = call(client, forge, token, http::Method::GET, &path, None, "the repository").await?;
    repo_of(forge, v)
}

/// Registers a webhook on repository `name` delivering pushes (tag pushes too) and pull/merge
/// requests to `url`, signed with `secret`; returns the hook's id at the provider.
pub async fn create_hook(
    client: &Client,
    forge: &ForgeConfig,
    token: &str,
    name: &str,
    url: &str,
    secret: &str,
) -> Result<String, ForgeError> {
    let body = match forge.provider {
        Provider::Github => json!({
            "name": "web", "active": true, "events": ["push", "pull_request"],
            "config": {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"},
        }),
        Provider::Gitea | Provider::Forgejo => json!({
            "type": forge.provider.as_str(), "active": true, "events": ["push", "pull_request"],
            "config": {"url": url, "content_type": "json", "secret": secret},
        }),
        Provider::Gitlab => json!({
            "url": url, "token": secret, "push_events": true, "tag_push_events": true,
            "merge_requests_events": true, "enable_ssl_verification": true,
        }),
        Provider::Bitbucket => json!({
            "description": "WiseHosting", "url": url, "active": true, "secret": secret,
            "events": ["repo:push", "pullrequest:created", "pullrequest:updated",
                       "pullrequest:fulfilled", "pullrequest:rejected"],
        }),
    };
    let path = format!("{}/hooks", repo_path(forge.provider, name));
    let what = "registering the webhook";
    let v = call(client, forge, token, http::Method::POST, &path, Some(body), what).await?;
    let id = match forge.provider {
        Provider::Bitbucket => id_text(&v["uuid"]),
        _ => id_text(&v["id"]),
    };
    id.filter(|id| id.len() <= 100).ok_or(ForgeError::Answer {
        provider: forge.provider.as_str(),
        what,
        why: "no hook id".into(),
    })
}

/// Removes hook `id` from repository `name`; a hook that is gone already is fine.
pub async fn delete_hook(
    client: &Client,
    forge: &ForgeConfig,
    token: &str,
    name: &str,
    id: &str,
) -> Result<(), ForgeError> {
    let path = format!("{}/hooks/{}", repo_path(forge.provider, name), encoded(id));
    match call(client, forge, token, http::Method::DELETE, &path, None, "removing the webhook")
        .await
    {
        Ok(_) | Err(ForgeError::Status { status: 404, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// What a deployment's state is as a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    Pending,
    Success,
    Failure,
    Cancelled,
}

/// A commit status to set.
#[derive(Debug, Clone, Copy)]
pub struct CommitStatus<'a> {
    pub sha: &'a str,
    pub state: CommitState,
    /// The deployment's page.
    pub target_url: &'a str,
    pub description: &'a str,
}

/// Sets the status (context/key `wisehosting`) of a commit of repository `name`.
pub async fn post_status(
    client: &Client,
    forge: &ForgeConfig,
    token: &str,
    name: &str,
    status: CommitStatus<'_>,
) -> Result<(), ForgeError> {
    let CommitStatus { sha, state, target_url, description } = status;
    if !(7..=64).contains(&sha.len()) || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ForgeError::Answer {
            provider: forge.provider.as_str(),
            what: "a commit status",
            why: "the commit id is not hex".into(),
        });
    }
    let repo = repo_path(forge.provider, name);
    let (path, body) = match forge.provider {
        Provider::Github | Provider::Gitea | Provider::Forgejo => {
            let state = match state {
                CommitState::Pending => "pending",
                CommitState::Success => "success",
                CommitState::Failure => "failure",
                CommitState::Cancelled => "error",
            };
            (
                format!("{repo}/statuses/{sha}"),
                json!({"state": state, "target_url": target_url, "description": description, "context": "wisehosting"}),
            )
        }
        Provider::Gitlab => {
            let state = match state {
                CommitState::Pending => "running",
                CommitState::Success => "success",
                CommitState::Failure => "failed",
                CommitState::Cancelled => "canceled",
            };
            (
                format!("{repo}/statuses/{sha}"),
                json!({"state": state, "target_url": target_url, "description": description, "name": "wisehosting"}),
            )
        }
        Provider::Bitbucket => {
            let state = match state {
                CommitState::Pending => "INPROGRESS",
                CommitState::Success => "SUCCESSFUL",
                CommitState::Failure => "FAILED",
                CommitState::Cancelled => "STOPPED",
            };
            (
                format!("{repo}/commit/{sha}/statuses/build"),
                json!({"key": "wisehosting", "state": state, "url": target_url, "name": "WiseHosting", "description": description}),
            )
        }
    };
    call(client, forge, token, http::Method::POST, &path, Some(body), "setting the commit status")
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn forge(p: Provider) -> ForgeConfig {
        ForgeConfig::new(p, Some("https://forge.test"), None, "id".into(), SecretString::from("s"))
            .unwrap()
    }

    #[test]
    fn each_provider_describes_a_repository_its_own_way() {
        let gh = json!({"full_name": "me/site", "private": true, "clone_url": "https://github.com/me/site.git",
                        "default_branch": "main", "html_url": "https://github.com/me/site", "id": 1});
        let gl = json!({"path_with_namespace": "grp/sub/site", "visibility": "internal",
                        "http_url_to_repo": "https://gitlab.com/grp/sub/site.git", "default_branch": "trunk",
                        "web_url": "https://gitlab.com/grp/sub/site"});
        let bb = json!({"full_name": "ws/site", "is_private": false, "mainbranch": {"name": "main"},
                        "links": {"clone": [{"name": "ssh", "href": "git@bitbucket.org:ws/site.git"},
                                            {"name": "https", "href": "https://me@bitbucket.org/ws/site.git"}],
                                  "html": {"href": "https://bitbucket.org/ws/site"}}});
        let r = repo_of(&forge(Provider::Github), gh).unwrap();
        assert_eq!(
            (r.full_name.as_str(), r.private, r.default_branch.as_str()),
            ("me/site", true, "main")
        );
        let r = repo_of(&forge(Provider::Gitlab), gl).unwrap();
        assert_eq!(
            (r.full_name.as_str(), r.private, r.default_branch.as_str()),
            ("grp/sub/site", true, "trunk")
        );
        let r = repo_of(&forge(Provider::Bitbucket), bb).unwrap();
        assert_eq!(r.clone_url, "https://bitbucket.org/ws/site.git", "the user part is dropped");
        assert!(!r.private);
        // A name that would walk out of the API's paths is refused.
        let evil = json!({"full_name": "../../admin", "clone_url": "https://x/y.git", "html_url": "https://x"});
        assert!(repo_of(&forge(Provider::Gitea), evil).is_err());
    }

    #[test]
    fn gitlab_projects_are_addressed_by_their_encoded_path() {
        assert_eq!(repo_path(Provider::Gitlab, "grp/sub/site"), "/projects/grp%2Fsub%2Fsite");
        assert_eq!(repo_path(Provider::Bitbucket, "ws/site"), "/repositories/ws/site");
    }
}
