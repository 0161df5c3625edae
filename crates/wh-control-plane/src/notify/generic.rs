//! Any HTTP endpoint, as Shoutrrr's generic service
//! (<https://shoutrrr.nickfedor.com/services/specialized/generic/>):
//! `generic://host[:port]/path?…` (https, or http with `disabletls=yes`) or
//! `generic+https://host/path?…` (the scheme given). Parameters: `template=json` (a JSON object
//! of title and message, keys renamed by `titlekey`/`messagekey`, more fields from `$key=value`);
//! `method` (POST by default); `contenttype`; `@Name=value` adds a header. Any other parameter
//! is forwarded to the endpoint (`_name` forwards a reserved name).

use serde_json::{json, Map, Value};
use url::Url;

use super::{authority, bad, scheme, Call, Message, Service, UrlError};

const RESERVED: [&str; 7] =
    ["template", "method", "contenttype", "titlekey", "messagekey", "disabletls", "title"];
/// Headers the client sets itself.
const OWN_HEADERS: [&str; 6] =
    ["host", "content-length", "transfer-encoding", "connection", "upgrade", "te"];

#[derive(Debug)]
pub struct Generic {
    url: String,
    method: http::Method,
    json: bool,
    content_type: Option<String>,
    title_key: String,
    message_key: String,
    headers: Vec<(String, String)>,
    extra: Map<String, Value>,
}

impl Generic {
    pub fn parse(url: &Url) -> Result<Generic, UrlError> {
        let mut forwarded = form_urlencoded::Serializer::new(String::new());
        let mut forwarded_any = false;
        let mut params = std::collections::HashMap::new();
        let mut headers = Vec::new();
        let mut extra = Map::new();
        for (k, v) in url.query_pairs() {
            if let Some(name) = k.strip_prefix('@') {
                let lower = name.to_ascii_lowercase();
                if http::HeaderName::from_bytes(lower.as_bytes()).is_err()
                    || OWN_HEADERS.contains(&lower.as_str())
                {
                    return Err(bad("generic", format!("`{name}` cannot be set as a header")));
                }
                if http::HeaderValue::from_str(&v).is_err() {
                    return Err(bad("generic", format!("the value of header `{name}` is invalid")));
                }
                headers.push((lower, v.into_owned()));
            } else if let Some(key) = k.strip_prefix('$') {
                extra.insert(key.to_owned(), json!(v));
            } else if RESERVED.contains(&k.to_ascii_lowercase().as_str()) {
                params.insert(k.to_ascii_lowercase(), v.into_owned());
            } else {
                let name = k.strip_prefix('_').unwrap_or(&k);
                forwarded.append_pair(name, &v);
                forwarded_any = true;
            }
        }
        let scheme = match url.scheme().split_once('+') {
            Some((_, "https")) => "https",
            Some((_, "http")) => "http",
            Some((_, other)) => {
                return Err(bad("generic", format!("generic+{other} is not http or https")))
            }
            None => scheme(&params),
        };
        let json = match params.get("template").map(String::as_str) {
            None | Some("") => false,
            Some("json" | "JSON") => true,
            Some(other) => {
                return Err(bad("generic", format!("unknown template `{other}` (only json)")))
            }
        };
        let method = params.get("method").map(String::as_str).unwrap_or("POST");
        let method = match method.to_ascii_uppercase().as_str() {
            "POST" => http::Method::POST,
            "PUT" => http::Method::PUT,
            "PATCH" => http::Method::PATCH,
            _ => return Err(bad("generic", "method is POST, PUT or PATCH")),
        };
        if let Some(ct) = params.get("contenttype") {
            if http::HeaderValue::from_str(ct).is_err() {
                return Err(bad("generic", "contenttype is not a valid header value"));
            }
        }
        let query = forwarded.finish();
        let target = format!(
            "{scheme}://{}{}{}",
            authority(url, "generic")?,
            url.path(),
            if forwarded_any { format!("?{query}") } else { String::new() }
        );
        Ok(Generic {
            url: target,
            method,
            json,
            content_type: params.get("contenttype").cloned(),
            title_key: params.get("titlekey").cloned().unwrap_or("title".into()),
            message_key: params.get("messagekey").cloned().unwrap_or("message".into()),
            headers,
            extra,
        })
    }
}

impl Service for Generic {
    fn calls(&self, msg: &Message) -> Vec<Call> {
        let (body, default_type) = if self.json {
            let mut object = self.extra.clone();
            object.insert(self.title_key.clone(), json!(msg.title));
            object.insert(self.message_key.clone(), json!(msg.detail()));
            (serde_json::to_vec(&object).expect("JSON serialises"), "application/json")
        } else {
            (msg.text().into_bytes(), "text/plain; charset=utf-8")
        };
        let mut headers = vec![(
            "content-type".to_owned(),
            self.content_type.clone().unwrap_or(default_type.into()),
        )];
        headers.extend(self.headers.iter().cloned());
        vec![Call {
            method: self.method.clone(),
            url: self.url.clone(),
            headers,
            body,
            json_ok: false,
        }]
    }
}
