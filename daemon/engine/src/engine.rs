//! The engine: the parts that run functions, put together. `Engine::invoke`
//! (invoke.rs) is the one path of every call; releases, aliases and
//! applications are parts of their own; the store's watch keeps the routes
//! in line with releases made elsewhere.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use hearth_api::{ApiError, BudgetStats, Target, WorkersInfo};
use hearth_sandbox::isolation::Isolation;
use hearth_store::{DynStore, Store, StoreError};

use crate::aliases::Aliases;
use crate::apps::Apps;
use crate::call::{BoxFuture, Dispatch, Invocation, Outcome};
use crate::events::Events;
use crate::gc::Retention;
use crate::locks::FunctionLocks;
use crate::pool::{Budget, GenericPools, Shared};
use crate::rates::RateGates;
use crate::releases::Releases;
use crate::runtime::Runtimes;
use crate::stats::Stats;
use crate::versions::{Versions, DEFAULT_DRAIN_GRACE};

/// How an engine is put together.
pub struct EngineConfig {
    pub store: DynStore,
    pub runtimes: Runtimes,
    /// Where versions' code is written (`<data>/code`).
    pub code_root: PathBuf,
    /// Where dependencies are installed (`<data>/deps`).
    pub deps_root: PathBuf,
    pub isolation: Arc<Isolation>,
    /// Pre-started interpreters new workers are taken from.
    pub generic: Option<Arc<GenericPools>>,
    /// The cap on workers with code loaded, across all functions.
    pub budget: Option<Arc<Budget>>,
    /// How long a version that stops being live keeps its warm workers.
    pub drain_grace: Duration,
    /// Which stored versions gc keeps.
    pub retention: Retention,
    pub events: Events,
    /// Keep per-minute call statistics (a sink of `events`).
    pub stats: bool,
}

impl EngineConfig {
    pub fn new(
        store: DynStore,
        runtimes: Runtimes,
        code_root: PathBuf,
        deps_root: PathBuf,
        isolation: Arc<Isolation>,
    ) -> EngineConfig {
        EngineConfig {
            store,
            runtimes,
            code_root,
            deps_root,
            isolation,
            generic: None,
            budget: None,
            drain_grace: DEFAULT_DRAIN_GRACE,
            retention: Retention::default(),
            events: Events::new(),
            stats: true,
        }
    }
}

pub struct Engine {
    pub(crate) versions: Arc<Versions>,
    /// Calls being served now (HTTP and nested), for status reports.
    pub(crate) in_flight: Arc<std::sync::atomic::AtomicUsize>,
    pub releases: Releases,
    pub aliases: Aliases,
    pub apps: Apps,
    /// Per-function rate limits, checked on every call.
    pub rates: RateGates,
    /// Call statistics waiting for a flush, and calls in flight per
    /// function (stats.rs); a sink of `events`.
    pub(crate) stats: Arc<Stats>,
    /// Last good values of page fields whose fallback is `"stale"`.
    pub(crate) stale: crate::page::StaleValues,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Arc<Engine> {
        Arc::new_cyclic(|me: &Weak<Engine>| {
            let dispatch: Weak<dyn Dispatch> = me.clone();
            let stats = Arc::new(Stats::default());
            if config.stats {
                config.events.subscribe(stats.clone());
            }
            let shared = Shared {
                generic: config.generic,
                budget: config.budget.clone(),
                events: config.events,
                dispatch: Some(dispatch),
            };
            let mut versions = Versions::new(
                config.store.clone(),
                config.runtimes,
                config.code_root,
                config.deps_root,
                config.isolation.clone(),
                shared,
                config.drain_grace,
            );
            versions.retention = config.retention;
            let versions = Arc::new(versions);
            let locks = Arc::new(FunctionLocks::default());
            Engine {
                releases: Releases {
                    versions: versions.clone(),
                    locks: locks.clone(),
                },
                aliases: Aliases::new(versions.clone(), locks),
                apps: Apps::new(config.store, config.budget, config.isolation),
                rates: RateGates::default(),
                versions,
                in_flight: Default::default(),
                stats,
                stale: Default::default(),
            }
        })
    }

    /// Apply the stored application budgets and route every live version:
    /// once, at start. Returns how many functions are routed.
    pub async fn start(&self) -> Result<usize, StoreError> {
        self.apps.apply_stored().await?;
        self.releases.restore_routes().await
    }

    /// Follow releases made by other processes sharing the store, for as
    /// long as the store's watch runs.
    pub async fn follow_store(self: Arc<Self>) {
        crate::watch::follow(&self.releases, &self.aliases).await
    }

    pub fn store(&self) -> &dyn Store {
        &*self.versions.store
    }

    pub fn runtimes(&self) -> &Runtimes {
        &self.versions.runtimes
    }

    pub fn events(&self) -> &Events {
        &self.versions.shared.events
    }

    /// Pools, pre-started workers and the global budget.
    pub fn workers(&self) -> WorkersInfo {
        let v = &self.versions;
        WorkersInfo {
            generic: v
                .shared
                .generic
                .as_ref()
                .map(|g| g.stats())
                .unwrap_or_default(),
            pools: v.pools().iter().map(|pool| pool.stats()).collect(),
            budget: self.budget(),
            throttled: self.rates.throttled(),
            api_throttled: 0,
        }
    }

    /// Calls being served right now (HTTP and nested calls).
    pub fn calls_in_flight(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many functions have a live version routed.
    pub fn live_functions(&self) -> usize {
        self.versions.router.live_count()
    }

    pub fn budget(&self) -> Option<BudgetStats> {
        self.versions.shared.budget.as_ref().map(|b| b.stats())
    }

    /// New `[limits]` defaults (at start and on reload). Pools whose
    /// version's limits they change are made again and swapped in, as a
    /// publish would; returns those versions as `name@N`.
    pub async fn set_limit_defaults(&self, defaults: toml::Table) -> Vec<String> {
        self.versions.set_limit_defaults(defaults);
        let mut replaced = Vec::new();
        let mut refreshed = Vec::new();
        for pool in self.versions.pools() {
            let (function, version) = (pool.spec().function.clone(), pool.spec().version);
            match self.releases.refresh_pool(&function, version).await {
                Ok(Some(old)) => {
                    replaced.push(old);
                    refreshed.push(format!("{function}@{version}"));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(function = %function, version, error = %e, "cannot apply the new [limits] defaults to this version; it keeps its limits until it is published again")
                }
            }
        }
        if !replaced.is_empty() {
            if let Err(e) = self.aliases.sync().await {
                tracing::warn!(error = %e, "cannot rebuild the alias routes after new [limits] defaults");
            }
            for old in replaced {
                self.versions.retire(old);
            }
        }
        refreshed
    }

    /// Kill every idle worker; used at shutdown.
    pub fn shutdown(&self) {
        self.versions.shutdown();
    }
}

impl Dispatch for Engine {
    fn dispatch(
        &self,
        target: Target,
        invocation: Invocation,
    ) -> BoxFuture<'_, Result<Outcome, ApiError>> {
        Box::pin(async move { self.invoke(&target, invocation).await })
    }
}
