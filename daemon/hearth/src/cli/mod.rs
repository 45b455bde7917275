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
mod deploy;
mod dev;
mod gc;
mod history;
mod invoke;
mod list;
mod publish;
mod table;
mod versions;

mod alias;
use crate::daemon::{self, ServeConfig};
use hearth_api::SplitRequest;
use hearth_engine::runtime::RuntimeOptions;

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
    /// Run the daemon: gateway, pools and store.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = daemon::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Where the store and the code live [default: ~/.local/share/hearth].
        #[arg(long, env = "HEARTH_DATA")]
        data_dir: Option<PathBuf>,
        /// Python interpreter for workers [default: python3 on PATH, resolved to its real path].
        #[arg(long, env = "HEARTH_PYTHON")]
        python: Option<PathBuf>,
        /// Node.js for workers [default: node on PATH].
        #[arg(long, env = "HEARTH_NODE")]
        node: Option<PathBuf>,
        /// Lua 5.4 for workers [default: lua5.4 on PATH].
        #[arg(long, env = "HEARTH_LUA")]
        lua: Option<PathBuf>,
        /// Largest function call body, in bytes.
        #[arg(long, default_value_t = daemon::DEFAULT_MAX_BODY)]
        max_body: usize,
        /// Largest management request body, in bytes (a deploy carries its
        /// code, base64-encoded: 64 MiB of files need about 86 MiB).
        #[arg(long, default_value_t = daemon::DEFAULT_MAX_API_BODY)]
        max_api_body: usize,
        /// Most deploys received at once (each holds its body, up to
        /// --max-api-body, in memory until its version is stored); more
        /// wait for their turn.
        #[arg(long, default_value_t = daemon::DEFAULT_MAX_CONCURRENT_DEPLOYS as u64, value_parser = clap::value_parser!(u64).range(1..))]
        max_concurrent_deploys: u64,
        /// Seconds a deploy waits for its turn (see --max-concurrent-deploys)
        /// before it is refused with 503 and Retry-After.
        #[arg(long, default_value_t = daemon::DEFAULT_DEPLOY_WAIT.as_secs())]
        deploy_wait: u64,
        /// gc keeps the last this many versions of each function (and
        /// always its live version, the versions its aliases point at and
        /// those of --keep-releases).
        #[arg(long, default_value_t = daemon::DEFAULT_KEEP_VERSIONS, value_parser = clap::value_parser!(u32).range(1..))]
        keep_versions: u32,
        /// gc keeps every version named in the last this many entries of
        /// each function's release history (so recent rollbacks work).
        #[arg(long, default_value_t = daemon::DEFAULT_KEEP_RELEASES)]
        keep_releases: u32,
        /// Seconds between the daemon's own gc runs (0: only `hearth gc`).
        #[arg(long, default_value_t = daemon::DEFAULT_GC_INTERVAL.as_secs())]
        gc_interval: u64,
        /// Seconds a version keeps its warm workers after it stops being live
        /// (rolling back to it within that time is immediate).
        #[arg(long, default_value_t = hearth_engine::DEFAULT_DRAIN_GRACE.as_secs_f64())]
        drain_grace: f64,
        /// Idle interpreters kept started per runtime (Python, Node) with no
        /// function loaded, so a new worker only has to load its code.
        #[arg(long, default_value_t = 2)]
        generic_workers: usize,
        /// Most workers with code loaded across every function; past it, the
        /// least recently used function's idle workers make room.
        #[arg(long, default_value_t = 256)]
        max_workers_total: usize,
        /// Run every worker as this user. By default (daemon running as
        /// root) each version's workers get a user and group of their own,
        /// uid = gid = --worker-uid-base + the version's id.
        #[arg(long, env = "HEARTH_WORKER_USER")]
        worker_user: Option<String>,
        /// First uid/gid of the per-version worker users.
        #[arg(long, default_value_t = hearth_sandbox::isolation::DEFAULT_UID_BASE)]
        worker_uid_base: u32,
        /// Do not put workers in cgroups (memory, CPU and process limits
        /// then rely on rlimits alone).
        #[arg(long)]
        no_cgroups: bool,
        /// Milliseconds between SIGTERM and SIGKILL when a worker is
        /// stopped at its deadline.
        #[arg(long, default_value_t = 1000)]
        kill_grace_ms: u64,
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
    /// List functions with runtime, application, live version and state.
    List {
        #[arg(long)]
        json: bool,
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
    /// Show a function's release history (publishes and rollbacks), newest first.
    History {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete the stored versions the retention policy does not keep (see
    /// hearth serve --keep-versions and --keep-releases) and the code
    /// directories, dependency installs and leftovers no kept version needs.
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match runtime.block_on(run(cli)) {
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

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Reap { tree } = &cli.command {
        return Ok(hearth_sandbox::reaper::reap(tree).await?);
    }
    if let Command::Serve {
        listen,
        data_dir,
        python,
        node,
        lua,
        max_body,
        max_api_body,
        max_concurrent_deploys,
        deploy_wait,
        keep_versions,
        keep_releases,
        gc_interval,
        drain_grace,
        generic_workers,
        max_workers_total,
        worker_user,
        worker_uid_base,
        no_cgroups,
        kill_grace_ms,
    } = cli.command
    {
        crate::telemetry::init();
        return daemon::serve(ServeConfig {
            listen,
            data_dir: data_dir.unwrap_or_else(daemon::default_data_dir),
            runtimes: RuntimeOptions { python, node, lua },
            max_body,
            max_api_body,
            max_concurrent_deploys: usize::try_from(max_concurrent_deploys).unwrap_or(usize::MAX),
            deploy_wait: Duration::from_secs(deploy_wait),
            keep_versions,
            keep_releases,
            gc_interval: Duration::from_secs(gc_interval),
            drain_grace: Duration::from_secs_f64(drain_grace.max(0.0)),
            generic_workers,
            max_workers_total,
            worker_user,
            worker_uid_base,
            cgroups: !no_cgroups,
            kill_grace: Duration::from_millis(kill_grace_ms),
        })
        .await;
    }
    let client = Client::new(&cli.addr)?;
    match cli.command {
        Command::Serve { .. } | Command::Reap { .. } => Ok(()),
        Command::Deploy {
            dir,
            message,
            no_publish,
        } => deploy::deploy(&client, &dir, message, !no_publish).await,
        Command::Invoke { target, data, log } => invoke::invoke(&client, &target, &data, log).await,
        Command::List { json } => list::list(&client, json).await,
        Command::Versions { name, json } => versions::versions(&client, &name, json).await,
        Command::Publish {
            name,
            version,
            batch,
            message,
        } => match (name, version, batch) {
            (_, _, Some(file)) => publish::publish_batch(&client, &file, message).await,
            (Some(name), Some(version), None) => {
                publish::publish(&client, &name, version, message).await
            }
            _ => bail!("give NAME --version N, or --batch FILE"),
        },
        Command::App {
            name,
            max_workers,
            memory_mb,
            cpu_percent,
        } => app::app(&client, name, max_workers, memory_mb, cpu_percent).await,
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
        Command::Gc { dry_run, json } => gc::gc(&client, dry_run, json).await,
    }
}
