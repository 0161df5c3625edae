//! `GET /api/v1/openapi.json`: the API described as OpenAPI 3.1 (paths, methods, path
//! parameters, auth, and the error shape every endpoint shares).

use axum::Json;

/// (path, method, summary, secured)
const OPERATIONS: &[(&str, &str, &str, bool)] = &[
    (
        "/api/v1/auth/login",
        "post",
        "Sign in; sets the wh_session cookie and returns a CSRF token",
        false,
    ),
    ("/api/v1/auth/logout", "post", "End the session", true),
    ("/api/v1/me", "get", "The signed-in user", true),
    ("/api/v1/tokens", "post", "Create a personal API token (shown once; expires_in_days optional)", true),
    ("/api/v1/tokens", "get", "List your API tokens (never their secret)", true),
    ("/api/v1/tokens/{id}", "delete", "Revoke an API token", true),
    ("/api/v1/apps", "get", "List your apps", true),
    (
        "/api/v1/apps",
        "post",
        "Create an app {name, repo_url? (none: uploads only), branch?, plan?, port}",
        true,
    ),
    ("/api/v1/apps/{slug}", "get", "Show an app", true),
    ("/api/v1/apps/{slug}", "patch", "Change repo_url, branch or port", true),
    ("/api/v1/apps/{slug}", "delete", "Delete an app", true),
    ("/api/v1/apps/{slug}/env", "get", "Environment variables (masked unless ?reveal=true)", true),
    ("/api/v1/apps/{slug}/env/{key}", "put", "Set an environment variable {value}", true),
    ("/api/v1/apps/{slug}/env/{key}", "delete", "Remove an environment variable", true),
    ("/api/v1/apps/{slug}/deployments", "get", "List deployments", true),
    (
        "/api/v1/apps/{slug}/deployments",
        "post",
        "Deploy {ref?}, or upload the source as a tar.gz body (Content-Type: application/gzip)",
        true,
    ),
    (
        "/api/v1/apps/{slug}/containers",
        "get",
        "The app's containers: state, restarts, latest resource sample",
        true,
    ),
    ("/api/v1/apps/{slug}/domains", "get", "Custom domains with status and last check", true),
    (
        "/api/v1/apps/{slug}/domains",
        "post",
        "Add a custom domain {hostname}; answers the TXT and CNAME records to create",
        true,
    ),
    ("/api/v1/apps/{slug}/domains/{hostname}", "delete", "Remove a custom domain", true),
    (
        "/api/v1/apps/{slug}/domains/{hostname}/verify",
        "post",
        "Check the TXT record now: verified, no_such_name, no_matching_txt, timeout, server_failure",
        true,
    ),
    ("/api/v1/deployments/{id}", "get", "Show a deployment", true),
    ("/api/v1/deployments/{id}/cancel", "post", "Cancel a deployment in progress", true),
    ("/api/v1/deployments/{id}/build-log", "get", "Build output of a deployment (?from=byte offset; X-Log-Offset, X-Log-Skipped)", true),
    (
        "/api/v1/apps/{slug}/logs",
        "get",
        "Recent runtime logs (?lines=N); ?follow=1 streams them (SSE)",
        true,
    ),
    ("/api/v1/workers", "get", "Workers with health and utilisation (admins)", true),
    ("/api/v1/audit-events", "get", "Audit trail (yours; everyone's for admins)", true),
    ("/api/v1/openapi.json", "get", "This document", false),
];

/// The `{name}` segments of `path`, as required path parameters: `id` is an integer (a
/// database id), every other one a string.
fn path_parameters(path: &str) -> Vec<serde_json::Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = match name {
                "id" => serde_json::json!({"type": "integer", "format": "int64"}),
                _ => serde_json::json!({"type": "string"}),
            };
            serde_json::json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

pub async fn document() -> Json<serde_json::Value> {
    let mut paths = serde_json::Map::new();
    for (path, method, summary, secured) in OPERATIONS {
        let mut op = serde_json::json!({
            "summary": summary,
            "responses": {
                "2XX": {"description": "Success"},
                "default": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if *secured {
            op["security"] = serde_json::json!([{"session": [], "csrf": []}, {"token": []}]);
        }
        let parameters = path_parameters(path);
        if !parameters.is_empty() {
            op["parameters"] = serde_json::Value::Array(parameters);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| serde_json::json!({}));
        entry[*method] = op;
    }
    Json(serde_json::json!({
        "openapi": "3.1.0",
        "info": {"title": "WiseHosting API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "wh_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                "token": {"type": "http", "scheme": "bearer"}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}}
            }
        }
    }))
}
