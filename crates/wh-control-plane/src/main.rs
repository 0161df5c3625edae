//! wh-control-plane: `serve` (the default) or operator commands such as `workers create`.
//! Settings → logging → [`server::start`] → wait for SIGTERM → drain.

use std::process::ExitCode;

use secrecy::ExposeSecret;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use wh_cmd::EX_USAGE;
use wh_control_plane::config::{Config, ServeArgs};
use wh_control_plane::{database, server, workers};

#[derive(Parser)]
#[command(name = "wh-control-plane", version, about = "WiseHosting control plane")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (the default).
    Serve,
    /// Manage workers.
    #[command(subcommand)]
    Workers(WorkersCommand),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user; the password is read from standard input (one line).
    Create {
        #[arg(long)]
        email: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Subcommand)]
enum WorkersCommand {
    /// Register a worker and print its API key (shown only this once).
    Create {
        #[arg(long)]
        name: String,
        /// Its address on the WireGuard mesh, e.g. 10.50.0.11.
        #[arg(long)]
        mesh_ip: String,
    },
    /// Replace a worker's API key; prints the new one.
    RotateKey {
        #[arg(long)]
        name: String,
    },
    /// Stop a worker from connecting (its open connection is closed within seconds).
    Disable {
        #[arg(long)]
        name: String,
    },
    /// Allow a disabled worker again.
    Enable {
        #[arg(long)]
        name: String,
    },
}

fn main() -> ExitCode {
    let cli: Cli = match wh_cmd::parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    wh_cmd::init_logging("WH_LOG", "info");
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wh-control-plane: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(cli.serve).await,
            Command::Workers(cmd) => workers_command(cli.serve, cmd).await,
            Command::Users(cmd) => users_command(cli.serve, cmd).await,
        }
    })
}

/// The database for an operator command (migrated, 10 s patience), or the exit code to use.
async fn command_pool(url: &str) -> Result<sqlx::PgPool, ExitCode> {
    database::connect(url, Duration::from_secs(10)).await.map_err(|e| {
        eprintln!("wh-control-plane: {e}");
        ExitCode::FAILURE
    })
}

async fn workers_command(args: ServeArgs, cmd: WorkersCommand) -> ExitCode {
    let Some(url) = args.database_url else {
        eprintln!("wh-control-plane: DATABASE_URL is not set");
        return ExitCode::from(EX_USAGE);
    };
    let pool = match command_pool(url.expose_secret()).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let result = match cmd {
        WorkersCommand::Create { name, mesh_ip } => {
            workers::create(&pool, &name, &mesh_ip).await.map(|(w, key)| {
                println!("worker {} created (id {})", w.name, w.id);
                println!("API key (shown once; put it in the worker's config): {key}");
                true
            })
        }
        WorkersCommand::RotateKey { name } => {
            workers::rotate_key(&pool, &name).await.map(|key| match key {
                Some(key) => {
                    println!("new API key for {name} (shown once): {key}");
                    true
                }
                None => false,
            })
        }
        WorkersCommand::Disable { name } => workers::set_enabled(&pool, &name, false).await,
        WorkersCommand::Enable { name } => workers::set_enabled(&pool, &name, true).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("wh-control-plane: no such worker");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("wh-control-plane: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn users_command(args: ServeArgs, cmd: UsersCommand) -> ExitCode {
    let Some(url) = args.database_url else {
        eprintln!("wh-control-plane: DATABASE_URL is not set");
        return ExitCode::from(EX_USAGE);
    };
    let UsersCommand::Create { email, admin } = cmd;
    if !email.contains('@') || email.len() > 254 {
        eprintln!("wh-control-plane: --email must be an e-mail address");
        return ExitCode::from(EX_USAGE);
    }
    eprintln!("password for {email} (one line on standard input):");
    let mut password = String::new();
    if std::io::stdin().read_line(&mut password).is_err() {
        eprintln!("wh-control-plane: cannot read the password");
        return ExitCode::from(EX_USAGE);
    }
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 10 {
        eprintln!("wh-control-plane: the password must be at least 10 characters");
        return ExitCode::from(EX_USAGE);
    }
    let pool = match command_pool(url.expose_secret()).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    match wh_control_plane::auth::create_user(&pool, &email, password, admin).await {
        Ok(u) => {
            println!(
                "user {} created (id {}{})",
                u.email,
                u.id,
                if u.is_admin { ", admin" } else { "" }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wh-control-plane: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wh-control-plane: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let stop = CancellationToken::new();
    let server = match server::start(config, Duration::from_secs(60), stop.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wh-control-plane: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %server.public_addr, internal = ?server.internal_addr, admin = ?server.admin_addr, "control plane listening");
    tokio::spawn(async move {
        wh_cmd::wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        stop.cancel();
    });
    match server.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wh-control-plane: {e}");
            ExitCode::FAILURE
        }
    }
}
