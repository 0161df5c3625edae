//! Matrix: `matrix://user:password@host[:port]/[?rooms=!id:server,%23alias:server&disabletls=yes]`
//! (a password login), or `matrix://:access-token@host/…`. Without rooms, every room the
//! account has joined. Client-Server API v3
//! (<https://spec.matrix.org/v1.11/client-server-api/>): `POST /login`, `GET /joined_rooms`,
//! `POST /join/{alias}` and `PUT /rooms/{id}/send/m.room.message/{txn}`, the event id as the
//! transaction id so a retry is not a second message.

use bytes::Bytes;
use serde_json::{json, Value};
use url::Url;

use super::{
    authority, bad, call, outcome, query, scheme, seg, userinfo, Call, Message, Outcome, SendError,
    UrlError,
};
use crate::outbound::{self, guard::Guard};

#[derive(Debug)]
pub struct Matrix {
    base: String,
    user: String,
    secret: String,
    rooms: Vec<String>,
}

impl Matrix {
    pub fn parse(url: &Url) -> Result<Matrix, UrlError> {
        let q = query(url);
        let (user, secret) = userinfo(url);
        if secret.is_empty() {
            return Err(bad(
                "matrix",
                "expected matrix://user:password@host or matrix://:token@host",
            ));
        }
        let mut rooms: Vec<String> = q
            .get("rooms")
            .or(q.get("room"))
            .map(|r| {
                r.split(',').map(str::trim).filter(|r| !r.is_empty()).map(String::from).collect()
            })
            .unwrap_or_default();
        if let Some(f) = url.fragment().filter(|f| !f.is_empty()) {
            rooms.push(format!("#{f}"));
        }
        let rooms = super::at_most("matrix", "rooms", rooms)?;
        if let Some(r) = rooms.iter().find(|r| !(r.starts_with('!') || r.starts_with('#'))) {
            return Err(bad(
                "matrix",
                format!("room `{r}` is neither !id:server nor #alias:server"),
            ));
        }
        Ok(Matrix {
            base: format!("{}://{}/_matrix/client/v3", scheme(&q), authority(url, "matrix")?),
            user,
            secret,
            rooms,
        })
    }

    pub(crate) async fn send(
        &self,
        client: &outbound::Client,
        guard: &Guard,
        msg: &Message,
    ) -> Result<Outcome, SendError> {
        // Each step: the answer, or the failing answer as the outcome.
        macro_rules! step {
            ($c:expr) => {{
                let a = call(client, guard, &$c).await?;
                if !a.is_success() {
                    return Ok(outcome(a));
                }
                serde_json::from_slice::<Value>(&a.body).map_err(|_| {
                    SendError::Protocol("the homeserver's answer is not JSON".into())
                })?
            }};
        }
        let token = if self.user.is_empty() {
            self.secret.clone()
        } else {
            let login = step!(Call::json(
                format!("{}/login", self.base),
                &json!({
                    "type": "m.login.password",
                    "identifier": { "type": "m.id.user", "user": self.user },
                    "password": self.secret,
                }),
            ));
            login["access_token"]
                .as_str()
                .ok_or_else(|| SendError::Protocol("the login answer has no access_token".into()))?
                .to_owned()
        };
        let bearer = format!("Bearer {token}");
        let mut rooms = self.rooms.clone();
        if rooms.is_empty() {
            let mut get = Call::json(format!("{}/joined_rooms", self.base), &json!({}));
            (get.method, get.body, get.headers) = (http::Method::GET, vec![], vec![]);
            let joined = step!(get.header("authorization", bearer.clone()));
            // Every joined room, but no more than a delivery may make calls to.
            rooms = joined["joined_rooms"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r.as_str().map(String::from)).collect())
                .unwrap_or_default();
            rooms.truncate(super::MAX_RECIPIENTS);
        }
        let mut last = Outcome { ok: true, status: 200, body: Bytes::new(), retry_after: None };
        let txn =
            if msg.id.is_empty() { format!("wh-{}", crate::now_ms()) } else { msg.id.clone() };
        for room in rooms {
            let id = if room.starts_with('#') {
                let joined =
                    step!(Call::json(format!("{}/join/{}", self.base, seg(&room)), &json!({}))
                        .header("authorization", bearer.clone()));
                joined["room_id"]
                    .as_str()
                    .ok_or_else(|| SendError::Protocol("the join answer has no room_id".into()))?
                    .to_owned()
            } else {
                room
            };
            let mut put = Call::json(
                format!("{}/rooms/{}/send/m.room.message/{}", self.base, seg(&id), seg(&txn)),
                &json!({ "msgtype": "m.text", "body": msg.text() }),
            )
            .header("authorization", bearer.clone());
            put.method = http::Method::PUT;
            last = outcome(call(client, guard, &put).await?);
            if !last.ok {
                break;
            }
        }
        Ok(last)
    }
}
