//! The proxy's input: Traefik's dynamic configuration, parsed but not yet compiled.
//!
//! - [`dynamic`]: the serde model of `http.routers`, `http.services`, `http.middlewares`.
//! - [`rule`]: the router rule language (`Host`, `HostRegexp`, `Path`, `PathPrefix`, `&&`, `||`, `!`).
//! - [`duration`]: Traefik-style durations (`"5s"`, `"250ms"`, `"1m30s"`).
//!
//! Nothing here touches the network; the compiled form lives in [`crate::table`].

pub mod duration;
pub mod dynamic;
pub mod rule;

pub use dynamic::{Document, Format};
