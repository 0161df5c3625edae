//! The user commands: sign in, apps, env vars, deploys and logs, each one API call or a few.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::client::Api;
use crate::credentials::{self, Credentials};
use crate::error::CliError;
use crate::pack;

/// `wh login`: password from `WH_PASSWORD` or the first line of standard input.
pub async fn login(api_url: &str, email: &str) -> Result<(), CliError> {
    let password = match std::env::var("WH_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            eprint!("password for {email}: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let anonymous = Api::new(api_url, None)?;
    let (headers, body) = anonymous
        .call(
            "POST",
            "/api/v1/auth/login",
            Some("application/json"),
            Bytes::from(json!({"email": email, "password": password}).to_string()),
            &[],
        )
        .await?;
    let session: Value = serde_json::from_slice(&body).unwrap_or_default();
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| CliError::Auth("the API answered without a session".into()))?
        .to_owned();
    let csrf = session["csrf_token"].as_str().unwrap_or_default().to_owned();
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "this machine".into());
    let (_, token) = anonymous
        .call(
            "POST",
            "/api/v1/tokens",
            Some("application/json"),
            Bytes::from(json!({"name": format!("wh CLI on {host}")}).to_string()),
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        )
        .await?;
    let token: Value = serde_json::from_slice(&token).unwrap_or_default();
    let token = token["token"]
        .as_str()
        .ok_or_else(|| CliError::Auth("the API did not issue a token".into()))?;
    let path =
        credentials::save(&Credentials { api_url: api_url.to_owned(), token: token.into() })?;
    println!("signed in as {email} (credentials in {})", path.display());
    Ok(())
}

/// An app name: given, or the directory's name made into a slug.
pub fn app_name(given: Option<&str>, dir: Option<&Path>) -> Result<String, CliError> {
    if let Some(g) = given {
        return Ok(g.to_owned());
    }
    let dir = match dir {
        Some(d) => std::fs::canonicalize(d)?,
        None => std::env::current_dir()?,
    };
    let name = dir.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_owned();
    if slug.len() < 3 {
        return Err(CliError::Usage("name the app with --app NAME".into()));
    }
    Ok(slug)
}

/// What `wh apps create` (and a first `wh deploy`) makes.
pub struct NewApp<'a> {
    pub name: &'a str,
    /// A clone URL, or `provider:owner/name` of a connected provider.
    pub repo: Option<&'a str>,
    pub connection: Option<i64>,
    pub branch: Option<&'a str>,
    pub port: u16,
    pub plan: Option<&'a str>,
}

/// Whether `repo` names a connected provider's repository (`github:owner/name`) rather than a
/// clone URL (`https://…`, `git@host:path`).
fn is_provider_repo(repo: &str) -> bool {
    const PROVIDERS: [&str; 6] = ["github", "gitlab", "bitbucket", "gitea", "forgejo", "codeberg"];
    repo.split_once(':').is_some_and(|(p, rest)| PROVIDERS.contains(&p) && !rest.starts_with("//"))
}

pub async fn apps_create(api: &Api, new: NewApp<'_>) -> Result<Value, CliError> {
    let NewApp { name, repo, connection, branch, port, plan } = new;
    let mut body = json!({"name": name, "port": port});
    match repo {
        Some(r) if is_provider_repo(r) => body["repo"] = r.into(),
        r => body["repo_url"] = r.unwrap_or_default().into(),
    }
    if let Some(c) = connection {
        body["connection"] = c.into();
    }
    if let Some(b) = branch {
        body["branch"] = b.into();
    }
    if let Some(p) = plan {
        body["plan"] = p.into();
    }
    api.json("POST", "/api/v1/apps", Some(&body)).await
}

pub async fn apps_list(api: &Api) -> Result<(), CliError> {
    let apps = api.json("GET", "/api/v1/apps", None).await?;
    let apps = apps.as_array().cloned().unwrap_or_default();
    if apps.is_empty() {
        println!("no apps yet: wh deploy --path DIR creates one");
    }
    for a in apps {
        println!(
            "{:<24} {:<8} port {:<6} {}",
            a["slug"].as_str().unwrap_or_default(),
            a["plan"].as_str().unwrap_or_default(),
            a["port"],
            a["url"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn apps_delete(api: &Api, name: &str) -> Result<(), CliError> {
    api.json("DELETE", &format!("/api/v1/apps/{name}"), None).await?;
    println!("deleted {name}");
    Ok(())
}

pub async fn env_set(api: &Api, app: &str, pairs: &[String]) -> Result<(), CliError> {
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("`{pair}` is not KEY=VALUE")))?;
        api.json("PUT", &format!("/api/v1/apps/{app}/env/{k}"), Some(&json!({"value": v}))).await?;
        println!("set {k}");
    }
    Ok(())
}

pub async fn env_unset(api: &Api, app: &str, keys: &[String]) -> Result<(), CliError> {
    for k in keys {
        api.json("DELETE", &format!("/api/v1/apps/{app}/env/{k}"), None).await?;
        println!("unset {k}");
    }
    Ok(())
}

/// Lists the keys; values stay masked unless `reveal`.
pub async fn env_list(api: &Api, app: &str, reveal: bool) -> Result<(), CliError> {
    let query = if reveal { "?reveal=true" } else { "" };
    let vars = api.json("GET", &format!("/api/v1/apps/{app}/env{query}"), None).await?;
    for (k, v) in vars.as_object().into_iter().flatten() {
        println!("{k}={}", v.as_str().unwrap_or_default());
    }
    Ok(())
}

/// What `wh deploy` deploys.
pub enum Source {
    Path(PathBuf),
    Ref(String),
    /// An earlier deployment again (`wh rollback`); none: the one live before the current.
    Rollback(Option<i64>),
}

/// The deployment a bare `wh rollback` goes back to: the newest that was live and was
/// replaced (the list is newest first).
fn previous_live(deployments: &Value) -> Option<i64> {
    deployments.as_array()?.iter().find(|d| d["state"] == "superseded")?["id"].as_i64()
}

/// Creates the deployment (and the app, for an upload to a new name), prints the build output
/// as it arrives, and ends with the URL once live; a failed deployment is an error with its
/// reason.
pub async fn deploy(api: &Api, app: &str, source: Source, port: u16) -> Result<(), CliError> {
    let exists = match api.json("GET", &format!("/api/v1/apps/{app}"), None).await {
        Ok(_) => true,
        Err(CliError::Api { status: 404, .. }) => false,
        Err(e) => return Err(e),
    };
    let path = format!("/api/v1/apps/{app}/deployments");
    let deployment = match source {
        Source::Path(dir) => {
            if !exists {
                let new = NewApp {
                    name: app,
                    repo: None,
                    connection: None,
                    branch: None,
                    port,
                    plan: None,
                };
                apps_create(api, new).await?;
                println!("created app {app}");
            }
            let (archive, files) = pack::pack_dir(&dir)?;
            println!("uploading {} ({files} files, {} KiB)", dir.display(), archive.len() / 1024);
            let (_, body) = api
                .call("POST", &path, Some("application/gzip"), Bytes::from(archive), &[])
                .await?;
            serde_json::from_slice::<Value>(&body).unwrap_or_default()
        }
        Source::Ref(r) => {
            if !exists {
                return Err(CliError::Usage(format!(
                    "no app `{app}`: create it with `wh apps create {app} --repo URL`"
                )));
            }
            api.json("POST", &path, Some(&json!({"ref": r}))).await?
        }
        Source::Rollback(to) => {
            if !exists {
                return Err(CliError::Usage(format!("no app `{app}`")));
            }
            let to = match to {
                Some(id) => id,
                None => previous_live(&api.json("GET", &path, None).await?).ok_or_else(|| {
                    CliError::Usage(format!("no earlier deployment of `{app}` went live"))
                })?,
            };
            println!("rolling back to deployment {to}");
            api.json("POST", &path, Some(&json!({"rollback_to": to}))).await?
        }
    };
    let id = deployment["id"]
        .as_i64()
        .ok_or_else(|| CliError::Local("the API did not return a deployment".into()))?;
    println!("deployment {id} queued");
    let started = Instant::now();
    // Byte offset into all of the build's output: each poll fetches only what is new.
    let mut offset = 0u64;
    let mut last_state = String::new();
    loop {
        let d = api.json("GET", &format!("/api/v1/deployments/{id}"), None).await?;
        let (headers, log) = api
            .call(
                "GET",
                &format!("/api/v1/deployments/{id}/build-log?from={offset}"),
                None,
                Bytes::new(),
                &[],
            )
            .await?;
        let number = |name: &str| {
            headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        };
        let mut out = std::io::stdout().lock();
        if let Some(skipped @ 1..) = number("x-log-skipped") {
            let _ = writeln!(out, "[{skipped} bytes of build output no longer kept]");
        }
        let _ = out.write_all(&log);
        let _ = out.flush();
        drop(out);
        offset = number("x-log-offset").unwrap_or(offset + log.len() as u64);
        let state = d["state"].as_str().unwrap_or_default().to_owned();
        if state != last_state {
            println!("→ {state}");
            last_state = state.clone();
        }
        match state.as_str() {
            "live" => {
                let app = api.json("GET", &format!("/api/v1/apps/{app}"), None).await?;
                println!(
                    "live in {:.1} s: {}",
                    started.elapsed().as_secs_f64(),
                    app["url"].as_str().unwrap_or_default()
                );
                return Ok(());
            }
            "failed" | "cancelled" | "superseded" => {
                return Err(CliError::Failed(format!(
                    "deployment {id} {state}: {}",
                    d["error"].as_str().unwrap_or("no reason given")
                )));
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// `wh logs`: recent lines, or with `follow` every new line until interrupted.
pub async fn logs(api: &Api, app: &str, lines: usize, follow: bool) -> Result<(), CliError> {
    let print = |e: &Value| {
        println!(
            "[{}] {}",
            e["stream"].as_str().unwrap_or_default(),
            e["line"].as_str().unwrap_or_default()
        )
    };
    if !follow {
        let recent =
            api.json("GET", &format!("/api/v1/apps/{app}/logs?lines={lines}"), None).await?;
        recent.as_array().into_iter().flatten().for_each(print);
        return Ok(());
    }
    let resp = api
        .send(
            "GET",
            &format!("/api/v1/apps/{app}/logs?follow=1&lines={lines}"),
            None,
            Bytes::new(),
            &[("accept", "text/event-stream")],
        )
        .await?;
    if !resp.status().is_success() {
        let status = resp.status().as_u16();
        return Err(CliError::Api {
            status,
            code: "error".into(),
            message: format!("HTTP {status}"),
            field: None,
        });
    }
    let mut body = resp.into_body();
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| CliError::Unreachable { url: api.base.clone(), why: e.to_string() })?;
        let Some(data) = frame.data_ref() else { continue };
        pending.extend_from_slice(data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                match serde_json::from_str::<Value>(data.trim()) {
                    Ok(v) if v.is_object() => print(&v),
                    _ => println!("[dropped] {} lines", data.trim()),
                }
            }
        }
    }
    Ok(())
}

/// `wh domains add`: prints the records to create.
pub async fn domains_add(api: &Api, app: &str, hostname: &str) -> Result<(), CliError> {
    let d = api
        .json("POST", &format!("/api/v1/apps/{app}/domains"), Some(&json!({"hostname": hostname})))
        .await?;
    let host = d["hostname"].as_str().unwrap_or(hostname);
    println!("added {host} to {app} (pending). Create these DNS records at your DNS provider:");
    for r in d["records"].as_array().into_iter().flatten() {
        println!(
            "  {:<6} {:<40} {}{}",
            r["type"].as_str().unwrap_or_default(),
            r["name"].as_str().unwrap_or_default(),
            r["value"].as_str().unwrap_or_default(),
            r["note"].as_str().map(|n| format!("   ({n})")).unwrap_or_default()
        );
    }
    println!("The CNAME must be DNS only: a CDN proxy in front (Cloudflare's orange cloud) breaks");
    println!("the certificate challenge. Then run: wh domains verify {host} -a {app}");
    Ok(())
}

pub async fn domains_list(api: &Api, app: &str) -> Result<(), CliError> {
    let list = api.json("GET", &format!("/api/v1/apps/{app}/domains"), None).await?;
    let list = list.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no custom domains: wh domains add HOSTNAME -a {app}");
    }
    for d in list {
        let flag =
            if d["record_missing"].as_bool() == Some(true) { " (TXT record missing!)" } else { "" };
        println!(
            "{:<40} {:<9}{flag} {}",
            d["hostname"].as_str().unwrap_or_default(),
            d["status"].as_str().unwrap_or_default(),
            d["reason"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// `wh hooks add`: the URL and secret to give the provider.
pub async fn hooks_add(api: &Api, app: &str, provider: &str) -> Result<(), CliError> {
    let provider = if provider == "codeberg" { "forgejo" } else { provider };
    let body = json!({ "provider": provider });
    let h = api.json("POST", &format!("/api/v1/apps/{app}/hooks"), Some(&body)).await?;
    let path = h["path"].as_str().unwrap_or_default();
    let url = h["url"].as_str().map_or_else(|| format!("{}{path}", api.base), str::to_owned);
    println!("webhook for {app} at {provider}:");
    println!("  URL     {url}");
    println!("  secret  {} (shown once)", h["secret"].as_str().unwrap_or_default());
    println!("{}", h["setup"].as_str().unwrap_or_default());
    Ok(())
}

/// `wh hooks list`.
pub async fn hooks_list(api: &Api, app: &str) -> Result<(), CliError> {
    let list = api.json("GET", &format!("/api/v1/apps/{app}/hooks"), None).await?;
    let list = list.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no webhooks: wh hooks add github -a {app}");
    }
    for h in list {
        println!(
            "{:<34} {:<10} last delivery {}",
            h["id"].as_str().unwrap_or_default(),
            h["provider"].as_str().unwrap_or_default(),
            h["last_delivery_at"].as_str().unwrap_or("never")
        );
    }
    Ok(())
}

/// `wh git connect`: the address to authorize at; then, unless told not to, waits for the new
/// connection to appear.
pub async fn git_connect(api: &Api, provider: &str, wait: bool) -> Result<(), CliError> {
    let provider = if provider == "codeberg" { "forgejo" } else { provider };
    let before = api.json("GET", "/api/v1/git/connections", None).await?;
    let known: Vec<i64> = before
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["id"].as_i64()).collect())
        .unwrap_or_default();
    let started = api.json("POST", &format!("/api/v1/git/{provider}/connect"), None).await?;
    let url = started["authorize_url"].as_str().unwrap_or_default();
    println!("authorize WiseHosting at {provider} (within 10 minutes):");
    println!("  {url}");
    if !wait {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = api.json("GET", "/api/v1/git/connections", None).await?;
        let new = now.as_array().and_then(|a| {
            a.iter().find(|c| {
                c["provider"] == provider && !c["id"].as_i64().is_some_and(|id| known.contains(&id))
            })
        });
        if let Some(c) = new {
            println!(
                "connected {provider} as {} (connection {})",
                c["account"].as_str().unwrap_or_default(),
                c["id"]
            );
            return Ok(());
        }
    }
    Err(CliError::Local(format!(
        "{provider} did not send you back within 10 minutes; run `wh git connect {provider}` again"
    )))
}

/// `wh git list`.
pub async fn git_list(api: &Api) -> Result<(), CliError> {
    let list = api.json("GET", "/api/v1/git/connections", None).await?;
    let list = list.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no git providers connected: wh git connect github");
    }
    for c in list {
        println!(
            "{:<6} {:<10} {:<24} {}",
            c["id"],
            c["provider"].as_str().unwrap_or_default(),
            c["account"].as_str().unwrap_or_default(),
            c["base_url"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// `wh git repos`.
pub async fn git_repos(
    api: &Api,
    connection: i64,
    search: Option<&str>,
    page: u32,
) -> Result<(), CliError> {
    let mut query = format!("page={page}");
    if let Some(q) = search {
        let q: String = url_encode(q);
        query.push_str(&format!("&q={q}"));
    }
    let p = api
        .json("GET", &format!("/api/v1/git/connections/{connection}/repos?{query}"), None)
        .await?;
    for r in p["repos"].as_array().cloned().unwrap_or_default() {
        println!(
            "{:<48} {:<8} {}",
            r["full_name"].as_str().unwrap_or_default(),
            if r["private"] == true { "private" } else { "public" },
            r["default_branch"].as_str().unwrap_or_default()
        );
    }
    if p["more"] == true {
        println!("more: --page {}", page + 1);
    }
    Ok(())
}

/// `wh git disconnect`.
pub async fn git_disconnect(api: &Api, connection: i64) -> Result<(), CliError> {
    let d = api.json("DELETE", &format!("/api/v1/git/connections/{connection}"), None).await?;
    println!("disconnected {connection}; webhooks removed: {}", d["hooks_removed"]);
    if d["revoked"] != true {
        println!("this provider cannot be asked to revoke: remove WiseHosting under your account's authorized applications there");
    }
    Ok(())
}

/// A JSON number as people write it (70, not 70.0).
fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => format!("{f:.2}"),
        None => v.to_string(),
    }
}

fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn print_alerts(list: &Value) {
    for a in list.as_array().cloned().unwrap_or_default() {
        let state = if a["resolved_at"].is_null() { "FIRING" } else { "resolved" };
        println!(
            "{:<8} {:<20} {:<18} value {:<10} threshold {:<10} since {} for {}{}",
            state,
            a["app"].as_str().unwrap_or_default(),
            a["kind"].as_str().unwrap_or_default(),
            num(&a["value"]),
            num(&a["threshold"]),
            a["started_at"].as_str().unwrap_or_default(),
            duration(a["duration_secs"].as_f64().unwrap_or_default()),
            if a["held_back"] == true { " (held back)" } else { "" }
        );
    }
}

/// `wh usage`: per app over `days`, or one app's days.
pub async fn usage(api: &Api, app: Option<&str>, days: u32) -> Result<(), CliError> {
    let to = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let from = to.saturating_sub(u64::from(days.clamp(1, 90)) * 86_400);
    let line = |name: &str, t: &Value| {
        println!(
            "{:<24} {:>10} vCPU-h {:>10} GB-h {:>10} GB out {:>10} GB in",
            name,
            format!("{:.3}", t["vcpu_hours"].as_f64().unwrap_or_default()),
            format!("{:.3}", t["gb_hours"].as_f64().unwrap_or_default()),
            format!("{:.3}", t["egress_gb"].as_f64().unwrap_or_default()),
            format!("{:.3}", t["ingress_gb"].as_f64().unwrap_or_default()),
        )
    };
    match app {
        None => {
            let u = api.json("GET", &format!("/api/v1/usage?from={from}&to={to}"), None).await?;
            for a in u["apps"].as_array().cloned().unwrap_or_default() {
                line(a["app"].as_str().unwrap_or_default(), &a);
            }
            line(&format!("total ({days} days)"), &u["totals"]);
        }
        Some(app) => {
            let path = format!("/api/v1/apps/{app}/usage?from={from}&to={to}&step=1d");
            let u = api.json("GET", &path, None).await?;
            for p in u["points"].as_array().cloned().unwrap_or_default() {
                let day =
                    p["t"].as_str().unwrap_or_default().get(..10).unwrap_or_default().to_owned();
                let egress = p["tx_bytes"].as_f64().unwrap_or_default() / 1e9;
                let point = json!({"vcpu_hours": p["vcpu_hours"], "gb_hours": p["gb_hours"],
                    "egress_gb": egress, "ingress_gb": p["rx_bytes"].as_f64().unwrap_or_default() / 1e9});
                line(&day, &point);
            }
            line(&format!("total ({days} days)"), &u["totals"]);
        }
    }
    Ok(())
}

/// `wh alerts list`: what fires now.
pub async fn alerts_open(api: &Api) -> Result<(), CliError> {
    let list = api.json("GET", "/api/v1/alerts", None).await?;
    if list.as_array().is_none_or(|a| a.is_empty()) {
        println!("nothing fires");
    }
    print_alerts(&list);
    Ok(())
}

/// `wh alerts list --app`.
pub async fn alerts_history(api: &Api, app: &str) -> Result<(), CliError> {
    let list = api.json("GET", &format!("/api/v1/apps/{app}/alerts"), None).await?;
    if list.as_array().is_none_or(|a| a.is_empty()) {
        println!("{app} has had no alerts");
    }
    print_alerts(&list);
    Ok(())
}

/// `wh alerts rules`.
pub async fn alerts_rules(api: &Api, app: &str) -> Result<(), CliError> {
    let rules = api.json("GET", &format!("/api/v1/apps/{app}/alerts/rules"), None).await?;
    for r in rules.as_array().cloned().unwrap_or_default() {
        println!(
            "{:<18} {:<9} threshold {:<10} for {:<6} keep firing {:<6} {}{}",
            r["kind"].as_str().unwrap_or_default(),
            r["state"].as_str().unwrap_or_default(),
            num(&r["threshold"]),
            format!("{}s", r["for_secs"]),
            format!("{}s", r["keep_firing_secs"]),
            if r["enabled"] == true { "on" } else { "off" },
            r["muted_until"].as_str().map(|m| format!(", muted until {m}")).unwrap_or_default()
        );
    }
    Ok(())
}

/// `wh alerts set`.
pub async fn alerts_set(api: &Api, app: &str, kind: &str, patch: &Value) -> Result<(), CliError> {
    let r =
        api.json("PUT", &format!("/api/v1/apps/{app}/alerts/rules/{kind}"), Some(patch)).await?;
    println!(
        "{app} {kind}: threshold {}, for {}s, keep firing {}s, {}",
        num(&r["threshold"]),
        r["for_secs"],
        r["keep_firing_secs"],
        if r["enabled"] == true { "on" } else { "off" }
    );
    Ok(())
}

/// `wh alerts mute`.
pub async fn alerts_mute(api: &Api, app: &str, kind: &str, minutes: u32) -> Result<(), CliError> {
    let body = json!({ "minutes": minutes });
    let r = api
        .json("POST", &format!("/api/v1/apps/{app}/alerts/rules/{kind}/mute"), Some(&body))
        .await?;
    match r["muted_until"].as_str() {
        Some(until) => println!("{app} {kind}: muted until {until}"),
        None => println!("{app} {kind}: not muted"),
    }
    Ok(())
}

/// `text` percent-encoded for a query string.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `wh hooks remove`.
pub async fn hooks_remove(api: &Api, app: &str, id: &str) -> Result<(), CliError> {
    api.json("DELETE", &format!("/api/v1/apps/{app}/hooks/{id}"), None).await?;
    println!("removed webhook {id}: pushes no longer deploy {app}");
    Ok(())
}

/// `wh domains verify`: a domain that does not verify is an error (exit 1) with the reason.
pub async fn domains_verify(api: &Api, app: &str, hostname: &str) -> Result<(), CliError> {
    let v =
        api.json("POST", &format!("/api/v1/apps/{app}/domains/{hostname}/verify"), None).await?;
    let reason = v["reason"].as_str().unwrap_or_default();
    if v["outcome"] == "verified" {
        println!("{hostname} verified: {reason}; its certificate follows within a minute");
        Ok(())
    } else {
        Err(CliError::Failed(format!("{hostname} not verified: {reason}")))
    }
}

pub async fn domains_remove(api: &Api, app: &str, hostname: &str) -> Result<(), CliError> {
    api.json("DELETE", &format!("/api/v1/apps/{app}/domains/{hostname}"), None).await?;
    println!("removed {hostname}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_repositories_are_told_from_clone_urls() {
        for r in ["github:me/site", "codeberg:me/site", "gitlab:grp/sub/p"] {
            assert!(is_provider_repo(r), "{r}");
        }
        for r in ["https://github.com/me/site", "git@github.com:me/site.git", "ssh://git@h/x", ""] {
            assert!(!is_provider_repo(r), "{r}");
        }
        assert_eq!(url_encode("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }

    #[test]
    fn a_bare_rollback_goes_to_the_deployment_live_before_the_current() {
        let list = json!([
            {"id": 9, "state": "failed"},
            {"id": 8, "state": "live"},
            {"id": 7, "state": "cancelled"},
            {"id": 6, "state": "superseded"},
            {"id": 5, "state": "superseded"}
        ]);
        assert_eq!(previous_live(&list), Some(6));
        assert_eq!(previous_live(&json!([{"id": 1, "state": "live"}])), None);
        assert_eq!(previous_live(&json!({"error": {}})), None);
    }
}
