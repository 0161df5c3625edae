//! What WiseHosting's HTTP servers (wh-proxy and the control plane's API) and clients need
//! around hyper that hyper does not provide in the shape we need.
//!
//! # Layout
//! - [`conn`]: per-connection deadlines (first byte, request heads in HTTP/1 and HTTP/2, idle
//!   between requests), requests in flight, and the `Content-Length` + `Transfer-Encoding`
//!   finding for every head.
//! - [`framing`]: where each HTTP/1 request head is in a byte stream, pipelined ones included.
//! - [`body`]: a request body that fails when it stops moving.
//! - [`accept`]: the next connection of a listener, riding out `EMFILE`.
//! - [`client`]: dialling out: a base URL, its trust (system or PEM roots), TCP or TLS.

pub mod accept;
pub mod body;
pub mod client;
pub mod conn;
pub mod framing;
