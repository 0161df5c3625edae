//! The WiseHosting worker agent. Stateless: it dials out to the control plane and keeps nothing
//! but the containers it runs.
//!
//! # Layout
//! - [`worker`]: all of the above wired together (for `main` and `wh dev`); [`cli`]: the
//!   `wh-worker` command's flags and start-up.
//! - [`transport`]: registration, JWT refresh, the signed WebSocket channel, reconnects with
//!   full-jitter backoff, and the outbox (reliable messages until acknowledged, bounded logs).
//! - [`agent`]: executes jobs (deploy: clone, build, run, health-check, report).
//! - [`git`]: clones a tenant's repository (public hosts only, pinned; credentials never in argv).
//! - [`frameworks`]: Dockerfile presets for repositories that bring none.
//! - [`images`]: removes old app images (keeps the used, the newest per app, the young).
//! - [`lines`]: a bounded line reader for output the worker does not control.
//! - [`runtime`]: Podman as a subprocess (build, run, inspect, list by label, remove).
//! - [`monitor`]: inventory, stats every 10 s, container events.
//! - [`source`]: unpacks an uploaded source archive.
//! - [`context`]: the build context: the checkout or the app's root directory, kept inside it.
//! - [`process_tree`]: kills what a build cut short leaves running, and dead workers' builds.
//! - [`host`]: this host's capacity and stats for `hello` and heartbeats.

pub mod agent;
pub mod cli;
pub mod context;
pub mod frameworks;
pub mod git;
pub mod host;
pub mod images;
pub mod leftovers;
pub mod lines;
pub mod monitor;
pub mod process_tree;
pub mod runtime;
pub mod source;
pub mod transport;
pub mod worker;
