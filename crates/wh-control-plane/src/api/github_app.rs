//! The GitHub App over HTTP: whether there is one; an administrator creating it (`GET
//! /api/v1/git/github-app/new` is a page whose one button posts the manifest to GitHub, which
//! sends the administrator back to `…/created` with a code); a user installing it (`POST
//! …/install` gives the address; GitHub sends the user back to `…/installed` with the
//! installation and an authorization code, and the installation becomes a connection only if
//! the user's token shows it is theirs).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::extract::Caller;
use super::git::back_to_settings;
use super::params::Query;
use super::ApiError;
use crate::gitproviders::connections::{self, Purpose};
use crate::gitproviders::{github_app, rest, Provider};
use crate::AppState;

/// The GitHub App, as users see it.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct GithubAppInfo {
    /// The GitHub it lives on.
    pub base_url: String,
    /// None until an administrator creates it.
    pub slug: Option<String>,
    pub html_url: Option<String>,
}

/// `GET /api/v1/git/github-app`.
pub async fn info(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<GithubAppInfo>, ApiError> {
    let app = github_app::load(&state.pool, &state.forges).await?;
    Ok(Json(GithubAppInfo {
        base_url: state.forges.github_web.clone(),
        slug: app.as_ref().map(|a| a.slug.clone()),
        html_url: app.map(|a| a.html_url),
    }))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct NewAppQuery {
    /// Create it for this organization instead of the administrator's account.
    #[serde(default)]
    pub organization: Option<String>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `GET /api/v1/git/github-app/new` (administrators): an HTML page with the manifest in a form
/// that posts it to GitHub (a browser must: the manifest flow starts with a form post).
pub async fn new_page(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<NewAppQuery>,
) -> Result<Response, ApiError> {
    if !caller.user.is_admin {
        return Err(ApiError::Forbidden("administrators only"));
    }
    let org = q.organization.as_deref().filter(|o| !o.is_empty());
    if let Some(o) = org {
        let plain = o.len() <= 39 && o.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !plain {
            return Err(ApiError::BadInput {
                field: "query",
                message: "organization: a GitHub login".into(),
            });
        }
    }
    let forges = &state.forges;
    let oauth_state =
        connections::begin(&state.pool, caller.user.id, Provider::Github, Purpose::AppManifest)
            .await?;
    let host = forges.public_url.split("://").nth(1).unwrap_or("wisehosting");
    let name: String = format!("WiseHosting {host}").chars().take(34).collect();
    let manifest = github_app::manifest(forges, &name).to_string();
    let action = github_app::new_app_url(forges, org, &oauth_state);
    let page = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Create the GitHub App</title>\
         <h1>Create WiseHosting's GitHub App</h1>\
         <p>GitHub shows the App (webhook, permissions: contents and metadata read, pull requests read, \
         commit statuses write; events: push, pull request) and creates it when you confirm.</p>\
         <form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"manifest\" value=\"{}\">\
         <button type=\"submit\">Continue to GitHub</button></form></html>",
        escape(&action),
        escape(&manifest)
    );
    // The form may go to GitHub only (its origin: a source with a path matches that path
    // alone); GitHub's redirect back comes to this origin.
    let origin = match forges.github_web.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => forges.github_web.clone(),
    };
    let csp = format!(
        "default-src 'none'; form-action 'self' {origin}; base-uri 'none'; frame-ancestors 'none'"
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::CONTENT_SECURITY_POLICY, csp),
        ],
        page,
    )
        .into_response())
}

/// What GitHub sends back with.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct Returned {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    /// After an installation: which one.
    #[serde(default)]
    pub installation_id: Option<i64>,
    /// After an installation: `install` or `update`.
    #[serde(default)]
    pub setup_action: Option<String>,
}

fn spent() -> ApiError {
    ApiError::BadInput {
        field: "query",
        message: "this request is unknown, used or older than 10 minutes; start again".into(),
    }
}

/// `GET /api/v1/git/github-app/created`: the manifest's code turned into the App.
pub async fn created(
    State(state): State<AppState>,
    Query(q): Query<Returned>,
) -> Result<Response, ApiError> {
    let given = q.state.as_deref().unwrap_or("");
    let Some(admin) =
        connections::take_state(&state.pool, Provider::Github, Purpose::AppManifest, given).await?
    else {
        return Err(spent());
    };
    let code = q.code.as_deref().unwrap_or("");
    match github_app::convert(&state.pool, &state.forges, code).await {
        Ok(slug) => {
            let mut conn = state.pool.acquire().await?;
            crate::audit::record(
                &mut conn,
                Some(admin),
                "github_app.create",
                &format!("github_app:{slug}"),
                None,
                serde_json::json!({}),
            )
            .await?;
            Ok(back_to_settings(&[("app", "created"), ("slug", &slug)]))
        }
        Err(e) => {
            tracing::info!(error = %e, "GitHub App not created");
            Ok(back_to_settings(&[("error", &e.to_string())]))
        }
    }
}

/// Where to install the App.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Install {
    pub install_url: String,
}

/// `POST /api/v1/git/github-app/install`.
pub async fn install(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let app = github_app::load(&state.pool, &state.forges).await?.ok_or(ApiError::Validation {
        field: "provider",
        message: "no GitHub App yet: an administrator creates it on the Git providers page".into(),
    })?;
    let oauth_state =
        connections::begin(&state.pool, caller.user.id, Provider::Github, Purpose::AppInstall)
            .await?;
    let url = format!("{}/installations/new?state={oauth_state}", app.html_url);
    Ok((StatusCode::CREATED, Json(Install { install_url: url })).into_response())
}

/// `GET /api/v1/git/github-app/installed`: the installation becomes the user's connection once
/// the user's own token lists it.
pub async fn installed(
    State(state): State<AppState>,
    Query(q): Query<Returned>,
) -> Result<Response, ApiError> {
    let given = q.state.as_deref().unwrap_or("");
    let Some(user) =
        connections::take_state(&state.pool, Provider::Github, Purpose::AppInstall, given).await?
    else {
        return Err(spent());
    };
    let (Some(code), Some(installation)) = (q.code.as_deref(), q.installation_id) else {
        return Err(ApiError::BadInput {
            field: "query",
            message: "no code or installation_id".into(),
        });
    };
    let forges = &state.forges;
    let linked = async {
        let app = github_app::load(&state.pool, forges)
            .await?
            .ok_or(crate::gitproviders::ForgeError::NotConfigured(Provider::Github))?;
        let token = github_app::user_token(forges, &app, code).await?;
        let theirs = github_app::user_installations(forges, &token).await?;
        let Some((_, account)) = theirs.into_iter().find(|(id, _)| *id == installation) else {
            return Err(crate::gitproviders::ForgeError::Refused {
                provider: "github",
                why: format!("installation {installation} is not one of yours"),
            });
        };
        let id = connections::save_installation(&state.pool, forges, user, installation, &account)
            .await?;
        Ok::<_, crate::gitproviders::ForgeError>((id, account))
    }
    .await;
    match linked {
        Ok((id, account)) => {
            let mut conn = state.pool.acquire().await?;
            let details = serde_json::json!({"installation": installation, "account": account, "action": q.setup_action.as_deref().map(rest::bounded)});
            crate::audit::record(
                &mut conn,
                Some(user),
                "git.connect",
                &format!("git:{id}"),
                None,
                details,
            )
            .await?;
            Ok(back_to_settings(&[("connected", "github"), ("account", &account)]))
        }
        Err(e) => {
            tracing::info!(error = %e, "GitHub App installation not connected");
            Ok(back_to_settings(&[("error", &e.to_string())]))
        }
    }
}
