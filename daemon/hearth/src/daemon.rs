//! `hearth serve`: open the store, find the runtimes, route the live
//! versions, serve HTTP until SIGINT or SIGTERM, then stop every worker.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tracing::info;

use std::os::unix::fs::PermissionsExt as _;

use crate::gateway::{self, ApiLimits, Gateway};
use hearth_engine::pool::{Budget, GenericPools};
use hearth_engine::runtime::{RuntimeOptions, Runtimes};
use hearth_engine::{Engine, EngineConfig, Retention};
use hearth_sandbox::isolation::Isolation;
use hearth_store::{DynStore, SqliteStore};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
/// Default largest call body: 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;
/// Default largest management request body: 96 MiB (a deploy of 64 MiB of
/// files, base64-encoded).
pub const DEFAULT_MAX_API_BODY: usize = crate::gateway::DEFAULT_MAX_API_BODY;
/// Default most deploys received at once: 2.
pub const DEFAULT_MAX_CONCURRENT_DEPLOYS: usize = crate::gateway::DEFAULT_MAX_CONCURRENT_DEPLOYS;
/// Default longest wait of a deploy for its turn: 30 s.
pub const DEFAULT_DEPLOY_WAIT: std::time::Duration = crate::gateway::DEFAULT_DEPLOY_WAIT;
/// Default versions of each function gc keeps (beyond live, aliased and
/// recently released ones): 10.
pub const DEFAULT_KEEP_VERSIONS: u32 = hearth_engine::DEFAULT_KEEP_VERSIONS;
/// Default release-history entries of each function whose versions gc
/// keeps: 20.
pub const DEFAULT_KEEP_RELEASES: u32 = hearth_engine::DEFAULT_KEEP_RELEASES;
/// Default time between gc runs of the daemon: an hour.
pub const DEFAULT_GC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub runtimes: RuntimeOptions,
    /// Largest function call body, in bytes.
    pub max_body: usize,
    /// Largest management request body (a deploy carries its code), in bytes.
    pub max_api_body: usize,
    /// Most deploys whose bodies are received (and held in memory) at once.
    pub max_concurrent_deploys: usize,
    /// How long a deploy waits for its turn before it is refused with 503.
    pub deploy_wait: std::time::Duration,
    /// gc keeps the last this many versions of each function (at least 1).
    pub keep_versions: u32,
    /// gc keeps every version named in the last this many entries of each
    /// function's release history.
    pub keep_releases: u32,
    /// Time between the daemon's own gc runs (zero: only `hearth gc`).
    pub gc_interval: std::time::Duration,
    /// How long a version that stops being live keeps its warm workers.
    pub drain_grace: std::time::Duration,
    /// Idle pre-started workers kept per runtime (Python, Node).
    pub generic_workers: usize,
    /// Most workers with code loaded, across every function.
    pub max_workers_total: usize,
    /// Run every worker as this user (root only; default: one per version).
    pub worker_user: Option<String>,
    pub worker_uid_base: u32,
    /// Put workers in cgroups when the host has them.
    pub cgroups: bool,
    /// Between SIGTERM and SIGKILL at a deadline.
    pub kill_grace: std::time::Duration,
}

/// `--data-dir`, else HEARTH_DATA (both handled by clap), else
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

fn prepare_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| {
        format!(
            "cannot create the data directory {}; choose a writable one with --data-dir or HEARTH_DATA",
            path.display()
        )
    })
}

pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let data = &config.data_dir;
    prepare_dir(data)?;
    let data = data
        .canonicalize()
        .with_context(|| format!("cannot resolve the data directory {}", data.display()))?;
    prepare_dir(&data.join("code"))?;
    prepare_dir(&data.join("runtimes"))?;

    let isolation = Arc::new(Isolation::detect(
        data.join("tmp"),
        config.worker_user.as_deref(),
        config.worker_uid_base,
        config.cgroups,
        config.kill_grace,
    )?);
    info!("isolation: {}", isolation.describe());
    // Before any worker starts: what a daemon killed mid-write left behind.
    for dir in hearth_engine::leftovers::remove_at_start(
        &data.join("code"),
        &data.join("deps"),
        &isolation.tmp_root,
    ) {
        info!(kind = %dir.kind, path = %dir.path, "removed a leftover of an interrupted daemon");
    }
    let _reaper = if isolation.cgroups.is_some() {
        match hearth_sandbox::reaper::start_reaper() {
            Ok(child) => Some(child),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the reaper; if this daemon is killed, workers that changed user may outlive it until the next start");
                None
            }
        }
    } else {
        None
    };
    if isolation.drops_privileges() {
        // Workers may search the data directory (not list it) to reach
        // their code, the shims and dependencies; the store stays private.
        for dir in [&data, &data.join("code")] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
                .with_context(|| format!("cannot set the permissions of {}", dir.display()))?;
        }
        isolation.check_reachable(&data)?;
    }

    let store: DynStore = Arc::new(SqliteStore::open(&data.join("hearth.db")).await?);
    if isolation.drops_privileges() {
        restrict_store_files(&data);
    }
    let runtimes = Runtimes::discover(
        &data.join("runtimes"),
        &config.runtimes,
        isolation.drops_privileges(),
    )
    .await;
    for line in runtimes.summary() {
        info!("runtime {line}");
    }
    let generic = GenericPools::new(
        &runtimes,
        config.generic_workers,
        data.join("runtimes"),
        isolation.clone(),
    );
    generic.fill();
    let mut engine = EngineConfig::new(
        store.clone(),
        runtimes,
        data.join("code"),
        data.join("deps"),
        isolation.clone(),
    );
    engine.drain_grace = config.drain_grace;
    engine.generic = Some(generic);
    engine.budget = Some(Budget::new(config.max_workers_total));
    engine.retention = Retention {
        keep_versions: config.keep_versions.max(1),
        keep_releases: config.keep_releases,
    };
    let engine = Engine::new(engine);
    let routed = engine.start().await?;
    // Releases written to the store by another hearth process sharing it.
    let watcher = tokio::spawn(engine.clone().follow_store());
    let collector = (!config.gc_interval.is_zero())
        .then(|| tokio::spawn(collect_garbage(engine.clone(), config.gc_interval)));

    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "cannot listen on {}; is another `hearth serve` running there? Stop it or choose another address with --listen",
            config.listen
        )
    })?;
    let addr = listener.local_addr()?;
    info!(%addr, data = %data.display(), functions = routed, "hearth listening");
    // One line on stdout for scripts and tests that wait for the daemon.
    println!(
        "hearth listening on http://{addr} (data: {})",
        data.display()
    );
    let _ = std::io::stdout().flush();

    let gw = Arc::new(
        Gateway::new(engine.clone(), config.max_body).with_api_limits(ApiLimits::new(
            config.max_api_body,
            config.max_concurrent_deploys,
            config.deploy_wait,
        )),
    );
    gateway::serve(listener, gw, shutdown_signal()).await;
    watcher.abort();
    if let Some(collector) = collector {
        collector.abort();
    }
    info!("stopping: ending workers");
    isolation.stop();
    engine.shutdown();
    store.close().await;
    if let Some(cgroups) = &isolation.cgroups {
        // Workers dropped above have been killed; remove what is left.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        cgroups.cleanup();
    }
    info!("stopped");
    Ok(())
}

/// Run gc every `every` (the first time one `every` after start).
async fn collect_garbage(engine: Arc<Engine>, every: std::time::Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match engine.gc(false).await {
            Ok(report) if report.versions.is_empty() && report.dirs.is_empty() => {}
            Ok(report) => info!(
                versions = report.versions.len(),
                dirs = report.dirs.len(),
                bytes = report.bytes,
                "gc removed what no kept version needs"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "gc failed; it runs again in --gc-interval, or run `hearth gc`")
            }
        }
    }
}

/// The store and its journal files: the daemon's only (mode 0600).
fn restrict_store_files(data: &Path) {
    for name in ["hearth.db", "hearth.db-wal", "hearth.db-shm"] {
        let _ = std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o600));
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        _ = term.recv() => info!("SIGTERM received"),
    }
}
