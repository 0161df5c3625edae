//! Why an envelope was rejected.

/// A rejected envelope. WebSocket messages arrive whole, so there is no "need more bytes" case:
/// every error is final for that message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not an envelope: bad JSON, a missing or mistyped field, a bad id or MAC encoding.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The MAC does not match (wrong key, or the message was altered).
    #[error("bad MAC")]
    BadMac,
    /// The timestamp is more than 5 minutes from our clock.
    #[error("clock skew too large: ts {ts}, now {now}")]
    Skew { ts: i64, now: i64 },
    /// This sequence number was already accepted.
    #[error("replayed sequence number {seq}")]
    Replay { seq: u64 },
    /// This sequence number is older than the replay window.
    #[error("sequence number {seq} is older than the window (highest {highest})")]
    TooOld { seq: u64, highest: u64 },
    /// The payload does not match its message type.
    #[error("bad payload for `{t}`: {reason}")]
    Payload { t: String, reason: String },
}
