//! Golden tests of the 22 notification services: each parses a Shoutrrr URL, sends one event
//! through the real outbound client (TLS, the SSRF guard, the pinned address) to an HTTPS
//! stand-in for the service on loopback, and the request it receives is compared with what the
//! service's API documents (the source is named on each service's type in `src/notify/`).
//! Bad URLs are refused naming what is wrong.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use wh_control_plane::notify::{self, message, Message};
use wh_control_plane::outbound::guard::{parse_cidrs, Guard};
use wh_control_plane::outbound::{resolve::Fixed, Client};
use wh_control_plane::testing::standin::{Recorded, Reply, SmtpStandIn, StandIn};

/// The event every test sends.
fn msg() -> Message {
    let mut m = message::render(
        "deployment.failed",
        &json!({"app": "shop", "git_ref": "main", "commit": "0123456789abcdef", "error": "build exited 2"}),
        "https://wh.example.com",
    );
    m.id = "0b4f3c1e-7d2a-4a8e-9c55-2f1e0d6b9a10".into();
    m
}

const TITLE: &str = "Deploy failed: shop";
const BODY: &str = "main (0123456) failed: build exited 2";
const LINK: &str = "https://wh.example.com/apps/shop/deployments";
const TEXT: &str = "Deploy failed: shop\nmain (0123456) failed: build exited 2\nhttps://wh.example.com/apps/shop/deployments";
const DETAIL: &str =
    "main (0123456) failed: build exited 2\nhttps://wh.example.com/apps/shop/deployments";

fn guard(host: &str, addr: std::net::SocketAddr) -> Guard {
    Guard {
        allow_http: false,
        allow: parse_cidrs("127.0.0.0/8").unwrap(),
        resolver: Arc::new(Fixed(HashMap::from([(host.to_owned(), addr)]))),
    }
}

/// Sends `msg()` over `url` to a stand-in for `host` answering `replies`; the requests.
async fn golden_with(url: &str, host: &str, replies: Vec<Reply>) -> Vec<Recorded> {
    let standin = StandIn::https(&[host]).await;
    for r in replies {
        standin.reply(r);
    }
    let client = Client::new(
        &wh_http::client::Trust::from_pem(standin.pem.as_ref().unwrap().as_bytes()).unwrap(),
    );
    let parsed = notify::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let outcome = notify::send(&parsed.channel, &client, &guard(host, standin.addr), &msg())
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!(outcome.ok, "{url}: answered {}", outcome.status);
    let requests = standin.requests();
    for r in &requests {
        assert_eq!(r.header("host"), Some(host), "{url}");
    }
    requests
}

async fn golden(url: &str, host: &str) -> Recorded {
    let mut r = golden_with(url, host, vec![]).await;
    assert_eq!(r.len(), 1, "{url}: one request");
    r.remove(0)
}

fn assert_json(r: &Recorded, method: &str, target: &str, body: serde_json::Value) {
    assert_eq!((r.method.as_str(), r.target.as_str()), (method, target));
    assert!(r.header("content-type").unwrap().starts_with("application/json"), "{:?}", r.headers);
    assert_eq!(r.json(), body);
}

fn form(r: &Recorded) -> Vec<(String, String)> {
    assert_eq!(r.header("content-type"), Some("application/x-www-form-urlencoded"));
    form_urlencoded::parse(&r.body).into_owned().collect()
}

#[tokio::test]
async fn discord() {
    let r = golden("discord://t0k3n-abc@1234567890?username=WiseHosting", "discord.com").await;
    assert_json(
        &r,
        "POST",
        "/api/webhooks/1234567890/t0k3n-abc",
        json!({
            "username": "WiseHosting",
            "embeds": [{"title": TITLE, "description": BODY, "color": 0xdc2626, "url": LINK}],
        }),
    );
}

#[tokio::test]
async fn slack_webhook_and_bot() {
    let r = golden("slack://hook:T0AAA-B1BBB-cccc2Ccc@webhook?botname=wh", "hooks.slack.com").await;
    assert_json(
        &r,
        "POST",
        "/services/T0AAA/B1BBB/cccc2Ccc",
        json!({"text": TEXT, "username": "wh"}),
    );
    let r = golden_with(
        "slack://xoxb:1234-5678-abcd@C0CHANNEL?icon=rocket",
        "slack.com",
        vec![Reply::json(json!({"ok": true}))],
    )
    .await;
    assert_eq!(r[0].header("authorization"), Some("Bearer xoxb-1234-5678-abcd"));
    assert_eq!(r[0].header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!((r[0].method.as_str(), r[0].target.as_str()), ("POST", "/api/chat.postMessage"));
    assert_eq!(
        r[0].json(),
        json!({"channel": "C0CHANNEL", "text": TEXT, "icon_emoji": ":rocket:"})
    );
}

#[tokio::test]
async fn slack_bot_refusals_are_failures_even_with_200() {
    let standin = StandIn::https(&["slack.com"]).await;
    standin.reply(Reply::json(json!({"ok": false, "error": "channel_not_found"})));
    let client = Client::new(
        &wh_http::client::Trust::from_pem(standin.pem.as_ref().unwrap().as_bytes()).unwrap(),
    );
    let parsed = notify::parse("slack://xoxb:1-2-3@C1").unwrap();
    let o = notify::send(&parsed.channel, &client, &guard("slack.com", standin.addr), &msg())
        .await
        .unwrap();
    assert!(!o.ok);
    assert!(String::from_utf8_lossy(&o.body).contains("channel_not_found"));
}

#[tokio::test]
async fn telegram_one_message_per_chat() {
    let r = golden_with(
        "telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=@wh-alerts,-1001234&notification=no",
        "api.telegram.org",
        vec![],
    )
    .await;
    assert_eq!(r.len(), 2);
    for (req, chat) in r.iter().zip(["@wh-alerts", "-1001234"]) {
        assert_json(
            req,
            "POST",
            "/bot110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage",
            json!({
                "chat_id": chat, "text": TEXT, "disable_notification": true,
            }),
        );
    }
}

#[tokio::test]
async fn ntfy() {
    let r = golden("ntfy://alice:s3cret@ntfy.example.com/deploys?tags=rocket", "ntfy.example.com")
        .await;
    assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/deploys"));
    assert_eq!(r.header("title"), Some(TITLE));
    assert_eq!(r.header("priority"), Some("4"));
    assert_eq!(r.header("tags"), Some("rocket"));
    assert_eq!(r.header("click"), Some(LINK));
    assert_eq!(r.header("authorization"), Some("Basic YWxpY2U6czNjcmV0"));
    assert_eq!(r.text(), BODY);
    let token = golden("ntfy://:tk_abc@ntfy.sh/wh", "ntfy.sh").await;
    assert_eq!(token.header("authorization"), Some("Bearer tk_abc"));
}

#[tokio::test]
async fn gotify() {
    let r = golden("gotify://push.example.com/gotify/AbCdEf123456789", "push.example.com").await;
    assert_json(
        &r,
        "POST",
        "/gotify/message",
        json!({
            "title": TITLE, "message": BODY, "priority": 8,
            "extras": {"client::notification": {"click": {"url": LINK}}},
        }),
    );
    assert_eq!(r.header("x-gotify-key"), Some("AbCdEf123456789"));
}

#[tokio::test]
async fn pushover() {
    let r = golden(
        "pushover://shoutrrr:apptoken123@userkey456/?devices=phone,tablet&priority=1",
        "api.pushover.net",
    )
    .await;
    assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/1/messages.json"));
    let f = form(&r);
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("token", "apptoken123"),
            ("user", "userkey456"),
            ("title", TITLE),
            ("message", BODY),
            ("device", "phone,tablet"),
            ("url", LINK),
            ("priority", "1"),
        ]
    );
}

#[tokio::test]
async fn pushbullet_per_target() {
    let r = golden_with(
        "pushbullet://o.t0ken/ujpah72o0sjAoRtnM0jc/%23wh-news/ops@example.com",
        "api.pushbullet.com",
        vec![],
    )
    .await;
    assert_eq!(r.len(), 3);
    for (req, (k, v)) in r.iter().zip([
        ("device_iden", "ujpah72o0sjAoRtnM0jc"),
        ("channel_tag", "wh-news"),
        ("email", "ops@example.com"),
    ]) {
        assert_eq!(req.header("access-token"), Some("o.t0ken"));
        let mut want = json!({"type": "note", "title": TITLE, "body": DETAIL});
        want[k] = json!(v);
        assert_json(req, "POST", "/v2/pushes", want);
    }
}

#[tokio::test]
async fn bark() {
    let r = golden("bark://:devkey42@bark.example.com/api?sound=bell&group=wh", "bark.example.com")
        .await;
    assert_json(
        &r,
        "POST",
        "/api/push",
        json!({
            "device_key": "devkey42", "title": TITLE, "body": BODY, "url": LINK, "sound": "bell", "group": "wh",
        }),
    );
}

#[tokio::test]
async fn join() {
    let r =
        golden("join://shoutrrr:apikey789@join/?devices=d1,d2", "joinjoaomgcd.appspot.com").await;
    assert_eq!(r.method, "GET");
    let (path, query) = r.target.split_once('?').unwrap();
    assert_eq!(path, "/_ah/api/messaging/v1/sendPush");
    let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    assert_eq!(
        q,
        [
            ("apikey".into(), "apikey789".into()),
            ("deviceIds".into(), "d1,d2".into()),
            ("title".into(), TITLE.into()),
            ("text".into(), DETAIL.into()),
        ]
    );
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn ifttt_per_event() {
    let r = golden_with(
        "ifttt://k3y/?events=wh_deploy,wh_any&value1=shop&titlevalue=3",
        "maker.ifttt.com",
        vec![],
    )
    .await;
    assert_eq!(r.len(), 2);
    for (req, event) in r.iter().zip(["wh_deploy", "wh_any"]) {
        assert_json(
            req,
            "POST",
            &format!("/trigger/{event}/with/key/k3y"),
            json!({
                "value1": "shop", "value2": DETAIL, "value3": TITLE,
            }),
        );
    }
}

#[tokio::test]
async fn matrix_password_login_alias_join_and_send() {
    let r = golden_with(
        "matrix://wh-bot:pa55@matrix.example.org/?rooms=%23ops:example.org,!abc:example.org",
        "matrix.example.org",
        vec![
            Reply::json(json!({"access_token": "syt_token", "user_id": "@wh-bot:example.org"})),
            Reply::json(json!({"room_id": "!ops:example.org"})),
            Reply::json(json!({"event_id": "$1"})),
            Reply::json(json!({"event_id": "$2"})),
        ],
    )
    .await;
    assert_eq!(r.len(), 4);
    assert_json(
        &r[0],
        "POST",
        "/_matrix/client/v3/login",
        json!({
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "wh-bot"}, "password": "pa55",
        }),
    );
    assert_json(&r[1], "POST", "/_matrix/client/v3/join/%23ops%3Aexample.org", json!({}));
    let txn = "0b4f3c1e-7d2a-4a8e-9c55-2f1e0d6b9a10";
    assert_json(
        &r[2],
        "PUT",
        &format!("/_matrix/client/v3/rooms/%21ops%3Aexample.org/send/m.room.message/{txn}"),
        json!({"msgtype": "m.text", "body": TEXT}),
    );
    assert_json(
        &r[3],
        "PUT",
        &format!("/_matrix/client/v3/rooms/%21abc%3Aexample.org/send/m.room.message/{txn}"),
        json!({"msgtype": "m.text", "body": TEXT}),
    );
    for req in &r[1..] {
        assert_eq!(req.header("authorization"), Some("Bearer syt_token"));
    }
}

#[tokio::test]
async fn matrix_access_token_and_joined_rooms() {
    let r = golden_with(
        "matrix://:syt_direct@matrix.example.org",
        "matrix.example.org",
        vec![
            Reply::json(json!({"joined_rooms": ["!r1:example.org"]})),
            Reply::json(json!({"event_id": "$1"})),
        ],
    )
    .await;
    assert_eq!(
        (r[0].method.as_str(), r[0].target.as_str()),
        ("GET", "/_matrix/client/v3/joined_rooms")
    );
    assert_eq!(r[0].header("authorization"), Some("Bearer syt_direct"));
    assert_eq!(r[1].method, "PUT");
}

#[tokio::test]
async fn teams_workflow() {
    let url = "teams://prod-12.westeurope.logic.azure.com:443/workflows/0a1b2c/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=s1gn4ture";
    let r = golden(url, "prod-12.westeurope.logic.azure.com").await;
    assert_json(&r, "POST", "/workflows/0a1b2c/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=s1gn4ture", json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": TITLE, "weight": "Bolder", "size": "Medium", "wrap": true},
                    {"type": "TextBlock", "text": BODY, "wrap": true},
                ],
                "actions": [{"type": "Action.OpenUrl", "title": "Open", "url": LINK}],
            },
        }],
    }));
}

#[tokio::test]
async fn googlechat() {
    let r = golden(
        "googlechat://chat.googleapis.com/v1/spaces/AAAA/messages?key=k&token=t",
        "chat.googleapis.com",
    )
    .await;
    assert_json(&r, "POST", "/v1/spaces/AAAA/messages?key=k&token=t", json!({"text": TEXT}));
}

#[tokio::test]
async fn mattermost() {
    let r = golden("mattermost://whbot@chat.example.com/hooktoken123/town-square?icon=https://wh.example.com/i.png", "chat.example.com").await;
    assert_json(
        &r,
        "POST",
        "/hooks/hooktoken123",
        json!({
            "text": TEXT, "username": "whbot", "channel": "town-square", "icon_url": "https://wh.example.com/i.png",
        }),
    );
}

#[tokio::test]
async fn rocketchat() {
    let r = golden(
        "rocketchat://whbot@rocket.example.com/tokenA/tokenB/%23general",
        "rocket.example.com",
    )
    .await;
    assert_json(
        &r,
        "POST",
        "/hooks/tokenA/tokenB",
        json!({"text": TEXT, "username": "whbot", "channel": "#general"}),
    );
}

#[tokio::test]
async fn zulip() {
    let r = golden("zulip://wh-bot@example.zulipchat.com:b0tk3y@example.zulipchat.com/?stream=ops&topic=deploys", "example.zulipchat.com").await;
    assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/api/v1/messages"));
    assert_eq!(
        r.header("authorization"),
        Some("Basic d2gtYm90QGV4YW1wbGUuenVsaXBjaGF0LmNvbTpiMHRrM3k=")
    );
    let f = form(&r);
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let content = format!("**{TITLE}**\n{DETAIL}");
    assert_eq!(
        pairs,
        [("type", "stream"), ("to", "ops"), ("topic", "deploys"), ("content", content.as_str())]
    );
}

#[tokio::test]
async fn opsgenie() {
    let r = golden("opsgenie://api.eu.opsgenie.com/eb243592-faa2-4ba2?responders=team:ops,user:me@example.com&tags=wh,prod&priority=P2", "api.eu.opsgenie.com").await;
    assert_eq!(r.header("authorization"), Some("GenieKey eb243592-faa2-4ba2"));
    assert_json(
        &r,
        "POST",
        "/v2/alerts",
        json!({
            "message": TITLE, "description": DETAIL, "source": "WiseHosting", "entity": "shop",
            "responders": [{"type": "team", "name": "ops"}, {"type": "user", "username": "me@example.com"}],
            "tags": ["wh", "prod"], "priority": "P2",
        }),
    );
}

#[tokio::test]
async fn pagerduty() {
    let r = golden(
        "pagerduty://events.pagerduty.com/eb243592faa24ba2a5511afdf565c889?severity=critical",
        "events.pagerduty.com",
    )
    .await;
    assert_json(
        &r,
        "POST",
        "/v2/enqueue",
        json!({
            "routing_key": "eb243592faa24ba2a5511afdf565c889",
            "event_action": "trigger",
            "payload": {"summary": format!("{TITLE}: {BODY}"), "source": "shop", "severity": "critical"},
            "links": [{"href": LINK, "text": "WiseHosting dashboard"}],
        }),
    );
}

#[tokio::test]
async fn lark_signed() {
    let before = wh_control_plane::now_ms() / 1000;
    let r = golden("lark://open.larksuite.com/b0t-t0ken?secret=s3cr3t", "open.larksuite.com").await;
    let body = r.json();
    let ts: i64 = body["timestamp"].as_str().unwrap().parse().unwrap();
    assert!(ts >= before && ts <= before + 60);
    assert_eq!(body["sign"], json!(notify::chat::Lark::sign("s3cr3t", ts)));
    // HMAC-SHA256 keyed by "timestamp\nsecret" over nothing, as computed independently by
    // `printf '' | openssl dgst -sha256 -hmac "$(printf '1599360473\ndemo')" -binary | base64`.
    assert_eq!(
        notify::chat::Lark::sign("demo", 1599360473),
        "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="
    );
    assert_json(
        &r,
        "POST",
        "/open-apis/bot/v2/hook/b0t-t0ken",
        json!({
            "msg_type": "post",
            "content": {"post": {"en_us": {"title": TITLE, "content": [
                [{"tag": "text", "text": BODY}],
                [{"tag": "a", "text": LINK, "href": LINK}],
            ]}}},
            "timestamp": ts.to_string(),
            "sign": body["sign"],
        }),
    );
}

#[tokio::test]
async fn wecom() {
    let r = golden(
        "wecom://693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa?mentioned_list=@all",
        "qyapi.weixin.qq.com",
    )
    .await;
    assert_json(
        &r,
        "POST",
        "/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa",
        json!({
            "msgtype": "text", "text": {"content": TEXT, "mentioned_list": ["@all"]},
        }),
    );
}

#[tokio::test]
async fn generic_json_template_headers_and_forwarded_query() {
    let r = golden(
        "generic://hooks.example.com/api/notify?template=json&titlekey=subject&$source=wh&@X-Api-Key=abc&method=PUT&team=ops",
        "hooks.example.com",
    )
    .await;
    assert_eq!((r.method.as_str(), r.target.as_str()), ("PUT", "/api/notify?team=ops"));
    assert_eq!(r.header("x-api-key"), Some("abc"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"subject": TITLE, "message": DETAIL, "source": "wh"}));
    let plain =
        golden("generic+https://hooks.example.com/in?_template=x", "hooks.example.com").await;
    assert_eq!((plain.method.as_str(), plain.target.as_str()), ("POST", "/in?template=x"));
    assert_eq!(plain.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(plain.text(), TEXT);
}

async fn smtp(implicit: bool) {
    let relay = SmtpStandIn::start("mail.example.com", implicit).await;
    let client = Client::new(&wh_http::client::Trust::from_pem(relay.pem.as_bytes()).unwrap());
    let port = if implicit { 465 } else { 587 };
    let url = format!("smtp://wh%40example.com:p%40ss@mail.example.com:{port}/?from=wh@example.com&to=ops@example.com,dev@example.com&fromname=WiseHosting");
    let parsed = notify::parse(&url).unwrap();
    let o = notify::send(&parsed.channel, &client, &guard("mail.example.com", relay.addr), &msg())
        .await
        .unwrap();
    assert!(o.ok && o.status == 250);
    let t = relay.transcript();
    let commands: Vec<&str> = t
        .iter()
        .map(String::as_str)
        .filter(|l| {
            !l.contains(':')
                || l.starts_with("MAIL")
                || l.starts_with("RCPT")
                || l.starts_with("plain:")
        })
        .collect();
    let mut want = vec![];
    if !implicit {
        want.extend(["plain: EHLO wisehosting", "plain: STARTTLS"]);
    }
    // AUTH PLAIN of "\0wh@example.com\0p@ss".
    want.extend([
        "EHLO wisehosting",
        "AUTH PLAIN AHdoQGV4YW1wbGUuY29tAHBAc3M=",
        "MAIL FROM:<wh@example.com>",
        "RCPT TO:<ops@example.com>",
        "RCPT TO:<dev@example.com>",
        "DATA",
    ]);
    assert_eq!(&commands[..want.len()], &want[..], "{t:#?}");
    let data: Vec<&str> = t
        .iter()
        .skip_while(|l| *l != "DATA")
        .skip(1)
        .take_while(|l| *l != ".")
        .map(String::as_str)
        .collect();
    assert!(data.contains(&"From: WiseHosting <wh@example.com>"), "{data:?}");
    assert!(data.contains(&"To: ops@example.com, dev@example.com"));
    assert!(data.contains(&"Subject: Deploy failed: shop"));
    assert!(data.contains(&"Content-Type: text/plain; charset=utf-8"));
    assert!(data.contains(&"Message-ID: <0b4f3c1e-7d2a-4a8e-9c55-2f1e0d6b9a10@example.com>"));
    let body: Vec<&str> = data.iter().skip_while(|l| !l.is_empty()).skip(1).copied().collect();
    assert_eq!(body, DETAIL.lines().collect::<Vec<_>>());
    assert_eq!(t.last().map(String::as_str), Some("QUIT"));
}

#[tokio::test]
async fn smtp_starttls_on_587() {
    smtp(false).await;
}

#[tokio::test]
async fn smtp_implicit_tls_on_465() {
    smtp(true).await;
}

#[tokio::test]
async fn every_service_has_a_golden_test_and_bad_urls_say_what_is_wrong() {
    let tested = [
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
    assert_eq!(tested, notify::SERVICES);
    for (url, says) in [
        ("discord://", "expected discord://token@webhookid"),
        ("discord://tok@notanumber", "the webhook id is a number"),
        ("slack://hook:onlyone@webhook", "three parts"),
        ("telegram://123:abc@telegram", "no chats"),
        ("telegram://1:a@telegram?chats=1,2,3,4,5,6,7,8,9,10,11", "at most 10 chats"),
        ("teams://contoso.webhook.office.com/webhookb2/x", "retired"),
        ("teams://example.com/x?sig=1", "not a Power Automate workflow URL"),
        ("pagerduty://events.pagerduty.com/short", "32-character integration key"),
        ("smtp://mail.example.com/?from=a@example.com", "no to= address"),
        ("generic://h.example.com/?@Host=evil", "cannot be set as a header"),
        ("generic://h.example.com/?template=xml", "unknown template"),
        ("ntfy://ntfy.sh/topic?priority=9", "priority is 1-5"),
        ("lark://evil.example.com/t", "open.larksuite.com"),
        ("matrix://:t@m.example.org/?rooms=general", "neither !id:server nor #alias:server"),
        ("signal://x", "not a supported service"),
    ] {
        let e = notify::parse(url).unwrap_err();
        assert!(e.to_string().contains(says), "{url}: {e}");
    }
}
