//! The `causerie` command: the server and its admin commands, in the manner of Django's manage.py.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::accounts::email::Email;
use crate::accounts::{password_problems, AccountError, Accounts, Registration};
use crate::app::{self, Offline, Server};
use crate::config::{Config, LogFormat};
use crate::store::users::UserRow;

#[derive(Parser)]
#[command(
    name = "causerie",
    version,
    about = "Chat backend: a drop-in for Django Channels + DRF + djoser + SimpleJWT"
)]
struct Cli {
    /// Configuration file (default: ./causerie.toml when it exists).
    #[arg(long, global = true, env = "CAUSERIE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP and WebSocket server (migrates the schema first).
    Serve {
        /// Address to listen on; overrides CAUSERIE_BIND.
        #[arg(long)]
        bind: Option<String>,
    },
    /// Create or update the database schema, then exit.
    Migrate,
    /// Create a staff superuser (asks for what is missing, or takes flags / env).
    Createsuperuser(SuperuserArgs),
    /// Change a user's password (asks for it, or reads CAUSERIE_NEW_PASSWORD).
    Changepassword { email: String },
    /// List, create or deactivate users.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Create or list chats.
    Chats {
        #[command(subcommand)]
        action: ChatsAction,
    },
    /// Load generator against a running server on this machine (docs/benchmarks.md).
    Bench(crate::bench::BenchArgs),
    /// Import a Django chattuto database; run again to bring over only what changed (docs/migrating.md).
    ImportDjango(crate::import::ImportArgs),
    /// Push notifications (docs/push.md).
    Push {
        #[command(subcommand)]
        action: PushAction,
    },
}

#[derive(Subcommand)]
enum PushAction {
    /// Send a test notification to each of a user's active devices and print each result.
    Test { email: String },
}

#[derive(Args)]
struct SuperuserArgs {
    #[arg(long, env = "CAUSERIE_SUPERUSER_EMAIL")]
    email: Option<String>,
    /// Never prompt: fail if something is missing.
    #[arg(long)]
    no_input: bool,
}

#[derive(Subcommand)]
enum UsersAction {
    /// Print every user.
    List,
    /// Create an active user (password from --password or CAUSERIE_NEW_PASSWORD, else asked).
    Create {
        email: String,
        #[arg(long, env = "CAUSERIE_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[arg(long, default_value = "")]
        first_name: String,
        #[arg(long, default_value = "")]
        last_name: String,
        #[arg(long)]
        staff: bool,
    },
    /// Deactivate a user (they can no longer log in or use their tokens).
    Deactivate { email: String },
    /// Reactivate a user.
    Activate { email: String },
}

#[derive(Subcommand)]
enum ChatsAction {
    /// Find or create the two-person chat between two users.
    Create {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Print the most recent chats.
    List {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs the command line; returns the process exit code.
pub async fn main() -> i32 {
    match run().await {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("causerie: {err:#}");
            1
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    if let Command::Serve { bind: Some(bind) } = &cli.command {
        config.bind = bind.clone();
        config.validate()?;
    }
    init_logging(&config);
    match cli.command {
        Command::Serve { .. } => serve(config).await,
        Command::Migrate => {
            app::open_database(&config).await?;
            println!("Database schema is up to date.");
            Ok(())
        }
        Command::Createsuperuser(args) => createsuperuser(config, args).await,
        Command::Changepassword { email } => changepassword(config, &email).await,
        Command::Users { action } => users_command(config, action).await,
        Command::Chats { action } => chats_command(config, action).await,
        Command::Bench(args) => crate::bench::run(config, args).await,
        Command::ImportDjango(args) => crate::import::command(config, args).await,
        Command::Push { action } => push_command(config, action).await,
    }
}

/// `causerie push test EMAIL`: with the database and the providers only (no server, no
/// outbox workers); fails when no provider is configured or a send fails.
async fn push_command(config: Config, action: PushAction) -> anyhow::Result<()> {
    let PushAction::Test { email } = action;
    let Offline { accounts, push, .. } = Offline::open(&config).await?;
    if !push.enabled() {
        bail!("push is off: set push_fcm_credentials_file and/or push_vapid_private_key_file");
    }
    let user = find_user(&accounts, &email).await?;
    let results = push.send_test(user.id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if results.is_empty() {
        bail!("{} has no active device", user.email);
    }
    let mut sent = 0;
    for (device, outcome) in &results {
        let outcome = match outcome {
            Some(outcome) => outcome.to_string(),
            None => format!("skipped (no provider configured for {} devices)", device.kind),
        };
        if outcome == "sent" {
            sent += 1;
        }
        println!(
            "device {} ({}, {}): {outcome}",
            device.id,
            device.kind,
            device.name.as_deref().unwrap_or("unnamed")
        );
    }
    if sent == 0 {
        bail!("no device could be reached");
    }
    println!("{sent} of {} devices reached.", results.len());
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let files = app::raise_open_files_limit();
    let server = Server::start(config).await?;
    tracing::info!(
        addr = %server.addr(),
        open_files = files,
        "causerie listening; up to ~{} concurrent connections by the open-files limit",
        files.saturating_sub(64)
    );
    println!("Causerie listening on {}", server.url());
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn prompt(label: &str) -> anyhow::Result<String> {
    print!("{label}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// A new password from the environment or, on a terminal, asked twice.
fn new_password(no_input: bool) -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("CAUSERIE_NEW_PASSWORD") {
        return Ok(password);
    }
    if no_input || !std::io::stdin().is_terminal() {
        bail!("no password given: set CAUSERIE_NEW_PASSWORD or run on a terminal");
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Password (again): ")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}

async fn createsuperuser(config: Config, args: SuperuserArgs) -> anyhow::Result<()> {
    let offline = Offline::open(&config).await?;
    let email = match args.email {
        Some(email) => email,
        None if args.no_input => {
            bail!("--email (or CAUSERIE_SUPERUSER_EMAIL) is required with --no-input")
        }
        None => prompt("Email address: ")?,
    };
    let email = Email::parse(&email).context("Enter a valid email address.")?;
    let password = new_password(args.no_input)?;
    let problems = password_problems(&password, email.as_str(), "", "");
    if !problems.is_empty() {
        bail!("{}", problems.join(" "));
    }
    let registration = Registration {
        email,
        password,
        first_name: String::new(),
        last_name: String::new(),
        is_staff: true,
        is_superuser: true,
    };
    let user = offline.accounts.create_user(registration).await.map_err(describe)?;
    println!("Superuser created: {} ({})", user.email, user.id);
    Ok(())
}

async fn find_user(accounts: &Accounts, email: &str) -> anyhow::Result<UserRow> {
    let email = Email::parse(email).context("Enter a valid email address.")?;
    accounts
        .user_by_email(&email)
        .await
        .map_err(describe)?
        .with_context(|| format!("no user with email {email}"))
}

async fn changepassword(config: Config, email: &str) -> anyhow::Result<()> {
    let offline = Offline::open(&config).await?;
    let user = find_user(&offline.accounts, email).await?;
    let password = new_password(false)?;
    offline.accounts.set_password(&user, password).await.map_err(describe)?;
    println!("Password changed for {}.", user.email);
    Ok(())
}

async fn users_command(config: Config, action: UsersAction) -> anyhow::Result<()> {
    let Offline { accounts, .. } = Offline::open(&config).await?;
    match action {
        UsersAction::List => {
            let rows = accounts.list_users(i64::MAX, 0).await.map_err(describe)?.users;
            println!("{:<36}  {:<32}  {:<6}  {:<5}  name", "id", "email", "active", "staff");
            for u in rows {
                println!(
                    "{:<36}  {:<32}  {:<6}  {:<5}  {} {}",
                    u.id, u.email, u.is_active, u.is_staff, u.first_name, u.last_name
                );
            }
        }
        UsersAction::Create {
            email,
            password,
            first_name,
            last_name,
            staff,
        } => {
            let email = Email::parse(&email).context("Enter a valid email address.")?;
            let password = match password {
                Some(p) => p,
                None => new_password(false)?,
            };
            let problems = password_problems(&password, email.as_str(), &first_name, &last_name);
            if !problems.is_empty() {
                bail!("{}", problems.join(" "));
            }
            let registration = Registration {
                email,
                password,
                first_name,
                last_name,
                is_staff: staff,
                is_superuser: false,
            };
            let user = accounts.create_user(registration).await.map_err(describe)?;
            println!("{}", user.id);
        }
        UsersAction::Deactivate { email } => {
            let user = find_user(&accounts, &email).await?;
            accounts.set_active(user.id, false).await.map_err(describe)?;
            println!("{} deactivated.", user.email);
        }
        UsersAction::Activate { email } => {
            let user = find_user(&accounts, &email).await?;
            accounts.set_active(user.id, true).await.map_err(describe)?;
            println!("{} activated.", user.email);
        }
    }
    Ok(())
}

async fn chats_command(config: Config, action: ChatsAction) -> anyhow::Result<()> {
    let Offline { accounts, chats, .. } = Offline::open(&config).await?;
    match action {
        ChatsAction::Create { from, to } => {
            let from = find_user(&accounts, &from).await?;
            let to = find_user(&accounts, &to).await?;
            if from.id == to.id {
                bail!("a chat needs two different users");
            }
            let (chat, created) = chats
                .open_pair(from.id, to.id)
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            println!("{}", chat.id);
            eprintln!(
                "{} chat between {} and {}",
                if created { "created" } else { "existing" },
                from.email,
                to.email
            );
        }
        ChatsAction::List { limit } => {
            println!(
                "{:<36}  {:<36}  {:<36}  {:>6}  updated",
                "id", "fromUser", "toUser", "msgs"
            );
            for c in chats.recent(limit).await.map_err(|err| anyhow::anyhow!("{err}"))? {
                let show = |u: Option<crate::ids::UserId>| u.map(|u| u.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{:<36}  {:<36}  {:<36}  {:>6}  {}",
                    c.id,
                    show(c.from_user),
                    show(c.to_user),
                    c.last_seq,
                    c.updated_at.to_rfc3339()
                );
            }
        }
    }
    Ok(())
}

/// Turns an account error into a line for a terminal.
fn describe(err: AccountError) -> anyhow::Error {
    match err {
        AccountError::Invalid(fields) => anyhow::anyhow!("{}", crate::validation::describe(&fields)),
        other => anyhow::Error::new(other),
    }
}
