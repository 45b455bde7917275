//! The configuration of `hearth serve`: a TOML file (`--config`, else
//! [`DEFAULT_PATH`] when it exists), then the environment, then flags, each
//! over the one before; what none of them sets keeps its default.
//!
//! One struct per section of the file. Adding a setting is one field (with
//! its doc comment and its default in the section's `Default`); a flag or
//! an environment variable for it is optional (`flags.rs`), and if it can
//! change without a restart it is named in `reload::RELOADABLE` and applied
//! by a hook (`reload.rs`). docs/CONFIG.md lists every key.

mod duration;
mod flags;
pub mod reload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use flags::ServeArgs;

/// Read when it exists and no `--config` (or HEARTH_CONFIG) names a file.
pub const DEFAULT_PATH: &str = "/etc/hearth/hearth.toml";

/// Every setting of `hearth serve`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub storage: Storage,
    pub runtimes: Runtimes,
    pub pools: Pools,
    pub isolation: Isolation,
    pub log: Log,
    pub auth: Auth,
    pub retention: Retention,
    pub stats: Stats,
    pub records: Records,
    pub metrics: MetricsConfig,
    /// `[limits]`: defaults for the `[limits]` keys a function's
    /// hearth.toml does not set (same keys and ranges); unset here:
    /// hearth's built-in defaults. Reloadable: pools whose limits change are
    /// made again and swapped in, as a publish would.
    pub limits: toml::Table,
}

/// `[retention]`: which stored versions `hearth gc` (and the daemon, every
/// `gc_interval`) keeps. Always kept: the live version, aliased versions
/// (canaries too), and versions routed or running calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// The last this many versions of each function (at least 1).
    pub keep_versions: u32,
    /// Every version named in the last this many entries of each
    /// function's release history.
    pub keep_releases: u32,
    /// Time between the daemon's own gc runs (`"0s"`: only `hearth gc`).
    #[serde(with = "duration")]
    pub gc_interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_versions: hearth_engine::DEFAULT_KEEP_VERSIONS,
            keep_releases: hearth_engine::DEFAULT_KEEP_RELEASES,
            gc_interval: Duration::from_secs(3600),
        }
    }
}

/// `[stats]`: application statistics, kept as per-minute aggregates in
/// the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Stats {
    /// Keep per-minute call statistics; `false`: none is kept.
    pub enabled: bool,
    /// Minutes older than this are deleted (at least 7 days keeps the
    /// `7d` window whole).
    #[serde(with = "duration")]
    pub retention: Duration,
    /// Time between two writes of the statistics held in memory to the
    /// store (also written before each statistics query and at a stop).
    #[serde(with = "duration")]
    pub flush_interval: Duration,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            enabled: true,
            retention: hearth_engine::DEFAULT_RETENTION,
            flush_interval: hearth_engine::DEFAULT_FLUSH_INTERVAL,
        }
    }
}

/// `[records]`: call records (`hearth logs`, `hearth calls`), kept in
/// `<data>/calls.db`, apart from the code store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Records {
    /// Record every call (`hearth logs`, `hearth calls`); `false`: none is
    /// recorded.
    pub enabled: bool,
    /// Records waiting to be written, at most; past it a call's record is
    /// dropped (and counted), never the call slowed.
    pub queue_size: usize,
    /// Most KiB of stdout and stderr kept per call; past it the record
    /// says how many bytes were dropped.
    pub max_output_kb: usize,
    /// Records older than this are removed (`"0s"`: no age limit).
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// Once a function's records take more bytes than this, its oldest go
    /// (0: no size limit).
    pub max_bytes_per_function: u64,
}

impl Default for Records {
    fn default() -> Self {
        Records {
            enabled: true,
            queue_size: hearth_records::DEFAULT_QUEUE_SIZE,
            max_output_kb: hearth_engine::pool::CALL_LOG_MAX / 1024,
            max_age: hearth_records::DEFAULT_MAX_AGE,
            max_bytes_per_function: hearth_records::DEFAULT_MAX_BYTES_PER_FUNCTION,
        }
    }
}

/// `[metrics]`: Prometheus metrics at `GET /metrics` (docs/METRICS.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Count calls, cold starts, rejections and worker exits, and serve
    /// them at `GET /metrics` (scope `read`). `false`: nothing is counted
    /// and `/metrics` answers 404.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true }
    }
}

/// `[server]`: the HTTP listener and stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Address to listen on (port 0 picks a free port). Not used when the
    /// service manager passes a listening socket (socket activation).
    pub listen: SocketAddr,
    /// Largest function call body, in bytes.
    pub max_body: usize,
    /// On SIGTERM: how long calls in flight may take to finish before the
    /// daemon stops anyway.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Most open connections; past it 64 more are served for the management
    /// API only, and others get 503. Lowered at start to fit half the
    /// descriptor limit. Reloadable.
    pub max_connections: usize,
    /// A request's head must arrive within this; an HTTP/1.1 keep-alive
    /// connection waiting for its next request is closed after it too.
    #[serde(with = "duration")]
    pub header_timeout: Duration,
    /// A connection with no request in flight and no byte either way for
    /// this long is closed.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Host names the management API answers to besides IP addresses and
    /// localhost (DNS rebinding defence); `"*"`: any. Reloadable.
    pub allowed_hosts: Vec<String>,
    /// PEM certificate chain: with `tls_key`, the gateway serves HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Largest management request body, in bytes (a deploy carries its
    /// code, base64-encoded).
    pub max_api_body: usize,
    /// Deploys whose bodies are received (and held in memory) at once.
    pub max_concurrent_deploys: usize,
    /// How long a deploy waits for its turn before a 503.
    #[serde(with = "duration")]
    pub deploy_wait: Duration,
    /// Async threads that each serve a share of the connections with
    /// workers pinned to their CPU. Unset: one per CPU the daemon may use
    /// (none with one CPU); `0`: none (every thread and worker floats).
    pub cells: Option<usize>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            max_body: 16 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            max_connections: crate::gateway::DEFAULT_MAX_CONNECTIONS,
            header_timeout: crate::gateway::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: crate::gateway::DEFAULT_IDLE_TIMEOUT,
            allowed_hosts: Vec::new(),
            tls_cert: None,
            tls_key: None,
            max_api_body: crate::gateway::DEFAULT_MAX_API_BODY,
            max_concurrent_deploys: crate::gateway::DEFAULT_MAX_CONCURRENT_DEPLOYS,
            deploy_wait: crate::gateway::DEFAULT_DEPLOY_WAIT,
            cells: None,
        }
    }
}

/// `[auth]`: rate limits of management requests, and tokens declared here
/// (besides those made with `hearth token create`, kept in the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// Management requests per token: `N/s`, `N/m`, `"N/s burst M"`, or
    /// `"0"` for no limit. Reloadable.
    pub api_rate: String,
    /// Tokens declared by their SHA-256 (`hearth token hash`). Reloadable.
    pub tokens: Vec<ConfigToken>,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            api_rate: crate::daemon::DEFAULT_API_RATE.to_owned(),
            tokens: Vec::new(),
        }
    }
}

/// `[[auth.tokens]]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigToken {
    pub name: String,
    /// Hex SHA-256 of the token (`echo "$TOKEN" | hearth token hash`).
    pub sha256: String,
    /// admin, deploy, read, invoke.
    pub scopes: Vec<hearth_api::Scope>,
    /// Applications a deploy or invoke token is limited to (empty: all).
    #[serde(default)]
    pub apps: Vec<String>,
}

impl Auth {
    pub fn rate(&self) -> Result<hearth_auth::Rate, String> {
        hearth_auth::Rate::parse(&self.api_rate)
    }

    pub fn tokens(&self) -> Vec<hearth_auth::ConfigToken> {
        self.tokens
            .iter()
            .map(|t| hearth_auth::ConfigToken {
                name: t.name.clone(),
                sha256: t.sha256.clone(),
                scopes: t.scopes.clone(),
                apps: t.apps.clone(),
            })
            .collect()
    }
}

/// `[storage]`: where the store and the code live.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// The data directory [default: `$XDG_DATA_HOME/hearth`, else
    /// `~/.local/share/hearth`, else `./hearth-data`].
    pub data_dir: Option<PathBuf>,
}

impl Storage {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }
}

/// `[runtimes]`: the interpreters workers run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Runtimes {
    /// [default: python3 on PATH, resolved to its real path]
    pub python: Option<PathBuf>,
    /// [default: node on PATH]
    pub node: Option<PathBuf>,
    /// [default: lua5.4 on PATH]
    pub lua: Option<PathBuf>,
}

/// `[pools]`: how many workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pools {
    /// Idle interpreters kept started per runtime (Python, Node, Lua) with no
    /// function loaded. Reloadable.
    pub generic_workers: usize,
    /// Most workers with code loaded across every function. Reloadable.
    pub max_workers_total: usize,
    /// How long a version that stops being live keeps its warm workers.
    #[serde(with = "duration")]
    pub drain_grace: Duration,
}

/// The default cap on workers with code loaded: one per 16 MiB of the
/// host's memory (a Python worker's resident set is about 11 MiB, much of
/// it shared; a Lua one's 3 MiB), at least 256 and at most 4,096. 24 GiB:
/// 1,536.
pub fn default_max_workers_total() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    ((total_kib / (16 * 1024)) as usize).clamp(256, 4096)
}

impl Default for Pools {
    fn default() -> Self {
        Pools {
            generic_workers: 2,
            max_workers_total: default_max_workers_total(),
            drain_grace: hearth_engine::DEFAULT_DRAIN_GRACE,
        }
    }
}

/// Most idle pre-started interpreters per runtime.
pub const MAX_GENERIC_WORKERS: usize = 64;

/// `[isolation]`: how workers are confined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Isolation {
    /// Run every worker as this user (daemon running as root). Unset: each
    /// version's workers get a user of their own.
    pub worker_user: Option<String>,
    /// First uid/gid of the per-version worker users.
    pub worker_uid_base: u32,
    /// Put workers in cgroups when the host has them.
    pub cgroups: bool,
    /// Between SIGTERM and SIGKILL when a worker is stopped at its deadline.
    #[serde(with = "duration")]
    pub kill_grace: Duration,
}

impl Default for Isolation {
    fn default() -> Self {
        Isolation {
            worker_user: None,
            worker_uid_base: hearth_sandbox::isolation::DEFAULT_UID_BASE,
            cgroups: true,
            kill_grace: Duration::from_secs(1),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// A tracing filter: `info`, `debug`, `info,hearth_engine=debug`, ...
    /// Reloadable.
    pub level: String,
    /// `text` (human-readable) or `json` (one object a line). Every line
    /// about a call carries its function, version and request id.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info,sqlx=warn".into(),
            format: LogFormat::Text,
        }
    }
}

/// `--data-dir`, else HEARTH_DATA, else the file's `storage.data_dir`, else
/// `$XDG_DATA_HOME/hearth`, else `~/.local/share/hearth`, else `./hearth-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("hearth");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/hearth");
    }
    PathBuf::from("hearth-data")
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {}: {error}; give another one with --config or HEARTH_CONFIG", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    File {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("[limits] of the configuration: {problem} ({origin})")]
    Limits { problem: String, origin: String },
    #[error("`{key}` {problem} ({origin})")]
    Invalid {
        key: &'static str,
        problem: String,
        origin: String,
    },
}

/// A configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Keys set by a flag or an environment variable (over the file).
    pub overridden: Vec<&'static str>,
}

impl Loaded {
    /// Where the configuration was read from, for log lines.
    pub fn describe_source(&self) -> String {
        match &self.file {
            Some(f) => format!("{} with flags and environment over it", f.display()),
            None => {
                format!("defaults, flags and environment (no file; {DEFAULT_PATH} does not exist)")
            }
        }
    }
}

/// Read the file (if any), put the environment and the flags over it, and
/// validate the whole.
pub fn load(args: &ServeArgs) -> Result<Loaded, ConfigError> {
    let file = match &args.config {
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
    };
    let (mut config, text) = match &file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                path: path.clone(),
                error,
            })?;
            (parse(&text, path)?, Some(text))
        }
        None => (Config::default(), None),
    };
    let overridden = args.apply(&mut config);
    let loaded = Loaded {
        config,
        file,
        overridden,
    };
    loaded.validate(text.as_deref())?;
    Ok(loaded)
}

/// Parse a configuration file's text: unknown keys and wrong types are
/// refused with the file and line.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let section = line.and_then(|l| section_at(text, l));
        let key = line.and_then(|l| key_at(text, l));
        let message = e.message().trim().replace("unknown field", "unknown key");
        // An unknown section is reported at its own `[header]` line.
        let message = match (section, key) {
            (Some(s), Some(_)) if message.starts_with("unknown key") => {
                format!("in [{s}]: {message}")
            }
            (Some(s), Some(k)) => format!("`{s}.{k}`: {message}"),
            _ => message,
        };
        ConfigError::File {
            path: path.to_path_buf(),
            line,
            message: format!("{message}; docs/CONFIG.md lists every key"),
        }
    })
}

/// The key set on a 1-based line of `text` (`key = value`).
fn key_at(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?.trim();
    if l.starts_with('[') {
        return None;
    }
    let (key, _) = l.split_once('=')?;
    Some(key.trim().to_owned())
}

/// The `[section]` a 1-based line of `text` is in.
fn section_at(text: &str, line: usize) -> Option<String> {
    text.lines()
        .take(line)
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .map(|s| s.trim().to_owned())
        })
        .last()
}

/// The 1-based line where `section.key` is set in `text`.
fn line_of(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = dotted.split_once('.')?;
    let mut current = String::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix('[') {
            current = rest.split(']').next().unwrap_or("").trim().to_owned();
        } else if current == section
            && l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        {
            return Some(i + 1);
        }
    }
    None
}

impl Loaded {
    /// Checks beyond types: every problem names its key and where it was set.
    fn validate(&self, text: Option<&str>) -> Result<(), ConfigError> {
        let c = &self.config;
        let origin = |key: &'static str| -> String {
            if self.overridden.contains(&key) {
                format!("set by {}", ServeArgs::origin_of(key))
            } else {
                match (&self.file, text.and_then(|t| line_of(t, key))) {
                    (Some(f), Some(line)) => format!("{}, line {line}", f.display()),
                    _ => "the default".to_owned(),
                }
            }
        };
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid {
            key,
            problem,
            origin: origin(key),
        };
        if c.server.max_body == 0 {
            return Err(invalid(
                "server.max_body",
                "is 0; it must be at least 1 (bytes)".into(),
            ));
        }
        if c.pools.max_workers_total == 0 {
            return Err(invalid(
                "pools.max_workers_total",
                "is 0; it must be at least 1".into(),
            ));
        }
        if c.pools.generic_workers > MAX_GENERIC_WORKERS {
            return Err(invalid(
                "pools.generic_workers",
                format!(
                    "is {}; it must be at most {MAX_GENERIC_WORKERS}",
                    c.pools.generic_workers
                ),
            ));
        }
        if c.isolation.worker_uid_base < 1000 {
            return Err(invalid(
                "isolation.worker_uid_base",
                format!(
                    "is {}; it must be at least 1000 (below are system users)",
                    c.isolation.worker_uid_base
                ),
            ));
        }
        if c.isolation
            .worker_user
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            return Err(invalid(
                "isolation.worker_user",
                "is empty; name a user, or leave the key out for a user per version".into(),
            ));
        }
        if let Err(e) = hearth_api::manifest::check_limit_defaults(&c.limits) {
            let problem = e.to_string().replace("hearth.toml: ", "");
            let key = c
                .limits
                .keys()
                .find(|k| problem.contains(&format!("limits.{k}")))
                .map(|k| format!("limits.{k}"))
                .unwrap_or_else(|| "limits".into());
            let origin = match (&self.file, text.and_then(|t| line_of(t, &key))) {
                (Some(f), Some(line)) => format!("{}, line {line}", f.display()),
                (Some(f), None) => f.display().to_string(),
                _ => "the configuration".into(),
            };
            return Err(ConfigError::Limits { problem, origin });
        }
        if let Err(problem) = c.auth.rate() {
            return Err(invalid("auth.api_rate", problem));
        }
        if let Err(e) = hearth_auth::TokenBook::check_config_tokens(&c.auth.tokens()) {
            return Err(invalid("auth.tokens", e.to_string()));
        }
        if c.server.max_concurrent_deploys == 0 {
            return Err(invalid(
                "server.max_concurrent_deploys",
                "is 0; it must be at least 1".into(),
            ));
        }
        if c.server.max_api_body < 1024 {
            return Err(invalid(
                "server.max_api_body",
                "must be at least 1024 (bytes)".into(),
            ));
        }
        if c.retention.keep_versions == 0 {
            return Err(invalid(
                "retention.keep_versions",
                "is 0; it must be at least 1".into(),
            ));
        }
        if c.stats.retention < Duration::from_secs(3600) {
            return Err(invalid(
                "stats.retention",
                "is under an hour; keep at least \"1h\" (the default, \"8days\", keeps the 7d window whole)".into(),
            ));
        }
        if c.stats.flush_interval < Duration::from_millis(100)
            || c.stats.flush_interval > Duration::from_secs(60)
        {
            return Err(invalid(
                "stats.flush_interval",
                "must be from \"100ms\" to \"1m\" (the default is \"5s\")".into(),
            ));
        }
        if c.server.cells.is_some_and(|n| n > 1024) {
            return Err(invalid(
                "server.cells",
                "is over 1024; leave it unset for one per CPU, or set 0 for none".into(),
            ));
        }
        if c.server.max_connections == 0 {
            return Err(invalid(
                "server.max_connections",
                "is 0; it must be at least 1".into(),
            ));
        }
        if c.server.tls_cert.is_some() != c.server.tls_key.is_some() {
            return Err(invalid(
                "server.tls_cert",
                "and server.tls_key go together: set both for HTTPS, or neither".into(),
            ));
        }
        if c.records.queue_size == 0 {
            return Err(invalid(
                "records.queue_size",
                "is 0; it must be at least 1".into(),
            ));
        }
        if c.records.max_output_kb == 0 {
            return Err(invalid(
                "records.max_output_kb",
                "is 0; it must be at least 1 (KiB)".into(),
            ));
        }
        if let Err(e) = crate::telemetry::check_filter(&c.log.level) {
            return Err(invalid(
                "log.level",
                format!("is not a log filter ({e}); use for example \"info\" or \"info,hearth_engine=debug\""),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// The configuration as TOML (what `--check-config` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}
