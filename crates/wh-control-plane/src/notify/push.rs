//! Push services. Each type's doc names the Shoutrrr URL format it reads and the service API it
//! calls (the source the golden tests in `tests/notify.rs` follow).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;
use url::Url;

use super::message::{clip, Severity};
use super::{
    authority, bad, query, scheme, seg, segments, userinfo, Call, Message, Service, UrlError,
};

fn csv(v: Option<&String>) -> Vec<String> {
    v.map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

/// `ntfy://[user:password@ | :token@]host[:port]/topic[?scheme=http&priority=1-5&tags=a,b]` →
/// `POST https://host/topic` with the message as the body and `Title`, `Priority`, `Tags` and
/// `Click` headers (<https://docs.ntfy.sh/publish/>).
#[derive(Debug)]
pub struct Ntfy {
    url: String,
    auth: Option<String>,
    priority: Option<u8>,
    tags: Option<String>,
}

impl Ntfy {
    pub fn parse(url: &Url) -> Result<Ntfy, UrlError> {
        let q = query(url);
        let topic = match &segments(url)[..] {
            [t] if t.len() <= 64 => t.clone(),
            _ => return Err(bad("ntfy", "expected ntfy://host/topic")),
        };
        let (user, pass) = userinfo(url);
        let auth = match (user.is_empty(), pass.is_empty()) {
            (true, true) => None,
            (true, false) => Some(format!("Bearer {pass}")),
            _ => Some(format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))),
        };
        let priority = match q.get("priority").map(String::as_str) {
            None => None,
            Some(p) => Some(match p {
                "1" | "min" => 1,
                "2" | "low" => 2,
                "3" | "default" => 3,
                "4" | "high" => 4,
                "5" | "max" | "urgent" => 5,
                _ => return Err(bad("ntfy", "priority is 1-5 or min, low, default, high, max")),
            }),
        };
        Ok(Ntfy {
            url: format!("{}://{}/{}", scheme(&q), authority(url, "ntfy")?, seg(&topic)),
            auth,
            priority,
            tags: q.get("tags").cloned(),
        })
    }
}

impl Service for Ntfy {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let priority = self.priority.unwrap_or(match msg.severity {
            Severity::Error | Severity::Warning => 4,
            _ => 3,
        });
        let mut call = Call {
            method: http::Method::POST,
            url: self.url.clone(),
            headers: vec![
                ("content-type".into(), "text/plain; charset=utf-8".into()),
                // Header values are visible ASCII.
                (
                    "title".into(),
                    msg.title.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect(),
                ),
                ("priority".into(), priority.to_string()),
            ],
            body: msg.body.clone().into_bytes(),
            json_ok: false,
        };
        if let Some(t) = &self.tags {
            call = call.header("tags", t.clone());
        }
        if let Some(l) = &msg.link {
            call = call.header("click", l.clone());
        }
        if let Some(a) = &self.auth {
            call = call.header("authorization", a.clone());
        }
        vec![call]
    }
}

/// `gotify://host[:port][/path]/token[?priority=…&disabletls=yes]` →
/// `POST https://host[/path]/message` with `X-Gotify-Key` (<https://gotify.net/docs/pushmsg>).
#[derive(Debug)]
pub struct Gotify {
    base: String,
    token: String,
    priority: Option<i64>,
}

impl Gotify {
    pub fn parse(url: &Url) -> Result<Gotify, UrlError> {
        let q = query(url);
        let mut segs = segments(url);
        let token = segs.pop().ok_or_else(|| bad("gotify", "expected gotify://host/token"))?;
        let priority = match q.get("priority") {
            None => None,
            Some(p) => Some(p.parse().map_err(|_| bad("gotify", "priority is a number"))?),
        };
        let path: String = segs.iter().map(|s| format!("/{}", seg(s))).collect();
        Ok(Gotify {
            base: format!("{}://{}{path}", scheme(&q), authority(url, "gotify")?),
            token,
            priority,
        })
    }
}

impl Service for Gotify {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let priority = self.priority.unwrap_or(match msg.severity {
            Severity::Error => 8,
            Severity::Warning => 5,
            _ => 2,
        });
        let mut body = json!({ "title": msg.title, "message": msg.body, "priority": priority });
        if let Some(l) = &msg.link {
            body["extras"] = json!({ "client::notification": { "click": { "url": l } } });
        }
        vec![Call::json(format!("{}/message", self.base), &body)
            .header("x-gotify-key", self.token.clone())]
    }
}

/// `pushover://shoutrrr:apiToken@userKey/?devices=a,b[&priority=-2..2]` →
/// `POST https://api.pushover.net/1/messages.json` (form) (<https://pushover.net/api>).
#[derive(Debug)]
pub struct Pushover {
    token: String,
    user: String,
    devices: Vec<String>,
    priority: Option<i8>,
}

impl Pushover {
    pub fn parse(url: &Url) -> Result<Pushover, UrlError> {
        let (_, token) = userinfo(url);
        let user = url.host_str().unwrap_or_default().to_owned();
        if token.is_empty() || user.is_empty() {
            return Err(bad("pushover", "expected pushover://shoutrrr:apiToken@userKey"));
        }
        let q = query(url);
        let priority = match q.get("priority") {
            None => None,
            Some(p) => match p.parse::<i8>() {
                Ok(v @ -2..=2) => Some(v),
                _ => return Err(bad("pushover", "priority is -2 to 2")),
            },
        };
        Ok(Pushover { token, user, devices: csv(q.get("devices")), priority })
    }
}

impl Service for Pushover {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let title = clip(&msg.title, 250);
        let message = clip(&msg.body, 1024);
        let devices = self.devices.join(",");
        let priority = self.priority.map(|p| p.to_string());
        let mut pairs: Vec<(&str, &str)> = vec![
            ("token", &self.token),
            ("user", &self.user),
            ("title", &title),
            ("message", &message),
        ];
        if !devices.is_empty() {
            pairs.push(("device", &devices));
        }
        if let Some(l) = &msg.link {
            pairs.push(("url", l));
        }
        if let Some(p) = &priority {
            pairs.push(("priority", p));
        }
        vec![Call::form("https://api.pushover.net/1/messages.json".into(), &pairs)]
    }
}

/// `pushbullet://api-token[/device][/%23channel][/email]` →
/// `POST https://api.pushbullet.com/v2/pushes` per target (one to all devices without a
/// target) (<https://docs.pushbullet.com/#create-push>).
#[derive(Debug)]
pub struct Pushbullet {
    token: String,
    targets: Vec<(&'static str, String)>,
}

impl Pushbullet {
    pub fn parse(url: &Url) -> Result<Pushbullet, UrlError> {
        let token = url.host_str().unwrap_or_default().to_owned();
        if token.is_empty() {
            return Err(bad("pushbullet", "expected pushbullet://api-token[/targets]"));
        }
        let mut targets: Vec<(&'static str, String)> = segments(url)
            .into_iter()
            .map(|t| {
                if let Some(c) = t.strip_prefix('#') {
                    ("channel_tag", c.to_owned())
                } else if t.contains('@') {
                    ("email", t)
                } else {
                    ("device_iden", t)
                }
            })
            .collect();
        if let Some(f) = url.fragment().filter(|f| !f.is_empty()) {
            targets.push(("channel_tag", f.to_owned()));
        }
        let targets = super::at_most("pushbullet", "targets", targets)?;
        Ok(Pushbullet { token, targets })
    }
}

impl Service for Pushbullet {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let one = |target: Option<&(&'static str, String)>| {
            let mut body = json!({ "type": "note", "title": msg.title, "body": msg.detail() });
            if let Some((k, v)) = target {
                body[*k] = json!(v);
            }
            Call::json("https://api.pushbullet.com/v2/pushes".into(), &body)
                .header("access-token", self.token.clone())
        };
        if self.targets.is_empty() {
            vec![one(None)]
        } else {
            self.targets.iter().map(|t| one(Some(t))).collect()
        }
    }
}

/// `bark://:devicekey@host[:port][/path][?sound=…&group=…&disabletls=yes]` →
/// `POST https://host[/path]/push` (<https://bark.day.app/#/tutorial>).
#[derive(Debug)]
pub struct Bark {
    base: String,
    key: String,
    sound: Option<String>,
    group: Option<String>,
}

impl Bark {
    pub fn parse(url: &Url) -> Result<Bark, UrlError> {
        let (_, key) = userinfo(url);
        if key.is_empty() {
            return Err(bad("bark", "expected bark://:devicekey@host"));
        }
        let q = query(url);
        let path: String = segments(url).iter().map(|s| format!("/{}", seg(s))).collect();
        Ok(Bark {
            base: format!("{}://{}{path}", scheme(&q), authority(url, "bark")?),
            key,
            sound: q.get("sound").cloned(),
            group: q.get("group").cloned(),
        })
    }
}

impl Service for Bark {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let mut body = json!({ "device_key": self.key, "title": msg.title, "body": msg.body });
        if let Some(l) = &msg.link {
            body["url"] = json!(l);
        }
        if let Some(s) = &self.sound {
            body["sound"] = json!(s);
        }
        if let Some(g) = &self.group {
            body["group"] = json!(g);
        }
        vec![Call::json(format!("{}/push", self.base), &body)]
    }
}

/// `join://shoutrrr:api-key@join/?devices=a,b[&icon=…]` →
/// `GET https://joinjoaomgcd.appspot.com/_ah/api/messaging/v1/sendPush?…`
/// (<https://joaoapps.com/join/api/>).
#[derive(Debug)]
pub struct Join {
    key: String,
    devices: Vec<String>,
    icon: Option<String>,
}

impl Join {
    pub fn parse(url: &Url) -> Result<Join, UrlError> {
        let (_, key) = userinfo(url);
        let q = query(url);
        let devices = csv(q.get("devices"));
        if key.is_empty() || devices.is_empty() {
            return Err(bad("join", "expected join://shoutrrr:api-key@join/?devices=…"));
        }
        Ok(Join { key, devices, icon: q.get("icon").cloned() })
    }
}

impl Service for Join {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let devices = self.devices.join(",");
        let text = msg.detail();
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("apikey", &self.key)
            .append_pair("deviceIds", &devices)
            .append_pair("title", &msg.title)
            .append_pair("text", &text);
        if let Some(i) = &self.icon {
            q.append_pair("icon", i);
        }
        vec![Call {
            method: http::Method::GET,
            url: format!(
                "https://joinjoaomgcd.appspot.com/_ah/api/messaging/v1/sendPush?{}",
                q.finish()
            ),
            headers: vec![],
            body: vec![],
            json_ok: false,
        }]
    }
}

/// `ifttt://key/?events=a,b[&value1=…&value2=…&value3=…&messagevalue=2&titlevalue=0]` →
/// `POST https://maker.ifttt.com/trigger/{event}/with/key/{key}` per event, the message in
/// value 2 unless `messagevalue` says otherwise (<https://ifttt.com/maker_webhooks>).
#[derive(Debug)]
pub struct Ifttt {
    key: String,
    events: Vec<String>,
    values: [Option<String>; 3],
    message_value: usize,
    title_value: usize,
}

impl Ifttt {
    pub fn parse(url: &Url) -> Result<Ifttt, UrlError> {
        let key = url.host_str().unwrap_or_default().to_owned();
        let q = query(url);
        let events = csv(q.get("events"));
        if key.is_empty() || events.is_empty() {
            return Err(bad("ifttt", "expected ifttt://key/?events=…"));
        }
        let events = super::at_most("ifttt", "events", events)?;
        let slot = |name: &str, default: usize| -> Result<usize, UrlError> {
            match q.get(name) {
                None => Ok(default),
                Some(v) => match v.parse::<usize>() {
                    Ok(n @ 0..=3) => Ok(n),
                    _ => Err(bad("ifttt", format!("{name} is 0-3"))),
                },
            }
        };
        let (message_value, title_value) = (slot("messagevalue", 2)?, slot("titlevalue", 0)?);
        if message_value != 0 && message_value == title_value {
            return Err(bad("ifttt", "messagevalue and titlevalue name the same value"));
        }
        Ok(Ifttt {
            key,
            events,
            values: [q.get("value1").cloned(), q.get("value2").cloned(), q.get("value3").cloned()],
            message_value,
            title_value,
        })
    }
}

impl Service for Ifttt {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let mut values = self.values.clone();
        if self.title_value > 0 {
            values[self.title_value - 1] = Some(msg.title.clone());
        }
        if self.message_value > 0 {
            values[self.message_value - 1] =
                Some(if self.title_value > 0 { msg.detail() } else { msg.text() });
        }
        let mut body = json!({});
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                body[format!("value{}", i + 1)] = json!(v);
            }
        }
        self.events
            .iter()
            .map(|e| {
                Call::json(
                    format!(
                        "https://maker.ifttt.com/trigger/{}/with/key/{}",
                        seg(e),
                        seg(&self.key)
                    ),
                    &body,
                )
            })
            .collect()
    }
}
