//! wh-proxy: WiseHosting's ingress proxy, a drop-in replacement for Traefik on the proxy VPS.
//!
//! It reads Traefik's dynamic configuration (from the control plane or a file), compiles it into
//! an immutable routing table swapped with `ArcSwap`, and forwards HTTP/1.1 and HTTP/2 (h2c)
//! requests and WebSocket upgrades to upstream servers over the mesh.
//!
//! # Layout
//! Modules form layers; each uses only those below it (`cargo xtask test` fails on a cycle):
//! 1. [`util`] (`FastMap`, a monotonic clock), [`config`] (the dynamic-configuration model and
//!    the rule language, parsing only), [`target`] (`Host` validation, path cleaning),
//!    [`headers`] (hop-by-hop, `X-Forwarded-*`, trusted proxies).
//! 2. [`upstream`]: pooled upstream connections, the request body sent on them and the
//!    response body that gives its connection back ([`upstream::PooledBody`]).
//! 3. [`body`]: the body sent to clients; [`error`]: every failure and its response, in one
//!    place; [`service`] (load balancing, passive health), [`middleware`] (compiled, and
//!    applied to a request), [`metrics`]: counters.
//! 4. [`table`]: the compiled routing table and its allocation-free lookup; [`tls`]: HTTPS
//!    certificates, ACME HTTP-01 issuance and renewal.
//! 5. [`state`]: what the request path shares ([`state::ProxyState`]: the `ArcSwap` table,
//!    metrics, health, challenges).
//! 6. [`forward`]: the request path; [`upgrade`]: WebSocket tunnels; [`health`]: active health
//!    checks; [`provider`]: file / http / watch providers and the [`provider::Applier`] gate
//!    (mass-removal guard, last-known-good snapshot); [`admin`]: `/metrics`, `/healthz`,
//!    `/routes`. The config side never uses [`forward`].
//! 7. [`server`]: the client-facing listener ([`conn`]: per-connection header/idle deadlines
//!    and the framing check); [`cli`]: settings from flags, environment and TOML; [`run`]:
//!    wiring it all together.
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
pub mod state;
pub mod table;
pub mod target;
pub mod tls;
pub mod upgrade;
pub mod upstream;
pub mod util;
