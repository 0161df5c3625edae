//! wh-proxy binary: settings → logging → runtime → start → wait for SIGTERM/SIGINT → drain.

use std::process::ExitCode;

use wh_cmd::EX_USAGE;
use wh_proxy::cli::{Args, LogFormat, Settings};
use wh_proxy::run;

// glibc's malloc spends most of a 10,000-router compile consolidating and unlinking chunks
// (perf: 55% of the time); mimalloc cuts that compile by more than half and helps the request path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Args = match wh_cmd::parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let settings = match Settings::from_args(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wh-proxy: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    init_logging(settings.log_format);
    // Thread per core: this thread's runtime serves one accept loop plus the providers and the
    // admin listener; run::start gives every further core a runtime and accept loop of its own.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wh-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let running = match run::start(settings).await {
            Ok(r) => r,
            Err(e) if e.is_config() => {
                eprintln!("wh-proxy: {e}");
                return ExitCode::from(EX_USAGE);
            }
            Err(e) => {
                eprintln!("wh-proxy: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(http = %running.http_addr, admin = %running.admin_addr, "wh-proxy listening");
        wh_cmd::wait_for_signal().await;
        running.shutdown().await;
        tracing::info!("wh-proxy stopped");
        ExitCode::SUCCESS
    })
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("WH_PROXY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    match format {
        LogFormat::Off => {}
        LogFormat::Plain => {
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init()
        }
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
}
