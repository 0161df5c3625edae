//! What WiseHosting's HTTP servers (wh-proxy and the control plane's API) need around hyper
//! that hyper does not provide in the shape we need.
//!
//! # Layout
//! - [`conn`]: per-connection deadlines (header from a request's first byte, idle between
//!   requests), requests in flight, and the `Content-Length` + `Transfer-Encoding` finding.
//! - [`body`]: a request body that fails when it stops moving.
//! - [`accept`]: the next connection of a listener, riding out `EMFILE`.

pub mod accept;
pub mod body;
pub mod conn;
