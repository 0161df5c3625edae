//! The wire format between the control plane and its workers. No I/O, no async runtime: both
//! sides and the fuzzer use exactly this code.
//!
//! Every WebSocket text message is one JSON envelope `{t, i, s, ts, p, h}`:
//! `t` the message type, `i` 16 random bytes in hex, `s` a per-direction sequence number,
//! `ts` Unix milliseconds, `p` the JSON payload, signed as the exact bytes sent, and
//! `h = hex(HMAC-SHA256(key, "wh2|" dir "|" conn "|" t "|" i "|" s "|" ts "|" p))`: `dir` is
//! `to-cp` or `to-worker`, `conn` the connection's nonce from the control plane, and `key` the
//! worker's channel key, which the control plane derives from a secret of its own ([`key`]).
//! The receiver rejects a bad MAC (compared in constant time), a clock skew over 5 minutes, and a
//! sequence number already seen or older than its 256-entry sliding window.
//!
//! # Layout
//! - [`key`]: the channel key, the lookup hash of a raw API key, and how they differ.
//! - [`envelope`]: signing ([`Signer`]) and verifying ([`Verifier`]) envelopes.
//! - [`window`]: the IPsec-style anti-replay bitmap, and the ids already processed.
//! - [`messages`]: the typed payloads the channel carries.
//! - [`job`]: the job contract: deploy and retire jobs, progress stages, outputs.
//! - [`error`]: why an envelope was rejected.
//! - [`addr`]: which addresses a call made for a tenant may reach (the SSRF guard's rule).
//! - [`archive`]: the tar.gz source of an upload deploy, checked on both sides.
//! - [`env`]: what an app's environment variable may be (checked on both sides).
//! - [`proxy`]: what wh-proxy reports to the control plane (certificate outcomes).
//! - [`repo`]: repository URLs (credentials split off) and which addresses are public.
//! - [`token`]: the register/refresh answer a worker gets over HTTP.
//!
//! Decoding never panics, whatever the bytes (property tests and `fuzz/fuzz_targets/decode.rs`).

pub mod addr;
pub mod archive;
pub mod env;
pub mod envelope;
pub mod error;
pub mod job;
pub mod key;
pub mod messages;
pub mod proxy;
pub mod repo;
pub mod token;
pub mod window;

pub use envelope::{Binding, Direction, Signer, Verified, Verifier, MAX_SKEW_MS};
pub use error::Error;
pub use key::Key;
pub use messages::Message;
pub use window::RecentIds;

/// Unix milliseconds now: the `now_ms` every envelope is sealed and opened at.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
