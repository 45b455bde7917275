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

use crate::api::{DeployRequest, PublishRequest, RollbackRequest};
use crate::bundle::Bundle;
use crate::client::{Client, ClientError, DEFAULT_ADDR};
use crate::daemon::{self, ServeConfig};
use crate::manifest::MANIFEST_FILE;
use crate::publish::{DeployOutcome, ReleaseOutcome};
use crate::runtime::RuntimeOptions;

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
    /// Make a stored version live.
    Publish {
        name: String,
        #[arg(long)]
        version: u32,
        #[arg(long, short, default_value = "")]
        message: String,
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
    if let Command::Serve {
        listen,
        data_dir,
        python,
        node,
        lua,
        max_body,
    } = cli.command
    {
        crate::telemetry::init();
        return daemon::serve(ServeConfig {
            listen,
            data_dir: data_dir.unwrap_or_else(daemon::default_data_dir),
            runtimes: RuntimeOptions { python, node, lua },
            max_body,
        })
        .await;
    }
    let client = Client::new(&cli.addr)?;
    match cli.command {
        Command::Serve { .. } => Ok(()),
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
            message,
        } => {
            let out: ReleaseOutcome = client
                .post(
                    &format!("/api/v1/functions/{name}/publish"),
                    &PublishRequest { version, message },
                )
                .await?;
            print_release(&out);
            Ok(())
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
        let detail: crate::api::ErrorDetail = serde_json::from_value(error)?;
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
                f.state.clone(),
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
                r.action.clone(),
                format!(
                    "{} -> {}",
                    r.from_version
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.version
                ),
                r.actor.clone(),
                r.message.clone(),
            ]
        })
        .collect();
    table(&["WHEN", "ACTION", "VERSION", "BY", "MESSAGE"], &rows);
    Ok(())
}

fn print_release(out: &ReleaseOutcome) {
    let was = match out.previous {
        Some(p) if p != out.version => format!(" (was version {p})"),
        Some(_) => " (it already was)".to_owned(),
        None => String::new(),
    };
    println!("{}: version {} is live{was}", out.function, out.version);
}
