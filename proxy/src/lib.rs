//! wh-proxy: WiseHosting's ingress proxy, a drop-in replacement for Traefik on the proxy VPS.
//!
//! It reads Traefik's dynamic configuration (from the control plane or a file), compiles it into
//! an immutable routing table swapped with `ArcSwap`, and forwards HTTP/1.1 and HTTP/2 (h2c)
//! requests and WebSocket upgrades to upstream servers over the mesh.
//!
//! # Layout
//! - [`config`]: the dynamic-configuration model and the rule language (parsing only).
//! - [`table`]: the compiled routing table and its allocation-free lookup.
//! - [`target`]: the request target: `Host` validation and path cleaning.
//! - [`service`], [`middleware`]: compiled services (load balancing, passive health) and middlewares.
//! - [`health`]: active health checks.
//! - [`provider`]: file / http / watch providers and the [`provider::Applier`] gate
//!   (mass-removal guard, last-known-good snapshot).
//! - [`forward`]: the request path; [`upstream`]: pooled upstream connections; [`headers`]:
//!   header rewriting; [`body`]: body types;
//!   [`error`]: every failure and its response, in one place.
//! - [`server`]: the client-facing listener; [`conn`]: per-connection header/idle deadlines and
//!   the framing check; [`admin`]: `/metrics`, `/healthz`, `/routes`;
//!   [`metrics`]: counters.
//! - [`tls`]: HTTPS listener certificates, ACME HTTP-01 issuance and renewal.
//! - [`cli`]: settings from flags, environment and TOML; [`run`]: wiring it all together.
//!
//! The request path must never lock, panic on input, or allocate for route lookup.

pub mod admin;
pub mod body;
pub mod cli;
pub mod config;
pub use wh_http::conn;
pub mod error;
pub mod forward;
pub mod headers;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod provider;
pub mod run;
pub mod server;
pub mod service;
pub mod table;
pub mod target;
pub mod tls;
pub mod upstream;
