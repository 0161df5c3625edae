//! What every WiseHosting binary's `main` does the same way, so each `main.rs` keeps only its
//! own wiring: parsing arguments (bad usage exits 64, `--help` and `--version` exit 0), plain
//! logging to standard error filtered by an environment variable, waiting for the signal
//! that stops a service (SIGTERM or Ctrl-C), and [`supervise`]d long-running tasks; and
//! [`pgcluster`], the local PostgreSQL cluster `wh dev` and the test kit run.

use std::process::ExitCode;

pub mod pgcluster;
mod supervise;
pub use supervise::{restarts, supervise, supervise_panics, Panicked};

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

/// Libraries that log what they carry at their verbose levels (the WebSocket library logs every
/// frame at trace, `job.assign` with its decrypted env vars included): capped at `info` whatever
/// the filter asks, so that no log level prints a secret.
const CAPPED: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

/// Whether an event of `meta` may be logged at all: never below `info` from [`CAPPED`]
/// libraries, whatever the filter says.
fn uncapped(meta: &tracing::Metadata<'_>) -> bool {
    let capped = CAPPED.iter().any(|t| {
        meta.target().strip_prefix(t).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    });
    !(capped && *meta.level() > tracing::Level::INFO)
}

/// Log lines to `writer`, filtered by `spec` (`default` when it does not parse), never below
/// `info` from the [`CAPPED`] libraries.
pub fn log_subscriber<W>(
    spec: Option<&str>,
    default: &str,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::EnvFilter;
    let filter =
        spec.and_then(|s| EnvFilter::try_new(s).ok()).unwrap_or_else(|| EnvFilter::new(default));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::filter::filter_fn(uncapped))
        .with(tracing_subscriber::fmt::layer().with_writer(writer))
}

/// Plain log lines on standard error, filtered by `$var` (e.g. `WH_LOG=debug`), else `default`.
pub fn init_logging(var: &str, default: &str) {
    use tracing_subscriber::util::SubscriberInitExt;
    let spec = std::env::var(var).ok();
    // Also takes the `log` crate's records (rustls, tungstenite), through the same filters.
    let _ = log_subscriber(spec.as_deref(), default, std::io::stderr).try_init();
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Issue 12, item B18: at `WH_LOG=trace` the WebSocket library logged every frame.
    #[test]
    fn no_filter_lets_the_websocket_library_log_frames() {
        for spec in [
            "trace",
            "tungstenite=trace,tokio_tungstenite=trace",
            "debug,tungstenite::protocol=trace",
        ] {
            let out = Capture::default();
            let writer = out.clone();
            let subscriber = super::log_subscriber(Some(spec), "info", move || writer.clone());
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(target: "tungstenite::protocol", "frame with SECRET-ENV");
                tracing::trace!(target: "tokio_tungstenite", "frame with SECRET-ENV");
                tracing::trace!(target: "wh_worker::agent", "our own trace line");
            });
            let text = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
            assert!(!text.contains("SECRET-ENV"), "{spec}: {text}");
            if spec == "trace" {
                assert!(text.contains("our own trace line"), "{spec}: {text}");
            }
        }
    }
}
