//! `wh`, WiseHosting's command line, as a library so its tests drive the same code.
//!
//! # Layout
//! - `dev` (the default feature `dev`): `wh dev`, the whole platform in one process; `devdb`
//!   its embedded Postgres, `devbase` the offline base image for static sites. Without the
//!   feature `wh` links neither the control plane, the worker nor the proxy.
//! - [`commands`]: the user commands (login, apps, env, deploy, logs).
//! - [`client`]: the HTTP client for the API; [`credentials`]: where the sign-in is kept.
//! - [`pack`]: a source directory as the tar.gz an upload deploy carries.
//! - [`targets`]: `wh webhooks` and `wh notify` (signed webhooks, notification channels).
//! - [`error`]: the one error type and its exit codes.

pub mod client;
pub mod commands;
pub mod credentials;
#[cfg(feature = "dev")]
pub mod dev;
#[cfg(feature = "dev")]
pub mod devbase;
#[cfg(feature = "dev")]
pub mod devdb;
pub mod error;
pub mod pack;
pub mod targets;
