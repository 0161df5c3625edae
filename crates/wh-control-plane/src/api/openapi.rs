//! `GET /api/v1/openapi.json`: the API described as OpenAPI 3.1: every operation with its path
//! and query parameters, request body, response and auth, and the error shape they all share.
//! Bodies are the handlers' own types (`schemars` derives their schemas), so the document
//! cannot describe a field the code does not have; the API tests check every answer they get
//! against it, and the dashboard's TypeScript types are generated from it
//! (`dashboard/src/api/openapi.json`, kept equal to this document by a test).

use axum::Json;
use schemars::{JsonSchema, Schema, SchemaGenerator};

use super::{
    admin, alerts, apps, auth as api_auth, deployments, domains, git, github_app, hooks, usage,
    webhooks,
};
use crate::{auth, containers};

/// What an operation takes or answers.
#[derive(Clone, Copy)]
pub enum Body {
    /// Nothing (a 204, or no request body).
    None,
    /// JSON of the type whose schema this writes.
    Json(fn(&mut SchemaGenerator) -> Schema),
    /// A gzip-compressed tar archive (an upload deploy).
    Gzip,
    /// `text/plain`.
    Text,
    /// `text/event-stream`.
    Events,
    /// `text/html` (a page for a browser).
    Html,
}

fn json<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A query parameter: name, JSON type, description.
type QueryParam = (&'static str, &'static str, &'static str);

/// One operation of the API.
pub struct Operation {
    pub path: &'static str,
    pub method: &'static str,
    pub summary: &'static str,
    /// Needs a session (with its CSRF token) or a bearer token.
    pub secured: bool,
    pub query: &'static [QueryParam],
    pub request: Body,
    /// Another form the request body may take (an upload besides JSON).
    pub request_or: Body,
    /// The success status and what comes with it.
    pub status: u16,
    /// Another success status answered with the same body.
    pub also: Option<u16>,
    pub response: Body,
    /// Another form the answer may take (server-sent events besides JSON).
    pub response_or: Body,
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    status: u16,
    response: Body,
) -> Operation {
    Operation {
        path,
        method,
        summary,
        secured: true,
        query: &[],
        request: Body::None,
        request_or: Body::None,
        status,
        also: None,
        response,
        response_or: Body::None,
    }
}

impl Operation {
    const fn public(mut self) -> Self {
        self.secured = false;
        self
    }
    const fn takes(mut self, request: Body) -> Self {
        self.request = request;
        self
    }
    const fn query(mut self, query: &'static [QueryParam]) -> Self {
        self.query = query;
        self
    }
    const fn or_takes(mut self, request: Body) -> Self {
        self.request_or = request;
        self
    }
    const fn or_answers(mut self, response: Body) -> Self {
        self.response_or = response;
        self
    }
    const fn also(mut self, status: u16) -> Self {
        self.also = Some(status);
        self
    }
}

type Env = std::collections::BTreeMap<String, String>;

/// Every operation under `/api/v1`.
pub const OPERATIONS: &[Operation] = &[
    op("post", "/api/v1/auth/login", "Sign in; sets the wh_session cookie and returns a CSRF token", 200, Body::Json(json::<api_auth::SignedIn>))
        .public()
        .takes(Body::Json(json::<api_auth::Login>)),
    op("post", "/api/v1/auth/logout", "End the session", 204, Body::None),
    op("get", "/api/v1/auth/session", "The signed-in user and the session's CSRF token (sessions only)", 200, Body::Json(json::<api_auth::SignedIn>)),
    op("get", "/api/v1/me", "The signed-in user", 200, Body::Json(json::<auth::User>)),
    op("post", "/api/v1/tokens", "Create a personal API token (shown once)", 201, Body::Json(json::<api_auth::CreatedToken>))
        .takes(Body::Json(json::<api_auth::NewToken>)),
    op("get", "/api/v1/tokens", "List your API tokens (never their secret)", 200, Body::Json(json::<Vec<auth::TokenInfo>>)),
    op("delete", "/api/v1/tokens/{id}", "Revoke an API token", 204, Body::None),
    op("get", "/api/v1/plans", "The plans an app can be on", 200, Body::Json(json::<Vec<apps::Plan>>)),
    op("get", "/api/v1/apps", "List your apps", 200, Body::Json(json::<Vec<apps::App>>)),
    op("post", "/api/v1/apps", "Create an app from a repository URL, a connected provider's repository (repo: github:owner/name; its webhook is registered), or neither (deployed from uploads only)", 201, Body::Json(json::<apps::App>))
        .takes(Body::Json(json::<apps::NewApp>)),
    op("get", "/api/v1/apps/{slug}", "Show an app", 200, Body::Json(json::<apps::App>)),
    op("patch", "/api/v1/apps/{slug}", "Change repo_url, branch or port", 200, Body::Json(json::<apps::App>))
        .takes(Body::Json(json::<apps::AppPatch>)),
    op("delete", "/api/v1/apps/{slug}", "Delete an app", 204, Body::None),
    op("get", "/api/v1/apps/{slug}/env", "Environment variables by name (values masked unless reveal)", 200, Body::Json(json::<Env>))
        .query(&[("reveal", "boolean", "Show the values")]),
    op("put", "/api/v1/apps/{slug}/env", "Replace all environment variables at once (applies on the next deploy)", 204, Body::None)
        .takes(Body::Json(json::<apps::EnvReplace>)),
    op("put", "/api/v1/apps/{slug}/env/{key}", "Set an environment variable", 204, Body::None)
        .takes(Body::Json(json::<apps::EnvValue>)),
    op("delete", "/api/v1/apps/{slug}/env/{key}", "Remove an environment variable", 204, Body::None),
    op("get", "/api/v1/apps/{slug}/deployments", "List deployments, newest first", 200, Body::Json(json::<Vec<deployments::Deployment>>)),
    op("post", "/api/v1/apps/{slug}/deployments", "Deploy a ref of the app's repository, deploy an earlier deployment again (rollback_to: its image if its worker still has it, else its commit rebuilt), or upload the source (Content-Type: application/gzip)", 201, Body::Json(json::<deployments::Deployment>))
        .takes(Body::Json(json::<deployments::NewDeployment>))
        .or_takes(Body::Gzip),
    op("get", "/api/v1/apps/{slug}/containers", "The app's containers: state, restarts, latest resource sample", 200, Body::Json(json::<Vec<containers::Container>>)),
    op("get", "/api/v1/apps/{slug}/domains", "Custom domains with status and last check", 200, Body::Json(json::<Vec<domains::Domain>>)),
    op("post", "/api/v1/apps/{slug}/domains", "Add a custom domain; answers the records to create", 201, Body::Json(json::<domains::Domain>))
        .takes(Body::Json(json::<domains::NewDomain>)),
    op("delete", "/api/v1/apps/{slug}/domains/{hostname}", "Remove a custom domain", 204, Body::None),
    op("post", "/api/v1/apps/{slug}/domains/{hostname}/verify", "Check the TXT record now", 200, Body::Json(json::<domains::Verification>)),
    op("get", "/api/v1/usage", "Your apps' usage totals in a range (vCPU-hours, GB-hours, GB in and out)", 200, Body::Json(json::<usage::UserUsage>))
        .query(&[("from", "integer", "Seconds since the epoch (default: 24 h before to)"), ("to", "integer", "Seconds since the epoch (default: now)")]),
    op("get", "/api/v1/apps/{slug}/usage", "An app's usage: points at 5m, 1h or 1d steps (at most 1,000), totals, and deploys for markers", 200, Body::Json(json::<usage::AppUsage>))
        .query(&[("from", "integer", "Seconds since the epoch (default: 24 h before to)"), ("to", "integer", "Seconds since the epoch (default: now)"), ("step", "string", "5m, 1h (default) or 1d")]),
    op("get", "/api/v1/webhooks", "Your signed webhooks", 200, Body::Json(json::<Vec<crate::webhooks::targets::TargetView>>)),
    op("post", "/api/v1/webhooks", "Add a signed webhook (https; the secret is in the answer, once)", 201, Body::Json(json::<webhooks::CreatedTarget>))
        .takes(Body::Json(json::<webhooks::NewTargetBody>)),
    op("get", "/api/v1/webhooks/{id}", "One webhook", 200, Body::Json(json::<crate::webhooks::targets::TargetView>)),
    op("patch", "/api/v1/webhooks/{id}", "Change a webhook's events, or re-enable it", 200, Body::Json(json::<crate::webhooks::targets::TargetView>))
        .takes(Body::Json(json::<webhooks::TargetPatch>)),
    op("delete", "/api/v1/webhooks/{id}", "Remove a webhook", 204, Body::None),
    op("post", "/api/v1/webhooks/{id}/test", "Send a test event through the delivery path; answers with the first attempt (202 if none within 20 s)", 200, Body::Json(json::<crate::webhooks::targets::DeliveryView>)),
    op("post", "/api/v1/webhooks/{id}/rotate", "A new signing secret; the previous one keeps signing alongside for 24 hours", 200, Body::Json(json::<webhooks::RotatedSecret>)),
    op("get", "/api/v1/webhooks/{id}/deliveries", "A webhook's latest 50 deliveries with every attempt's status and response", 200, Body::Json(json::<Vec<crate::webhooks::targets::DeliveryView>>)),
    op("get", "/api/v1/notifications", "Your notification channels", 200, Body::Json(json::<Vec<crate::webhooks::targets::TargetView>>)),
    op("post", "/api/v1/notifications", "Add a notification channel by its Shoutrrr URL", 201, Body::Json(json::<webhooks::CreatedTarget>))
        .takes(Body::Json(json::<webhooks::NewTargetBody>)),
    op("get", "/api/v1/notifications/{id}", "One notification channel", 200, Body::Json(json::<crate::webhooks::targets::TargetView>)),
    op("patch", "/api/v1/notifications/{id}", "Change a channel's events, or re-enable it", 200, Body::Json(json::<crate::webhooks::targets::TargetView>))
        .takes(Body::Json(json::<webhooks::TargetPatch>)),
    op("delete", "/api/v1/notifications/{id}", "Remove a notification channel", 204, Body::None),
    op("post", "/api/v1/notifications/{id}/test", "Send a test message through the delivery path; answers with the first attempt (202 if none within 20 s)", 200, Body::Json(json::<crate::webhooks::targets::DeliveryView>)),
    op("get", "/api/v1/notifications/{id}/deliveries", "A channel's latest 50 deliveries with every attempt", 200, Body::Json(json::<Vec<crate::webhooks::targets::DeliveryView>>)),
    op("get", "/api/v1/alerts", "The alerts firing now across your apps", 200, Body::Json(json::<Vec<alerts::AlertView>>)),
    op("get", "/api/v1/apps/{slug}/alerts", "The app's alerts, newest first (200 at most): value, start, end, duration", 200, Body::Json(json::<Vec<alerts::AlertView>>)),
    op("get", "/api/v1/apps/{slug}/alerts/rules", "The app's alert rules with their state", 200, Body::Json(json::<Vec<alerts::RuleView>>)),
    op("put", "/api/v1/apps/{slug}/alerts/rules/{kind}", "Change a rule: threshold, for, keep firing for, reminders, on or off", 200, Body::Json(json::<alerts::RuleView>))
        .takes(Body::Json(json::<alerts::RulePatch>)),
    op("post", "/api/v1/apps/{slug}/alerts/rules/{kind}/mute", "Mute a rule for some minutes (0 unmutes): it still records alerts, and sends nothing", 200, Body::Json(json::<alerts::RuleView>))
        .takes(Body::Json(json::<alerts::Mute>)),
    op("get", "/api/v1/git/providers", "The git providers this control plane can connect", 200, Body::Json(json::<Vec<git::ProviderInfo>>)),
    op("post", "/api/v1/git/{provider}/connect", "Start connecting a provider by OAuth: the address to authorize at (within 10 minutes)", 201, Body::Json(json::<git::Authorize>)),
    op("get", "/api/v1/git/{provider}/callback", "Where the provider sends the user back; redirects (303) to the dashboard's git settings, which say how it went", 303, Body::None)
        .public()
        .query(&[("code", "string", "The provider's authorization code"), ("state", "string", "The state connect sent"), ("error", "string", "Set when the user declined")]),
    op("get", "/api/v1/git/connections", "Your connected git accounts (never their tokens)", 200, Body::Json(json::<Vec<crate::gitproviders::connections::ConnectionInfo>>)),
    op("delete", "/api/v1/git/connections/{id}", "Disconnect: the hooks registered through it removed, the grant revoked where the provider can", 200, Body::Json(json::<git::Disconnected>)),
    op("get", "/api/v1/git/connections/{id}/repos", "A page of the repositories the connection can read, most recently changed first", 200, Body::Json(json::<git::RepoPage>))
        .query(&[("q", "string", "Part of the name to look for"), ("page", "integer", "The page, from 1")]),
    op("get", "/api/v1/git/github-app", "The GitHub App, once an administrator created it", 200, Body::Json(json::<github_app::GithubAppInfo>)),
    op("get", "/api/v1/git/github-app/new", "Administrators: a page whose button posts the App's manifest to GitHub (the manifest flow)", 200, Body::Html)
        .query(&[("organization", "string", "Create it for this organization")]),
    op("get", "/api/v1/git/github-app/created", "Where GitHub sends the administrator back with the manifest's code; the App is stored, then a redirect (303) to the git settings", 303, Body::None)
        .public()
        .query(&[("code", "string", "The manifest's code"), ("state", "string", "The state the page sent")]),
    op("post", "/api/v1/git/github-app/install", "Where to install the GitHub App (within 10 minutes)", 201, Body::Json(json::<github_app::Install>)),
    op("get", "/api/v1/git/github-app/installed", "Where GitHub sends the user back after installing: the installation becomes a connection if the user's token lists it; redirects (303) to the git settings", 303, Body::None)
        .public()
        .query(&[("code", "string", "The user's authorization code"), ("installation_id", "integer", "The installation"), ("setup_action", "string", "install or update"), ("state", "string", "The state install sent")]),
    op("post", "/api/v1/hooks/github-app", "The GitHub App's deliveries for every installation, signed with its webhook secret (X-Hub-Signature-256); each app made from the repository acts on it as on its own hook", 202, Body::Json(json::<hooks::DeliveryOutcome>))
        .public()
        .also(200)
        .takes(Body::Json(json::<serde_json::Value>)),
    op("get", "/api/v1/apps/{slug}/hooks", "The app's git webhooks (never their secrets)", 200, Body::Json(json::<Vec<hooks::HookView>>)),
    op("post", "/api/v1/apps/{slug}/hooks", "Make the app's webhook for a provider: its URL and secret (shown once) to add there", 201, Body::Json(json::<hooks::CreatedHook>))
        .takes(Body::Json(json::<hooks::NewHook>)),
    op("delete", "/api/v1/apps/{slug}/hooks/{id}", "Remove a webhook", 204, Body::None),
    op("post", "/api/v1/hooks/{provider}/{hook_id}", "A provider's delivery, signed with the hook's secret (GitHub X-Hub-Signature-256, GitLab X-Gitlab-Token, Bitbucket X-Hub-Signature, Gitea X-Gitea-Signature, Forgejo X-Forgejo-Signature): a push of the app's branch deploys its commit (202); a ping answers 200", 202, Body::Json(json::<hooks::DeliveryOutcome>))
        .public()
        .also(200)
        .takes(Body::Json(json::<serde_json::Value>)),
    op("get", "/api/v1/deployments/{id}", "Show a deployment", 200, Body::Json(json::<deployments::Deployment>)),
    op("post", "/api/v1/deployments/{id}/cancel", "Cancel a deployment in progress", 200, Body::Json(json::<deployments::Deployment>)),
    op("get", "/api/v1/deployments/{id}/build-log", "Build output after byte `from`; X-Log-Offset is where to ask from next, X-Log-Skipped what is no longer kept", 200, Body::Text)
        .query(&[("from", "integer", "A byte offset into all the output the build has had")]),
    op("get", "/api/v1/apps/{slug}/logs", "Recent runtime logs; with follow, a stream of them (SSE: each event's data one entry, `dropped` events the number of lines lost)", 200, Body::Json(json::<Vec<crate::logbus::Entry>>))
        .query(&[("lines", "integer", "How many recent lines (default 200, at most 2,000)"), ("follow", "string", "1: stream the recent and every new line as server-sent events")])
        .or_answers(Body::Events),
    op("get", "/api/v1/workers", "Workers with health and utilisation (admins)", 200, Body::Json(json::<Vec<admin::WorkerView>>)),
    op("post", "/api/v1/workers/{name}/enable", "Enable a worker (admins)", 204, Body::None),
    op("post", "/api/v1/workers/{name}/disable", "Disable a worker: no new apps, no token renewal (admins)", 204, Body::None),
    op("get", "/api/v1/users", "Every account (admins)", 200, Body::Json(json::<Vec<admin::UserView>>)),
    op("get", "/api/v1/audit-events", "Audit trail (yours; everyone's for admins)", 200, Body::Json(json::<Vec<apps::AuditEvent>>)),
    op("get", "/api/v1/openapi.json", "This document", 200, Body::Json(json::<serde_json::Value>)).public(),
];

/// The `{name}` segments of `path`, as required path parameters: `id` is an integer (a
/// database id), every other one a string.
fn path_parameters(path: &str) -> impl Iterator<Item = serde_json::Value> + '_ {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).map(|name| {
        let schema = match name {
            "id" => serde_json::json!({"type": "integer", "format": "int64"}),
            _ => serde_json::json!({"type": "string"}),
        };
        serde_json::json!({"name": name, "in": "path", "required": true, "schema": schema})
    })
}

/// The `content` of a body that may come in two forms.
fn contents(body: Body, or: Body, generator: &mut SchemaGenerator) -> Option<serde_json::Value> {
    let mut first = content(body, generator)?;
    if let Some(serde_json::Value::Object(second)) = content(or, generator) {
        first.as_object_mut()?.extend(second);
    }
    Some(first)
}

fn content(body: Body, generator: &mut SchemaGenerator) -> Option<serde_json::Value> {
    let (media, schema) = match body {
        Body::None => return None,
        Body::Json(schema) => ("application/json", schema(generator).to_value()),
        Body::Gzip => {
            ("application/gzip", serde_json::json!({"type": "string", "format": "binary"}))
        }
        Body::Text => ("text/plain", serde_json::json!({"type": "string"})),
        Body::Events => ("text/event-stream", serde_json::json!({"type": "string"})),
        Body::Html => ("text/html", serde_json::json!({"type": "string"})),
    };
    Some(serde_json::json!({ media: {"schema": schema} }))
}

/// The whole document. The same every time (it depends only on the code), so the dashboard's
/// copy can be compared with it.
pub fn build() -> serde_json::Value {
    let settings =
        |contract: fn(schemars::generate::SchemaSettings) -> schemars::generate::SchemaSettings| {
            contract(schemars::generate::SchemaSettings::draft2020_12()).with(|s| {
                s.definitions_path = "/components/schemas".into();
                s.meta_schema = None;
            })
        };
    // Requests are read (serde's deserialize rules apply), answers written.
    let mut requests = settings(|s| s.for_deserialize()).into_generator();
    let mut responses = settings(|s| s.for_serialize()).into_generator();
    let mut paths = serde_json::Map::new();
    for o in OPERATIONS {
        let mut success = serde_json::json!({"description": o.summary});
        if let Some(content) = contents(o.response, o.response_or, &mut responses) {
            success["content"] = content;
        }
        let mut op = serde_json::json!({
            "operationId": operation_id(o),
            "summary": o.summary,
            "responses": {
                o.status.to_string(): success,
                "default": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if let Some(also) = o.also {
            op["responses"][also.to_string()] = op["responses"][o.status.to_string()].clone();
        }
        if o.secured {
            op["security"] = serde_json::json!([{"session": [], "csrf": []}, {"token": []}]);
        }
        let query = o.query.iter().map(|(name, kind, description)| {
            serde_json::json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": kind}})
        });
        let parameters: Vec<_> = path_parameters(o.path).chain(query).collect();
        if !parameters.is_empty() {
            op["parameters"] = serde_json::Value::Array(parameters);
        }
        if let Some(body) = contents(o.request, o.request_or, &mut requests) {
            op["requestBody"] = serde_json::json!({"required": false, "content": body});
        }
        let entry = paths.entry(o.path.to_string()).or_insert_with(|| serde_json::json!({}));
        entry[o.method] = op;
    }
    let mut schemas = requests.take_definitions(true);
    schemas.extend(responses.take_definitions(true));
    schemas.insert(
        "Error".into(),
        serde_json::json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}}),
    );
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {"title": "WiseHosting API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "wh_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                "token": {"type": "http", "scheme": "bearer"}
            },
            "schemas": schemas
        }
    })
}

/// `getApiV1AppsSlugEnv`-style names: the method and the path's words.
fn operation_id(o: &Operation) -> String {
    let mut id = o.method.to_owned();
    for word in o.path.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            id.push(first.to_ascii_uppercase());
            id.extend(chars);
        }
    }
    id
}

pub async fn document() -> Json<serde_json::Value> {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(build).clone())
}
