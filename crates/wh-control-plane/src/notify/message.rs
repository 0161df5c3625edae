//! The short human message a notification channel sends for an event: a title, a line or two
//! of what happened, the app and a link to its page in the dashboard. Built from the delivered
//! event body (`{type, timestamp, data}`), so a retry renders the same message.

use serde_json::Value;

/// How bad the news is (colours and priorities of the services that have them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Success,
    Warning,
    Error,
}

/// A rendered notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The event's id (an idempotency key where a service takes one).
    pub id: String,
    pub title: String,
    pub body: String,
    /// The app's slug, when the event is about one.
    pub app: Option<String>,
    /// The dashboard page to open, when there is one.
    pub link: Option<String>,
    pub severity: Severity,
}

impl Message {
    /// Title, body and link on lines of their own: the text of services with one text field.
    pub fn text(&self) -> String {
        let mut s = format!("{}\n{}", self.title, self.body);
        if let Some(link) = &self.link {
            s.push('\n');
            s.push_str(link);
        }
        s
    }

    /// Body and link, for services with a title field of their own.
    pub fn detail(&self) -> String {
        match &self.link {
            Some(link) => format!("{}\n{link}", self.body),
            None => self.body.clone(),
        }
    }
}

fn s<'a>(data: &'a Value, key: &str) -> &'a str {
    data.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `{git_ref}` or `{git_ref} ({commit, 7 characters})`.
fn revision(data: &Value) -> String {
    let git_ref = s(data, "git_ref");
    match data.get("commit").and_then(Value::as_str) {
        Some(c) if !c.is_empty() => format!("{git_ref} ({})", &c[..c.len().min(7)]),
        _ => git_ref.to_owned(),
    }
}

/// One line per alert of a notice, or the one alert of an event.
fn alert_lines(data: &Value) -> String {
    let one = |a: &Value| {
        let kind = s(a, "kind");
        let value = a.get("value").and_then(Value::as_f64).unwrap_or(0.0);
        let threshold = a.get("threshold").and_then(Value::as_f64).unwrap_or(0.0);
        format!("{kind}: {value:.1} (threshold {threshold})")
    };
    match data.get("alerts").and_then(Value::as_array) {
        Some(list) => list.iter().map(one).collect::<Vec<_>>().join("\n"),
        None => one(data),
    }
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The message for event `kind` with `data`; `dashboard` is the dashboard's base URL (empty:
/// no links).
pub fn render(kind: &str, data: &Value, dashboard: &str) -> Message {
    let app = data.get("app").and_then(Value::as_str).map(str::to_owned);
    let name = app.clone().unwrap_or_default();
    let page = |tail: &str| {
        (!dashboard.is_empty() && !name.is_empty())
            .then(|| format!("{}/apps/{name}{tail}", dashboard.trim_end_matches('/')))
    };
    let (title, body, link, severity) = match kind {
        "deployment.started" => (
            format!("Deploy started: {name}"),
            format!("Deploying {}.", revision(data)),
            page("/deployments"),
            Severity::Info,
        ),
        "deployment.succeeded" => (
            format!("Deploy live: {name}"),
            format!("{} is live.", revision(data)),
            page("/deployments"),
            Severity::Success,
        ),
        "deployment.failed" => (
            format!("Deploy failed: {name}"),
            format!("{} failed: {}", revision(data), clip(s(data, "error"), 300)),
            page("/deployments"),
            Severity::Error,
        ),
        "app.crashed" => (
            format!("App crashed: {name}"),
            "The app's container exited and was restarted.".to_owned(),
            page("/logs"),
            Severity::Error,
        ),
        "alert.fired" => {
            let reminder = data.get("reminder").and_then(Value::as_bool).unwrap_or(false);
            let title = if reminder { "Alert still firing" } else { "Alert firing" };
            (format!("{title}: {name}"), alert_lines(data), page("/alerts"), Severity::Warning)
        }
        "alert.resolved" => (
            format!("Alert resolved: {name}"),
            alert_lines(data),
            page("/alerts"),
            Severity::Success,
        ),
        "domain.verified" => (
            format!("Domain verified: {}", s(data, "hostname")),
            format!("{} now serves {name}.", s(data, "hostname")),
            page("/domains"),
            Severity::Success,
        ),
        "certificate.issued" => (
            format!("Certificate issued: {}", s(data, "hostname")),
            format!("{} has a new TLS certificate.", s(data, "hostname")),
            page("/domains"),
            Severity::Success,
        ),
        "certificate.failed" => (
            format!("Certificate failed: {}", s(data, "hostname")),
            format!(
                "No TLS certificate for {}: {}",
                s(data, "hostname"),
                clip(s(data, "error"), 300)
            ),
            page("/domains"),
            Severity::Error,
        ),
        "target.disabled" => (
            "Notifications disabled".to_owned(),
            format!("{} was disabled: {}", s(data, "target"), clip(s(data, "reason"), 300)),
            (!dashboard.is_empty())
                .then(|| format!("{}/notifications", dashboard.trim_end_matches('/'))),
            Severity::Warning,
        ),
        "webhook.test" => (
            "Test notification".to_owned(),
            "WiseHosting can reach this channel.".to_owned(),
            None,
            Severity::Info,
        ),
        other => (other.to_owned(), String::new(), page(""), Severity::Info),
    };
    Message { id: String::new(), title, body, app, link, severity }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_render_as_short_messages_with_a_link() {
        let m = render(
            "deployment.failed",
            &json!({"app": "shop", "git_ref": "main", "commit": "0123456789abcdef", "error": "build exited 2"}),
            "https://wh.example.com/",
        );
        assert_eq!(m.title, "Deploy failed: shop");
        assert_eq!(m.body, "main (0123456) failed: build exited 2");
        assert_eq!(m.link.as_deref(), Some("https://wh.example.com/apps/shop/deployments"));
        assert_eq!(m.severity, Severity::Error);
        let grouped = render(
            "alert.fired",
            &json!({"app": "shop", "alerts": [{"kind": "cpu", "value": 92.5, "threshold": 80.0}, {"kind": "memory", "value": 95.0, "threshold": 90.0}]}),
            "",
        );
        assert_eq!(grouped.body, "cpu: 92.5 (threshold 80)\nmemory: 95.0 (threshold 90)");
        assert_eq!(grouped.link, None);
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
