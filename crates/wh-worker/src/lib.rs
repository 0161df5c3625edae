//! The WiseHosting worker agent. Stateless: it dials out to the control plane and keeps nothing
//! but the containers it runs.
//!
//! # Layout
//! - [`transport`]: registration, JWT refresh, the signed WebSocket channel, reconnects with
//!   full-jitter backoff, and the outbox (reliable messages until acknowledged, bounded logs).
//! - [`agent`]: executes jobs (deploy: clone, build, run, health-check, report).
//! - [`frameworks`]: Dockerfile presets for repositories that bring none.
//! - [`runtime`]: Podman as a subprocess (build, run, inspect, list by label, remove).
//! - [`host`]: this host's capacity and stats for `hello` and heartbeats.
//!
//! Building and running apps with Podman arrives with the deploy work.

pub mod agent;
pub mod frameworks;
pub mod host;
pub mod runtime;
pub mod transport;
