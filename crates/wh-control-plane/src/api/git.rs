//! Connected git providers over HTTP: which providers the operator configured, connecting one
//! by OAuth (`POST /api/v1/git/{provider}/connect` gives the address to authorize at; the
//! provider sends the user back to `GET /api/v1/git/{provider}/callback`), the connections,
//! disconnecting (the grant revoked where the provider can, the hooks registered through it
//! removed), and a connection's repositories for the picker.
//!
//! Also what app creation and deletion need: an app made from `provider:owner/name`
//! ([`link_repo`]) gets a push webhook registered through the provider's API with its own
//! secret ([`register_hook`]); deleting the app, changing its repository or disconnecting
//! removes it there ([`unregister_hooks`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;

use super::extract::Caller;
use super::params::{Path, Query};
use super::ApiError;
use crate::githooks::store as hook_store;
use crate::gitproviders::connections::Purpose;
use crate::gitproviders::{self, connections, oauth, rest, Provider, Repo};
use crate::AppState;

/// A provider users can connect here.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ProviderInfo {
    pub provider: Provider,
    pub base_url: String,
    /// The OAuth scopes asked for (empty: set on the provider's side, see the README).
    pub scopes: &'static str,
}

/// `GET /api/v1/git/providers`.
pub async fn providers(State(state): State<AppState>, _caller: Caller) -> Json<Vec<ProviderInfo>> {
    Json(
        state
            .forges
            .configured()
            .map(|f| ProviderInfo {
                provider: f.provider,
                base_url: f.web_url.clone(),
                scopes: oauth::scopes(f.provider),
            })
            .collect(),
    )
}

fn provider(name: &str) -> Result<Provider, ApiError> {
    Provider::parse(name).ok_or(ApiError::NotFound)
}

/// Where to authorize.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Authorize {
    /// Open this in a browser; the provider sends the user back here within 10 minutes.
    pub authorize_url: String,
}

/// `POST /api/v1/git/{provider}/connect`.
pub async fn connect(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let provider = provider(&name)?;
    let forge = state.forges.get(provider)?;
    let oauth_state =
        connections::begin(&state.pool, caller.user.id, provider, Purpose::Connect).await?;
    let url = oauth::authorize_url(forge, &state.forges.redirect_uri(provider), &oauth_state);
    Ok((StatusCode::CREATED, Json(Authorize { authorize_url: url })).into_response())
}

/// What a provider sends the user back with.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct Callback {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    /// Set when the user declined (`access_denied`).
    #[serde(default)]
    pub error: Option<String>,
}

/// The dashboard's page of providers, saying how the connection went.
pub fn back_to_settings(query: &[(&str, &str)]) -> Response {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.extend_pairs(query);
    Redirect::to(&format!("/settings/git?{}", q.finish())).into_response()
}

/// `GET /api/v1/git/{provider}/callback`: no session needed; the `state` says whose
/// authorization this is, and is good once. Answers with a redirect to the dashboard's
/// settings page, which says how it went.
pub async fn callback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<Callback>,
) -> Result<Response, ApiError> {
    let provider = provider(&name)?;
    let forge = state.forges.get(provider)?;
    let Some(oauth_state) = q.state.as_deref() else {
        return Err(ApiError::BadInput { field: "query", message: "no state".into() });
    };
    let Some(user) =
        connections::take_state(&state.pool, provider, Purpose::Connect, oauth_state).await?
    else {
        return Err(ApiError::BadInput {
            field: "query",
            message: "this authorization is unknown, used or older than 10 minutes; connect again"
                .into(),
        });
    };
    if let Some(e) = &q.error {
        let why = format!("{} said: {}", provider.as_str(), rest::bounded(e));
        return Ok(back_to_settings(&[("error", &why)]));
    }
    let Some(code) = q.code.as_deref().filter(|c| (1..=512).contains(&c.len())) else {
        return Err(ApiError::BadInput { field: "query", message: "no code".into() });
    };
    let forges = &state.forges;
    let redirect = forges.redirect_uri(provider);
    let connected = async {
        let grant = oauth::exchange(&forges.client, forge, &redirect, code).await?;
        let account = rest::account(&forges.client, forge, &grant.access).await?;
        let id = connections::save(&state.pool, forges, user, provider, &account, &grant).await?;
        Ok::<_, gitproviders::ForgeError>((id, account))
    }
    .await;
    match connected {
        Ok((id, account)) => {
            let mut conn = state.pool.acquire().await?;
            crate::audit::record(
                &mut conn,
                Some(user),
                "git.connect",
                &format!("git:{id}"),
                None,
                serde_json::json!({"provider": provider.as_str(), "account": account.login}),
            )
            .await?;
            Ok(back_to_settings(&[("connected", provider.as_str()), ("account", &account.login)]))
        }
        Err(e) => {
            tracing::info!(provider = provider.as_str(), error = %e, "git provider not connected");
            Ok(back_to_settings(&[("error", &e.to_string())]))
        }
    }
}

/// `GET /api/v1/git/connections`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<connections::ConnectionInfo>>, ApiError> {
    Ok(Json(connections::list(&state.pool, caller.user.id).await?))
}

/// What disconnecting did.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Disconnected {
    /// Whether the provider revoked the grant (Bitbucket, Gitea and Forgejo cannot be asked:
    /// remove the authorization in the provider's settings).
    pub revoked: bool,
    /// Webhooks removed from the connection's repositories.
    pub hooks_removed: usize,
}

/// `DELETE /api/v1/git/connections/{id}`.
pub async fn disconnect(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Disconnected>, ApiError> {
    let c = connections::find(&state.pool, caller.user.id, id).await?.ok_or(ApiError::NotFound)?;
    let apps: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM apps WHERE git_connection_id = $1 AND owner_id = $2")
            .bind(id)
            .bind(caller.user.id)
            .fetch_all(&state.pool)
            .await?;
    let mut hooks_removed = 0;
    for app in apps {
        hooks_removed += unregister_hooks(&state, app).await;
    }
    let revoked = connections::remove(&state.pool, &state.forges, &c).await?;
    caller
        .audit(
            &mut *state.pool.acquire().await?,
            "git.disconnect",
            &format!("git:{id}"),
            serde_json::json!({"provider": c.provider.as_str(), "account": c.account, "revoked": revoked}),
        )
        .await?;
    Ok(Json(Disconnected { revoked, hooks_removed }))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct RepoQuery {
    /// Part of the name to look for.
    #[serde(default)]
    pub q: String,
    /// From 1.
    #[serde(default)]
    pub page: Option<u32>,
}

/// A page of repositories.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct RepoPage {
    pub repos: Vec<Repo>,
    pub page: u32,
    /// Whether there is a next page.
    pub more: bool,
}

/// `GET /api/v1/git/connections/{id}/repos?q=&page=`.
pub async fn repos(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<RepoQuery>,
) -> Result<Json<RepoPage>, ApiError> {
    connections::find(&state.pool, caller.user.id, id).await?.ok_or(ApiError::NotFound)?;
    if q.q.len() > 100 {
        return Err(ApiError::BadInput { field: "query", message: "q: at most 100 bytes".into() });
    }
    let page = q.page.unwrap_or(1).clamp(1, 1000);
    let (c, token) = connections::access_token(&state.pool, &state.forges, id).await?;
    let (repos, more) = match c.installation_id {
        Some(_) => {
            gitproviders::github_app::repositories(&state.forges, &token, page, &q.q).await?
        }
        None => {
            let forge = state.forges.get(c.provider)?;
            rest::repositories(&state.forges.client, forge, &token, page, &q.q).await?
        }
    };
    Ok(Json(RepoPage { repos, page, more }))
}

/// A provider repository an app is being made from.
#[derive(Debug)]
pub struct Linked {
    pub connection: i64,
    pub provider: Provider,
    pub repo: Repo,
    /// Through the GitHub App: its one webhook delivers for every repository, none is made.
    pub installation: bool,
}

/// Resolves `provider:owner/name` for `caller` through `connection` (or their only connection
/// to that provider): the repository must be one the connection can read.
pub async fn link_repo(
    state: &AppState,
    caller: &Caller,
    reference: &str,
    connection: Option<i64>,
) -> Result<Linked, ApiError> {
    let Some((provider, name)) = gitproviders::parse_repo_ref(reference) else {
        return Err(ApiError::Validation {
            field: "repo",
            message: "must be provider:owner/name, e.g. github:me/site (providers: github, gitlab, bitbucket, gitea, forgejo, codeberg)".into(),
        });
    };
    let connection = match connection {
        Some(id) => {
            let c = connections::find(&state.pool, caller.user.id, id).await?.ok_or(
                ApiError::Validation {
                    field: "connection",
                    message: format!("you have no connection {id}"),
                },
            )?;
            if c.provider != provider {
                return Err(ApiError::Validation {
                    field: "connection",
                    message: format!(
                        "connection {id} is to {}, not {}",
                        c.provider.as_str(),
                        provider.as_str()
                    ),
                });
            }
            id
        }
        None => match connections::only(&state.pool, caller.user.id, provider).await? {
            Ok(Some(id)) => id,
            Ok(None) => {
                return Err(ApiError::Validation {
                    field: "repo",
                    message: format!(
                        "connect {} first (wh git connect {})",
                        provider.as_str(),
                        provider.as_str()
                    ),
                })
            }
            Err(n) => {
                return Err(ApiError::Validation {
                    field: "connection",
                    message: format!("you have {n} {} connections; say which", provider.as_str()),
                })
            }
        },
    };
    let (c, token) = connections::access_token(&state.pool, &state.forges, connection).await?;
    let forge = state.forges.forge_of(&c)?;
    let repo = rest::repository(&state.forges.client, &forge, &token, name).await?;
    Ok(Linked { connection, provider, repo, installation: c.installation_id.is_some() })
}

/// Registers `app`'s push webhook on its linked repository: a hook row with a fresh secret, then
/// the provider's hook pointing at it. If the provider refuses, the row goes too.
pub async fn register_hook(state: &AppState, app: i64, linked: &Linked) -> Result<(), ApiError> {
    let forges = &state.forges;
    let Some((public_id, secret)) =
        hook_store::create(&state.pool, &state.hooks, app, linked.provider).await?
    else {
        return Err(ApiError::Conflict {
            field: "repo",
            message: format!("the app has a {} hook already", linked.provider.as_str()),
        });
    };
    if linked.installation {
        // The row stays: the App's deliveries for this app are remembered under it.
        return Ok(());
    }
    let url =
        format!("{}/api/v1/hooks/{}/{public_id}", forges.public_url, linked.provider.as_str());
    let registered = async {
        let (_, token) = connections::access_token(&state.pool, forges, linked.connection).await?;
        let forge = forges.get(linked.provider)?;
        rest::create_hook(&forges.client, forge, &token, &linked.repo.full_name, &url, &secret)
            .await
    }
    .await;
    match registered {
        Ok(remote) => {
            sqlx::query("UPDATE git_hooks SET remote_id = $2 WHERE public_id = $1")
                .bind(&public_id)
                .bind(&remote)
                .execute(&state.pool)
                .await?;
            Ok(())
        }
        Err(e) => {
            hook_store::remove(&state.pool, app, &public_id).await?;
            Err(e.into())
        }
    }
}

/// Removes the hooks registered through a provider for `app`, there and here; how many. A
/// provider that cannot be reached leaves its hook behind (logged): its deliveries then answer
/// 404, and the provider disables it in time.
pub async fn unregister_hooks(state: &AppState, app: i64) -> usize {
    #[derive(sqlx::FromRow)]
    struct Registered {
        public_id: String,
        remote_id: String,
        git_connection_id: Option<i64>,
        git_repo: Option<String>,
    }
    let rows: Result<Vec<Registered>, _> = sqlx::query_as(
        "SELECT h.public_id, h.remote_id, a.git_connection_id, a.git_repo FROM git_hooks h
         JOIN apps a ON a.id = h.app_id WHERE h.app_id = $1 AND h.remote_id IS NOT NULL",
    )
    .bind(app)
    .fetch_all(&state.pool)
    .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(app, error = %e, "cannot list the app's registered hooks");
            return 0;
        }
    };
    let mut removed = 0;
    for Registered { public_id, remote_id: remote, git_connection_id, git_repo } in rows {
        let (Some(connection), Some(repo)) = (git_connection_id, git_repo) else { continue };
        let done = async {
            let (c, token) =
                connections::access_token(&state.pool, &state.forges, connection).await?;
            let forge = state.forges.forge_of(&c)?;
            rest::delete_hook(&state.forges.client, &forge, &token, &repo, &remote).await
        }
        .await;
        match done {
            Ok(()) => removed += 1,
            Err(e) => tracing::warn!(app, error = %e, "the provider's hook was not removed"),
        }
        if let Err(e) = hook_store::remove(&state.pool, app, &public_id).await {
            tracing::warn!(app, error = %e, "cannot remove the hook row");
        }
    }
    removed
}
