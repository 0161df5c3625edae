//! `wh`: parse the command line, run one command, map its error to an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use wh_cli::commands::{self, Source};
use wh_cli::credentials;
#[cfg(feature = "dev")]
use wh_cli::dev;
use wh_cli::error::CliError;
use wh_cli::targets;

/// wh: WiseHosting from the command line.
#[derive(Parser)]
#[command(name = "wh", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole platform on this machine (database, control plane, worker, proxy).
    #[cfg(feature = "dev")]
    Dev(Box<dev::DevArgs>),
    /// Sign in to a WiseHosting API (password from WH_PASSWORD or standard input).
    Login {
        #[arg(long, env = "WH_API_URL", default_value = "http://127.0.0.1:8081")]
        api: String,
        #[arg(long)]
        email: String,
    },
    /// Manage apps.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Manage an app's environment variables (applied at its next deploy).
    #[command(subcommand)]
    Env(EnvCommand),
    /// Deploy a directory (uploaded; the default is the current one) or a git ref.
    Deploy {
        /// The app [default: the directory's name].
        #[arg(long, short)]
        app: Option<String>,
        /// Upload this directory.
        #[arg(long, conflicts_with = "git_ref")]
        path: Option<PathBuf>,
        /// Deploy this branch, tag or commit of the app's repository.
        #[arg(long = "ref")]
        git_ref: Option<String>,
        /// The port the app listens on (when the deploy creates the app).
        #[arg(long, default_value_t = 8000)]
        port: u16,
    },
    /// Deploy an earlier deployment again: its image when its worker still has it, else its
    /// commit rebuilt.
    Rollback {
        #[arg(long, short)]
        app: Option<String>,
        /// The deployment to go back to [default: the one live before the current].
        #[arg(long)]
        to: Option<i64>,
    },
    /// Manage an app's custom domains.
    #[command(subcommand)]
    Domains(DomainsCommand),
    /// Push to deploy: the app's webhooks at its git host.
    #[command(subcommand)]
    Hooks(HooksCommand),
    /// Git providers connected to your account (GitHub, GitLab, Bitbucket, Gitea, Forgejo).
    #[command(subcommand)]
    Git(GitCommand),
    /// Usage: your apps' totals, or (with --app) one app's by day.
    Usage {
        #[arg(long, short)]
        app: Option<String>,
        /// How many days back.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Alerts: what fires, an app's history, its rules.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Signed webhooks (Standard Webhooks) for your apps' events.
    #[command(subcommand)]
    Webhooks(TargetCommand),
    /// Notification channels by Shoutrrr URL: discord://, slack://, telegram://, smtp://, …
    #[command(subcommand)]
    Notify(TargetCommand),
    /// Show an app's runtime logs.
    Logs {
        #[arg(long, short)]
        app: Option<String>,
        /// Keep printing new lines until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// How many recent lines.
        #[arg(long, short = 'n', default_value_t = 200)]
        lines: usize,
    },
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Create an app (without --repo it deploys from uploads).
    Create {
        name: String,
        /// A clone URL, or a connected provider's repository: github:owner/name (also gitlab:,
        /// bitbucket:, gitea:, forgejo:, codeberg:), which registers its push webhook.
        #[arg(long)]
        repo: Option<String>,
        /// Which of your connections to the provider reads it (when you have several).
        #[arg(long)]
        connection: Option<i64>,
        #[arg(long)]
        branch: Option<String>,
        #[arg(long, default_value_t = 8000)]
        port: u16,
        #[arg(long)]
        plan: Option<String>,
    },
    /// List your apps and their URLs.
    List,
    /// Delete an app, its deployments and its route.
    Delete { name: String },
}

#[derive(Subcommand)]
enum EnvCommand {
    /// Set KEY=VALUE pairs.
    Set {
        #[arg(long, short)]
        app: Option<String>,
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// Remove keys.
    Unset {
        #[arg(long, short)]
        app: Option<String>,
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// List keys (values masked unless --reveal).
    List {
        #[arg(long, short)]
        app: Option<String>,
        #[arg(long)]
        reveal: bool,
    },
}

#[derive(Subcommand)]
enum HooksCommand {
    /// Make a webhook for a provider (github, gitlab, bitbucket, gitea, forgejo, codeberg);
    /// prints its URL and secret (shown once) and where they go.
    Add {
        provider: String,
        #[arg(long, short)]
        app: Option<String>,
    },
    /// List the app's webhooks.
    List {
        #[arg(long, short)]
        app: Option<String>,
    },
    /// Remove a webhook: pushes stop deploying.
    Remove {
        id: String,
        #[arg(long, short)]
        app: Option<String>,
    },
}

#[derive(Subcommand)]
enum TargetCommand {
    /// Add one: a webhook's https URL, or a channel's Shoutrrr URL.
    Add {
        url: String,
        /// Only this app's events (default: all your apps).
        #[arg(long, short)]
        app: Option<String>,
        /// Only these events (comma-separated; default: all): deployment.started,
        /// deployment.succeeded, deployment.failed, app.crashed, alert.fired, alert.resolved,
        /// domain.verified, certificate.issued, certificate.failed.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
    },
    /// List them, with their state.
    List,
    /// Send a test through the delivery path and show the outcome.
    Test { id: i64 },
    /// Remove one.
    Remove { id: i64 },
    /// The latest deliveries and their attempts.
    Deliveries { id: i64 },
    /// A new signing secret (webhooks); the old one signs alongside for 24 hours.
    Rotate { id: i64 },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// What fires now across your apps, or (with --app) the app's alerts.
    List {
        #[arg(long, short)]
        app: Option<String>,
    },
    /// The app's rules and their state.
    Rules {
        #[arg(long, short)]
        app: Option<String>,
    },
    /// Change a rule (cpu, memory, network, disk, offline, crashloop, deployment_failed).
    Set {
        kind: String,
        #[arg(long, short)]
        app: Option<String>,
        /// % of the plan's limit (cpu, memory, disk), bytes/s (network), restarts in 10 min.
        #[arg(long)]
        threshold: Option<f64>,
        /// Seconds the condition must hold (a multiple of 30).
        #[arg(long = "for")]
        for_secs: Option<i32>,
        /// Seconds it must stop holding before it resolves.
        #[arg(long)]
        keep_firing: Option<i32>,
        /// Seconds between reminders while it fires (0: none).
        #[arg(long)]
        remind: Option<i32>,
        /// Turn the rule off (--on turns it back on).
        #[arg(long, conflicts_with = "on")]
        off: bool,
        #[arg(long)]
        on: bool,
    },
    /// Mute a rule for some minutes (0 unmutes); it still records alerts.
    Mute {
        kind: String,
        #[arg(long, short)]
        app: Option<String>,
        #[arg(long, default_value_t = 60)]
        minutes: u32,
    },
}

#[derive(Subcommand)]
enum GitCommand {
    /// Connect a provider: prints the address to authorize at, then waits (10 minutes at most)
    /// until the provider sends you back.
    Connect {
        /// github, gitlab, bitbucket, gitea, forgejo or codeberg.
        provider: String,
        /// Print the address and return without waiting.
        #[arg(long)]
        no_wait: bool,
    },
    /// List your connections.
    List,
    /// List a connection's repositories.
    Repos {
        connection: i64,
        /// Only names containing this.
        #[arg(long, short)]
        search: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u32,
    },
    /// Disconnect: the webhooks made through it are removed and the grant revoked where the
    /// provider can.
    Disconnect { connection: i64 },
}

#[derive(Subcommand)]
enum DomainsCommand {
    /// Add a hostname; prints the DNS records that prove it is yours.
    Add {
        hostname: String,
        #[arg(long, short)]
        app: Option<String>,
    },
    /// List the app's domains and their status.
    List {
        #[arg(long, short)]
        app: Option<String>,
    },
    /// Check the TXT record now.
    Verify {
        hostname: String,
        #[arg(long, short)]
        app: Option<String>,
    },
    /// Remove a hostname (its route goes with it).
    Remove {
        hostname: String,
        #[arg(long, short)]
        app: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli: Cli = match wh_cmd::parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    wh_cmd::init_logging("WH_LOG", "warn");
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wh: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wh: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(command: Command) -> Result<(), CliError> {
    match command {
        #[cfg(feature = "dev")]
        Command::Dev(args) => dev::run(*args).await,
        Command::Login { api, email } => commands::login(&api, &email).await,
        Command::Apps(cmd) => {
            let api = credentials::api()?;
            match cmd {
                AppsCommand::Create { name, repo, connection, branch, port, plan } => {
                    let new = commands::NewApp {
                        name: &name,
                        repo: repo.as_deref(),
                        connection,
                        branch: branch.as_deref(),
                        port,
                        plan: plan.as_deref(),
                    };
                    let app = commands::apps_create(&api, new).await?;
                    println!("created {name}: {}", app["url"].as_str().unwrap_or_default());
                    Ok(())
                }
                AppsCommand::List => commands::apps_list(&api).await,
                AppsCommand::Delete { name } => commands::apps_delete(&api, &name).await,
            }
        }
        Command::Env(cmd) => {
            let api = credentials::api()?;
            match cmd {
                EnvCommand::Set { app, pairs } => {
                    commands::env_set(&api, &commands::app_name(app.as_deref(), None)?, &pairs)
                        .await
                }
                EnvCommand::Unset { app, keys } => {
                    commands::env_unset(&api, &commands::app_name(app.as_deref(), None)?, &keys)
                        .await
                }
                EnvCommand::List { app, reveal } => {
                    commands::env_list(&api, &commands::app_name(app.as_deref(), None)?, reveal)
                        .await
                }
            }
        }
        Command::Deploy { app, path, git_ref, port } => {
            let api = credentials::api()?;
            let (name, source) = match (path, git_ref) {
                (_, Some(r)) => (commands::app_name(app.as_deref(), None)?, Source::Ref(r)),
                (path, None) => {
                    let dir = path.unwrap_or_else(|| PathBuf::from("."));
                    (commands::app_name(app.as_deref(), Some(&dir))?, Source::Path(dir))
                }
            };
            commands::deploy(&api, &name, source, port).await
        }
        Command::Rollback { app, to } => {
            let api = credentials::api()?;
            let name = commands::app_name(app.as_deref(), None)?;
            commands::deploy(&api, &name, Source::Rollback(to), 8000).await
        }
        Command::Usage { app, days } => {
            let api = credentials::api()?;
            commands::usage(&api, app.as_deref(), days).await
        }
        Command::Alerts(cmd) => {
            let api = credentials::api()?;
            let name = |a: Option<String>| commands::app_name(a.as_deref(), None);
            match cmd {
                AlertsCommand::List { app: None } => commands::alerts_open(&api).await,
                AlertsCommand::List { app: Some(a) } => commands::alerts_history(&api, &a).await,
                AlertsCommand::Rules { app } => commands::alerts_rules(&api, &name(app)?).await,
                AlertsCommand::Set {
                    kind,
                    app,
                    threshold,
                    for_secs,
                    keep_firing,
                    remind,
                    off,
                    on,
                } => {
                    let mut patch = serde_json::json!({});
                    let fields = [
                        ("threshold", threshold.map(serde_json::Value::from)),
                        ("for_secs", for_secs.map(serde_json::Value::from)),
                        ("keep_firing_secs", keep_firing.map(serde_json::Value::from)),
                        ("remind_secs", remind.map(serde_json::Value::from)),
                        ("enabled", (off || on).then_some(serde_json::Value::from(on))),
                    ];
                    for (k, v) in fields {
                        if let Some(v) = v {
                            patch[k] = v;
                        }
                    }
                    commands::alerts_set(&api, &name(app)?, &kind, &patch).await
                }
                AlertsCommand::Mute { kind, app, minutes } => {
                    commands::alerts_mute(&api, &name(app)?, &kind, minutes).await
                }
            }
        }
        Command::Webhooks(cmd) => target_command(targets::Kind::Webhooks, cmd).await,
        Command::Notify(cmd) => target_command(targets::Kind::Notify, cmd).await,
        Command::Git(cmd) => {
            let api = credentials::api()?;
            match cmd {
                GitCommand::Connect { provider, no_wait } => {
                    commands::git_connect(&api, &provider, !no_wait).await
                }
                GitCommand::List => commands::git_list(&api).await,
                GitCommand::Repos { connection, search, page } => {
                    commands::git_repos(&api, connection, search.as_deref(), page).await
                }
                GitCommand::Disconnect { connection } => {
                    commands::git_disconnect(&api, connection).await
                }
            }
        }
        Command::Hooks(cmd) => {
            let api = credentials::api()?;
            let app = |a: Option<String>| commands::app_name(a.as_deref(), None);
            match cmd {
                HooksCommand::Add { provider, app: a } => {
                    commands::hooks_add(&api, &app(a)?, &provider).await
                }
                HooksCommand::List { app: a } => commands::hooks_list(&api, &app(a)?).await,
                HooksCommand::Remove { id, app: a } => {
                    commands::hooks_remove(&api, &app(a)?, &id).await
                }
            }
        }
        Command::Domains(cmd) => {
            let api = credentials::api()?;
            let app = |a: Option<String>| commands::app_name(a.as_deref(), None);
            match cmd {
                DomainsCommand::Add { hostname, app: a } => {
                    commands::domains_add(&api, &app(a)?, &hostname).await
                }
                DomainsCommand::List { app: a } => commands::domains_list(&api, &app(a)?).await,
                DomainsCommand::Verify { hostname, app: a } => {
                    commands::domains_verify(&api, &app(a)?, &hostname).await
                }
                DomainsCommand::Remove { hostname, app: a } => {
                    commands::domains_remove(&api, &app(a)?, &hostname).await
                }
            }
        }
        Command::Logs { app, follow, lines } => {
            let api = credentials::api()?;
            commands::logs(&api, &commands::app_name(app.as_deref(), None)?, lines, follow).await
        }
    }
}

/// `wh webhooks …` and `wh notify …`.
async fn target_command(kind: targets::Kind, cmd: TargetCommand) -> Result<(), CliError> {
    let api = credentials::api()?;
    match cmd {
        TargetCommand::Add { url, app, events } => {
            targets::add(&api, kind, &url, app.as_deref(), &events).await
        }
        TargetCommand::List => targets::list(&api, kind).await,
        TargetCommand::Test { id } => targets::test(&api, kind, id).await,
        TargetCommand::Remove { id } => targets::remove(&api, kind, id).await,
        TargetCommand::Deliveries { id } => targets::deliveries(&api, kind, id).await,
        TargetCommand::Rotate { id } if kind == targets::Kind::Webhooks => {
            targets::rotate(&api, id).await
        }
        TargetCommand::Rotate { .. } => {
            Err(CliError::Usage("only webhooks have a signing secret to rotate".into()))
        }
    }
}
