//! The `wh-worker` command, built into this crate so its tests can run, crash and restart the
//! real worker process (`CARGO_BIN_EXE_e2e-worker`); the same [`wh_worker::cli::main`].

fn main() -> std::process::ExitCode {
    wh_worker::cli::main()
}
