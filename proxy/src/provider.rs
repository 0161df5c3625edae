//! Where configurations come from, and the one gate every configuration passes to go live.
//!
//! - [`apply`]: parse → mass-removal guard → compile → swap → persist the last known good.
//! - [`file`]: a JSON/YAML file, reloaded when it changes and on SIGHUP (standalone mode).
//! - [`http`]: the control plane's endpoint, polled (ETag, unchanged bodies skipped) or
//!   long-polled with `?watch=1`.
//! - [`report`]: certificate order outcomes, told to the control plane.

pub mod apply;
pub mod file;
pub mod http;
pub mod report;

pub use apply::{Applier, ApplyError, Outcome};
