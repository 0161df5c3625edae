//! Chat services. Each type's doc names the Shoutrrr URL format it reads and the service API it
//! calls (the source the golden tests in `tests/notify.rs` follow).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use url::Url;

use super::message::{clip, Severity};
use super::{
    authority, bad, query, scheme, seg, segments, userinfo, Call, Message, Service, UrlError,
};

fn colour(s: Severity) -> u32 {
    match s {
        Severity::Info => 0x3b82f6,
        Severity::Success => 0x16a34a,
        Severity::Warning => 0xf59e0b,
        Severity::Error => 0xdc2626,
    }
}

/// `discord://token@webhookid[?username=…&avatar=…]` →
/// `POST https://discord.com/api/webhooks/{id}/{token}` with one embed
/// (<https://discord.com/developers/docs/resources/webhook#execute-webhook>).
#[derive(Debug)]
pub struct Discord {
    id: String,
    token: String,
    username: Option<String>,
    avatar: Option<String>,
}

impl Discord {
    pub fn parse(url: &Url) -> Result<Discord, UrlError> {
        let (token, _) = userinfo(url);
        let id = url.host_str().unwrap_or_default().to_owned();
        if token.is_empty() || id.is_empty() {
            return Err(bad("discord", "expected discord://token@webhookid"));
        }
        if !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("discord", "the webhook id is a number"));
        }
        let q = query(url);
        Ok(Discord {
            id,
            token,
            username: q.get("username").cloned(),
            avatar: q.get("avatar").or(q.get("avatarurl")).cloned(),
        })
    }
}

impl Service for Discord {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let mut embed = json!({
            "title": clip(&msg.title, 256),
            "description": clip(&msg.body, 4096),
            "color": colour(msg.severity),
        });
        if let Some(link) = &msg.link {
            embed["url"] = json!(link);
        }
        let mut body = json!({ "embeds": [embed] });
        if let Some(u) = &self.username {
            body["username"] = json!(u);
        }
        if let Some(a) = &self.avatar {
            body["avatar_url"] = json!(a);
        }
        vec![Call::json(
            format!("https://discord.com/api/webhooks/{}/{}", self.id, seg(&self.token)),
            &body,
        )]
    }
}

/// `slack://hook:A-B-C@webhook` (an incoming webhook, `https://hooks.slack.com/services/A/B/C`)
/// or `slack://xoxb:token@channel` (a bot token, `chat.postMessage`); `?botname=…&icon=…`
/// (<https://api.slack.com/messaging/webhooks>, <https://api.slack.com/methods/chat.postMessage>).
#[derive(Debug)]
pub struct Slack {
    kind: SlackKind,
    botname: Option<String>,
    icon: Option<String>,
}

#[derive(Debug)]
enum SlackKind {
    Webhook([String; 3]),
    Bot { token: String, channel: String },
}

impl Slack {
    pub fn parse(url: &Url) -> Result<Slack, UrlError> {
        let (user, pass) = userinfo(url);
        let host = url.host_str().unwrap_or_default().to_owned();
        let kind = match user.as_str() {
            "hook" => {
                let parts: Vec<&str> = pass.splitn(3, ['-', '/']).collect();
                match parts[..] {
                    [a, b, c]
                        if [a, b, c].iter().all(|p| {
                            !p.is_empty() && p.bytes().all(|x| x.is_ascii_alphanumeric())
                        }) =>
                    {
                        SlackKind::Webhook([a.into(), b.into(), c.into()])
                    }
                    _ => return Err(bad("slack", "a webhook token is three parts, A-B-C")),
                }
            }
            "xoxb" | "xoxp" => {
                if pass.is_empty() || host.is_empty() {
                    return Err(bad("slack", "expected slack://xoxb:token@channel"));
                }
                SlackKind::Bot { token: format!("{user}-{pass}"), channel: host }
            }
            _ => {
                return Err(bad(
                    "slack",
                    "expected slack://hook:A-B-C@webhook or slack://xoxb:token@channel",
                ))
            }
        };
        let q = query(url);
        Ok(Slack { kind, botname: q.get("botname").cloned(), icon: q.get("icon").cloned() })
    }
}

impl Service for Slack {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let mut body = json!({ "text": msg.text() });
        if let Some(b) = &self.botname {
            body["username"] = json!(b);
        }
        if let Some(i) = &self.icon {
            if i.starts_with("http") {
                body["icon_url"] = json!(i);
            } else {
                body["icon_emoji"] = json!(format!(":{}:", i.trim_matches(':')));
            }
        }
        match &self.kind {
            SlackKind::Webhook([a, b, c]) => {
                vec![Call::json(format!("https://hooks.slack.com/services/{a}/{b}/{c}"), &body)]
            }
            SlackKind::Bot { token, channel } => {
                body["channel"] = json!(channel);
                let mut call = Call::json("https://slack.com/api/chat.postMessage".into(), &body)
                    .header("authorization", format!("Bearer {token}"));
                call.headers[0].1 = "application/json; charset=utf-8".into();
                call.json_ok = true;
                vec![call]
            }
        }
    }
}

/// `telegram://token@telegram?chats=@channel,12345[&notification=no&preview=no]` →
/// `POST https://api.telegram.org/bot{token}/sendMessage` per chat
/// (<https://core.telegram.org/bots/api#sendmessage>).
#[derive(Debug)]
pub struct Telegram {
    token: String,
    chats: Vec<String>,
    silent: bool,
    no_preview: bool,
}

impl Telegram {
    pub fn parse(url: &Url) -> Result<Telegram, UrlError> {
        let (user, pass) = userinfo(url);
        if user.is_empty() || pass.is_empty() || !user.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("telegram", "expected telegram://<bot id>:<token>@telegram?chats=…"));
        }
        let q = query(url);
        let chats: Vec<String> = q
            .get("chats")
            .or(q.get("channels"))
            .map(|c| {
                c.split(',').map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect()
            })
            .unwrap_or_default();
        if chats.is_empty() {
            return Err(bad("telegram", "no chats: add ?chats=@channel or a chat id"));
        }
        let chats = super::at_most("telegram", "chats", chats)?;
        let no = |k: &str| q.get(k).is_some_and(|v| matches!(v.as_str(), "no" | "false" | "0"));
        Ok(Telegram {
            token: format!("{user}:{pass}"),
            chats,
            silent: no("notification"),
            no_preview: no("preview"),
        })
    }
}

impl Service for Telegram {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        self.chats
            .iter()
            .map(|chat| {
                let mut body = json!({ "chat_id": chat, "text": clip(&msg.text(), 4096) });
                if self.silent {
                    body["disable_notification"] = json!(true);
                }
                if self.no_preview {
                    body["link_preview_options"] = json!({ "is_disabled": true });
                }
                Call::json(format!("https://api.telegram.org/bot{}/sendMessage", self.token), &body)
            })
            .collect()
    }
}

/// `mattermost://[username@]host[:port][/path]/token[/channel][?icon=…&disabletls=yes]` →
/// `POST https://host/hooks/{token}` (<https://developers.mattermost.com/integrate/webhooks/incoming/>).
#[derive(Debug)]
pub struct Mattermost {
    base: String,
    token: String,
    username: Option<String>,
    channel: Option<String>,
    icon: Option<String>,
}

impl Mattermost {
    pub fn parse(url: &Url) -> Result<Mattermost, UrlError> {
        let q = query(url);
        let host = authority(url, "mattermost")?;
        let (user, _) = userinfo(url);
        let segs = segments(url);
        let (token, channel) = match &segs[..] {
            [t] => (t.clone(), None),
            [t, c] => (t.clone(), Some(c.clone())),
            _ => return Err(bad("mattermost", "expected mattermost://host/token[/channel]")),
        };
        Ok(Mattermost {
            base: format!("{}://{host}", scheme(&q)),
            token,
            username: (!user.is_empty()).then_some(user),
            channel,
            icon: q.get("icon").cloned(),
        })
    }
}

impl Service for Mattermost {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let mut body = json!({ "text": msg.text() });
        if let Some(u) = &self.username {
            body["username"] = json!(u);
        }
        if let Some(c) = &self.channel {
            body["channel"] = json!(c);
        }
        if let Some(i) = &self.icon {
            body["icon_url"] = json!(i);
        }
        vec![Call::json(format!("{}/hooks/{}", self.base, seg(&self.token)), &body)]
    }
}

/// `rocketchat://[username@]host[:port]/token/token2[/channel]` (channel `%23general` or
/// `@user`) → `POST https://host/hooks/{token}/{token2}`
/// (<https://docs.rocket.chat/use-rocket.chat/workspace-administration/integrations>).
#[derive(Debug)]
pub struct RocketChat {
    base: String,
    tokens: (String, String),
    username: Option<String>,
    channel: Option<String>,
}

impl RocketChat {
    pub fn parse(url: &Url) -> Result<RocketChat, UrlError> {
        let q = query(url);
        let host = authority(url, "rocketchat")?;
        let (user, _) = userinfo(url);
        let segs = segments(url);
        let (a, b, mut channel) = match &segs[..] {
            [a, b] => (a.clone(), b.clone(), None),
            [a, b, c] => (a.clone(), b.clone(), Some(c.clone())),
            _ => {
                return Err(bad("rocketchat", "expected rocketchat://host/token/token2[/channel]"))
            }
        };
        if let Some(f) = url.fragment().filter(|f| !f.is_empty()) {
            channel = Some(format!("#{f}"));
        }
        Ok(RocketChat {
            base: format!("{}://{host}", scheme(&q)),
            tokens: (a, b),
            username: (!user.is_empty()).then_some(user),
            channel,
        })
    }
}

impl Service for RocketChat {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let mut body = json!({ "text": msg.text() });
        if let Some(u) = &self.username {
            body["username"] = json!(u);
        }
        if let Some(c) = &self.channel {
            body["channel"] = json!(c);
        }
        let (a, b) = &self.tokens;
        vec![Call::json(format!("{}/hooks/{}/{}", self.base, seg(a), seg(b)), &body)]
    }
}

/// `googlechat://chat.googleapis.com/v1/spaces/{space}/messages?key=…&token=…` → the same URL
/// over https (<https://developers.google.com/workspace/chat/quickstart/webhooks>).
#[derive(Debug)]
pub struct GoogleChat {
    url: String,
}

impl GoogleChat {
    pub fn parse(url: &Url) -> Result<GoogleChat, UrlError> {
        let q = query(url);
        if !q.contains_key("key") || !q.contains_key("token") {
            return Err(bad("googlechat", "the webhook URL's key and token are missing"));
        }
        let host = authority(url, "googlechat")?;
        if !url.path().starts_with("/v1/spaces/") {
            return Err(bad("googlechat", "expected googlechat://chat.googleapis.com/v1/spaces/…"));
        }
        Ok(GoogleChat {
            url: format!("https://{host}{}?{}", url.path(), url.query().unwrap_or_default()),
        })
    }
}

impl Service for GoogleChat {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        vec![Call::json(self.url.clone(), &json!({ "text": msg.text() }))]
    }
}

/// A Teams channel's Power Automate workflow ("Post to a channel when a webhook request is
/// received"): its URL with `https` replaced by `teams`, e.g.
/// `teams://….environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/…/invoke?api-version=1&sp=…&sv=1.0&sig=…`
/// → `POST` of an Adaptive Card message to that URL
/// (<https://learn.microsoft.com/en-us/connectors/teams/?tabs=text1#microsoft-teams-webhook>).
/// Office 365 connector URLs (`webhook.office.com`, and Shoutrrr's `teams://group@tenant/…`
/// form for them) are refused: Microsoft retired those connectors.
#[derive(Debug)]
pub struct Teams {
    url: String,
}

const WORKFLOW_HOSTS: [&str; 4] =
    [".logic.azure.com", ".powerplatform.com", ".powerautomate.com", ".flow.microsoft.com"];

impl Teams {
    pub fn parse(url: &Url) -> Result<Teams, UrlError> {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if host.ends_with("webhook.office.com") || !url.username().is_empty() {
            return Err(bad(
                "teams",
                "Office 365 connector webhooks are retired: create a Workflows webhook in the channel and use its URL with teams:// for https://",
            ));
        }
        if !WORKFLOW_HOSTS.iter().any(|h| host.ends_with(h)) {
            return Err(bad(
                "teams",
                "not a Power Automate workflow URL (logic.azure.com, powerplatform.com, powerautomate.com or flow.microsoft.com)",
            ));
        }
        if !query(url).contains_key("sig") {
            return Err(bad("teams", "the workflow URL's sig= is missing"));
        }
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(Teams {
            url: format!("https://{host}{port}{}?{}", url.path(), url.query().unwrap_or_default()),
        })
    }
}

impl Service for Teams {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let mut blocks = vec![
            json!({"type": "TextBlock", "text": msg.title, "weight": "Bolder", "size": "Medium", "wrap": true}),
            json!({"type": "TextBlock", "text": msg.body, "wrap": true}),
        ];
        let mut card = json!({
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
        });
        if let Some(link) = &msg.link {
            card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open", "url": link}]);
        } else {
            blocks.truncate(2);
        }
        card["body"] = Value::Array(blocks);
        let body = json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": card,
            }],
        });
        vec![Call::json(self.url.clone(), &body)]
    }
}

/// `zulip://bot-email:bot-key@host[:port]/?stream=…[&topic=…]` →
/// `POST https://host/api/v1/messages` (form, basic auth)
/// (<https://zulip.com/api/send-message>).
#[derive(Debug)]
pub struct Zulip {
    base: String,
    email: String,
    key: String,
    stream: String,
    topic: Option<String>,
}

impl Zulip {
    pub fn parse(url: &Url) -> Result<Zulip, UrlError> {
        let (email, key) = userinfo(url);
        if email.is_empty() || key.is_empty() {
            return Err(bad("zulip", "expected zulip://bot-email:bot-key@host/?stream=…"));
        }
        let q = query(url);
        let stream = q.get("stream").filter(|s| !s.is_empty()).cloned();
        let stream = stream.ok_or_else(|| bad("zulip", "no stream: add ?stream=…"))?;
        Ok(Zulip {
            base: format!("{}://{}", scheme(&q), authority(url, "zulip")?),
            email,
            key,
            stream,
            topic: q.get("topic").cloned(),
        })
    }
}

impl Service for Zulip {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let topic = clip(self.topic.as_deref().unwrap_or(&msg.title), 60);
        let content = format!("**{}**\n{}", msg.title, msg.detail());
        let auth = STANDARD.encode(format!("{}:{}", self.email, self.key));
        vec![Call::form(
            format!("{}/api/v1/messages", self.base),
            &[("type", "stream"), ("to", &self.stream), ("topic", &topic), ("content", &content)],
        )
        .header("authorization", format!("Basic {auth}"))]
    }
}

/// `lark://host/token[?secret=…]` (host `open.larksuite.com` or `open.feishu.cn`) →
/// `POST https://host/open-apis/bot/v2/hook/{token}` with a `post` message, signed when a
/// secret is given: `sign = base64(HMAC-SHA256(key = "{timestamp}\n{secret}", ""))`
/// (<https://open.larksuite.com/document/client-docs/bot-v3/add-custom-bot>).
#[derive(Debug)]
pub struct Lark {
    host: String,
    token: String,
    secret: Option<String>,
}

impl Lark {
    pub fn parse(url: &Url) -> Result<Lark, UrlError> {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if host != "open.larksuite.com" && host != "open.feishu.cn" {
            return Err(bad("lark", "the host is open.larksuite.com or open.feishu.cn"));
        }
        let token = match &segments(url)[..] {
            [t] => t.clone(),
            _ => return Err(bad("lark", "expected lark://host/token")),
        };
        Ok(Lark { host, token, secret: query(url).get("secret").cloned() })
    }

    /// The signature of a request made at `timestamp`.
    pub fn sign(secret: &str, timestamp: i64) -> String {
        let mac = Hmac::<Sha256>::new_from_slice(format!("{timestamp}\n{secret}").as_bytes())
            .expect("HMAC takes any key length");
        STANDARD.encode(mac.finalize().into_bytes())
    }
}

impl Service for Lark {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let mut lines = vec![json!([{ "tag": "text", "text": msg.body }])];
        if let Some(link) = &msg.link {
            lines.push(json!([{ "tag": "a", "text": link, "href": link }]));
        }
        let mut body = json!({
            "msg_type": "post",
            "content": { "post": { "en_us": { "title": msg.title, "content": lines } } },
        });
        if let Some(secret) = &self.secret {
            let ts = crate::now_ms() / 1000;
            body["timestamp"] = json!(ts.to_string());
            body["sign"] = json!(Lark::sign(secret, ts));
        }
        vec![Call::json(
            format!("https://{}/open-apis/bot/v2/hook/{}", self.host, seg(&self.token)),
            &body,
        )]
    }
}

/// `wecom://key[?mentioned_list=@all]` →
/// `POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}`
/// (<https://developer.work.weixin.qq.com/document/path/99110>).
#[derive(Debug)]
pub struct WeCom {
    key: String,
    mentioned: Vec<String>,
}

impl WeCom {
    pub fn parse(url: &Url) -> Result<WeCom, UrlError> {
        let key = url.host_str().unwrap_or_default().to_owned();
        if key.is_empty() {
            return Err(bad("wecom", "expected wecom://key"));
        }
        let mentioned = query(url)
            .get("mentioned_list")
            .map(|m| m.split(',').map(String::from).collect())
            .unwrap_or_default();
        Ok(WeCom { key, mentioned })
    }
}

impl Service for WeCom {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let mut text = json!({ "content": clip(&msg.text(), 4096) });
        if !self.mentioned.is_empty() {
            text["mentioned_list"] = json!(self.mentioned);
        }
        vec![Call::json(
            format!("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={}", seg(&self.key)),
            &json!({ "msgtype": "text", "text": text }),
        )]
    }
}
