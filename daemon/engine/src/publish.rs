//! Versions and releases: deploy (store a version, prove it loads, publish
//! it), publish a given version, roll back, and find the pool of any version.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::code::{CodeDir, CodeError};
use crate::deps::{self, Deps, DepsError, Installed, Progress};
use crate::pool::{
    Budget, BudgetStats, FunctionError, GenericPools, Pool, Shared, WorkerError, WorkerSpec,
};
use crate::router::{AliasRoute, Router};
use crate::runtime::{RuntimeError, Runtimes};
use hearth_api::bundle::{Bundle, BundleError};
use hearth_sandbox::isolation::{self, Isolation};
use hearth_store::{AliasTarget, AppRecord, Store, StoreError, VersionRecord};

/// How long an old version keeps its warm workers after it stops being
/// routed (so rolling back to it is immediate), unless `--drain-grace` says.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(120);
/// How often the store is checked for releases made by other processes.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Longest a version may take to start and load its code at deploy/publish.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Code(#[from] CodeError),
    #[error("no function named \"{0}\"")]
    UnknownFunction(String),
    #[error("{function} has no version {version} (latest is {latest})")]
    UnknownVersion {
        function: String,
        version: u32,
        latest: u32,
    },
    #[error("{function} has no live version")]
    NotPublished { function: String },
    #[error("{function} version {version} failed to load, so it was not published: {}: {}", .error.kind, .error.message)]
    LoadFailed {
        function: String,
        version: u32,
        created: bool,
        live: Option<u32>,
        error: FunctionError,
    },
    #[error("{function} version {version} could not be started: {source}")]
    Start {
        function: String,
        version: u32,
        source: WorkerError,
    },
    #[error(transparent)]
    Deps(#[from] DepsError),
    #[error("{error}; version {version} was not published")]
    DepsFailed {
        version: u32,
        live: Option<u32>,
        error: DepsError,
    },
    #[error("the batch names a function twice; give each function once")]
    BatchDuplicate,
    #[error("nothing was published: {} of the batch cannot go live: {}", .failures.len(), .failures.iter().map(|f| format!("{}@{}: {}", f.function, f.version, f.error)).collect::<Vec<_>>().join("; "))]
    BatchFailed { failures: Vec<BatchFailure> },
    #[error("\"{0}\" is not a valid alias: use lowercase letters, digits and '-', not only digits (for example prod or canary)")]
    BadAlias(String),
    #[error("a split weight of {0}% is over 100%")]
    BadWeight(u8),
    #[error("{function} has no earlier version to roll back to (live version {live} was its first release)")]
    NothingToRollBack { function: String, live: u32 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployOutcome {
    pub function: String,
    pub version: u32,
    /// false when byte-identical code was already stored as `version`.
    pub created: bool,
    pub hash: String,
    /// Whether `version` is live now.
    pub live: bool,
    /// The live version before this deploy.
    pub previous: Option<u32>,
    /// Time to start a worker and load the code, when one was started.
    pub load_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchFailure {
    pub function: String,
    pub version: u32,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AliasOutcome {
    pub function: String,
    pub alias: String,
    pub target: AliasTarget,
    pub previous: Option<AliasTarget>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseOutcome {
    pub function: String,
    pub version: u32,
    pub previous: Option<u32>,
    pub action: String,
}

/// Every pool that exists, by (function, version).
type PoolMap = HashMap<(String, u32), Arc<Pool>>;

pub struct Publisher {
    pub store: Store,
    pub runtimes: Runtimes,
    pub router: Arc<Router>,
    code: CodeDir,
    deps: Deps,
    pools: Arc<Mutex<PoolMap>>,
    /// How long a version that stops being routed keeps its warm workers.
    drain_grace: Duration,
    /// What every pool shares (generic pools, the global worker budget).
    shared: Shared,
    /// Serialises alias route rebuilds.
    alias_sync: tokio::sync::Mutex<()>,
    /// The store's release mark last routed (see `watch_store`).
    seen_mark: tokio::sync::Mutex<i64>,
    /// One deploy/publish at a time per function.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// How workers are confined (users, namespaces, cgroups).
    isolation: Arc<Isolation>,
}

impl Publisher {
    pub fn new(
        store: Store,
        runtimes: Runtimes,
        code_root: PathBuf,
        deps_root: PathBuf,
        isolation: Arc<Isolation>,
    ) -> Publisher {
        Publisher {
            store,
            runtimes,
            router: Arc::new(Router::new()),
            code: CodeDir::new(code_root),
            deps: Deps::new(deps_root),
            pools: Arc::new(Mutex::new(HashMap::new())),
            drain_grace: DEFAULT_DRAIN_GRACE,
            shared: Shared::default(),
            alias_sync: tokio::sync::Mutex::new(()),
            seen_mark: tokio::sync::Mutex::new(-1),
            locks: Mutex::new(HashMap::new()),
            isolation,
        }
    }

    fn lock_for(&self, function: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(function.to_owned()).or_default().clone()
    }

    /// Route every function's live version (workers start on first call).
    pub async fn restore_routes(&self) -> Result<usize, StoreError> {
        let mut routed = 0;
        for f in self.store.list_functions().await? {
            let Some(version) = f.live_version else {
                continue;
            };
            match self.pool_for(&f.name, version).await {
                Ok(pool) => {
                    self.route(vec![(f.name.clone(), pool)]);
                    routed += 1;
                }
                Err(e) => {
                    warn!(function = %f.name, version, error = %e, "cannot route the live version")
                }
            }
        }
        Ok(routed)
    }

    /// The live version of `function`, as the store has it.
    async fn live_version_of(&self, function: &str) -> Result<u32, PublishError> {
        let record = self
            .store
            .function(function)
            .await?
            .ok_or_else(|| PublishError::UnknownFunction(function.to_owned()))?;
        record
            .live_version
            .ok_or_else(|| PublishError::NotPublished {
                function: function.to_owned(),
            })
    }

    /// The pool of `function`'s live version: from the routing table, or
    /// (first call after start, or an error to explain) from the store.
    pub async fn live_pool(&self, function: &str) -> Result<Arc<Pool>, PublishError> {
        if let Some(pool) = self.router.live(function) {
            return Ok(pool);
        }
        Ok(self.route_from_store(function).await?.0)
    }

    /// Route `function` to the version the store has live now, unless it
    /// already is (then `false`). Holds the function's lock, like every
    /// release in this process, so it can never put back a route that a
    /// release made while the store was being read.
    async fn route_from_store(&self, function: &str) -> Result<(Arc<Pool>, bool), PublishError> {
        let lock = self.lock_for(function);
        let _guard = lock.lock().await;
        let version = self.live_version_of(function).await?;
        if let Some(pool) = self.router.live(function) {
            if pool.spec().version == version {
                return Ok((pool, false));
            }
        }
        let pool = self.pool_for(function, version).await?;
        self.route(vec![(function.to_owned(), pool.clone())]);
        Ok((pool, true))
    }

    async fn version_record(
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

    async fn pool_with_progress(
        &self,
        function: &str,
        version: u32,
        progress: &Progress,
    ) -> Result<Arc<Pool>, PublishError> {
        let key = (function.to_owned(), version);
        if let Some(pool) = self.pools.lock().ok().and_then(|p| p.get(&key).cloned()) {
            return Ok(pool);
        }
        let record = self.version_record(function, version).await?;
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
        let dir =
            self.code
                .materialize(function, version, &record.hash, &files, &installed.links)?;
        let identity = self.isolation.identity(record.id);
        if let Some((_, gid)) = identity {
            // Only this version's workers may enter its code directory.
            isolation::restrict_code_dir(&dir, gid).map_err(|source| CodeError {
                function: function.to_owned(),
                version,
                path: dir.clone(),
                source,
            })?;
        }
        let spec = WorkerSpec {
            function: function.to_owned(),
            version,
            dir,
            entry: record.manifest.entry.clone(),
            limits: record.manifest.limits.clone(),
            runtime,
            env: installed.env,
            app: record.manifest.app.clone(),
            identity,
            isolation: self.isolation.clone(),
        };
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        Ok(pools
            .entry(key)
            .or_insert_with(|| Pool::new(spec, &self.shared))
            .clone())
    }

    /// Start a worker of the version and load its code (unless one is
    /// already waiting). Load errors come back with the runtime's traceback.
    async fn prove_loads(
        &self,
        pool: &Arc<Pool>,
        function: &str,
        version: u32,
    ) -> Result<Option<f64>, PublishError> {
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

    /// Store the bundle as a version of its function and, if `publish`,
    /// make it live once a worker has loaded it.
    pub async fn deploy(
        &self,
        bundle: Bundle,
        message: &str,
        publish: bool,
        actor: &str,
        progress: &Progress,
    ) -> Result<DeployOutcome, PublishError> {
        let manifest = bundle.validate()?;
        let runtime = self.runtimes.get(manifest.runtime)?;
        let function = manifest.name.clone();
        let lock = self.lock_for(&function);
        let _guard = lock.lock().await;

        let put = self.store.put_version(&manifest, &bundle, message).await?;
        progress.say(if put.created {
            format!("stored {function} version {}", put.version)
        } else {
            format!("same code as {function} version {}", put.version)
        });
        let live_before = self
            .store
            .function(&function)
            .await?
            .and_then(|f| f.live_version);
        info!(function = %function, version = put.version, created = put.created, runtime = %runtime.kind, "version stored");

        let mut outcome = DeployOutcome {
            function: function.clone(),
            version: put.version,
            created: put.created,
            hash: put.hash,
            live: live_before == Some(put.version),
            previous: live_before,
            load_ms: None,
        };
        let pool = match self
            .pool_with_progress(&function, put.version, progress)
            .await
        {
            Err(PublishError::Deps(error)) => {
                return Err(PublishError::DepsFailed {
                    version: put.version,
                    live: live_before,
                    error,
                })
            }
            other => other?,
        };
        if outcome.live {
            return Ok(outcome);
        }
        // Even without publishing, prove the code loads (so the deploy
        // reports an import error now) and keep that worker warm for a
        // publish within the grace period.
        progress.say("starting a worker and loading the code…");
        outcome.load_ms = match self.prove_loads(&pool, &function, put.version).await {
            Ok(ms) => ms,
            Err(PublishError::LoadFailed { error, .. }) => {
                warn!(function = %function, version = put.version, kind = %error.kind, "code failed to load; not published");
                return Err(PublishError::LoadFailed {
                    function,
                    version: put.version,
                    created: put.created,
                    live: live_before,
                    error,
                });
            }
            Err(e) => return Err(e),
        };
        if !publish {
            self.retire(pool);
            return Ok(outcome);
        }
        let record = self.version_record(&function, put.version).await?;
        outcome.previous = self
            .store
            .release(&function, &record, "publish", message, actor)
            .await?;
        self.route(vec![(function.clone(), pool)]);
        outcome.live = true;
        info!(function = %function, version = put.version, previous = ?outcome.previous, "published");
        Ok(outcome)
    }

    /// Make `version` live (after proving it loads).
    pub async fn publish(
        &self,
        function: &str,
        version: u32,
        action: &str,
        message: &str,
        actor: &str,
    ) -> Result<ReleaseOutcome, PublishError> {
        let lock = self.lock_for(function);
        let _guard = lock.lock().await;
        self.release_locked(function, version, action, message, actor)
            .await
    }

    async fn release_locked(
        &self,
        function: &str,
        version: u32,
        action: &str,
        message: &str,
        actor: &str,
    ) -> Result<ReleaseOutcome, PublishError> {
        let record = self.version_record(function, version).await?;
        let pool = self.pool_for(function, version).await?;
        if let Err(PublishError::LoadFailed { error, .. }) =
            self.prove_loads(&pool, function, version).await
        {
            let live = self
                .store
                .function(function)
                .await?
                .and_then(|f| f.live_version);
            return Err(PublishError::LoadFailed {
                function: function.to_owned(),
                version,
                created: false,
                live,
                error,
            });
        }
        let previous = self
            .store
            .release(function, &record, action, message, actor)
            .await?;
        self.route(vec![(function.to_owned(), pool)]);
        info!(function = %function, version, previous = ?previous, action, "released");
        Ok(ReleaseOutcome {
            function: function.to_owned(),
            version,
            previous,
            action: action.to_owned(),
        })
    }

    /// Make the version live that was live before the current one came in:
    /// the `from_version` of the latest publish that made the current
    /// version live. Repeated rollbacks walk further back.
    pub async fn rollback(
        &self,
        function: &str,
        message: &str,
        actor: &str,
    ) -> Result<ReleaseOutcome, PublishError> {
        let lock = self.lock_for(function);
        let _guard = lock.lock().await;
        let live = self.live_version_of(function).await?;
        let releases = self.store.releases(function).await?;
        let target = releases
            .iter()
            .find(|r| r.version == live && r.action == "publish")
            .and_then(|r| r.from_version)
            .filter(|v| *v != live)
            .ok_or_else(|| PublishError::NothingToRollBack {
                function: function.to_owned(),
                live,
            })?;
        self.release_locked(function, target, "rollback", message, actor)
            .await
    }

    pub fn with_generic(mut self, generic: Arc<GenericPools>) -> Publisher {
        self.shared.generic = Some(generic);
        self
    }

    /// Cap the workers with code loaded, across all functions.
    pub fn with_budget(mut self, budget: Arc<Budget>) -> Publisher {
        self.shared.budget = Some(budget);
        self
    }

    /// Pre-started interpreters that new workers are taken from.
    pub fn generic(&self) -> Option<&Arc<GenericPools>> {
        self.shared.generic.as_ref()
    }

    /// Set an application's budget: stored, counted by the worker budget,
    /// and applied to its cgroup (memory, CPU) where the host has cgroups.
    /// Returns whether memory and CPU are enforced.
    pub async fn set_app(&self, app: &AppRecord) -> Result<bool, PublishError> {
        self.store.set_app(app).await?;
        Ok(self.apply_app(app))
    }

    /// Apply every stored application budget (at start).
    pub async fn apply_app_budgets(&self) -> Result<(), StoreError> {
        for app in self.store.apps().await? {
            self.apply_app(&app);
        }
        Ok(())
    }

    fn apply_app(&self, app: &AppRecord) -> bool {
        if let Some(budget) = &self.shared.budget {
            budget.set_app_budget(&app.name, app.max_workers as usize);
        }
        match &self.isolation.cgroups {
            Some(cgroups) => match cgroups.app(
                &app.name,
                &hearth_sandbox::cgroup::AppBudget {
                    memory_mb: app.memory_mb,
                    cpu_millicores: app.cpu_percent.saturating_mul(10),
                },
            ) {
                Ok(()) => true,
                Err(e) => {
                    warn!(app = %app.name, error = %e, "cannot apply the application's memory/CPU budget");
                    false
                }
            },
            None => false,
        }
    }

    /// Applications with their budgets and current workers.
    pub async fn apps(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let usage = self
            .shared
            .budget
            .as_ref()
            .map(|b| b.app_usage())
            .unwrap_or_default();
        let enforced = self.isolation.cgroups.is_some();
        Ok(self
            .store
            .apps()
            .await?
            .into_iter()
            .map(|a| {
                let workers = usage
                    .iter()
                    .find(|u| u.app == a.name)
                    .map(|u| u.workers)
                    .unwrap_or(0);
                serde_json::json!({
                    "name": a.name,
                    "max_workers": a.max_workers,
                    "memory_mb": a.memory_mb,
                    "cpu_percent": a.cpu_percent,
                    "workers": workers,
                    "memory_cpu_enforced": enforced,
                })
            })
            .collect())
    }

    pub fn budget(&self) -> Option<BudgetStats> {
        self.shared.budget.as_ref().map(|b| b.stats())
    }

    pub fn with_drain_grace(mut self, grace: Duration) -> Publisher {
        self.drain_grace = grace;
        self
    }

    /// Swap routes in (one atomic step) and retire the pools they replace.
    fn route(&self, routes: Vec<(String, Arc<Pool>)>) {
        for old in self.router.set_live_many(routes).into_iter().flatten() {
            self.retire(old);
        }
    }

    /// A pool that stopped being routed: calls already running on it finish
    /// there; after the grace period, unless it is routed again, its idle
    /// workers are ended and the pool forgotten.
    fn retire(&self, pool: Arc<Pool>) {
        if self.router.is_routed(&pool) {
            return;
        }
        let router = self.router.clone();
        let pools = self.pools.clone();
        let grace = self.drain_grace;
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
            info!(function = %key.0, version = key.1, "old version's workers reclaimed");
        });
    }

    /// Make several (function, version) pairs live at once: every version is
    /// proven to load first, then all go live in one store transaction and
    /// one route swap. All or none.
    pub async fn publish_batch(
        &self,
        items: &[(String, u32)],
        message: &str,
        actor: &str,
    ) -> Result<Vec<ReleaseOutcome>, PublishError> {
        let mut names: Vec<&String> = items.iter().map(|(f, _)| f).collect();
        names.sort();
        names.dedup();
        if names.len() != items.len() {
            return Err(PublishError::BatchDuplicate);
        }
        // Lock in name order so two batches cannot deadlock.
        let locks: Vec<_> = names.iter().map(|n| self.lock_for(n)).collect();
        let mut guards = Vec::with_capacity(locks.len());
        for lock in &locks {
            guards.push(lock.lock().await);
        }
        let mut records = Vec::with_capacity(items.len());
        let mut pools = Vec::with_capacity(items.len());
        let mut failures = Vec::new();
        for (function, version) in items {
            let prepared = async {
                let record = self.version_record(function, *version).await?;
                let pool = self.pool_for(function, *version).await?;
                self.prove_loads(&pool, function, *version).await?;
                Ok::<_, PublishError>((record, pool))
            }
            .await;
            match prepared {
                Ok((record, pool)) => {
                    records.push((function.clone(), record));
                    pools.push((function.clone(), pool));
                }
                Err(e) => failures.push(BatchFailure {
                    function: function.clone(),
                    version: *version,
                    error: e.to_string(),
                }),
            }
        }
        if !failures.is_empty() {
            return Err(PublishError::BatchFailed { failures });
        }
        let previous = self
            .store
            .release_many(&records, "publish", message, actor)
            .await?;
        self.route(pools);
        info!(count = items.len(), "batch published");
        Ok(items
            .iter()
            .zip(previous)
            .map(|((function, version), previous)| ReleaseOutcome {
                function: function.clone(),
                version: *version,
                previous,
                action: "publish".into(),
            })
            .collect())
    }

    /// Point an alias at a version (optionally splitting traffic with a
    /// second one), after proving the versions load.
    pub async fn set_alias(
        &self,
        function: &str,
        alias: &str,
        target: &AliasTarget,
        message: &str,
        actor: &str,
    ) -> Result<AliasOutcome, PublishError> {
        if hearth_api::manifest::validate_name(alias).is_err()
            || alias.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(PublishError::BadAlias(alias.to_owned()));
        }
        if let Some((_, weight)) = target.split {
            if weight > 100 {
                return Err(PublishError::BadWeight(weight));
            }
        }
        let lock = self.lock_for(function);
        let _guard = lock.lock().await;
        let mut versions = vec![target.version];
        versions.extend(target.split.map(|(v, _)| v));
        for v in versions {
            self.version_record(function, v).await?;
            let pool = self.pool_for(function, v).await?;
            self.prove_loads(&pool, function, v).await?;
        }
        let previous = self
            .store
            .set_alias(function, alias, target, message, actor)
            .await?;
        self.sync_aliases().await?;
        info!(function, alias, version = target.version, split = ?target.split, "alias moved");
        Ok(AliasOutcome {
            function: function.to_owned(),
            alias: alias.to_owned(),
            target: target.clone(),
            previous,
        })
    }

    /// Rebuild the alias routes from the store.
    async fn sync_aliases(&self) -> Result<(), PublishError> {
        // One rebuild at a time, so a rebuild from an older read of the
        // store never lands after one from a newer read.
        let _guard = self.alias_sync.lock().await;
        let mut routes = HashMap::new();
        for (function, alias, target) in self.store.aliases().await? {
            let primary = self.pool_for(&function, target.version).await?;
            let split = match target.split {
                Some((v, w)) => Some((self.pool_for(&function, v).await?, w)),
                None => None,
            };
            routes.insert((function, alias), Arc::new(AliasRoute { primary, split }));
        }
        let before: Vec<Arc<Pool>> = self.pools();
        self.router.set_aliases(routes);
        for pool in before {
            if !self.router.is_routed(&pool) && pool.is_kept_warm() {
                pool.set_keep_warm(false);
                self.retire(pool);
            }
        }
        Ok(())
    }

    /// Bring the routes in line with the store when another process sharing
    /// it has made releases: checked every WATCH_INTERVAL.
    pub async fn sync_from_store(&self) -> Result<bool, PublishError> {
        let mark = self.store.release_mark().await?;
        let mut seen = self.seen_mark.lock().await;
        if *seen == mark {
            return Ok(false);
        }
        for f in self.store.list_functions().await? {
            let Some(version) = f.live_version else {
                continue;
            };
            let routed = self.router.live(&f.name).map(|p| p.spec().version);
            if routed != Some(version) {
                // Looked at without the lock: check again under it.
                let (pool, changed) = self.route_from_store(&f.name).await?;
                if changed {
                    info!(function = %f.name, version = pool.spec().version, "release made elsewhere picked up");
                }
            }
        }
        self.sync_aliases().await?;
        *seen = mark;
        Ok(true)
    }

    /// Watch the store for releases made by other processes, for ever.
    pub async fn watch_store(self: Arc<Self>) {
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            if let Err(e) = self.sync_from_store().await {
                warn!(error = %e, "cannot sync routes from the store");
            }
        }
    }

    /// Pools that exist now (live or not), for the API.
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
