//! The versions the engine can run: one pool per (function, version),
//! created on first need (code written to disk, dependencies installed), the
//! routing swap that makes pools live, and the retiring of pools that stop
//! being routed.

use hearth_api::manifest::Limits;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_sandbox::isolation::Isolation;
use hearth_store::{DynStore, FunctionRecord, VersionRecord};

use crate::code::{CodeDir, CodeError};
use crate::deps::{self, Deps, Installed, Progress};
use crate::error::PublishError;
use crate::events::Event;
use crate::gc::Retention;
use crate::pool::{Pool, Shared, WorkerError, WorkerSpec};
use crate::router::{Blocked, Router};
use crate::runtime::Runtimes;

/// How long an old version keeps its warm workers after it stops being
/// routed (so rolling back to it is immediate), unless `--drain-grace` says.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(120);

/// Longest a version may take to start and load its code at deploy/publish.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Every pool that exists, by (function, version).
type PoolMap = HashMap<(String, u32), Arc<Pool>>;

/// Versions whose pool is being made right now (code written, dependencies
/// installed), with how many are making it.
type InFlightMap = HashMap<(String, u32), usize>;

/// A pool being made; it leaves the in-flight map when dropped.
struct InFlight {
    map: Arc<Mutex<InFlightMap>>,
    key: (String, u32),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

pub struct Versions {
    pub(crate) store: DynStore,
    pub(crate) runtimes: Runtimes,
    pub(crate) router: Arc<Router>,
    pub(crate) code: CodeDir,
    pub(crate) deps: Deps,
    pools: Arc<Mutex<PoolMap>>,
    in_flight: Arc<Mutex<InFlightMap>>,
    /// Held by gc while it decides and removes, and (briefly) by every pool
    /// being made as it enters the in-flight map: gc never removes what a
    /// pool being made needs.
    pub(crate) gate: tokio::sync::Mutex<()>,
    /// Which stored versions gc keeps.
    pub(crate) retention: Retention,
    /// How long a version that stops being routed keeps its warm workers.
    drain_grace: Duration,
    /// What every pool shares (generic pools, the global worker budget,
    /// events).
    pub(crate) shared: Shared,
    pub(crate) isolation: Arc<Isolation>,
    /// The daemon's `[limits]` defaults: what a version's hearth.toml does
    /// not set.
    limit_defaults: std::sync::RwLock<toml::Table>,
}

impl Versions {
    pub(crate) fn new(
        store: DynStore,
        runtimes: Runtimes,
        code_root: PathBuf,
        deps_root: PathBuf,
        isolation: Arc<Isolation>,
        shared: Shared,
        drain_grace: Duration,
    ) -> Versions {
        Versions {
            store,
            runtimes,
            router: Arc::new(Router::new()),
            code: CodeDir::new(code_root),
            deps: Deps::new(deps_root),
            pools: Arc::new(Mutex::new(HashMap::new())),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            gate: tokio::sync::Mutex::new(()),
            retention: Retention::default(),
            drain_grace,
            shared,
            isolation,
            limit_defaults: std::sync::RwLock::new(toml::Table::new()),
        }
    }

    pub(crate) fn set_limit_defaults(&self, defaults: toml::Table) {
        if let Ok(mut d) = self.limit_defaults.write() {
            *d = defaults;
        }
    }

    /// The limits a version runs with under the daemon's defaults.
    pub(crate) fn effective_limits(&self, record: &VersionRecord) -> Limits {
        let defaults = self
            .limit_defaults
            .read()
            .map(|d| d.clone())
            .unwrap_or_default();
        record
            .manifest
            .effective_limits(&defaults)
            .unwrap_or_else(|e| {
                tracing::warn!(function = %record.manifest.name, version = record.version, error = %e, "the daemon's [limits] defaults do not fit this version; it keeps its own limits");
                record.manifest.limits.clone()
            })
    }

    /// The pool a version has now, if any.
    pub(crate) fn existing_pool(&self, function: &str, version: u32) -> Option<Arc<Pool>> {
        let key = (function.to_owned(), version);
        self.pools.lock().ok().and_then(|p| p.get(&key).cloned())
    }

    /// Forget `pool` as its version's pool (the next `pool_for` makes a new
    /// one), or put it back.
    pub(crate) fn set_pool(&self, function: &str, version: u32, pool: Option<Arc<Pool>>) {
        let key = (function.to_owned(), version);
        let mut map = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        match pool {
            Some(pool) => {
                map.insert(key, pool);
            }
            None => {
                map.remove(&key);
            }
        }
    }

    /// A version's record, or why there is none.
    pub(crate) async fn record(
        &self,
        function: &str,
        version: u32,
    ) -> Result<VersionRecord, PublishError> {
        if let Some(v) = self.store.version(function, version).await? {
            return Ok(v);
        }
        let versions = self.store.versions(function).await?;
        match versions.last() {
            None => Err(PublishError::UnknownFunction(function.to_owned())),
            Some(last) => Err(PublishError::UnknownVersion {
                function: function.to_owned(),
                version,
                latest: last.version,
            }),
        }
    }

    /// The pool of one version, created (code written to disk,
    /// dependencies installed) on first need.
    pub async fn pool_for(&self, function: &str, version: u32) -> Result<Arc<Pool>, PublishError> {
        self.pool_with_progress(function, version, &Progress::none())
            .await
    }

    pub(crate) async fn pool_with_progress(
        &self,
        function: &str,
        version: u32,
        progress: &Progress,
    ) -> Result<Arc<Pool>, PublishError> {
        let key = (function.to_owned(), version);
        if let Some(pool) = self.pools.lock().ok().and_then(|p| p.get(&key).cloned()) {
            return Ok(pool);
        }
        let _in_flight = {
            let _gate = self.gate.lock().await;
            let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            *map.entry(key.clone()).or_default() += 1;
            InFlight {
                map: self.in_flight.clone(),
                key: key.clone(),
            }
        };
        let record = self.record(function, version).await?;
        if let Some(template) = record.manifest.template() {
            // A page: no code to write, no interpreter; the engine runs
            // its template.
            let template = template.map_err(|e| PublishError::BadPage {
                function: function.to_owned(),
                version,
                problem: e.to_string(),
            })?;
            let spec = WorkerSpec {
                function: function.to_owned(),
                version,
                dir: PathBuf::new(),
                entry: String::new(),
                calls: record.manifest.calls.clone(),
                contract: Arc::new(crate::contract::Contract::of(
                    &format!("{function}@{version}"),
                    &record.manifest,
                )),
                limits: record.manifest.limits.clone(),
                runtime: crate::runtime::Runtime::page(),
                env: Vec::new(),
                app: record.manifest.app.clone(),
                identity: None,
                isolation: self.isolation.clone(),
                page: Some(Arc::new(template)),
            };
            let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(pools
                .entry(key)
                .or_insert_with(|| Pool::new(spec, &self.shared))
                .clone());
        }
        let runtime = self.runtimes.get(record.manifest.runtime)?.clone();
        let files = self.store.version_files(function, version).await?;
        let installed = match deps::plan(&runtime, &files) {
            Some(plan) => {
                self.deps
                    .ensure(function, &runtime, &plan, progress)
                    .await?
            }
            None => Installed::default(),
        };
        let identity = self.isolation.identity(record.id);
        // Only this version's workers may enter its code directory. Written
        // on the blocking pool: files, and Python's compile of them.
        let dir = {
            let code = self.code.clone();
            let (name, hash, links) = (
                function.to_owned(),
                record.hash.clone(),
                installed.links.clone(),
            );
            let compiler = runtime.clone();
            let group = identity.map(|(_, gid)| gid);
            tokio::task::spawn_blocking(move || {
                code.materialize(&name, version, &hash, &files, &links, group, &|dir, shown| {
                    if let Err(e) = compiler.precompile(dir, shown) {
                        tracing::warn!(function = %name, version, error = %e, "cannot compile the version's Python modules ahead; each worker compiles them at load");
                    }
                })
            })
            .await
            .map_err(|e| CodeError {
                function: function.to_owned(),
                version,
                path: self.code.path(function, version, &record.hash),
                source: std::io::Error::other(format!("the writer stopped: {e}")),
            })??
        };
        let spec = WorkerSpec {
            function: function.to_owned(),
            version,
            dir,
            entry: record.manifest.entry.clone(),
            calls: record.manifest.calls.clone(),
            contract: Arc::new(crate::contract::Contract::of(
                &format!("{function}@{version}"),
                &record.manifest,
            )),
            limits: self.effective_limits(&record),
            runtime,
            env: installed.env,
            app: record.manifest.app.clone(),
            identity,
            isolation: self.isolation.clone(),
            page: None,
        };
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        Ok(pools
            .entry(key)
            .or_insert_with(|| Pool::new(spec, &self.shared))
            .clone())
    }

    /// Start a worker of the version and load its code (unless one is
    /// already waiting). Load errors come back with the runtime's traceback.
    /// Returns the time it took when a worker was started.
    pub(crate) async fn prove_loads(
        &self,
        pool: &Arc<Pool>,
        function: &str,
        version: u32,
    ) -> Result<Option<f64>, PublishError> {
        if pool.spec().page.is_some() {
            return Ok(None);
        }
        let started = Instant::now();
        let before = pool.stats().started;
        match pool.warm(LOAD_TIMEOUT).await {
            Ok(()) => {
                Ok((pool.stats().started > before)
                    .then(|| started.elapsed().as_secs_f64() * 1000.0))
            }
            Err(WorkerError::LoadFailed { error, .. }) => Err(PublishError::LoadFailed {
                function: function.to_owned(),
                version,
                created: false,
                live: None,
                error,
            }),
            Err(source) => Err(PublishError::Start {
                function: function.to_owned(),
                version,
                source,
            }),
        }
    }

    /// Swap routes in (one atomic step) and retire the pools they replace.
    /// A function offline or deleted is not routed: its pools are closed
    /// (a publish while offline proved its version loads, and its worker
    /// ends now).
    pub(crate) fn route(&self, routes: Vec<(String, Arc<Pool>)>) {
        let (blocked, open): (Vec<_>, Vec<_>) = routes
            .into_iter()
            .partition(|(function, _)| self.router.blocked(function).is_some());
        for (function, _) in blocked {
            self.close_function(&function);
        }
        for old in self.router.set_live_many(open).into_iter().flatten() {
            self.retire(old);
        }
    }

    /// Whether the store has `function` offline or deleted, made the
    /// routing table's view (calls are refused from now on, or no longer).
    pub(crate) async fn refresh_blocked(
        &self,
        function: &str,
    ) -> Result<Option<Blocked>, PublishError> {
        let why = self
            .store
            .function(function)
            .await?
            .and_then(|f| blocked_of(&f));
        self.router.set_blocked(function, why);
        Ok(why)
    }

    /// End a function's workers for good (it was taken offline or deleted):
    /// its live route goes, and every pool of its versions is closed and
    /// forgotten (calls running finish first). Alias routes must already
    /// leave it out (`Aliases::sync` does for blocked functions).
    pub(crate) fn close_function(&self, function: &str) {
        self.router.remove_live(function);
        let closed: Vec<Arc<Pool>> = {
            let mut map = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<(String, u32)> =
                map.keys().filter(|(f, _)| f == function).cloned().collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        for pool in closed {
            pool.close();
            self.shared.events.emit(Event::VersionReclaimed {
                function,
                version: pool.spec().version,
            });
        }
    }

    /// A pool that stopped being routed: calls already running on it finish
    /// there; after the grace period, unless it is routed again, its idle
    /// workers are ended and the pool forgotten.
    pub(crate) fn retire(&self, pool: Arc<Pool>) {
        if self.router.is_routed(&pool) {
            return;
        }
        let router = self.router.clone();
        let pools = self.pools.clone();
        let grace = self.drain_grace;
        let events = self.shared.events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if router.is_routed(&pool) {
                return;
            }
            let spec = pool.spec();
            let key = (spec.function.clone(), spec.version);
            if let Ok(mut map) = pools.lock() {
                if map.get(&key).is_some_and(|p| Arc::ptr_eq(p, &pool)) {
                    map.remove(&key);
                }
            }
            pool.shutdown();
            events.emit(Event::VersionReclaimed {
                function: &key.0,
                version: key.1,
            });
        });
    }

    /// Versions gc must keep whatever its policy says: those having a pool
    /// made, and those whose pool is routed or running calls. (A pool that
    /// only has idle workers is let go by [`Versions::reclaim`] instead.)
    pub(crate) fn in_use(&self) -> std::collections::HashSet<(String, u32)> {
        let mut used: std::collections::HashSet<(String, u32)> = self
            .pools()
            .into_iter()
            .filter(|pool| self.router.is_routed(pool) || pool.stats().busy > 0)
            .map(|pool| (pool.spec().function.clone(), pool.spec().version))
            .collect();
        if let Ok(map) = self.in_flight.lock() {
            used.extend(map.keys().cloned());
        }
        used
    }

    /// Let go of a version's pool (its idle workers end) before gc deletes
    /// the version. False if it is routed or running calls after all.
    pub(crate) fn reclaim(&self, function: &str, version: u32) -> bool {
        let key = (function.to_owned(), version);
        let pool = {
            let mut map = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&key) {
                None => return true,
                Some(pool) if !self.router.is_routed(pool) && pool.stats().busy == 0 => {
                    map.remove(&key)
                }
                Some(_) => return false,
            }
        };
        if let Some(pool) = pool {
            pool.shutdown();
            self.shared
                .events
                .emit(Event::VersionReclaimed { function, version });
        }
        true
    }

    /// Pools that exist now (live or not).
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        self.pools
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Kill every idle worker; used at shutdown.
    pub fn shutdown(&self) {
        if let Some(g) = &self.shared.generic {
            g.shutdown();
        }
        for pool in self.pools() {
            pool.shutdown();
        }
    }
}

/// Why the store has calls to a function refused, if it does.
pub(crate) fn blocked_of(f: &FunctionRecord) -> Option<Blocked> {
    if f.deleted_at.is_some() {
        Some(Blocked::Deleted)
    } else if f.offline {
        Some(Blocked::Offline)
    } else {
        None
    }
}
