//! Incident services. Each type's doc names the Shoutrrr URL format it reads and the service
//! API it calls (the source the golden tests in `tests/notify.rs` follow).

use serde_json::{json, Value};
use url::Url;

use super::message::{clip, Severity};
use super::{authority, bad, query, segments, Call, Message, Service, UrlError};

/// `opsgenie://host[:port]/apikey[?responders=team:ops,user:me@example.com&tags=a,b&priority=P1-P5]`
/// (host `api.opsgenie.com` or `api.eu.opsgenie.com`) → `POST https://host/v2/alerts` with
/// `Authorization: GenieKey …` (<https://docs.opsgenie.com/docs/alert-api#create-alert>).
#[derive(Debug)]
pub struct Opsgenie {
    host: String,
    key: String,
    responders: Vec<Value>,
    tags: Vec<String>,
    priority: Option<String>,
}

impl Opsgenie {
    pub fn parse(url: &Url) -> Result<Opsgenie, UrlError> {
        let host = authority(url, "opsgenie")?;
        let key = match &segments(url)[..] {
            [k] => k.clone(),
            _ => return Err(bad("opsgenie", "expected opsgenie://api.opsgenie.com/apikey")),
        };
        let q = query(url);
        let mut responders = Vec::new();
        for r in q.get("responders").map(|r| r.split(',').collect::<Vec<_>>()).unwrap_or_default() {
            let (kind, name) = r.split_once(':').ok_or_else(|| {
                bad(
                    "opsgenie",
                    "a responder is team:name, user:email, escalation:name or schedule:name",
                )
            })?;
            let field = if kind == "user" { "username" } else { "name" };
            if !matches!(kind, "team" | "user" | "escalation" | "schedule") {
                return Err(bad("opsgenie", format!("unknown responder type `{kind}`")));
            }
            responders.push(json!({ "type": kind, field: name }));
        }
        let priority = q.get("priority").cloned();
        if let Some(p) = &priority {
            if !matches!(p.as_str(), "P1" | "P2" | "P3" | "P4" | "P5") {
                return Err(bad("opsgenie", "priority is P1 to P5"));
            }
        }
        let tags =
            q.get("tags").map(|t| t.split(',').map(String::from).collect()).unwrap_or_default();
        Ok(Opsgenie { host, key, responders, tags, priority })
    }
}

impl Service for Opsgenie {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let mut body = json!({
            "message": clip(&msg.title, 130),
            "description": clip(&msg.detail(), 15000),
            "source": "WiseHosting",
        });
        if let Some(app) = &msg.app {
            body["entity"] = json!(app);
        }
        if !self.responders.is_empty() {
            body["responders"] = json!(self.responders);
        }
        if !self.tags.is_empty() {
            body["tags"] = json!(self.tags);
        }
        if let Some(p) = &self.priority {
            body["priority"] = json!(p);
        }
        vec![Call::json(format!("https://{}/v2/alerts", self.host), &body)
            .header("authorization", format!("GenieKey {}", self.key))]
    }
}

/// `pagerduty://[host[:port]]/integrationKey[?severity=critical|error|warning|info&source=…]`
/// (host default `events.pagerduty.com`) → `POST https://host/v2/enqueue` (Events API v2,
/// <https://developer.pagerduty.com/docs/send-alert-event>).
#[derive(Debug)]
pub struct PagerDuty {
    host: String,
    key: String,
    severity: Option<String>,
    source: Option<String>,
}

impl PagerDuty {
    pub fn parse(url: &Url) -> Result<PagerDuty, UrlError> {
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => authority(url, "pagerduty")?,
            _ => "events.pagerduty.com".to_owned(),
        };
        let key = match &segments(url)[..] {
            [k] if k.len() == 32 && k.bytes().all(|b| b.is_ascii_alphanumeric()) => k.clone(),
            _ => {
                return Err(bad(
                    "pagerduty",
                    "expected pagerduty://events.pagerduty.com/<32-character integration key>",
                ))
            }
        };
        let q = query(url);
        let severity = q.get("severity").cloned();
        if let Some(s) = &severity {
            if !matches!(s.as_str(), "critical" | "error" | "warning" | "info") {
                return Err(bad("pagerduty", "severity is critical, error, warning or info"));
            }
        }
        Ok(PagerDuty { host, key, severity, source: q.get("source").cloned() })
    }
}

impl Service for PagerDuty {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let severity = self.severity.clone().unwrap_or_else(|| {
            match msg.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                _ => "info",
            }
            .to_owned()
        });
        let source = self.source.clone().or(msg.app.clone()).unwrap_or("wisehosting".into());
        let mut body = json!({
            "routing_key": self.key,
            "event_action": "trigger",
            "payload": {
                "summary": clip(&format!("{}: {}", msg.title, msg.body), 1024),
                "source": source,
                "severity": severity,
            },
        });
        if let Some(l) = &msg.link {
            body["links"] = json!([{ "href": l, "text": "WiseHosting dashboard" }]);
        }
        vec![Call::json(format!("https://{}/v2/enqueue", self.host), &body)]
    }
}
