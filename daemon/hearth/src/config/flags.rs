//! The flags of `hearth serve` and their environment variables (clap puts
//! a flag over its variable): each sets one key of the configuration, over
//! the file. A setting needs no flag; one that has one is a field here and a
//! line in `apply`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Config;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// The configuration file (TOML) [default: /etc/hearth/hearth.toml when
    /// it exists]. Flags and environment variables go over it.
    #[arg(long, env = "HEARTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the configuration (file, environment, flags), print the
    /// result as TOML and exit without starting.
    #[arg(long)]
    pub check_config: bool,
    /// Address to listen on (port 0 picks a free port) [server.listen; default 127.0.0.1:7700].
    #[arg(long, env = "HEARTH_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where the store and the code live [storage.data_dir; default ~/.local/share/hearth].
    #[arg(long, env = "HEARTH_DATA")]
    pub data_dir: Option<PathBuf>,
    /// Python interpreter for workers [runtimes.python; default python3 on PATH, resolved to its real path].
    #[arg(long, env = "HEARTH_PYTHON")]
    pub python: Option<PathBuf>,
    /// Node.js for workers [runtimes.node; default node on PATH].
    #[arg(long, env = "HEARTH_NODE")]
    pub node: Option<PathBuf>,
    /// Lua 5.4 for workers [runtimes.lua; default lua5.4 on PATH].
    #[arg(long, env = "HEARTH_LUA")]
    pub lua: Option<PathBuf>,
    /// Largest function call body, in bytes [server.max_body; default 16 MiB].
    #[arg(long, env = "HEARTH_MAX_BODY")]
    pub max_body: Option<usize>,
    /// On SIGTERM, how long calls in flight may take to finish, e.g. 30s
    /// [server.shutdown_grace; default 30s].
    #[arg(long, env = "HEARTH_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// Seconds a version keeps its warm workers after it stops being live
    /// (rolling back to it within that time is immediate) [pools.drain_grace; default 120].
    #[arg(long, env = "HEARTH_DRAIN_GRACE")]
    pub drain_grace: Option<f64>,
    /// Idle interpreters kept started per runtime (Python, Node, Lua) with no
    /// function loaded, so a new worker only has to load its code
    /// [pools.generic_workers; default 2].
    #[arg(long, env = "HEARTH_GENERIC_WORKERS")]
    pub generic_workers: Option<usize>,
    /// Most workers with code loaded across every function; past it, the
    /// least recently used function's idle workers make room
    /// [pools.max_workers_total; default: one per 16 MiB of memory, 256
    /// to 4,096].
    #[arg(long, env = "HEARTH_MAX_WORKERS_TOTAL")]
    pub max_workers_total: Option<usize>,
    /// Run every worker as this user. By default (daemon running as
    /// root) each version's workers get a user and group of their own,
    /// uid = gid = the uid base + the version's id [isolation.worker_user].
    #[arg(long, env = "HEARTH_WORKER_USER")]
    pub worker_user: Option<String>,
    /// First uid/gid of the per-version worker users [isolation.worker_uid_base; default 1500000].
    #[arg(long, env = "HEARTH_WORKER_UID_BASE")]
    pub worker_uid_base: Option<u32>,
    /// Do not put workers in cgroups (memory, CPU and process limits
    /// then rely on rlimits alone) [isolation.cgroups = false].
    #[arg(long)]
    pub no_cgroups: bool,
    /// Milliseconds between SIGTERM and SIGKILL when a worker is stopped
    /// at its deadline [isolation.kill_grace; default 1000].
    #[arg(long, env = "HEARTH_KILL_GRACE_MS")]
    pub kill_grace_ms: Option<u64>,
    /// Management requests allowed per token: N/s, N/m or "N/s burst M", 0
    /// for no limit [auth.api_rate; default "100/s burst 200"].
    #[arg(long, env = "HEARTH_API_RATE")]
    pub api_rate: Option<String>,
    /// A host name the management API answers to, besides IP addresses
    /// and localhost (repeat for more; `*` for any) [server.allowed_hosts].
    #[arg(long = "allowed-host")]
    pub allowed_hosts: Vec<String>,
    /// Most open connections; past it 64 more are served for the
    /// management API only, and others get 503 [server.max_connections; default 4096].
    #[arg(long, env = "HEARTH_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Async threads serving connections, each with workers pinned to its
    /// CPU; 0 for none [server.cells; default one per CPU].
    #[arg(long, env = "HEARTH_CELLS")]
    pub cells: Option<usize>,
    /// Seconds a request's head may take to arrive (also how long an
    /// HTTP/1.1 keep-alive connection waits for its next request)
    /// [server.header_timeout; default 30].
    #[arg(long, env = "HEARTH_HEADER_TIMEOUT")]
    pub header_timeout: Option<f64>,
    /// Seconds a connection with no request in flight may stay silent
    /// [server.idle_timeout; default 60].
    #[arg(long, env = "HEARTH_IDLE_TIMEOUT")]
    pub idle_timeout: Option<f64>,
    /// Serve HTTPS only, with this PEM certificate chain (needs --tls-key) [server.tls_cert].
    #[arg(long, env = "HEARTH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert [server.tls_key].
    #[arg(long, env = "HEARTH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest management request body, in bytes [server.max_api_body; default 96 MiB].
    #[arg(long, env = "HEARTH_MAX_API_BODY")]
    pub max_api_body: Option<usize>,
    /// Deploys whose bodies are received (and held in memory) at once
    /// [server.max_concurrent_deploys; default 2].
    #[arg(long, env = "HEARTH_MAX_CONCURRENT_DEPLOYS")]
    pub max_concurrent_deploys: Option<usize>,
    /// Seconds a deploy waits for its turn before a 503
    /// [server.deploy_wait; default 30].
    #[arg(long, env = "HEARTH_DEPLOY_WAIT")]
    pub deploy_wait: Option<f64>,
    /// gc keeps the last N versions of each function [retention.keep_versions; default 10].
    #[arg(long, env = "HEARTH_KEEP_VERSIONS")]
    pub keep_versions: Option<u32>,
    /// gc keeps every version in each function's last M release entries
    /// [retention.keep_releases; default 20].
    #[arg(long, env = "HEARTH_KEEP_RELEASES")]
    pub keep_releases: Option<u32>,
    /// Seconds between the daemon's gc runs; 0: only `hearth gc`
    /// [retention.gc_interval; default 3600].
    #[arg(long, env = "HEARTH_GC_INTERVAL")]
    pub gc_interval: Option<f64>,
    /// Seconds of per-minute statistics kept [stats.retention; default 8 days].
    #[arg(long, env = "HEARTH_STATS_RETENTION")]
    pub stats_retention: Option<f64>,
    /// Seconds between writes of the statistics to the store
    /// [stats.flush_interval; default 5].
    #[arg(long, env = "HEARTH_STATS_FLUSH_INTERVAL")]
    pub stats_flush_interval: Option<f64>,
    /// Do not count metrics; `GET /metrics` answers 404 [metrics.enabled = false].
    #[arg(long)]
    pub no_metrics: bool,
    /// Do not record calls [records.enabled = false].
    #[arg(long)]
    pub no_records: bool,
    /// Do not keep call statistics [stats.enabled = false].
    #[arg(long)]
    pub no_stats: bool,
    /// Log filter, e.g. info or debug [log.level; default info; RUST_LOG is read when HEARTH_LOG is not set].
    #[arg(long, env = "HEARTH_LOG")]
    pub log_level: Option<String>,
    /// Log lines as text (human-readable) or json [log.format; default text].
    #[arg(long, env = "HEARTH_LOG_FORMAT", value_enum)]
    pub log_format: Option<super::LogFormat>,
    /// Call records waiting to be written, at most; past it records are
    /// dropped and counted [records.queue_size; default 10000].
    #[arg(long, env = "HEARTH_RECORDS_QUEUE_SIZE")]
    pub records_queue_size: Option<usize>,
    /// Most KiB of output kept per call [records.max_output_kb; default 64].
    #[arg(long, env = "HEARTH_RECORDS_MAX_OUTPUT_KB")]
    pub records_max_output_kb: Option<usize>,
    /// Call records older than this are removed, e.g. 7d or 12h; 0s: no
    /// limit [records.max_age; default 7days].
    #[arg(long, env = "HEARTH_RECORDS_MAX_AGE", value_parser = humantime::parse_duration)]
    pub records_max_age: Option<Duration>,
    /// Bytes of call records kept per function, the oldest going first; 0:
    /// no limit [records.max_bytes_per_function; default 67108864].
    #[arg(long, env = "HEARTH_RECORDS_MAX_BYTES_PER_FUNCTION")]
    pub records_max_bytes_per_function: Option<u64>,
}

/// Each flag: its configuration key, its flag, its variable.
const ORIGINS: &[(&str, &str, &str)] = &[
    ("server.listen", "--listen", "HEARTH_LISTEN"),
    ("server.max_body", "--max-body", "HEARTH_MAX_BODY"),
    (
        "server.shutdown_grace",
        "--shutdown-grace",
        "HEARTH_SHUTDOWN_GRACE",
    ),
    ("storage.data_dir", "--data-dir", "HEARTH_DATA"),
    ("runtimes.python", "--python", "HEARTH_PYTHON"),
    ("runtimes.node", "--node", "HEARTH_NODE"),
    ("runtimes.lua", "--lua", "HEARTH_LUA"),
    ("pools.drain_grace", "--drain-grace", "HEARTH_DRAIN_GRACE"),
    (
        "pools.generic_workers",
        "--generic-workers",
        "HEARTH_GENERIC_WORKERS",
    ),
    (
        "pools.max_workers_total",
        "--max-workers-total",
        "HEARTH_MAX_WORKERS_TOTAL",
    ),
    (
        "isolation.worker_user",
        "--worker-user",
        "HEARTH_WORKER_USER",
    ),
    (
        "isolation.worker_uid_base",
        "--worker-uid-base",
        "HEARTH_WORKER_UID_BASE",
    ),
    ("isolation.cgroups", "--no-cgroups", ""),
    ("records.enabled", "--no-records", ""),
    ("stats.enabled", "--no-stats", ""),
    ("metrics.enabled", "--no-metrics", ""),
    (
        "isolation.kill_grace",
        "--kill-grace-ms",
        "HEARTH_KILL_GRACE_MS",
    ),
    ("log.level", "--log-level", "HEARTH_LOG (or RUST_LOG)"),
    ("log.format", "--log-format", "HEARTH_LOG_FORMAT"),
    (
        "records.queue_size",
        "--records-queue-size",
        "HEARTH_RECORDS_QUEUE_SIZE",
    ),
    (
        "records.max_output_kb",
        "--records-max-output-kb",
        "HEARTH_RECORDS_MAX_OUTPUT_KB",
    ),
    (
        "records.max_age",
        "--records-max-age",
        "HEARTH_RECORDS_MAX_AGE",
    ),
    (
        "records.max_bytes_per_function",
        "--records-max-bytes-per-function",
        "HEARTH_RECORDS_MAX_BYTES_PER_FUNCTION",
    ),
    ("auth.api_rate", "--api-rate", "HEARTH_API_RATE"),
    (
        "server.max_api_body",
        "--max-api-body",
        "HEARTH_MAX_API_BODY",
    ),
    (
        "server.max_concurrent_deploys",
        "--max-concurrent-deploys",
        "HEARTH_MAX_CONCURRENT_DEPLOYS",
    ),
    ("server.deploy_wait", "--deploy-wait", "HEARTH_DEPLOY_WAIT"),
    (
        "retention.keep_versions",
        "--keep-versions",
        "HEARTH_KEEP_VERSIONS",
    ),
    (
        "retention.keep_releases",
        "--keep-releases",
        "HEARTH_KEEP_RELEASES",
    ),
    (
        "retention.gc_interval",
        "--gc-interval",
        "HEARTH_GC_INTERVAL",
    ),
    (
        "stats.retention",
        "--stats-retention",
        "HEARTH_STATS_RETENTION",
    ),
    (
        "stats.flush_interval",
        "--stats-flush-interval",
        "HEARTH_STATS_FLUSH_INTERVAL",
    ),
    ("server.allowed_hosts", "--allowed-host", ""),
    (
        "server.max_connections",
        "--max-connections",
        "HEARTH_MAX_CONNECTIONS",
    ),
    ("server.cells", "--cells", "HEARTH_CELLS"),
    (
        "server.header_timeout",
        "--header-timeout",
        "HEARTH_HEADER_TIMEOUT",
    ),
    (
        "server.idle_timeout",
        "--idle-timeout",
        "HEARTH_IDLE_TIMEOUT",
    ),
    ("server.tls_cert", "--tls-cert", "HEARTH_TLS_CERT"),
    ("server.tls_key", "--tls-key", "HEARTH_TLS_KEY"),
];

impl ServeArgs {
    /// Put the flags (and their variables) over `config`; returns the keys
    /// they set.
    pub fn apply(&self, config: &mut Config) -> Vec<&'static str> {
        let mut set = Vec::new();
        macro_rules! over {
            ($key:literal, $value:expr, $field:expr) => {
                if let Some(v) = $value {
                    $field = v;
                    set.push($key);
                }
            };
        }
        over!("server.listen", self.listen, config.server.listen);
        over!("server.max_body", self.max_body, config.server.max_body);
        over!(
            "server.shutdown_grace",
            self.shutdown_grace,
            config.server.shutdown_grace
        );
        over!(
            "storage.data_dir",
            self.data_dir.clone().map(Some),
            config.storage.data_dir
        );
        over!(
            "runtimes.python",
            self.python.clone().map(Some),
            config.runtimes.python
        );
        over!(
            "runtimes.node",
            self.node.clone().map(Some),
            config.runtimes.node
        );
        over!(
            "runtimes.lua",
            self.lua.clone().map(Some),
            config.runtimes.lua
        );
        over!(
            "pools.drain_grace",
            self.drain_grace
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, 1e9))),
            config.pools.drain_grace
        );
        over!(
            "pools.generic_workers",
            self.generic_workers,
            config.pools.generic_workers
        );
        over!(
            "pools.max_workers_total",
            self.max_workers_total,
            config.pools.max_workers_total
        );
        over!(
            "isolation.worker_user",
            self.worker_user.clone().map(Some),
            config.isolation.worker_user
        );
        over!(
            "isolation.worker_uid_base",
            self.worker_uid_base,
            config.isolation.worker_uid_base
        );
        over!(
            "isolation.cgroups",
            self.no_cgroups.then_some(false),
            config.isolation.cgroups
        );
        over!(
            "metrics.enabled",
            self.no_metrics.then_some(false),
            config.metrics.enabled
        );
        over!(
            "records.enabled",
            self.no_records.then_some(false),
            config.records.enabled
        );
        over!(
            "stats.enabled",
            self.no_stats.then_some(false),
            config.stats.enabled
        );
        over!(
            "isolation.kill_grace",
            self.kill_grace_ms.map(Duration::from_millis),
            config.isolation.kill_grace
        );
        over!("auth.api_rate", self.api_rate.clone(), config.auth.api_rate);
        over!(
            "server.max_api_body",
            self.max_api_body,
            config.server.max_api_body
        );
        over!(
            "server.max_concurrent_deploys",
            self.max_concurrent_deploys,
            config.server.max_concurrent_deploys
        );
        over!(
            "server.deploy_wait",
            self.deploy_wait
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, 1e6))),
            config.server.deploy_wait
        );
        over!(
            "retention.keep_versions",
            self.keep_versions,
            config.retention.keep_versions
        );
        over!(
            "retention.keep_releases",
            self.keep_releases,
            config.retention.keep_releases
        );
        over!(
            "retention.gc_interval",
            self.gc_interval
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, 1e9))),
            config.retention.gc_interval
        );
        over!(
            "stats.retention",
            self.stats_retention
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, 1e10))),
            config.stats.retention
        );
        over!(
            "stats.flush_interval",
            self.stats_flush_interval
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, 1e6))),
            config.stats.flush_interval
        );
        over!(
            "server.allowed_hosts",
            (!self.allowed_hosts.is_empty()).then(|| self.allowed_hosts.clone()),
            config.server.allowed_hosts
        );
        over!(
            "server.max_connections",
            self.max_connections,
            config.server.max_connections
        );
        over!("server.cells", self.cells.map(Some), config.server.cells);
        let seconds = |s: f64| Duration::from_secs_f64(s.clamp(0.1, 1e6));
        over!(
            "server.header_timeout",
            self.header_timeout.map(seconds),
            config.server.header_timeout
        );
        over!(
            "server.idle_timeout",
            self.idle_timeout.map(seconds),
            config.server.idle_timeout
        );
        over!(
            "server.tls_cert",
            self.tls_cert.clone().map(Some),
            config.server.tls_cert
        );
        over!(
            "server.tls_key",
            self.tls_key.clone().map(Some),
            config.server.tls_key
        );
        let rust_log = || std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
        over!(
            "log.level",
            self.log_level.clone().or_else(rust_log),
            config.log.level
        );
        over!("log.format", self.log_format, config.log.format);
        over!(
            "records.queue_size",
            self.records_queue_size,
            config.records.queue_size
        );
        over!(
            "records.max_output_kb",
            self.records_max_output_kb,
            config.records.max_output_kb
        );
        over!(
            "records.max_age",
            self.records_max_age,
            config.records.max_age
        );
        over!(
            "records.max_bytes_per_function",
            self.records_max_bytes_per_function,
            config.records.max_bytes_per_function
        );
        set
    }

    /// "--flag or VARIABLE" for a key that a flag sets.
    pub fn origin_of(key: &str) -> String {
        match ORIGINS.iter().find(|(k, _, _)| *k == key) {
            Some((_, flag, "")) => (*flag).to_owned(),
            Some((_, flag, var)) => format!("{flag} or {var}"),
            None => "a flag".to_owned(),
        }
    }
}
