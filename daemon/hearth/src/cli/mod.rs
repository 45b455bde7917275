//! The `hearth` command line: `serve` runs the daemon; every other command is
//! a client of its HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};

use crate::client::{Client, ClientError, DEFAULT_ADDR};

mod app;
mod calls;
mod delete;
mod deploy;
mod dev;
mod docs;
mod edit;
mod gc;
mod history;
mod invoke;
mod list;
mod logs;
mod new;
mod offline;
mod publish;
mod stats;
mod table;
mod template;
mod token;
mod versions;

mod alias;
use crate::config::{self, ServeArgs};
use crate::daemon;
use hearth_api::SplitRequest;

#[derive(Parser)]
#[command(
    name = "hearth",
    version,
    about = "hearth: deploy small functions and call them over HTTP through warm worker pools"
)]
pub struct Cli {
    /// Address of the daemon the client commands talk to.
    #[arg(long, global = true, env = "HEARTH_ADDR", default_value = DEFAULT_ADDR)]
    addr: String,
    /// API token [default: `token` in ~/.config/hearth/client.toml, else
    /// the local admin token of a daemon on this host, when readable].
    #[arg(long, global = true, env = "HEARTH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// (Internal) started by `hearth serve` when it uses cgroups: waits for
    /// the daemon to end, however it ends, then kills whatever is left in
    /// its cgroups.
    #[command(hide = true)]
    Reap {
        /// The daemon's cgroup tree, `hearth-<pid>`.
        tree: String,
    },
    /// Run the daemon: gateway, pools and store. Settings come from the
    /// configuration file, environment variables and flags, each over the
    /// one before (docs/CONFIG.md).
    Serve {
        #[command(flatten)]
        args: Box<ServeArgs>,
    },
    /// Install hearth as a systemd service: the binary, hearth.service and
    /// hearth.socket, /etc/hearth/hearth.toml (kept if present) and
    /// /var/lib/hearth (docs/SERVICE.md).
    InstallService {
        /// Install under this directory instead of / (to look at the files,
        /// or to build a package); systemctl is not run.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Print what would be written, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Listen address of hearth.socket.
        #[arg(long, default_value = "127.0.0.1:7700")]
        listen: SocketAddr,
    },
    /// Store a function directory (with its hearth.toml) as a new version and publish it.
    Deploy {
        /// The function's directory.
        dir: PathBuf,
        /// A note kept with the version and its release.
        #[arg(long, short, default_value = "")]
        message: String,
        /// Store the version without making it live.
        #[arg(long)]
        no_publish: bool,
        /// Publish even if the new [input] schema can break callers of the
        /// live version (a new required field, a removed field, a narrowed
        /// type): without it such a version is stored, not published.
        #[arg(long)]
        allow_breaking: bool,
    },
    /// Call a function (NAME for the live version, NAME@N for version N) and print its JSON result.
    Invoke {
        target: String,
        /// The event as JSON; `@FILE` reads a file, `-` reads standard input.
        #[arg(long, short, default_value = "{}")]
        data: String,
        /// Also print what the call wrote to stdout and stderr (on stderr).
        #[arg(long)]
        log: bool,
    },
    /// List functions with runtime, type, application, live version and
    /// state; the options keep those that meet every condition given.
    List {
        #[command(flatten)]
        filters: list::ListFilters,
        #[arg(long)]
        json: bool,
    },
    /// Print a function's interface document: how to call it, its input
    /// and output schemas as tables, its error codes and limits (from its
    /// live version's hearth.toml; the page at /docs/NAME has a call form).
    Docs {
        name: String,
        /// Document this version instead of the live one.
        #[arg(long)]
        version: Option<u32>,
        /// Print the OpenAPI 3.1 document instead.
        #[arg(long)]
        openapi: bool,
    },
    /// Show what changed between two versions of a function: files (as
    /// unified diffs), hearth.toml keys (schemas, errors, limits) and
    /// breaking input changes.
    Diff {
        name: String,
        from: u32,
        to: u32,
        #[arg(long)]
        json: bool,
    },
    /// Delete a function: its workers end and its calls get 404; its
    /// versions and history are kept, and deploying it again brings it back.
    Delete {
        name: String,
        /// Delete it even while other functions declare they call it.
        #[arg(long)]
        force: bool,
    },
    /// Take a function offline: every call gets 503 and its workers end; its
    /// versions, aliases and live version are kept.
    Offline { name: String },
    /// Bring an offline function back: calls go to its live version again.
    Online { name: String },
    /// Set a function's description or category (not part of any version:
    /// publishes keep it until a hearth.toml changes that key).
    Edit {
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        category: Option<String>,
    },
    /// List a function's versions, marking the live one.
    Versions {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Make a stored version live; with --batch, several at once (all or none).
    #[command(group(clap::ArgGroup::new("what").required(true).args(["version", "batch"])))]
    Publish {
        /// The function (not with --batch).
        #[arg(required_unless_present = "batch", conflicts_with = "batch")]
        name: Option<String>,
        #[arg(long)]
        version: Option<u32>,
        /// A TOML file of `function = version` lines, published in one transaction.
        #[arg(long, value_name = "FILE")]
        batch: Option<PathBuf>,
        #[arg(long, short, default_value = "")]
        message: String,
        /// Publish even if a version's [input] schema can break callers of
        /// the live one.
        #[arg(long)]
        allow_breaking: bool,
    },
    /// Point an alias (prod, canary, ...) at a version, optionally sending a
    /// share of its calls to another version; call it at /fn/NAME@ALIAS.
    Alias {
        name: String,
        alias: String,
        #[arg(long)]
        version: u32,
        /// A second version that gets --weight percent of the calls.
        #[arg(long, requires = "weight")]
        split: Option<u32>,
        /// Percent of the alias's calls that go to --split (0-100).
        #[arg(long, requires = "split", value_parser = clap::value_parser!(u8).range(0..=100))]
        weight: Option<u8>,
        #[arg(long, short, default_value = "")]
        message: String,
    },
    /// Show applications and their budgets, or set one application's
    /// budget: the most workers, memory and CPU all its functions share
    /// (0: no limit). Calls over an application's budget are refused for it
    /// alone.
    App {
        /// The application (omit to list them all).
        name: Option<String>,
        #[arg(long)]
        max_workers: Option<u32>,
        /// Memory of all its workers together, in MB (needs cgroups).
        #[arg(long)]
        memory_mb: Option<u64>,
        /// CPU of all its workers together, in percent of one core (needs cgroups).
        #[arg(long)]
        cpu_percent: Option<u32>,
        /// `open`: anyone may call its functions; `key`: calls need a token
        /// with scope invoke for it (`Authorization: Bearer`).
        #[arg(long, value_parser = ["open", "key"])]
        invoke: Option<String>,
    },
    /// Remove stored versions no retention rule keeps (and the code and
    /// dependency directories only they needed); --dry-run lists them.
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Manage API tokens (admin): create, list, revoke.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// Watch a function directory and deploy and publish it on every saved change.
    Dev {
        dir: PathBuf,
        /// Quiet time after the last change before deploying, in milliseconds.
        #[arg(long, default_value_t = 300)]
        debounce_ms: u64,
    },
    /// Make the version that was live before the current one live again.
    Rollback {
        name: String,
        #[arg(long, short, default_value = "")]
        message: String,
    },
    /// Show an application's call statistics (calls, success rate, p50/p90/p99
    /// durations, cold starts, rejections, peak concurrency) with its
    /// functions and their versions; without APP, every application.
    Stats {
        app: Option<String>,
        /// 1m, 1h, 24h or 7d.
        #[arg(long, default_value = "1h", value_parser = parse_window)]
        window: hearth_api::StatsWindow,
        #[arg(long)]
        json: bool,
    },
    /// Show what a function's calls printed: each line with its time,
    /// request id and stream, and a REPORT line per call (duration, cold
    /// start, peak memory); -f follows new calls.
    Logs {
        name: String,
        /// Keep printing calls as they are recorded.
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        filters: logs::Filters,
    },
    /// List a function's calls, newest first, with outcome and timing.
    Calls {
        name: String,
        #[command(flatten)]
        filters: logs::Filters,
    },
    /// Show a function's release history (publishes and rollbacks), newest first.
    History {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a new function directory from a template (`hearth template
    /// list` shows them); then `hearth deploy DIR`.
    New {
        /// The directory to write (new, or empty); its last component names
        /// the function unless --name is given.
        dir: PathBuf,
        #[arg(long, short)]
        template: String,
        /// The function's name [default: DIR's last component].
        #[arg(long)]
        name: Option<String>,
        /// Its application [default: default].
        #[arg(long)]
        app: Option<String>,
        /// A template variable (repeat for more): --var datasource=programs.
        #[arg(long = "var", value_name = "KEY=VALUE")]
        vars: Vec<String>,
    },
    /// Function templates: list, show, save (from a deployed function), delete.
    Template {
        #[command(subcommand)]
        command: template::TemplateCommand,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The socket a service manager passed (socket activation) is taken
    // before any other thread starts: it unsets LISTEN_FDS and LISTEN_PID.
    let socket = match &cli.command {
        Command::Serve { args } if !args.check_config => match crate::service::take_listener() {
            Ok(socket) => socket,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, socket)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let text = match e.downcast_ref::<ClientError>() {
                Some(ce) => ce.to_string(),
                None => format!("{e:#}"),
            };
            eprintln!("error: {}", text.trim_end());
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, socket: Option<std::net::TcpListener>) -> anyhow::Result<()> {
    match cli.command {
        Command::Reap { tree } => return Ok(hearth_sandbox::reaper::reap(&tree).await?),
        Command::Serve { args } => return serve(*args, socket, &cli.addr).await,
        Command::InstallService {
            root,
            dry_run,
            listen,
        } => {
            return crate::service::install::install(&crate::service::install::Plan {
                root,
                dry_run,
                listen,
            })
        }
        Command::Token {
            command: token::TokenCommand::Hash,
        } => return token::hash(),
        _ => {}
    }
    let search =
        crate::credentials::find(cli.token.as_deref(), &cli.addr).map_err(anyhow::Error::msg)?;
    let note = match (&search.found, search.unreadable.is_empty()) {
        (Some(found), _) => format!("the token sent came from {}", found.from),
        (None, false) => format!(
            "no token was sent: {} could not be read by this user",
            search.unreadable.join(", ")
        ),
        (None, true) => format!(
            "no token was found: none in HEARTH_TOKEN, --token or {}, and no daemon data directory here ({}) records {} as its address; set HEARTH_DATA to the daemon's data directory, or HEARTH_TOKEN",
            crate::credentials::client_config_path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "~/.config/hearth/client.toml".into()),
            crate::credentials::searched_dirs().join(", "),
            cli.addr
        ),
    };
    let client = Client::new(&cli.addr)?.with_token(search.found.map(|f| f.token), note);
    match cli.command {
        Command::Serve { .. } | Command::Reap { .. } | Command::InstallService { .. } => Ok(()),
        Command::Deploy {
            dir,
            message,
            no_publish,
            allow_breaking,
        } => deploy::deploy(&client, &dir, message, !no_publish, allow_breaking).await,
        Command::Invoke { target, data, log } => invoke::invoke(&client, &target, &data, log).await,
        Command::List { filters, json } => list::list(&client, &filters, json).await,
        Command::Delete { name, force } => delete::delete(&client, &name, force).await,
        Command::Offline { name } => offline::set(&client, &name, true).await,
        Command::Online { name } => offline::set(&client, &name, false).await,
        Command::Edit {
            name,
            description,
            category,
        } => edit::edit(&client, &name, description, category).await,
        Command::Versions { name, json } => versions::versions(&client, &name, json).await,
        Command::Docs {
            name,
            version,
            openapi,
        } => docs::docs(&client, &name, version, openapi).await,
        Command::Diff {
            name,
            from,
            to,
            json,
        } => docs::diff(&client, &name, from, to, json).await,
        Command::Publish {
            name,
            version,
            batch,
            message,
            allow_breaking,
        } => match (name, version, batch) {
            (_, _, Some(file)) => {
                publish::publish_batch(&client, &file, message, allow_breaking).await
            }
            (Some(name), Some(version), None) => {
                publish::publish(&client, &name, version, message, allow_breaking).await
            }
            _ => bail!("give NAME --version N, or --batch FILE"),
        },
        Command::App {
            name,
            max_workers,
            memory_mb,
            cpu_percent,
            invoke,
        } => {
            let invoke = invoke.as_deref().and_then(hearth_api::InvokeMode::parse);
            app::app(&client, name, max_workers, memory_mb, cpu_percent, invoke).await
        }
        Command::Token { command } => token::run(&client, command).await,
        Command::Gc { dry_run, json } => gc::gc(&client, dry_run, json).await,
        Command::Alias {
            name,
            alias,
            version,
            split,
            weight,
            message,
        } => {
            let split = split
                .zip(weight)
                .map(|(version, weight)| SplitRequest { version, weight });
            alias::alias(&client, &name, &alias, version, split, message).await
        }
        Command::Dev { dir, debounce_ms } => {
            dev::dev(&client, &dir, Duration::from_millis(debounce_ms)).await
        }
        Command::Rollback { name, message } => publish::rollback(&client, &name, message).await,
        Command::History { name, json } => history::history(&client, &name, json).await,
        Command::Stats { app, window, json } => stats::stats(&client, app, window, json).await,
        Command::Logs {
            name,
            follow,
            filters,
        } => logs::logs(&client, &name, &filters, follow).await,
        Command::Calls { name, filters } => calls::calls(&client, &name, &filters).await,
        Command::New {
            dir,
            template,
            name,
            app,
            vars,
        } => {
            let args = new::NewArgs {
                dir,
                template,
                name,
                app,
                vars,
            };
            new::new(&client, args).await
        }
        Command::Template { command } => template::run(&client, command).await,
    }
}

fn parse_window(text: &str) -> Result<hearth_api::StatsWindow, String> {
    hearth_api::StatsWindow::parse(text)
        .ok_or_else(|| format!("\"{text}\" is not a window; use 1m, 1h, 24h or 7d"))
}

/// `hearth serve`, or `hearth serve --check-config`.
/// `client_addr`: `--addr` / `HEARTH_ADDR`, which only client commands use;
/// a daemon started with one that is not where it listens says so.
async fn serve(
    args: ServeArgs,
    socket: Option<std::net::TcpListener>,
    client_addr: &str,
) -> anyhow::Result<()> {
    let loaded = config::load(&args)?;
    if args.check_config {
        print!("{}", loaded.config.to_toml());
        eprintln!("configuration OK: {}", loaded.describe_source());
        return Ok(());
    }
    let log = crate::telemetry::init(
        &loaded.config.log.level,
        loaded.config.log.format == config::LogFormat::Json,
    );
    let listen = loaded.config.server.listen;
    if client_addr != DEFAULT_ADDR
        && client_addr.parse::<std::net::SocketAddr>().ok() != Some(listen)
        && socket.is_none()
    {
        tracing::warn!(
            addr = client_addr,
            %listen,
            "--addr (or HEARTH_ADDR) is the address client commands talk to; hearth serve listens on {listen}: set where it listens with --listen (server.listen)"
        );
    }
    daemon::serve(daemon::Start {
        loaded,
        args,
        socket,
        log,
    })
    .await
}
