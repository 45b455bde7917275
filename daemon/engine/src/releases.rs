//! Releases: which version of each function is live. Publish a version
//! (after proving it loads), roll back, publish several at once (all or
//! none), and route from what the store says is live.

use std::sync::Arc;

use hearth_api::{BatchFailure, ReleaseOutcome};
use hearth_store::StoreError;

use crate::error::PublishError;
use crate::events::Event;
use crate::locks::FunctionLocks;
use crate::pool::Pool;
use crate::versions::Versions;

pub struct Releases {
    pub(crate) versions: Arc<Versions>,
    pub(crate) locks: Arc<FunctionLocks>,
}

impl Releases {
    /// Route every function's live version (workers start on first call).
    pub async fn restore_routes(&self) -> Result<usize, StoreError> {
        let mut routed = 0;
        for f in self.versions.store.list_functions().await? {
            let Some(version) = f.live_version else {
                continue;
            };
            match self.versions.pool_for(&f.name, version).await {
                Ok(pool) => {
                    self.versions.route(vec![(f.name.clone(), pool)]);
                    routed += 1;
                }
                Err(e) => {
                    tracing::warn!(function = %f.name, version, error = %e, "cannot route the live version")
                }
            }
        }
        Ok(routed)
    }

    /// The live version of `function`, as the store has it.
    pub(crate) async fn live_version_of(&self, function: &str) -> Result<u32, PublishError> {
        let record = self
            .versions
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
        if let Some(pool) = self.versions.router.live(function) {
            return Ok(pool);
        }
        Ok(self.route_from_store(function).await?.0)
    }

    /// Route `function` to the version the store has live now, unless it
    /// already is (then `false`). Holds the function's lock, like every
    /// release in this process, so it can never put back a route that a
    /// release made while the store was being read.
    pub(crate) async fn route_from_store(
        &self,
        function: &str,
    ) -> Result<(Arc<Pool>, bool), PublishError> {
        let lock = self.locks.of(function);
        let _guard = lock.lock().await;
        let version = self.live_version_of(function).await?;
        if let Some(pool) = self.versions.router.live(function) {
            if pool.spec().version == version {
                return Ok((pool, false));
            }
        }
        let pool = self.versions.pool_for(function, version).await?;
        self.versions
            .route(vec![(function.to_owned(), pool.clone())]);
        Ok((pool, true))
    }

    /// Make a new pool for a version whose limits the daemon's defaults
    /// changed: proven to load, then swapped in for the live route (calls
    /// running on the old pool finish there). Returns the pool it replaced
    /// (to retire once alias routes are rebuilt), None if nothing changed.
    pub(crate) async fn refresh_pool(
        &self,
        function: &str,
        version: u32,
    ) -> Result<Option<Arc<Pool>>, PublishError> {
        let lock = self.locks.of(function);
        let _guard = lock.lock().await;
        let v = &self.versions;
        let Some(old) = v.existing_pool(function, version) else {
            return Ok(None);
        };
        let record = v.record(function, version).await?;
        if v.effective_limits(&record) == old.spec().limits {
            return Ok(None);
        }
        let live = v
            .router
            .live(function)
            .is_some_and(|p| Arc::ptr_eq(&p, &old));
        v.set_pool(function, version, None);
        let new = match v.pool_for(function, version).await {
            Ok(p) => p,
            Err(e) => {
                v.set_pool(function, version, Some(old));
                return Err(e);
            }
        };
        if live {
            if let Err(e) = v.prove_loads(&new, function, version).await {
                new.shutdown();
                v.set_pool(function, version, Some(old));
                return Err(e);
            }
            v.route(vec![(function.to_owned(), new)]);
        }
        Ok(Some(old))
    }

    /// Make `version` live (after proving it loads). Unless
    /// `allow_breaking`, a version whose input schema can break callers of
    /// the live one is refused.
    pub async fn publish(
        &self,
        function: &str,
        version: u32,
        action: &str,
        message: &str,
        actor: &str,
        allow_breaking: bool,
    ) -> Result<ReleaseOutcome, PublishError> {
        let lock = self.locks.of(function);
        let _guard = lock.lock().await;
        self.release_locked(function, version, action, message, actor, allow_breaking)
            .await
    }

    /// How `record`'s input schema can break callers of the live version
    /// of `function` (none when nothing else is live): an error unless
    /// `allow_breaking`, else the changes, to report.
    pub(crate) async fn breaking_changes(
        &self,
        function: &str,
        record: &hearth_store::VersionRecord,
        allow_breaking: bool,
    ) -> Result<Vec<hearth_api::metadata::BreakingChange>, PublishError> {
        let v = &self.versions;
        let live = v
            .store
            .function(function)
            .await?
            .and_then(|f| f.live_version);
        let Some(live) = live.filter(|l| *l != record.version) else {
            return Ok(Vec::new());
        };
        let live_record = v.record(function, live).await?;
        let changes = hearth_api::metadata::breaking_changes(
            live_record.manifest.input.as_ref(),
            record.manifest.input.as_ref(),
        );
        if !changes.is_empty() && !allow_breaking {
            return Err(PublishError::Breaking {
                function: function.to_owned(),
                version: record.version,
                live,
                changes,
            });
        }
        for c in &changes {
            tracing::warn!(function, version = record.version, live, pointer = %c.pointer, "published with a breaking input change (allow_breaking): {}", c.change);
        }
        Ok(changes)
    }

    async fn release_locked(
        &self,
        function: &str,
        version: u32,
        action: &str,
        message: &str,
        actor: &str,
        allow_breaking: bool,
    ) -> Result<ReleaseOutcome, PublishError> {
        let v = &self.versions;
        let record = v.record(function, version).await?;
        let breaking = self
            .breaking_changes(function, &record, allow_breaking)
            .await?;
        let pool = v.pool_for(function, version).await?;
        if let Err(PublishError::LoadFailed { error, .. }) =
            v.prove_loads(&pool, function, version).await
        {
            let live = v
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
        let previous = v
            .store
            .release(function, &record, action, message, actor)
            .await?;
        v.route(vec![(function.to_owned(), pool)]);
        v.shared.events.emit(Event::Released {
            function,
            version,
            previous,
            action,
        });
        self.warm_callees(function, &record.manifest.calls);
        Ok(ReleaseOutcome {
            function: function.to_owned(),
            version,
            previous,
            action: action.to_owned(),
            breaking,
        })
    }

    /// Start a worker of each function a newly live version says it calls
    /// (`calls` in its hearth.toml), in the background, so its first calls
    /// do not stack cold starts. A callee that is not published yet, or
    /// does not load, is only logged: the caller's calls will say so.
    fn warm_callees(&self, caller: &str, calls: &[String]) {
        if calls.is_empty() {
            return;
        }
        let releases = Releases {
            versions: self.versions.clone(),
            locks: self.locks.clone(),
        };
        let (caller, calls) = (caller.to_owned(), calls.to_vec());
        tokio::spawn(async move {
            for callee in calls {
                let warmed = match releases.live_pool(&callee).await {
                    Ok(pool) => pool
                        .warm(crate::versions::LOAD_TIMEOUT)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match warmed {
                    Ok(()) => {
                        tracing::debug!(function = %caller, callee = %callee, "callee warmed")
                    }
                    Err(e) => {
                        tracing::warn!(function = %caller, callee = %callee, error = %e, "cannot warm a function this one calls (calls in its hearth.toml)")
                    }
                }
            }
        });
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
        let lock = self.locks.of(function);
        let _guard = lock.lock().await;
        let live = self.live_version_of(function).await?;
        let releases = self.versions.store.releases(function).await?;
        let target = releases
            .iter()
            .find(|r| r.version == live && r.action == "publish")
            .and_then(|r| r.from_version)
            .filter(|v| *v != live)
            .ok_or_else(|| PublishError::NothingToRollBack {
                function: function.to_owned(),
                live,
            })?;
        // A rollback goes back to what callers had before: never held up
        // by the schema guard.
        self.release_locked(function, target, "rollback", message, actor, true)
            .await
    }

    /// Make several (function, version) pairs live at once: every version is
    /// proven to load first, then all go live in one store transaction and
    /// one route swap. All or none.
    pub async fn publish_batch(
        &self,
        items: &[(String, u32)],
        message: &str,
        actor: &str,
        allow_breaking: bool,
    ) -> Result<Vec<ReleaseOutcome>, PublishError> {
        let v = &self.versions;
        let mut names: Vec<&String> = items.iter().map(|(f, _)| f).collect();
        names.sort();
        names.dedup();
        if names.len() != items.len() {
            return Err(PublishError::BatchDuplicate);
        }
        // Lock in name order so two batches cannot deadlock.
        let locks: Vec<_> = names.iter().map(|n| self.locks.of(n)).collect();
        let mut guards = Vec::with_capacity(locks.len());
        for lock in &locks {
            guards.push(lock.lock().await);
        }
        let mut records = Vec::with_capacity(items.len());
        let mut pools = Vec::with_capacity(items.len());
        let mut failures = Vec::new();
        let mut breaking = Vec::with_capacity(items.len());
        for (function, version) in items {
            let prepared = async {
                let record = v.record(function, *version).await?;
                let breaking = self
                    .breaking_changes(function, &record, allow_breaking)
                    .await?;
                let pool = v.pool_for(function, *version).await?;
                v.prove_loads(&pool, function, *version).await?;
                Ok::<_, PublishError>((record, pool, breaking))
            }
            .await;
            match prepared {
                Ok((record, pool, changes)) => {
                    records.push((function.clone(), record));
                    pools.push((function.clone(), pool));
                    breaking.push(changes);
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
        let previous = v
            .store
            .release_many(&records, "publish", message, actor)
            .await?;
        v.route(pools);
        v.shared
            .events
            .emit(Event::BatchReleased { count: items.len() });
        for (function, record) in &records {
            self.warm_callees(function, &record.manifest.calls);
        }
        Ok(items
            .iter()
            .zip(previous)
            .zip(breaking)
            .map(
                |(((function, version), previous), breaking)| ReleaseOutcome {
                    function: function.clone(),
                    version: *version,
                    previous,
                    action: "publish".into(),
                    breaking,
                },
            )
            .collect())
    }
}
