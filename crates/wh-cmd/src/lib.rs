//! What every WiseHosting binary's `main` does the same way, so each `main.rs` keeps only its
//! own wiring: parsing arguments (bad usage exits 64, `--help` and `--version` exit 0), plain
//! logging to standard error filtered by an environment variable, waiting for the signal
//! that stops a service (SIGTERM or Ctrl-C), and [`supervise`]d long-running tasks.

use std::process::ExitCode;

mod supervise;
pub use supervise::{restarts, supervise, supervise_panics};

/// BSD `EX_USAGE`: the command line or configuration is invalid.
pub const EX_USAGE: u8 = 64;

/// The parsed arguments, or the exit code once clap has printed help, a version or an error.
pub fn parse<P: clap::Parser>() -> Result<P, ExitCode> {
    P::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::from(EX_USAGE)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// Plain log lines on standard error, filtered by `$var` (e.g. `WH_LOG=debug`), else `default`.
pub fn init_logging(var: &str, default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(var)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves at SIGTERM or Ctrl-C.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
