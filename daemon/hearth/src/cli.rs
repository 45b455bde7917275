//! The `hearth` command line: `serve` runs the daemon; every other command is
//! a client of its HTTP API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use clap::{Parser, Subcommand};
use hyper::Method;
use serde::Deserialize;

use crate::client::{Client, ClientError, DEFAULT_ADDR};
use crate::daemon::{self, ServeConfig};
use hearth_api::bundle::Bundle;
use hearth_api::manifest::MANIFEST_FILE;
use hearth_api::{
    AliasRequest, BatchItem, BatchPublishRequest, DeployRequest, PublishRequest, RollbackRequest,
    SplitRequest,
};
use hearth_engine::publish::{AliasOutcome, DeployOutcome, ReleaseOutcome};
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
        /// Seconds a version keeps its warm workers after it stops being live
        /// (rolling back to it within that time is immediate).
        #[arg(long, default_value_t = hearth_engine::publish::DEFAULT_DRAIN_GRACE.as_secs_f64())]
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
        } => deploy(&client, &dir, message, !no_publish).await,
        Command::Invoke { target, data, log } => invoke(&client, &target, &data, log).await,
        Command::List { json } => list(&client, json).await,
        Command::Versions { name, json } => versions(&client, &name, json).await,
        Command::Publish {
            name,
            version,
            batch,
            message,
        } => match (name, version, batch) {
            (_, _, Some(file)) => publish_batch(&client, &file, message).await,
            (Some(name), Some(version), None) => {
                let out: ReleaseOutcome = client
                    .post(
                        &format!("/api/v1/functions/{name}/publish"),
                        &PublishRequest { version, message },
                    )
                    .await?;
                print_release(&out);
                Ok(())
            }
            _ => bail!("give NAME --version N, or --batch FILE"),
        },
        Command::App {
            name,
            max_workers,
            memory_mb,
            cpu_percent,
        } => app(&client, name, max_workers, memory_mb, cpu_percent).await,
        Command::Alias {
            name,
            alias,
            version,
            split,
            weight,
            message,
        } => {
            let body = AliasRequest {
                version,
                split: split
                    .zip(weight)
                    .map(|(version, weight)| SplitRequest { version, weight }),
                message,
            };
            let out: AliasOutcome = client
                .post(&format!("/api/v1/functions/{name}/aliases/{alias}"), &body)
                .await?;
            let split = match out.target.split {
                Some((v, w)) => format!(", {w}% of calls to version {v}"),
                None => String::new(),
            };
            println!(
                "{}@{} -> version {}{split}",
                out.function, out.alias, out.target.version
            );
            Ok(())
        }
        Command::Dev { dir, debounce_ms } => {
            dev(&client, &dir, Duration::from_millis(debounce_ms)).await
        }
        Command::Rollback { name, message } => {
            let out: ReleaseOutcome = client
                .post(
                    &format!("/api/v1/functions/{name}/rollback"),
                    &RollbackRequest { message },
                )
                .await?;
            print_release(&out);
            Ok(())
        }
        Command::History { name, json } => history(&client, &name, json).await,
    }
}

fn when(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn size(bytes: u64) -> String {
    if bytes < 10 * 1024 {
        format!("{bytes} B")
    } else if bytes < 10 * 1024 * 1024 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{} MiB", bytes / (1024 * 1024))
    }
}

/// Print rows as aligned columns.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

async fn deploy(client: &Client, dir: &Path, message: String, publish: bool) -> anyhow::Result<()> {
    let shown = dir.display().to_string();
    let located = |e: &dyn std::fmt::Display| {
        let text = e.to_string();
        if text.starts_with(MANIFEST_FILE) {
            format!("{}/{text}", shown.trim_end_matches('/'))
        } else {
            format!("{shown}: {text}")
        }
    };
    if !dir.is_dir() {
        bail!("{shown} is not a directory; give the directory that holds the function's {MANIFEST_FILE}");
    }
    let bundle = Bundle::from_dir(dir).map_err(|e| anyhow::anyhow!(located(&e)))?;
    let manifest = bundle
        .validate()
        .map_err(|e| anyhow::anyhow!(located(&e)))?;
    eprintln!(
        "deploying {} from {shown} ({} files, {}) to {}…",
        manifest.name,
        bundle.files.len(),
        size(bundle.size()),
        client.addr()
    );
    let request = DeployRequest {
        files: bundle.files,
        message,
        publish,
    };
    let mut last = None;
    client
        .post_lines("/api/v1/deploy", &request, |line| {
            if let Some(message) = line.get("progress").and_then(|p| p.as_str()) {
                eprintln!("  {message}");
            } else {
                last = Some(line);
            }
        })
        .await
        .map_err(|e| match e {
            ClientError::Api(detail)
                if detail.code == "bad_manifest" || detail.code == "bad_bundle" =>
            {
                anyhow::anyhow!(located(&ClientError::Api(detail)))
            }
            e => e.into(),
        })?;
    let Some(mut last) = last else {
        bail!(
            "the daemon at {} ended the deploy without a result; its log says why",
            client.addr()
        );
    };
    if let Some(error) = last.get_mut("error").map(serde_json::Value::take) {
        let detail: hearth_api::ErrorDetail = serde_json::from_value(error)?;
        if detail.code == "bad_manifest" || detail.code == "bad_bundle" {
            bail!("{}", located(&ClientError::Api(Box::new(detail))));
        }
        return Err(ClientError::Api(Box::new(detail)).into());
    }
    let out: DeployOutcome = serde_json::from_value(
        last.get_mut("result")
            .map(serde_json::Value::take)
            .unwrap_or_default(),
    )
    .context("the daemon's deploy result is not in the expected shape")?;
    let stored = if out.created {
        format!(
            "stored as version {} (sha256 {})",
            out.version,
            &out.hash[..12.min(out.hash.len())]
        )
    } else {
        format!("unchanged: same code as version {}", out.version)
    };
    let loaded = out
        .load_ms
        .map(|ms| format!(", loaded in {ms:.0} ms"))
        .unwrap_or_default();
    let state = match (out.live, out.previous) {
        (true, Some(p)) if p != out.version => format!("live (was version {p})"),
        (true, _) => "live".to_owned(),
        (false, Some(p)) => format!("not published; version {p} stays live"),
        (false, None) => "not published".to_owned(),
    };
    println!("{}: {stored}{loaded}; {state}", out.function);
    Ok(())
}

fn read_data(data: &str) -> anyhow::Result<Vec<u8>> {
    if data == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("cannot read the event from standard input")?;
        Ok(buf)
    } else if let Some(path) = data.strip_prefix('@') {
        std::fs::read(path).with_context(|| format!("cannot read the event file {path}"))
    } else {
        Ok(data.as_bytes().to_vec())
    }
}

async fn invoke(client: &Client, target: &str, data: &str, log: bool) -> anyhow::Result<()> {
    let body = read_data(data)?;
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        bail!("--data is not valid JSON ({e}); for example --data '{{\"name\":\"Ada\"}}'");
    }
    let headers: &[(&str, &str)] = if log {
        &[("x-hearth-log", "tail")]
    } else {
        &[]
    };
    let resp = client
        .send_with(Method::POST, &format!("/fn/{target}"), Some(body), headers)
        .await?;
    if log {
        if let Some(text) = resp.headers.get("x-hearth-log").and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .ok()
        }) {
            eprint!("{}", String::from_utf8_lossy(&text));
        }
    }
    let resp = match client.check(resp) {
        Ok(resp) => resp,
        Err(ClientError::Api(detail)) => {
            if let Some(text) = detail.log.as_deref().filter(|_| log) {
                eprint!("{text}");
            }
            return Err(ClientError::Api(detail).into());
        }
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8_lossy(&resp.body);
    println!("{text}");
    Ok(())
}

#[derive(Deserialize)]
struct FunctionList {
    functions: Vec<FunctionRecordView>,
}

/// What the CLI reads of a function (a subset of `FunctionRecord`).
#[derive(Deserialize, serde::Serialize)]
struct FunctionRecordView {
    name: String,
    runtime: String,
    app: String,
    state: String,
    live_version: Option<u32>,
    versions: u32,
    updated_at: i64,
    #[serde(default)]
    description: String,
    /// Present while the function is paused in a crash loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct AppList {
    apps: Vec<serde_json::Value>,
}

async fn app(
    client: &Client,
    name: Option<String>,
    max_workers: Option<u32>,
    memory_mb: Option<u64>,
    cpu_percent: Option<u32>,
) -> anyhow::Result<()> {
    let list: AppList = client.get("/api/v1/apps").await?;
    let field = |a: &serde_json::Value, k: &str| a.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let Some(name) = name else {
        let rows: Vec<Vec<String>> = list
            .apps
            .iter()
            .map(|a| {
                let limit = |k: &str| match field(a, k) {
                    0 => "-".to_owned(),
                    n => n.to_string(),
                };
                vec![
                    a.get("name")
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_owned(),
                    format!("{}/{}", field(a, "workers"), limit("max_workers")),
                    limit("memory_mb"),
                    limit("cpu_percent"),
                ]
            })
            .collect();
        table(&["APP", "WORKERS/MAX", "MEMORY_MB", "CPU_PERCENT"], &rows);
        return Ok(());
    };
    let current = list
        .apps
        .iter()
        .find(|a| a.get("name").and_then(|v| v.as_str()) == Some(name.as_str()));
    let old = |k: &str| current.map(|a| field(a, k)).unwrap_or(0);
    let body = serde_json::json!({
        "max_workers": max_workers.map(u64::from).unwrap_or_else(|| old("max_workers")),
        "memory_mb": memory_mb.unwrap_or_else(|| old("memory_mb")),
        "cpu_percent": cpu_percent.map(u64::from).unwrap_or_else(|| old("cpu_percent")),
    });
    let out: serde_json::Value = client.post(&format!("/api/v1/apps/{name}"), &body).await?;
    println!(
        "{name}: max_workers {}, memory_mb {}, cpu_percent {} (0 = no limit){}",
        field(&out, "max_workers"),
        field(&out, "memory_mb"),
        field(&out, "cpu_percent"),
        if out.get("memory_cpu_enforced").and_then(|v| v.as_bool()) == Some(false)
            && (field(&out, "memory_mb") > 0 || field(&out, "cpu_percent") > 0)
        {
            "; memory and CPU are recorded but not enforced: this host has no usable cgroups"
        } else {
            ""
        }
    );
    Ok(())
}

async fn list(client: &Client, json: bool) -> anyhow::Result<()> {
    let list: FunctionList = client.get("/api/v1/functions").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list.functions)?);
        return Ok(());
    }
    if list.functions.is_empty() {
        println!("no functions yet; deploy one with `hearth deploy DIR`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .functions
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.runtime.clone(),
                f.app.clone(),
                f.live_version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                match f
                    .backoff
                    .as_ref()
                    .and_then(|b| b.get("retry_in_ms")?.as_u64())
                {
                    Some(ms) => format!("{} (retry in {:.1} s)", f.state, ms as f64 / 1000.0),
                    None => f.state.clone(),
                },
                f.versions.to_string(),
                when(f.updated_at),
                f.description.clone(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "RUNTIME",
            "APP",
            "LIVE",
            "STATE",
            "VERSIONS",
            "UPDATED",
            "DESCRIPTION",
        ],
        &rows,
    );
    Ok(())
}

#[derive(Deserialize)]
struct VersionList {
    function: String,
    live_version: Option<u32>,
    versions: Vec<VersionView>,
}

#[derive(Deserialize, serde::Serialize)]
struct VersionView {
    version: u32,
    hash: String,
    message: String,
    size_bytes: u64,
    file_count: u32,
    created_at: i64,
}

async fn versions(client: &Client, name: &str, json: bool) -> anyhow::Result<()> {
    let list: VersionList = client
        .get(&format!("/api/v1/functions/{name}/versions"))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list.versions)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                if Some(v.version) == list.live_version {
                    "* live".into()
                } else {
                    String::new()
                },
                when(v.created_at),
                format!("{} files, {}", v.file_count, size(v.size_bytes)),
                v.hash.chars().take(12).collect(),
                v.message.clone(),
            ]
        })
        .collect();
    match list.live_version {
        Some(v) => println!("{}: live version {v}", list.function),
        None => println!("{}: no live version", list.function),
    }
    table(
        &["VERSION", "LIVE", "CREATED", "SIZE", "SHA256", "MESSAGE"],
        &rows,
    );
    #[derive(Deserialize)]
    struct Aliases {
        aliases: Vec<AliasView>,
    }
    #[derive(Deserialize)]
    struct AliasView {
        alias: String,
        target: hearth_store::AliasTarget,
    }
    let aliases: Aliases = client
        .get(&format!("/api/v1/functions/{name}/aliases"))
        .await?;
    for a in aliases.aliases {
        let split = match a.target.split {
            Some((v, w)) => format!(" ({w}% of calls to version {v})"),
            None => String::new(),
        };
        println!(
            "alias {}@{} -> version {}{split}",
            list.function, a.alias, a.target.version
        );
    }
    Ok(())
}

#[derive(Deserialize)]
struct ReleaseList {
    releases: Vec<ReleaseView>,
}

#[derive(Deserialize, serde::Serialize)]
struct ReleaseView {
    version: u32,
    from_version: Option<u32>,
    action: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    alias: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    split: Option<(u32, u8)>,
    message: String,
    actor: String,
    created_at: i64,
}

async fn history(client: &Client, name: &str, json: bool) -> anyhow::Result<()> {
    let list: ReleaseList = client
        .get(&format!("/api/v1/functions/{name}/releases"))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list.releases)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .releases
        .iter()
        .map(|r| {
            vec![
                when(r.created_at),
                if r.alias.is_empty() {
                    r.action.clone()
                } else {
                    format!("{} {}", r.action, r.alias)
                },
                format!(
                    "{} -> {}{}",
                    r.from_version
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.version,
                    r.split
                        .map(|(v, w)| format!(" ({w}% to {v})"))
                        .unwrap_or_default()
                ),
                r.actor.clone(),
                r.message.clone(),
            ]
        })
        .collect();
    table(&["WHEN", "ACTION", "VERSION", "BY", "MESSAGE"], &rows);
    Ok(())
}

async fn publish_batch(client: &Client, file: &Path, message: String) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the batch file {}", file.display()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        anyhow::anyhow!(
            "{}: not valid TOML ({}); write one `function = version` line per function, e.g. hello = 2",
            file.display(),
            e.message()
        )
    })?;
    let mut releases = Vec::new();
    for (function, version) in table {
        let version = version
            .as_integer()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: `{function}` must be a version number, e.g. {function} = 2",
                    file.display()
                )
            })?;
        releases.push(BatchItem { function, version });
    }
    if releases.is_empty() {
        bail!("{}: no `function = version` lines", file.display());
    }
    #[derive(Deserialize)]
    struct Batch {
        releases: Vec<ReleaseOutcome>,
    }
    let out: Batch = client
        .post(
            "/api/v1/publish",
            &BatchPublishRequest { releases, message },
        )
        .await?;
    for r in &out.releases {
        print_release(r);
    }
    Ok(())
}

/// `hearth dev DIR`: deploy on every saved change, debounced.
async fn dev(client: &Client, dir: &Path, debounce: Duration) -> anyhow::Result<()> {
    use notify::Watcher as _;
    if !dir.is_dir() {
        bail!(
            "{} is not a directory; give the directory that holds the function's {MANIFEST_FILE}",
            dir.display()
        );
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let root = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let watched = root.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            // Changes inside hidden folders, caches and node_modules don't count.
            let relevant = event.paths.iter().any(|p| {
                let rel = p.strip_prefix(&watched).unwrap_or(p);
                !rel.components().any(|c| {
                    let c = c.as_os_str().to_string_lossy();
                    c.starts_with('.') || c == "__pycache__" || c == "node_modules"
                })
            });
            if relevant && !matches!(event.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    })
    .context("cannot watch files on this system")?;
    watcher
        .watch(&root, notify::RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    eprintln!(
        "watching {} (Ctrl-C to stop); deploying now and on every saved change",
        dir.display()
    );
    loop {
        if let Err(e) = deploy(client, dir, "hearth dev".into(), true).await {
            eprintln!("error: {}", format!("{e:#}").trim_end());
            eprintln!("(the previous version keeps serving; save again to retry)");
        }
        // Wait for a change, then for `debounce` of quiet.
        tokio::select! {
            got = rx.recv() => if got.is_none() { return Ok(()) },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        loop {
            match tokio::time::timeout(debounce, rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return Ok(()),
                Err(_) => break,
            }
        }
        eprintln!("change seen in {}", dir.display());
    }
}

fn print_release(out: &ReleaseOutcome) {
    let was = match out.previous {
        Some(p) if p != out.version => format!(" (was version {p})"),
        Some(_) => " (it already was)".to_owned(),
        None => String::new(),
    };
    println!("{}: version {} is live{was}", out.function, out.version);
}
