//! The WiseHosting worker agent. Stateless: it dials out to the control plane and keeps nothing
//! but the containers it runs.
//!
//! # Layout
//! - [`transport`]: registration, JWT refresh, the signed WebSocket channel, reconnects with
//!   full-jitter backoff, and the outbox (reliable messages until acknowledged, bounded logs).
//! - [`host`]: this host's capacity and stats for `hello` and heartbeats.
//!
//! Building and running apps with Podman arrives with the deploy work.

pub mod host;
pub mod transport;
