//! wh-control-plane: `serve` (the default) or operator commands such as `workers create`.
//! Settings → logging → database → hub → API server → wait for SIGTERM → drain.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use wh_control_plane::config::{Config, ServeArgs};
use wh_control_plane::{api, database, hub, jwt, scheduler, workers, AppState};

/// BSD `EX_USAGE`: the configuration is invalid.
const EX_USAGE: u8 = 64;

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
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(EX_USAGE);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WH_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
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
    let pool = match command_pool(&url).await {
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
    let pool = match command_pool(&url).await {
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
    let pool = match database::connect(&config.database_url, Duration::from_secs(60)).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("wh-control-plane: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = CancellationToken::new();
    // Verified worker messages go to the scheduler, which feeds the log bus too.
    let (inbound_tx, inbound_rx) = tokio::sync::mpsc::channel::<hub::Inbound>(4096);
    let hub = Arc::new(hub::Hub::new(inbound_tx));
    tokio::spawn(hub.clone().enforce_enabled(pool.clone(), Duration::from_secs(5), stop.clone()));
    let logs = Arc::new(wh_control_plane::logbus::LogBus::default());
    let scheduling = scheduler::SchedulerSettings {
        env: Some(Arc::new(config.master_key.sealer(wh_control_plane::secrets::Purpose::Env))),
        logs: Some(logs.clone()),
        ..scheduler::SchedulerSettings::default()
    };
    tokio::spawn(scheduler::run(pool.clone(), hub.clone(), scheduling, inbound_rx, stop.clone()));
    let routing = wh_control_plane::Routing::follow(
        &pool,
        Some(config.proxy_token.clone()),
        &config.route_domain,
    );
    let state = AppState {
        pool,
        jwt: Arc::new(jwt::JwtKeys::new(config.jwt_secret.expose(), config.jwt_ttl)),
        hub,
        routing: Arc::new(routing),
        env: Arc::new(config.master_key.sealer(wh_control_plane::secrets::Purpose::Env)),
        cookie_secure: config.cookie_secure,
        limits: Arc::new(wh_control_plane::Limits::default()),
        logs: logs.clone(),
    };
    let bind = |addr: std::net::SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))
    };
    let (public, internal) = match config.internal_listen {
        Some(addr) => (api::public(state.clone()), Some((addr, api::internal(state)))),
        None => (api::app(state), None),
    };
    let public_listener = match bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wh-control-plane: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %config.listen, "control plane listening");
    let mut servers = tokio::task::JoinSet::new();
    if let Some((addr, router)) = internal {
        let listener = match bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("wh-control-plane: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(listen = %addr, "worker and proxy endpoints listening");
        let stop = stop.clone();
        servers.spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        });
    }
    let shutdown = stop.clone();
    servers.spawn(async move {
        axum::serve(
            public_listener,
            public.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    });
    tokio::spawn({
        let stop = stop.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            stop.cancel();
        }
    });
    let mut code = ExitCode::SUCCESS;
    while let Some(result) = servers.join_next().await {
        if let Ok(Err(e)) | Err(e) = result.map_err(std::io::Error::other) {
            eprintln!("wh-control-plane: {e}");
            code = ExitCode::FAILURE;
            stop.cancel();
        }
    }
    code
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
