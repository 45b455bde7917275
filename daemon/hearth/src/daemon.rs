//! `hearth serve`: open the store, find the runtimes, route the live
//! versions, serve HTTP; SIGHUP reloads the configuration; on SIGINT or
//! SIGTERM stop accepting, let calls in flight finish within
//! `server.shutdown_grace`, stop every worker and exit 0 (a second signal
//! stops at once). Under a service manager it reports readiness, status
//! and watchdog keep-alives (service/).

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{info, warn};

use std::os::unix::fs::PermissionsExt as _;

use crate::config::reload::{Hook, Reloader};
use crate::config::{self, Config, Loaded, ServeArgs};
use crate::gateway::guard::{AllowedHosts, Guard};
use crate::gateway::{self, ApiLimits, Gateway};
use crate::service::{self, Heartbeat, Notifier};
use crate::telemetry::LogHandle;
use hearth_auth::TokenBook;
use hearth_engine::pool::{Budget, GenericPools};
use hearth_engine::runtime::{RuntimeOptions, Runtimes};
use hearth_engine::{Engine, EngineConfig, Retention};
use hearth_sandbox::isolation::Isolation;
use hearth_store::{DynStore, SqliteStore};

/// What `hearth serve` starts from.
pub struct Start {
    /// The configuration, validated.
    pub loaded: Loaded,
    /// The flags (and environment), put over the file again at each reload.
    pub args: ServeArgs,
    /// The listening socket passed by the service manager, if any.
    pub socket: Option<std::net::TcpListener>,
    /// Changes the log filter on reload.
    pub log: Option<LogHandle>,
}

/// The file in the data directory with the address the daemon listens on
/// (the CLI on this host uses it to tell whose admin token is whose).
pub const ADDRESS_FILE: &str = "daemon.addr";

/// Default rate of management requests per token.
pub const DEFAULT_API_RATE: &str = "100/s burst 200";

fn prepare_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| {
        format!(
            "cannot create the data directory {}; choose a writable one with storage.data_dir, --data-dir or HEARTH_DATA",
            path.display()
        )
    })
}

pub async fn serve(start: Start) -> anyhow::Result<()> {
    // Handlers first: SIGHUP's default action would end the daemon.
    let signals = Signals::new()?;
    let notifier = Notifier::from_env();
    let config = start.loaded.config.clone();
    info!("configuration: {}", start.loaded.describe_source());

    let data = config.storage.data_dir();
    prepare_dir(&data)?;
    let data = data
        .canonicalize()
        .with_context(|| format!("cannot resolve the data directory {}", data.display()))?;
    prepare_dir(&data.join("code"))?;
    prepare_dir(&data.join("runtimes"))?;

    let iso = &config.isolation;
    let isolation = Arc::new(Isolation::detect(
        data.join("tmp"),
        iso.worker_user.as_deref(),
        iso.worker_uid_base,
        iso.cgroups,
        iso.kill_grace,
    )?);
    info!("isolation: {}", isolation.describe());
    // Before any pool exists: pools count their workers per cell.
    let wanted = hearth_engine::cells::resolve(config.server.cells);
    match hearth_engine::cells::start(wanted) {
        Ok(0) => info!("cells: none; connections and workers use every CPU (server.cells)"),
        Ok(n) => {
            info!(cells = n, cpus = ?hearth_engine::cells::allowed_cpus(), "cells: one async thread per CPU, each serving its connections with the workers pinned to its CPU (server.cells)")
        }
        Err(e) => {
            warn!(error = %e, "cannot start the cells; connections are served without them (server.cells)")
        }
    }
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
                warn!(error = %e, "cannot start the reaper; if this daemon is killed, workers that changed user may outlive it until the next start");
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
    tokens.set_config_tokens(config.auth.tokens()).await?;
    let local = tokens.ensure_local_admin(&data).await?;
    if !isolation.drops_privileges() {
        warn!(
            "workers run as this daemon's own user, so function code could read {}; run `hearth serve` as root to give each version a user of its own",
            local.path.display()
        );
    }
    let rt = &config.runtimes;
    let options = RuntimeOptions {
        python: rt.python.clone(),
        node: rt.node.clone(),
        lua: rt.lua.clone(),
    };
    let runtimes = Runtimes::discover(
        &data.join("runtimes"),
        &options,
        isolation.drops_privileges(),
    )
    .await;
    for line in runtimes.summary() {
        info!("runtime {line}");
    }
    let generic = GenericPools::new(
        &runtimes,
        config.pools.generic_workers,
        data.join("runtimes"),
        isolation.clone(),
        std::env::current_exe().ok(),
    );
    generic.fill();
    let budget = Budget::new(config.pools.max_workers_total);
    let mut engine = EngineConfig::new(
        store.clone(),
        runtimes,
        data.join("code"),
        data.join("deps"),
        isolation.clone(),
    );
    engine.drain_grace = config.pools.drain_grace;
    engine.stats = config.stats.enabled;
    engine.generic = Some(generic.clone());
    engine.budget = Some(budget.clone());
    engine.retention = Retention {
        keep_versions: config.retention.keep_versions.max(1),
        keep_releases: config.retention.keep_releases,
    };
    let engine = Engine::new(engine);
    // Call records: their own store, written off the call path.
    hearth_engine::pool::set_call_log_max(config.records.max_output_kb.saturating_mul(1024));
    let calls_db = data.join(hearth_records::CALLS_DB);
    let call_store: Arc<dyn hearth_records::CallStore> =
        Arc::new(hearth_records::SqliteCallStore::open(&calls_db).await?);
    if isolation.drops_privileges() {
        restrict_files(&data, hearth_records::CALLS_DB);
    }
    let recorder = Arc::new(
        hearth_records::Recorder::start(
            call_store,
            hearth_records::RecorderSettings {
                queue_size: config.records.queue_size,
                retention: hearth_records::RecordRetention {
                    max_age: config.records.max_age,
                    max_bytes_per_function: config.records.max_bytes_per_function,
                },
            },
        )
        .await,
    );
    if config.records.enabled {
        engine
            .events()
            .subscribe(Arc::new(crate::records::RecordSink(recorder.clone())));
    } else {
        info!("call records are off ([records] enabled = false): hearth logs and hearth calls find none");
    }
    // Metrics listen to events before the first call or worker start.
    let metrics = if config.metrics.enabled {
        let metrics = crate::metrics::Metrics::new()?;
        engine.events().subscribe(metrics.clone());
        Some(metrics)
    } else {
        info!("metrics are off ([metrics] enabled = false): GET /metrics answers 404");
        None
    };
    engine.set_limit_defaults(config.limits.clone()).await;
    let routed = engine.start().await?;
    // Releases written to the store by another hearth process sharing it.
    let watcher = tokio::spawn(engine.clone().follow_store());
    let gc_every = config.retention.gc_interval;
    let collector =
        (!gc_every.is_zero()).then(|| tokio::spawn(collect_garbage(engine.clone(), gc_every)));
    let (stats_stop, stats_stopped) = tokio::sync::oneshot::channel::<()>();
    let statistician = tokio::spawn(engine.clone().keep_stats(
        config.stats.flush_interval,
        config.stats.retention,
        async {
            let _ = stats_stopped.await;
        },
    ));

    let listener = match start.socket {
        Some(socket) => {
            let listener = tokio::net::TcpListener::from_std(socket)
                .context("cannot use the socket passed by the service manager")?;
            info!(
                "listening on the socket passed by the service manager (socket activation); server.listen ({}) is not used",
                config.server.listen
            );
            listener
        }
        None => tokio::net::TcpListener::bind(config.server.listen).await.with_context(|| {
            format!(
                "cannot listen on {}; is another `hearth serve` running there? Stop it or choose another address with server.listen, --listen or HEARTH_LISTEN",
                config.server.listen
            )
        })?,
    };
    let addr = listener.local_addr()?;
    if let Err(e) = std::fs::write(data.join(ADDRESS_FILE), format!("{addr}\n")) {
        warn!(error = %e, "cannot record the listen address in the data directory; the CLI will need HEARTH_DATA or HEARTH_TOKEN");
    }
    let server = &config.server;
    let tls = match (&server.tls_cert, &server.tls_key) {
        (Some(cert), Some(key)) => Some(gateway::tls::acceptor(cert, key)?),
        _ => None,
    };
    info!(%addr, data = %data.display(), functions = routed, tls = tls.is_some(), "hearth listening");
    // One line on stdout for scripts and tests that wait for the daemon.
    println!(
        "hearth listening on {}://{addr} (data: {})",
        if tls.is_some() { "https" } else { "http" },
        data.display()
    );
    let _ = std::io::stdout().flush();

    // Watchdog keep-alives go out only while the accept loop and the
    // supervisor both turn.
    let watchdog = service::watchdog_period().filter(|_| notifier.enabled());
    let beat_every = watchdog
        .map(|w| (w / 4).max(Duration::from_millis(10)))
        .unwrap_or(Duration::from_secs(2));
    let accept_beat = Heartbeat::new(beat_every);
    let supervisor_beat = Heartbeat::new(beat_every);
    let stopping = Arc::new(AtomicBool::new(false));
    notifier.ready(&status_line(&engine));
    let supervisor = tokio::spawn(supervise(engine.clone(), notifier, supervisor_beat.clone()));
    let keep_alive = watchdog.map(|period| {
        info!(
            period = %humantime::format_duration(period),
            "watchdog enabled: keep-alives while the accept loop and the supervisor run"
        );
        tokio::spawn(keep_alive(
            period,
            notifier,
            accept_beat.clone(),
            supervisor_beat,
            stopping.clone(),
        ))
    });

    let guard = Guard::new(
        tokens.clone(),
        config.auth.rate().map_err(anyhow::Error::msg)?,
        AllowedHosts(server.allowed_hosts.clone()),
        engine.events().clone(),
    );
    let conns = gateway::ConnSettings {
        limits: gateway::conn::ConnLimits::new(
            fit_connections(server.max_connections),
            gateway::RESERVED_CONNECTIONS,
        ),
        header_timeout: server.header_timeout,
        idle_timeout: server.idle_timeout,
        tls,
    };
    let gw = Arc::new(
        Gateway::new(engine.clone(), server.max_body, guard, conns)
            .with_api_limits(ApiLimits::new(
                server.max_api_body,
                server.max_concurrent_deploys,
                server.deploy_wait,
            ))
            .with_records(recorder.clone())
            .with_metrics(metrics.clone()),
    );
    let refresher = tokio::spawn(refresh_access(gw.clone()));

    let mut reloader = Reloader::default();
    reloader.hook(AccessHook(gw.clone()));
    reloader.hook(LimitsHook(engine.clone()));
    reloader.hook(PoolsHook {
        generic: generic.clone(),
        budget,
    });
    if let Some(log) = start.log {
        reloader.hook(LogHook(log));
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (force_tx, force_rx) = tokio::sync::oneshot::channel::<()>();
    let control = tokio::spawn(control(
        signals,
        Control {
            args: start.args,
            started: start.loaded,
            reloader,
            notifier,
            stopping,
            grace: config.server.shutdown_grace,
        },
        stop_tx,
        force_tx,
    ));

    let served = gateway::serve(
        listener,
        gw,
        async {
            let _ = stop_rx.await;
        },
        config.server.shutdown_grace,
        accept_beat,
    );
    let forced = tokio::select! {
        () = served => false,
        _ = force_rx => true,
    };
    control.abort();
    watcher.abort();
    refresher.abort();
    if let Some(collector) = collector {
        collector.abort();
    }
    tokens.flush_used().await;
    // Calls have finished: their statistics are written before the store
    // closes.
    let _ = stats_stop.send(());
    let _ = statistician.await;
    supervisor.abort();
    info!("stopping: ending workers");
    isolation.stop();
    engine.shutdown();
    hearth_engine::cells::stop();
    recorder.finish().await;
    store.close().await;
    if let Some(cgroups) = &isolation.cgroups {
        // Workers dropped above have been killed; remove what is left.
        tokio::time::sleep(Duration::from_millis(50)).await;
        cgroups.cleanup();
    }
    if let Some(k) = keep_alive {
        k.abort();
    }
    if forced {
        anyhow::bail!("stopped at once by a second signal; calls still in flight were cut off");
    }
    info!("stopped");
    Ok(())
}

/// Run gc every `every` (the first time one `every` after start).
async fn collect_garbage(engine: Arc<Engine>, every: Duration) {
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
                warn!(error = %e, "gc failed; it runs again after retention.gc_interval, or run `hearth gc`")
            }
        }
    }
}

/// `[limits]` defaults on reload: pools whose limits change are made again
/// and swapped in (in the background: a reload does not wait for workers).
struct LimitsHook(Arc<Engine>);

impl Hook for LimitsHook {
    fn name(&self) -> &'static str {
        "limits"
    }

    fn check(&self, new: &Config) -> Result<(), String> {
        hearth_api::manifest::check_limit_defaults(&new.limits).map_err(|e| e.to_string())
    }

    fn apply(&self, current: &Config, new: &Config) {
        if current.limits == new.limits {
            return;
        }
        let engine = self.0.clone();
        let defaults = new.limits.clone();
        tokio::spawn(async move {
            let refreshed = engine.set_limit_defaults(defaults).await;
            if !refreshed.is_empty() {
                info!(
                    versions = %refreshed.join(", "),
                    "new [limits] defaults applied: these versions' pools were made again"
                );
            }
        });
    }
}

/// Access settings on reload: the per-token rate, the allowed hosts, the
/// tokens the file declares and the connection cap.
struct AccessHook(Arc<Gateway>);

impl Hook for AccessHook {
    fn name(&self) -> &'static str {
        "access"
    }

    fn check(&self, new: &Config) -> Result<(), String> {
        new.auth.rate()?;
        TokenBook::check_config_tokens(&new.auth.tokens()).map_err(|e| e.to_string())
    }

    fn apply(&self, _current: &Config, new: &Config) {
        if let Ok(rate) = new.auth.rate() {
            self.0
                .guard
                .reconfigure(rate, AllowedHosts(new.server.allowed_hosts.clone()));
        }
        self.0.guard.tokens.replace_config_tokens(new.auth.tokens());
        self.0
            .conns
            .limits
            .set_max(fit_connections(new.server.max_connections));
    }
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
        warn!(
            wanted,
            room,
            nofile = have,
            "server.max_connections lowered to fit the descriptor limit (raise LimitNOFILE or ulimit -n)"
        );
        return room.max(16);
    }
    wanted
}

/// Every 2 s: tokens and invoke modes as stored (another process sharing
/// the store, or a revocation made elsewhere, is seen within that time)
/// and the last uses of tokens written back.
async fn refresh_access(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        rounds += 1;
        if let Err(e) = gw.guard.tokens.refresh().await {
            warn!(error = %e, "cannot re-read the tokens; the ones known stay valid");
        }
        if let Err(e) = gw.engine.apps.refresh_invoke_modes().await {
            warn!(error = %e, "cannot re-read the applications' invoke modes");
        }
        if rounds.is_multiple_of(5) {
            gw.guard.tokens.flush_used().await;
        }
        if rounds.is_multiple_of(30) {
            gw.guard.limits.forget_idle();
        }
    }
}

/// The store and its journal files: the daemon's only (mode 0600).
fn restrict_store_files(data: &Path) {
    restrict_files(data, "hearth.db");
}

/// An SQLite file and its WAL and shared-memory files: the daemon's alone.
fn restrict_files(data: &Path, db: &str) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::set_permissions(
            data.join(format!("{db}{suffix}")),
            std::fs::Permissions::from_mode(0o600),
        );
    }
}

/// The STATUS= line: functions, warm workers, calls in flight.
fn status_line(engine: &Engine) -> String {
    let workers = engine.workers();
    let warm = match &workers.budget {
        Some(b) => b.workers,
        None => workers.pools.iter().map(|p| p.idle + p.busy).sum(),
    };
    let generic: usize = workers.generic.iter().map(|g| g.idle).sum();
    format!(
        "{} functions live, {warm} warm workers, {generic} pre-started, {} calls in flight",
        engine.live_functions(),
        engine.calls_in_flight()
    )
}

/// The pool supervisor: looks at every pool (taking their locks, so a
/// wedged pool stops it), beats its heartbeat and reports the status when
/// it changed.
async fn supervise(engine: Arc<Engine>, notifier: Notifier, beat: Heartbeat) {
    let mut tick = tokio::time::interval(beat.every());
    let mut last = String::new();
    loop {
        tick.tick().await;
        let status = status_line(&engine);
        beat.beat();
        if status != last {
            notifier.status(&status);
            last = status;
        }
    }
}

/// WATCHDOG=1 every half period while both heartbeats are fresh (the
/// accept loop's is not needed once stopping has begun).
async fn keep_alive(
    period: Duration,
    notifier: Notifier,
    accept: Heartbeat,
    supervisor: Heartbeat,
    stopping: Arc<AtomicBool>,
) {
    let fresh = period / 2;
    let mut tick = tokio::time::interval(period / 2);
    loop {
        tick.tick().await;
        let accept_ok = stopping.load(Ordering::Relaxed) || accept.age() < fresh;
        let supervisor_ok = supervisor.age() < fresh;
        if accept_ok && supervisor_ok {
            notifier.watchdog();
        } else {
            warn!(
                accept_loop_idle_ms = accept.age().as_millis() as u64,
                supervisor_idle_ms = supervisor.age().as_millis() as u64,
                "watchdog keep-alive withheld: the accept loop or the pool supervisor has not run within {}; the service manager restarts hearth if this lasts",
                humantime::format_duration(fresh)
            );
        }
    }
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        let on = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("cannot handle {name}"))
        };
        Ok(Signals {
            term: on(SignalKind::terminate(), "SIGTERM")?,
            int: on(SignalKind::interrupt(), "SIGINT")?,
            hup: on(SignalKind::hangup(), "SIGHUP")?,
        })
    }
}

/// What the signal handler needs to reload and to stop.
struct Control {
    args: ServeArgs,
    started: Loaded,
    reloader: Reloader,
    notifier: Notifier,
    stopping: Arc<AtomicBool>,
    grace: Duration,
}

/// SIGHUP reloads; the first SIGTERM or SIGINT starts a graceful stop, the
/// next one stops at once.
async fn control(
    mut signals: Signals,
    c: Control,
    stop: tokio::sync::oneshot::Sender<()>,
    force: tokio::sync::oneshot::Sender<()>,
) {
    let mut current = c.started.config.clone();
    let mut stop = Some(stop);
    loop {
        let name = tokio::select! {
            _ = signals.term.recv() => "SIGTERM",
            _ = signals.int.recv() => "SIGINT",
            _ = signals.hup.recv() => {
                if c.stopping.load(Ordering::Relaxed) {
                    info!("SIGHUP ignored: stopping");
                } else {
                    reload(&c, &mut current);
                }
                continue;
            }
        };
        match stop.take() {
            Some(stop) => {
                c.stopping.store(true, Ordering::Relaxed);
                let grace = humantime::format_duration(c.grace);
                info!("{name} received: no new connections; calls in flight have {grace} to finish (send it again to stop at once)");
                c.notifier
                    .stopping(&format!("stopping: calls in flight have {grace} to finish"));
                let _ = stop.send(());
            }
            None => {
                warn!("{name} received again: stopping at once");
                let _ = force.send(());
                return;
            }
        }
    }
}

/// Read the configuration again and apply it whole, or keep the current one.
fn reload(c: &Control, current: &mut Config) {
    c.notifier.reloading();
    info!("SIGHUP received: reloading the configuration");
    let outcome = config::load(&c.args)
        .map_err(|e| e.to_string())
        .and_then(|new| {
            c.reloader
                .reload(&c.started.config, current, &new.config)
                .map(|outcome| (new, outcome))
                .map_err(|e| e.to_string())
        });
    match outcome {
        Ok((new, outcome)) => {
            let source = new.describe_source();
            *current = new.config;
            if outcome.applied.is_empty() {
                info!(
                    "configuration reloaded from {source}: nothing that a reload applies changed"
                );
            } else {
                info!(
                    "configuration reloaded from {source}: applied {}",
                    outcome.applied.join(", ")
                );
            }
            for key in outcome.need_restart {
                warn!("{key} changed; it takes effect only when hearth restarts (the running daemon keeps the value it started with)");
            }
        }
        Err(e) => warn!("configuration not reloaded, the running one stays: {e}"),
    }
    c.notifier.reloaded();
}

/// `pools.generic_workers` and `pools.max_workers_total`.
struct PoolsHook {
    generic: Arc<GenericPools>,
    budget: Arc<Budget>,
}

impl Hook for PoolsHook {
    fn name(&self) -> &'static str {
        "pools"
    }

    fn apply(&self, current: &Config, new: &Config) {
        if current.pools.generic_workers != new.pools.generic_workers {
            self.generic.set_target(new.pools.generic_workers);
        }
        if current.pools.max_workers_total != new.pools.max_workers_total {
            self.budget.set_cap(new.pools.max_workers_total);
        }
    }
}

/// `log.level`.
struct LogHook(LogHandle);

impl Hook for LogHook {
    fn name(&self) -> &'static str {
        "log"
    }

    fn check(&self, new: &Config) -> Result<(), String> {
        crate::telemetry::check_filter(&new.log.level)
    }

    fn apply(&self, current: &Config, new: &Config) {
        if current.log.level != new.log.level {
            if let Err(e) = self.0.set(&new.log.level) {
                warn!(error = %e, "cannot change the log filter");
            }
        }
    }
}
