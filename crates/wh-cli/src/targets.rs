//! `wh webhooks …` and `wh notify …`: signed webhooks and notification channels (the API's
//! `/api/v1/webhooks` and `/api/v1/notifications`). A webhook's secret is printed once, when it
//! is added (or rotated).

use serde_json::{json, Value};

use crate::client::Api;
use crate::error::CliError;

/// Which of the two a command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Webhooks,
    Notify,
}

impl Kind {
    fn base(self) -> &'static str {
        match self {
            Kind::Webhooks => "/api/v1/webhooks",
            Kind::Notify => "/api/v1/notifications",
        }
    }
}

/// `wh webhooks add URL` / `wh notify add URL`.
pub async fn add(
    api: &Api,
    kind: Kind,
    url: &str,
    app: Option<&str>,
    events: &[String],
) -> Result<(), CliError> {
    let mut body = json!({ "url": url, "events": events });
    if let Some(app) = app {
        body["app"] = json!(app);
    }
    let created = api.json("POST", kind.base(), Some(&body)).await?;
    let t = &created["target"];
    println!("added {} {} ({})", t["id"], t["display"].as_str().unwrap_or_default(), scope(t));
    if let Some(secret) = created["secret"].as_str() {
        println!("signing secret (shown once): {secret}");
    }
    Ok(())
}

fn scope(t: &Value) -> String {
    let app = t["app"].as_str().map(|a| format!("app {a}")).unwrap_or("all apps".into());
    let events: Vec<&str> = t["events"]
        .as_array()
        .map(|e| e.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!("{app}; {}", events.join(", "))
}

/// `wh webhooks list` / `wh notify list`.
pub async fn list(api: &Api, kind: Kind) -> Result<(), CliError> {
    let list = api.json("GET", kind.base(), None).await?;
    let items = list.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("none");
    }
    for t in items {
        let state = match (t["enabled"].as_bool(), t["disabled_reason"].as_str()) {
            (Some(true), _) => "on".to_owned(),
            (_, Some(why)) => format!("off: {why}"),
            _ => "off".to_owned(),
        };
        println!(
            "{:<5} {:<11} {:<40} {} [{state}]",
            t["id"],
            t["service"].as_str().unwrap_or_default(),
            t["display"].as_str().unwrap_or_default(),
            scope(&t)
        );
    }
    Ok(())
}

/// `wh webhooks test ID` / `wh notify test ID`: the first attempt's outcome; a failure is an
/// error (exit code non-zero).
pub async fn test(api: &Api, kind: Kind, id: i64) -> Result<(), CliError> {
    let d = api.json("POST", &format!("{}/{id}/test", kind.base()), None).await?;
    let attempt = &d["tries"][0];
    let what = match (attempt["status"].as_i64(), attempt["error"].as_str()) {
        (Some(s), _) => format!("HTTP {s}"),
        (None, Some(e)) => e.to_owned(),
        (None, None) => "no attempt yet".to_owned(),
    };
    if d["state"] == "succeeded" {
        println!("delivered ({what}, {} ms)", attempt["duration_ms"]);
        Ok(())
    } else {
        let response = attempt["response"].as_str().unwrap_or_default();
        let response: String = response.chars().take(200).collect();
        Err(CliError::Local(format!("the test was not delivered: {what} {response}")))
    }
}

/// `wh webhooks remove ID` / `wh notify remove ID`.
pub async fn remove(api: &Api, kind: Kind, id: i64) -> Result<(), CliError> {
    api.json("DELETE", &format!("{}/{id}", kind.base()), None).await?;
    println!("removed {id}");
    Ok(())
}

/// `wh webhooks rotate ID`.
pub async fn rotate(api: &Api, id: i64) -> Result<(), CliError> {
    let r = api.json("POST", &format!("/api/v1/webhooks/{id}/rotate"), None).await?;
    println!("new signing secret (shown once): {}", r["secret"].as_str().unwrap_or_default());
    if let Some(until) = r["previous_valid_until"].as_str() {
        println!("the previous secret also signs until {until}");
    }
    Ok(())
}

/// `wh webhooks deliveries ID` / `wh notify deliveries ID`.
pub async fn deliveries(api: &Api, kind: Kind, id: i64) -> Result<(), CliError> {
    let list = api.json("GET", &format!("{}/{id}/deliveries", kind.base()), None).await?;
    for d in list.as_array().cloned().unwrap_or_default() {
        let last = d["tries"].as_array().and_then(|t| t.last()).cloned().unwrap_or_default();
        let outcome = match (last["status"].as_i64(), last["error"].as_str()) {
            (Some(s), _) => format!("HTTP {s}"),
            (None, Some(e)) => e.to_owned(),
            _ => String::new(),
        };
        println!(
            "{} {:<22} {:<9} attempts {} {outcome}",
            d["created_at"].as_str().unwrap_or_default(),
            d["event_type"].as_str().unwrap_or_default(),
            d["state"].as_str().unwrap_or_default(),
            d["attempts"]
        );
    }
    Ok(())
}
