//! `hearth serve`: open the store, find the runtimes, route the live
//! versions, serve HTTP until SIGINT or SIGTERM, then stop every worker.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tracing::info;

use std::os::unix::fs::PermissionsExt as _;

use crate::gateway::guard::{AllowedHosts, Guard};
use crate::gateway::{self, Gateway};
use hearth_auth::TokenBook;
use hearth_engine::pool::{Budget, GenericPools};
use hearth_engine::runtime::{RuntimeOptions, Runtimes};
use hearth_engine::{Engine, EngineConfig};
use hearth_sandbox::isolation::Isolation;
use hearth_store::{DynStore, SqliteStore};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
/// Default largest call body: 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub runtimes: RuntimeOptions,
    pub max_body: usize,
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
    /// Management requests per token (0: no limit).
    pub api_rate: hearth_auth::Rate,
    /// Host names the management API answers to, besides IP addresses and
    /// localhost (`*`: any).
    pub allowed_hosts: Vec<String>,
    /// Most open connections (past it, 64 more for the management API).
    pub max_connections: usize,
    /// A request's head must arrive within this.
    pub header_timeout: std::time::Duration,
    /// A connection idle this long (no request in flight) is closed.
    pub idle_timeout: std::time::Duration,
    /// Certificate chain and private key (PEM): HTTPS only.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The file in the data directory with the address the daemon listens on.
pub const ADDRESS_FILE: &str = "daemon.addr";

/// Default rate of management requests per token.
pub const DEFAULT_API_RATE: &str = "100/s burst 200";

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
    let tokens = TokenBook::open(store.clone()).await?;
    let local = tokens.ensure_local_admin(&data).await?;
    if !isolation.drops_privileges() {
        tracing::warn!(
            "workers run as this daemon's own user, so function code could read {}; run `hearth serve` as root to give each version a user of its own",
            local.path.display()
        );
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
    let engine = Engine::new(engine);
    let routed = engine.start().await?;
    // Releases written to the store by another hearth process sharing it.
    let watcher = tokio::spawn(engine.clone().follow_store());

    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "cannot listen on {}; is another `hearth serve` running there? Stop it or choose another address with --listen",
            config.listen
        )
    })?;
    let addr = listener.local_addr()?;
    // Where the CLI on this host looks to tell whose admin token is whose.
    if let Err(e) = std::fs::write(data.join(ADDRESS_FILE), format!("{addr}\n")) {
        tracing::warn!(error = %e, "cannot record the listen address in the data directory; the CLI will need HEARTH_DATA or HEARTH_TOKEN");
    }
    info!(%addr, data = %data.display(), functions = routed, "hearth listening");
    // One line on stdout for scripts and tests that wait for the daemon.
    println!(
        "hearth listening on {}://{addr} (data: {})",
        if config.tls.is_some() {
            "https"
        } else {
            "http"
        },
        data.display()
    );
    let _ = std::io::stdout().flush();

    let guard = Guard::new(
        tokens.clone(),
        config.api_rate,
        AllowedHosts(config.allowed_hosts.clone()),
        engine.events().clone(),
    );
    let conns = gateway::ConnSettings {
        limits: gateway::conn::ConnLimits::new(
            fit_connections(config.max_connections),
            gateway::RESERVED_CONNECTIONS,
        ),
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
        tls: match &config.tls {
            Some((cert, key)) => Some(gateway::tls::acceptor(cert, key)?),
            None => None,
        },
    };
    let gw = Arc::new(Gateway::new(engine.clone(), config.max_body, guard, conns));
    let refresher = tokio::spawn(refresh_access(gw.clone()));
    gateway::serve(listener, gw, shutdown_signal()).await;
    watcher.abort();
    refresher.abort();
    tokens.flush_used().await;
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

/// Raise the descriptor limit to its hard maximum, and keep connections
/// well below it: workers' pipes, the store and deploys need descriptors
/// too ("Too many open files" must not reach them).
fn fit_connections(wanted: usize) -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return wanted;
    };
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    let have = getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(s, _)| s)
        .unwrap_or(soft);
    // Half the descriptors at most, less the management reserve.
    let room = (have / 2).saturating_sub(gateway::RESERVED_CONNECTIONS as u64) as usize;
    if wanted > room {
        tracing::warn!(
            wanted,
            room,
            nofile = have,
            "max_connections lowered to fit the descriptor limit (raise LimitNOFILE / ulimit -n)"
        );
        return room.max(16);
    }
    wanted
}

/// Every 2 s: tokens and invoke modes as stored (another process sharing
/// the store, or a revocation, is seen within that time) and the last uses
/// of tokens written back.
async fn refresh_access(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        rounds += 1;
        if let Err(e) = gw.guard.tokens.refresh().await {
            tracing::warn!(error = %e, "cannot re-read the tokens; the ones known stay valid");
        }
        if let Err(e) = gw.engine.apps.refresh_invoke_modes().await {
            tracing::warn!(error = %e, "cannot re-read the applications' invoke modes");
        }
        if rounds % 5 == 0 {
            gw.guard.tokens.flush_used().await;
        }
        if rounds % 30 == 0 {
            gw.guard.limits.forget_idle();
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
