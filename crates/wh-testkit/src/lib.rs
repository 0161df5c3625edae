//! Test-only helpers that stand up the real components WiseHosting's tests use.
//!
//! This crate is a dev-dependency only: nothing in a shipped binary links it.
//!
//! # Layout
//! - [`postgres`]: a throwaway PostgreSQL cluster per test process (or `DATABASE_URL`), the
//!   workspace's `migrations/` applied once into a template, and a fresh database per test.
//! - [`podman`]: Podman with this machine's runtime settings, a local busybox base image built
//!   without any registry, and containers/images that are labelled and removed afterwards.
//! - [`pebble`]: Let's Encrypt's ACME test server and its mock DNS on free ports.
//! - [`http`]: a minimal HTTP(S) client for tests (plain TCP or rustls with explicit roots).
//! - [`tls`]: a self-signed TLS server identity.
//! - [`reaper`]: cleanup that runs after the test process exits, however it exits.
//! - [`net`]: free loopback ports and waiting for a port to accept.
//! - [`procs`]: host processes by exact command line.
//! - [`wait`]: [`eventually`], the bounded wait for an outcome that fails with a message.
//!
//! Everything here fails loudly with an [`Error`] that says what to install or what went wrong:
//! a test that cannot get its component must fail, never skip silently.

pub mod http;
pub mod net;
pub mod pebble;
pub mod podman;
pub mod postgres;
pub mod procs;
pub mod reaper;
pub mod tls;
pub mod wait;

mod error;
mod process;

pub use error::Error;
pub use wait::{eventually, until, within};

/// Tags everything this test run creates (temp dirs, process names, container labels), so a
/// leftover check can tell this run's processes from another suite's. `cargo xtask test` sets
/// `WH_TESTKIT_TAG`; otherwise it is `local`.
pub fn run_tag() -> String {
    std::env::var("WH_TESTKIT_TAG")
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "local".to_owned())
}

/// Result alias for the testkit.
pub type Result<T, E = Error> = std::result::Result<T, E>;
