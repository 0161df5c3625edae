//! Signing and verifying envelopes.
//!
//! The MAC covers `wh2|<direction>|<connection>|t|i|s|ts|p`, where `direction` is `to-cp` or
//! `to-worker`, `connection` is the nonce the control plane gave this connection (the
//! `x-wh-connection` header of the WebSocket upgrade), and `p` is the payload's JSON text
//! exactly as it appears on the wire: the receiver hashes the bytes it received, never a
//! re-serialisation, so the two sides cannot disagree about formatting. An envelope reflected
//! back to its sender, or replayed on another connection, does not verify.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::Sha256;

use crate::window::ReplayWindow;
use crate::{Error, Key, Message};

/// Largest accepted clock difference between sender and receiver.
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

type HmacSha256 = Hmac<Sha256>;

/// Which way an envelope travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToControlPlane,
    ToWorker,
}

impl Direction {
    fn label(self) -> &'static [u8] {
        match self {
            Direction::ToControlPlane => b"to-cp",
            Direction::ToWorker => b"to-worker",
        }
    }
}

/// What an envelope is bound to besides its key: its direction and its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub direction: Direction,
    /// The connection's nonce (32 lower-case hex digits from the control plane).
    pub connection: String,
}

impl Binding {
    /// Envelopes from the worker to the control plane on connection `connection`.
    pub fn to_control_plane(connection: &str) -> Binding {
        Binding { direction: Direction::ToControlPlane, connection: connection.to_owned() }
    }

    /// Envelopes from the control plane to the worker on connection `connection`.
    pub fn to_worker(connection: &str) -> Binding {
        Binding { direction: Direction::ToWorker, connection: connection.to_owned() }
    }
}

fn mac(key: &Key, b: &Binding, t: &str, i: &str, s: u64, ts: i64, p: &str) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key.bytes()).expect("HMAC accepts any key length");
    m.update(b"wh2|");
    m.update(b.direction.label());
    m.update(b"|");
    m.update(b.connection.as_bytes());
    m.update(b"|");
    m.update(t.as_bytes());
    m.update(b"|");
    m.update(i.as_bytes());
    m.update(b"|");
    m.update(s.to_string().as_bytes());
    m.update(b"|");
    m.update(ts.to_string().as_bytes());
    m.update(b"|");
    m.update(p.as_bytes());
    m
}

/// Signs outgoing envelopes for one direction of one connection.
#[derive(Debug)]
pub struct Signer {
    key: Key,
    binding: Binding,
    next_seq: u64,
}

impl Signer {
    /// A signer whose first envelope carries sequence number `first_seq` (1 for a new channel).
    pub fn new(key: Key, binding: Binding, first_seq: u64) -> Signer {
        Signer { key, binding, next_seq: first_seq }
    }

    /// A fresh connection nonce (the control plane makes one per connection).
    pub fn new_connection() -> String {
        Self::new_id()
    }

    /// The sequence number the next envelope will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// A fresh envelope id: 16 random bytes, lower-case hex.
    pub fn new_id() -> String {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).expect("the OS random source is available");
        hex::encode(id)
    }

    /// Seals `payload` (JSON text) as type `t` under a fresh id; returns the envelope's JSON text.
    pub fn seal_raw(&mut self, t: &str, payload: &RawValue, now_ms: i64) -> String {
        self.seal_raw_with_id(t, payload, &Self::new_id(), now_ms)
    }

    /// Seals under a given id (a resend of a reliable message keeps its id). `id` must come
    /// from [`Self::new_id`].
    pub fn seal_raw_with_id(
        &mut self,
        t: &str,
        payload: &RawValue,
        i: &str,
        now_ms: i64,
    ) -> String {
        let s = self.next_seq;
        self.next_seq += 1;
        let h = mac(&self.key, &self.binding, t, i, s, now_ms, payload.get()).finalize();
        let h = hex::encode(h.into_bytes());
        let t_json = serde_json::to_string(t).expect("a string serialises");
        format!(
            r#"{{"t":{t_json},"i":"{i}","s":{s},"ts":{now_ms},"p":{},"h":"{h}"}}"#,
            payload.get()
        )
    }

    /// Seals a typed message.
    pub fn seal(&mut self, msg: &Message, now_ms: i64) -> String {
        self.seal_with_id(msg, &Self::new_id(), now_ms)
    }

    /// Seals a typed message under a given id.
    pub fn seal_with_id(&mut self, msg: &Message, id: &str, now_ms: i64) -> String {
        let payload = msg.payload();
        self.seal_raw_with_id(msg.type_name(), &payload, id, now_ms)
    }
}

/// The wire shape; `p` borrowed verbatim from the input.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    t: String,
    i: String,
    s: u64,
    ts: i64,
    #[serde(borrow)]
    p: &'a RawValue,
    h: String,
}

/// An envelope that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub t: String,
    pub i: String,
    pub s: u64,
    pub ts: i64,
    pub p: Box<RawValue>,
}

impl Verified {
    /// The typed message inside.
    pub fn message(&self) -> Result<Message, Error> {
        Message::decode(&self.t, &self.p)
    }
}

/// Verifies incoming envelopes for one direction of one connection.
#[derive(Debug)]
pub struct Verifier {
    key: Key,
    binding: Binding,
    window: ReplayWindow,
}

impl Verifier {
    pub fn new(key: Key, binding: Binding) -> Verifier {
        Verifier { key, binding, window: ReplayWindow::default() }
    }

    /// Parses and checks one envelope. Nothing is recorded unless every check passes, so a
    /// forged or skewed message cannot poison the replay window.
    pub fn open(&mut self, text: &[u8], now_ms: i64) -> Result<Verified, Error> {
        let wire: Wire<'_> =
            serde_json::from_slice(text).map_err(|e| Error::Malformed(e.to_string()))?;
        // Lower-case hex only: one spelling per value, so no byte of an envelope can change
        // without changing what it means.
        let lower_hex = |v: &str, len: usize| {
            v.len() == len && v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower_hex(&wire.i, 32) {
            return Err(Error::Malformed("id must be 16 bytes of lower-case hex".into()));
        }
        if !lower_hex(&wire.h, 64) {
            return Err(Error::Malformed("MAC must be 32 bytes of lower-case hex".into()));
        }
        let mut tag = [0u8; 32];
        hex::decode_to_slice(&wire.h, &mut tag)
            .map_err(|_| Error::Malformed("MAC must be 32 bytes of hex".into()))?;
        if now_ms.abs_diff(wire.ts) > MAX_SKEW_MS as u64 {
            return Err(Error::Skew { ts: wire.ts, now: now_ms });
        }
        // `verify_slice` compares in constant time.
        mac(&self.key, &self.binding, &wire.t, &wire.i, wire.s, wire.ts, wire.p.get())
            .verify_slice(&tag)
            .map_err(|_| Error::BadMac)?;
        self.window.accept(wire.s)?;
        Ok(Verified { t: wire.t, i: wire.i, s: wire.s, ts: wire.ts, p: wire.p.to_owned() })
    }
}

#[cfg(test)]
mod tests;
