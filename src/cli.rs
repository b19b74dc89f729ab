//! The command line: `serve`, `user add|passwd|list`, `node add|list|remove`, `config check`,
//! `audit verify`.
//! Parses arguments, sets up logging and the runtime, and reports errors to people.

use crate::audit::{self, AuditLog, Event, Verdict};
use crate::auth::{self, Role};
use crate::config::{Config, LogFormat, Overrides};
use crate::{db, store};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use xaso_base::{Clocks, RealClocks};

#[derive(Parser)]
#[command(
    name = "xaso",
    version,
    about = "xaso: commune cameras and meetings in one server"
)]
struct Cli {
    /// Configuration file (TOML). Without one, built-in defaults apply.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (database, footage); overrides the config file.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// Without a command, `serve` runs.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server.
    Serve {
        /// Address and port to listen on, e.g. 0.0.0.0:8443; overrides the config file.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the child nodes that join this one (the tree of xaso nodes).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from standard input (or asked for on a terminal).
    Add {
        username: String,
        /// admin, operator, reviewer or member.
        #[arg(long, default_value = "operator")]
        role: String,
        /// Generate a password and print it instead of reading one.
        #[arg(long)]
        generate_password: bool,
    },
    /// Set a user's password; ends all of their sessions.
    Passwd {
        username: String,
        #[arg(long)]
        generate_password: bool,
    },
    /// List users.
    List,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Register a child node; prints its join token (one line, nothing else) for the
    /// child's `[parent] token`. This node must serve HTTPS.
    Add {
        /// Lower-case letters, digits and '-', e.g. xa-tan-lap.
        name: String,
        /// Free text: commune, district, province, ...
        #[arg(long)]
        level: String,
    },
    /// List the child nodes and the state of their links (as the server last recorded it).
    List,
    /// Revoke a child node: its link drops within seconds and its token stops working.
    Remove { name: String },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file (and XASO_ environment overrides); print the result.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit log's hash chain; exits 1 if any row was changed or removed.
    Verify,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli, listen: Option<std::net::SocketAddr>) -> anyhow::Result<Config> {
    let o = Overrides {
        data_dir: cli.data_dir.clone(),
        listen,
        log_format: cli.log_format,
    };
    Config::load(cli.config.as_deref(), std::env::vars(), &o).map_err(anyhow::Error::msg)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("XASO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(mut cli: Cli) -> anyhow::Result<ExitCode> {
    let command = cli
        .command
        .take()
        .unwrap_or(Command::Serve { listen: None });
    match &command {
        Command::Serve { listen } => {
            let cfg = load_config(&cli, *listen)?;
            init_logging(cfg.log_format);
            runtime()?.block_on(crate::serve::run(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let o = Overrides {
                data_dir: cli.data_dir.clone(),
                ..Default::default()
            };
            let cfg = Config::load(Some(file), std::env::vars(), &o).map_err(anyhow::Error::msg)?;
            println!("{}: ok. Effective configuration:\n", file.display());
            print!("{}", toml::to_string_pretty(&cfg)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::User(cmd) => {
            let cfg = load_config(&cli, None)?;
            init_logging(cfg.log_format);
            runtime()?.block_on(user_command(&cfg, cmd))
        }
        Command::Node(cmd) => {
            let cfg = load_config(&cli, None)?;
            init_logging(cfg.log_format);
            runtime()?.block_on(node_command(&cfg, cmd))
        }
        Command::Audit(AuditCommand::Verify) => {
            let cfg = load_config(&cli, None)?;
            init_logging(cfg.log_format);
            runtime()?.block_on(async {
                let pool = open_existing(&cfg).await?;
                match audit::verify(&pool).await? {
                    Verdict::Intact { rows, last_hash } => {
                        println!("audit log intact: {rows} rows verified; last hash {last_hash}");
                        Ok(ExitCode::SUCCESS)
                    }
                    Verdict::Broken { id, reason } => {
                        println!("audit log TAMPERED at row {id}: {reason}");
                        Ok(ExitCode::FAILURE)
                    }
                }
            })
        }
    }
}

/// Opens the database of an installation (creating the data directory if needed).
async fn open_existing(cfg: &Config) -> anyhow::Result<sqlx::AnyPool> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    Ok(db::open(&cfg.database_url()).await?)
}

fn read_password(generate: bool, min_len: usize) -> anyhow::Result<(String, bool)> {
    if generate {
        return Ok((auth::generate_password(), true));
    }
    let pw = if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("New password: ")?;
        let b = rpassword::prompt_password("Again: ")?;
        if a != b {
            bail!("the two passwords differ");
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    store::validate_password(&pw, min_len)?;
    Ok((pw, false))
}

fn cli_event(action: &'static str, detail: serde_json::Value) -> Event {
    Event {
        action,
        address: Some("cli".into()),
        detail: Some(detail),
        ..Default::default()
    }
}

async fn user_command(cfg: &Config, cmd: &UserCommand) -> anyhow::Result<ExitCode> {
    let pool = open_existing(cfg).await?;
    let clocks = RealClocks;
    let log = AuditLog::new();
    match cmd {
        UserCommand::Add {
            username,
            role,
            generate_password,
        } => {
            let role = Role::parse(role).with_context(|| {
                format!("unknown role {role:?}: admin, operator, reviewer or member")
            })?;
            store::validate_username(username)?;
            let (pw, generated) = read_password(*generate_password, cfg.auth.min_password_len)?;
            let shown = pw.clone();
            let hash = tokio::task::spawn_blocking(move || auth::hash_password(&pw)).await?;
            let now = clocks.realtime_ms();
            let u = store::create_user(&pool, username, role, &hash, now).await?;
            log.append(
                &pool,
                now,
                cli_event(
                    "user.create",
                    serde_json::json!({ "user": u.username, "role": role, "via": "cli" }),
                ),
            )
            .await?;
            println!("created user {} ({})", u.username, role.as_str());
            if generated {
                println!("password: {shown}");
            }
        }
        UserCommand::Passwd {
            username,
            generate_password,
        } => {
            let (u, _) = store::user_by_name(&pool, username)
                .await?
                .with_context(|| format!("no user {username:?}"))?;
            let (pw, generated) = read_password(*generate_password, cfg.auth.min_password_len)?;
            let shown = pw.clone();
            let hash = tokio::task::spawn_blocking(move || auth::hash_password(&pw)).await?;
            let now = clocks.realtime_ms();
            store::set_password(&pool, u.id, &hash, now, None).await?;
            log.append(
                &pool,
                now,
                cli_event(
                    "user.password",
                    serde_json::json!({ "user": u.username, "via": "cli" }),
                ),
            )
            .await?;
            println!(
                "password of {} changed; their sessions were ended",
                u.username
            );
            if generated {
                println!("password: {shown}");
            }
        }
        UserCommand::List => {
            println!("{:<24} {:<9} {:<8} cameras", "username", "role", "status");
            for u in store::list_users(&pool).await? {
                let cams = store::granted_camera_ids(&pool, u.id).await?;
                let cams = if u.role == Role::Admin {
                    "all".to_owned()
                } else {
                    cams.iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let status = if u.disabled { "disabled" } else { "active" };
                println!(
                    "{:<24} {:<9} {:<8} {cams}",
                    u.username,
                    u.role.as_str(),
                    status
                );
            }
        }
    }
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn node_command(cfg: &Config, cmd: &NodeCommand) -> anyhow::Result<ExitCode> {
    use crate::federation::{store as nodes, token};
    let pool = open_existing(cfg).await?;
    let clocks = RealClocks;
    let log = AuditLog::new();
    match cmd {
        NodeCommand::Add { name, level } => {
            nodes::validate_name(name)?;
            nodes::validate_level(level)?;
            let pin = token::own_pin(cfg)?;
            let t = token::JoinToken::generate(pin);
            let now = clocks.realtime_ms();
            let n = nodes::create(&pool, name, level, &auth::secret_hash(&t.secret), now).await?;
            log.append(
                &pool,
                now,
                cli_event(
                    "node.add",
                    serde_json::json!({ "node": n.name, "level": n.level, "via": "cli" }),
                ),
            )
            .await?;
            println!("{}", t.encode());
        }
        NodeCommand::List => {
            println!(
                "{:<24} {:<12} {:<6} {:<25} address",
                "name", "level", "link", "since"
            );
            for n in nodes::list(&pool).await? {
                let since = n
                    .link_since_ms
                    .map(crate::api::rfc3339)
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<24} {:<12} {:<6} {:<25} {}",
                    n.name,
                    n.level,
                    if n.link_up { "up" } else { "down" },
                    since,
                    n.link_address.as_deref().unwrap_or("-")
                );
            }
        }
        NodeCommand::Remove { name } => {
            let n = nodes::by_name(&pool, name).await?;
            nodes::delete(&pool, n.id).await?;
            log.append(
                &pool,
                clocks.realtime_ms(),
                cli_event(
                    "node.remove",
                    serde_json::json!({ "node": n.name, "level": n.level, "via": "cli" }),
                ),
            )
            .await?;
            println!(
                "removed node {}; a running server ends its link within {} s",
                n.name,
                crate::federation::CHECK_EVERY.as_secs()
            );
        }
    }
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}
