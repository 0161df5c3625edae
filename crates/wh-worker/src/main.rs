//! wh-worker: WiseHosting's worker agent ([`wh_worker::cli`]).

fn main() -> std::process::ExitCode {
    wh_worker::cli::main()
}
