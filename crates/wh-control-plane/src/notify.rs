//! Notification channels: Shoutrrr's URL formats (<https://shoutrrr.nickfedor.com/>) for 22
//! services, parsed and sent by our own code. A URL is parsed once when it is saved (a URL that
//! does not parse is refused, naming what is wrong) and again, from its sealed copy, for every
//! delivery. Every call goes through the outbound client's SSRF guard: a self-hosted ntfy,
//! gotify, matrix or SMTP server is a tenant's address like any other.
//!
//! # Layout
//! - [`message`]: the short human message an event becomes.
//! - [`chat`]: discord, slack, telegram, mattermost, rocketchat, googlechat, teams, zulip, lark,
//!   wecom.
//! - [`push`]: ntfy, gotify, pushover, pushbullet, bark, join, ifttt.
//! - [`incident`]: opsgenie, pagerduty.
//! - [`generic`]: `generic://` and `generic+https://` (template, method, headers).
//! - [`matrix`]: matrix (password login or access token, several rooms).
//! - [`smtp`]: e-mail (implicit TLS on 465, STARTTLS otherwise).
//!
//! It never logs a URL: most carry a token.

pub mod chat;
pub mod generic;
pub mod incident;
pub mod matrix;
pub mod message;
pub mod push;
pub mod smtp;

use std::fmt;

use bytes::Bytes;
pub use message::Message;
use url::Url;

use crate::outbound::{self, guard::Guard, Answer, OutboundError};

/// Why a notification URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service}: {why}")]
pub struct UrlError {
    pub service: String,
    pub why: String,
}

pub(crate) fn bad(service: &str, why: impl Into<String>) -> UrlError {
    UrlError { service: service.to_owned(), why: why.into() }
}

/// One HTTP call a channel makes.
#[derive(Clone, PartialEq, Eq)]
pub struct Call {
    pub method: http::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The service answers 200 with `{"ok": false}` on failure (Slack's Web API).
    pub json_ok: bool,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL and headers carry tokens.
        f.debug_struct("Call").field("method", &self.method).finish_non_exhaustive()
    }
}

impl Call {
    /// `POST url` with a JSON body.
    pub fn json(url: String, body: &serde_json::Value) -> Call {
        Call {
            method: http::Method::POST,
            url,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(body).expect("a JSON value serialises"),
            json_ok: false,
        }
    }

    /// `POST url` with a form body.
    pub fn form(url: String, pairs: &[(&str, &str)]) -> Call {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        Call {
            method: http::Method::POST,
            url,
            headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
            body: body.into_bytes(),
            json_ok: false,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Call {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// A service whose notification is a fixed list of HTTP calls.
pub trait Service: Send + Sync {
    fn calls(&self, msg: &Message) -> Vec<Call>;
}

/// A parsed notification URL.
pub enum Channel {
    Http(Box<dyn Service>),
    Matrix(matrix::Matrix),
    Smtp(smtp::Smtp),
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Channel(..)")
    }
}

/// The 22 services, by URL scheme.
pub const SERVICES: [&str; 22] = [
    "bark",
    "discord",
    "generic",
    "googlechat",
    "gotify",
    "ifttt",
    "join",
    "lark",
    "matrix",
    "mattermost",
    "ntfy",
    "opsgenie",
    "pagerduty",
    "pushbullet",
    "pushover",
    "rocketchat",
    "slack",
    "smtp",
    "teams",
    "telegram",
    "wecom",
    "zulip",
];

/// A parsed URL: its service, what to show of it, and how to send.
#[derive(Debug)]
pub struct Parsed {
    pub service: &'static str,
    /// The URL without its secrets: `service://host`.
    pub display: String,
    pub channel: Channel,
}

/// Parses a Shoutrrr URL.
pub fn parse(text: &str) -> Result<Parsed, UrlError> {
    let text = text.trim();
    let scheme = text.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
    let base = scheme.split('+').next().unwrap_or("");
    let service = SERVICES.iter().copied().find(|s| *s == base).ok_or_else(|| {
        bad(
            if scheme.is_empty() { "url" } else { &scheme },
            format!("not a supported service (one of {})", SERVICES.join(", ")),
        )
    })?;
    if text.len() > 2048 {
        return Err(bad(service, "the URL is longer than 2048 bytes"));
    }
    let url = Url::parse(text).map_err(|e| bad(service, format!("not a URL: {e}")))?;
    let channel = match service {
        "discord" => Channel::Http(Box::new(chat::Discord::parse(&url)?)),
        "slack" => Channel::Http(Box::new(chat::Slack::parse(&url)?)),
        "telegram" => Channel::Http(Box::new(chat::Telegram::parse(&url)?)),
        "mattermost" => Channel::Http(Box::new(chat::Mattermost::parse(&url)?)),
        "rocketchat" => Channel::Http(Box::new(chat::RocketChat::parse(&url)?)),
        "googlechat" => Channel::Http(Box::new(chat::GoogleChat::parse(&url)?)),
        "teams" => Channel::Http(Box::new(chat::Teams::parse(&url)?)),
        "zulip" => Channel::Http(Box::new(chat::Zulip::parse(&url)?)),
        "lark" => Channel::Http(Box::new(chat::Lark::parse(&url)?)),
        "wecom" => Channel::Http(Box::new(chat::WeCom::parse(&url)?)),
        "ntfy" => Channel::Http(Box::new(push::Ntfy::parse(&url)?)),
        "gotify" => Channel::Http(Box::new(push::Gotify::parse(&url)?)),
        "pushover" => Channel::Http(Box::new(push::Pushover::parse(&url)?)),
        "pushbullet" => Channel::Http(Box::new(push::Pushbullet::parse(&url)?)),
        "bark" => Channel::Http(Box::new(push::Bark::parse(&url)?)),
        "join" => Channel::Http(Box::new(push::Join::parse(&url)?)),
        "ifttt" => Channel::Http(Box::new(push::Ifttt::parse(&url)?)),
        "opsgenie" => Channel::Http(Box::new(incident::Opsgenie::parse(&url)?)),
        "pagerduty" => Channel::Http(Box::new(incident::PagerDuty::parse(&url)?)),
        "generic" => Channel::Http(Box::new(generic::Generic::parse(&url)?)),
        "matrix" => Channel::Matrix(matrix::Matrix::parse(&url)?),
        "smtp" => Channel::Smtp(smtp::Smtp::parse(&url)?),
        _ => unreachable!("every service in SERVICES is matched"),
    };
    let host = url.host_str().unwrap_or("");
    // Where the host is the secret itself (a key or token), only its last 4 characters show.
    let host = match service {
        "wecom" | "pushbullet" | "ifttt" | "pushover" => {
            let tail: Vec<char> = host.chars().rev().take(4).collect();
            format!("…{}", tail.into_iter().rev().collect::<String>())
        }
        _ => host.to_owned(),
    };
    let display =
        if host.is_empty() { format!("{service}://") } else { format!("{service}://{host}") };
    Ok(Parsed { service, display, channel })
}

/// Query parameters by lower-cased name (the last one wins).
pub(crate) fn query(url: &Url) -> std::collections::HashMap<String, String> {
    url.query_pairs().map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned())).collect()
}

/// The URL's user name and password, percent-decoded.
pub(crate) fn userinfo(url: &Url) -> (String, String) {
    let dec = |s: &str| percent_decode(s);
    (dec(url.username()), url.password().map(dec).unwrap_or_default())
}

pub(crate) fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The URL's path segments, percent-decoded, empty ones dropped.
pub(crate) fn segments(url: &Url) -> Vec<String> {
    url.path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).map(percent_decode).collect())
        .unwrap_or_default()
}

/// `https`, or `http` when the URL asks for it (`disabletls=yes`, ntfy's `scheme=http`).
pub(crate) fn scheme(q: &std::collections::HashMap<String, String>) -> &'static str {
    let off = q.get("disabletls").is_some_and(|v| matches!(v.as_str(), "yes" | "true" | "1"))
        || q.get("scheme").is_some_and(|v| v == "http");
    if off {
        "http"
    } else {
        "https"
    }
}

/// `host[:port]` of a URL (brackets kept for IPv6).
pub(crate) fn authority(url: &Url, service: &str) -> Result<String, UrlError> {
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad(service, "no host"))?;
    Ok(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

/// Percent-encodes one path segment.
pub(crate) fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// What a delivery to a channel came to.
#[derive(Debug)]
pub struct Outcome {
    /// Whether the service took it.
    pub ok: bool,
    /// The last answer's status (the failing one when a call failed).
    pub status: u16,
    pub body: Bytes,
    pub retry_after: Option<String>,
}

/// Why a delivery to a channel failed before an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("{0}")]
    Http(#[from] OutboundError),
    #[error("SMTP: {0}")]
    Smtp(#[from] smtp::SmtpError),
    #[error("{0}")]
    Protocol(String),
}

/// The most recipients (chats, rooms, devices, events) one channel sends to: each is a call,
/// and a delivery must end well within its dispatcher's lease.
pub const MAX_RECIPIENTS: usize = 10;
/// How long one delivery to a channel may take, all its calls together.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(45);

/// Sends `msg` over `channel`: every call in order, stopping at the first that fails, all
/// within [`SEND_TIMEOUT`].
pub async fn send(
    channel: &Channel,
    client: &outbound::Client,
    guard: &Guard,
    msg: &Message,
) -> Result<Outcome, SendError> {
    let sending = async {
        match channel {
            Channel::Http(service) => run(client, guard, service.calls(msg)).await,
            Channel::Matrix(m) => m.send(client, guard, msg).await,
            Channel::Smtp(s) => s.send(client, guard, msg).await.map_err(SendError::from),
        }
    };
    tokio::time::timeout(SEND_TIMEOUT, sending)
        .await
        .map_err(|_| SendError::Protocol(format!("not done within {}s", SEND_TIMEOUT.as_secs())))?
}

/// Refuses more than [`MAX_RECIPIENTS`] of `what`.
pub(crate) fn at_most<T>(service: &str, what: &str, list: Vec<T>) -> Result<Vec<T>, UrlError> {
    if list.len() > MAX_RECIPIENTS {
        return Err(bad(service, format!("at most {MAX_RECIPIENTS} {what}")));
    }
    Ok(list)
}

pub(crate) async fn call(
    client: &outbound::Client,
    guard: &Guard,
    c: &Call,
) -> Result<Answer, OutboundError> {
    let headers: Vec<(&str, &str)> =
        c.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    client
        .send_for_user(guard, c.method.clone(), &c.url, &headers, Bytes::from(c.body.clone()))
        .await
}

pub(crate) fn outcome(a: Answer) -> Outcome {
    let retry_after = a.headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    Outcome { ok: a.is_success(), status: a.status, body: a.body, retry_after }
}

async fn run(
    client: &outbound::Client,
    guard: &Guard,
    calls: Vec<Call>,
) -> Result<Outcome, SendError> {
    let mut last = Outcome { ok: true, status: 200, body: Bytes::new(), retry_after: None };
    for c in &calls {
        last = outcome(call(client, guard, c).await?);
        if last.ok && c.json_ok {
            let said: Option<serde_json::Value> = serde_json::from_slice(&last.body).ok();
            last.ok = said.and_then(|v| v.get("ok").and_then(|o| o.as_bool())) == Some(true);
        }
        if !last.ok {
            break;
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text after any scheme: parsed or refused, never a panic; what is shown of a
        /// parsed URL never holds its password, and its calls are made without panicking.
        #[test]
        fn parsing_never_panics_and_never_shows_a_secret(
            i in 0..SERVICES.len(),
            rest in "[a-zA-Z0-9:@/?&=%#._~+$!-]{0,80}",
            secret in "[a-z]{12}",
        ) {
            let url = format!("{}://u:{secret}@{rest}", SERVICES[i]);
            if let Ok(p) = parse(&url) {
                prop_assert!(!p.display.contains(&secret));
                if let Channel::Http(service) = &p.channel {
                    let msg = message::render("app.crashed", &serde_json::json!({"app": rest}), "https://x");
                    let _ = service.calls(&msg);
                }
            }
            let _ = parse(&format!("{}://{rest}", SERVICES[i]));
        }
    }

    #[test]
    fn unknown_and_malformed_urls_name_the_problem() {
        let e = parse("whatsapp://x").unwrap_err();
        assert!(e.why.contains("not a supported service"), "{e}");
        assert_eq!(parse("discord://").unwrap_err().service, "discord");
        assert!(parse("not a url").unwrap_err().to_string().contains("url"));
        let keyed = parse("wecom://693a91f6-7aoc-4bc4-97a0-0ec2sifa5aaa").unwrap();
        assert_eq!(keyed.display, "wecom://…5aaa");
        assert_eq!(parse("pushbullet://o.secrettoken").unwrap().display, "pushbullet://…oken");
    }
}
