//! The global cap on workers with code loaded, across every function: when
//! it is reached, starting a worker first ends an idle worker of the pool
//! used least recently, so thousands of registered functions can share one
//! host. Generic (not yet loaded) workers are not counted.
//!
//! Applications are partitions of it: an application with a `max_workers`
//! budget never holds more workers than that, whatever the others do; at
//! its budget it may only make room among its own idle workers, and a call
//! that finds none is refused for that application alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

pub use hearth_api::{AppUsage, BudgetStats};
use tracing::debug;

use super::Pool;

pub struct Budget {
    /// Changed at run time by `set_cap` (a configuration reload).
    cap: AtomicUsize,
    /// Per application: (budget, workers now); 0 budget = no limit.
    apps: Mutex<std::collections::HashMap<String, (usize, usize)>>,
    live: AtomicUsize,
    pools: Mutex<Vec<Weak<Pool>>>,
    /// Woken when a place is given back.
    freed: tokio::sync::Notify,
}

/// A counted worker: dropping it gives its place back.
pub struct Place {
    budget: Arc<Budget>,
    app: Option<String>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(app) = &self.app {
            self.budget.app_release(app);
        }
        self.budget.live.fetch_sub(1, Ordering::AcqRel);
        self.budget.freed.notify_waiters();
    }
}

/// Why no place was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoPlace {
    /// Every worker under the global cap is busy.
    Global { cap: usize },
    /// The application's workers are all busy at its budget.
    App { app: String, cap: usize },
}

impl Budget {
    pub fn new(cap: usize) -> Arc<Budget> {
        Arc::new(Budget {
            cap: AtomicUsize::new(cap.max(1)),
            apps: Mutex::new(Default::default()),
            live: AtomicUsize::new(0),
            pools: Mutex::new(Vec::new()),
            freed: tokio::sync::Notify::new(),
        })
    }

    pub fn is_full(&self) -> bool {
        self.live.load(Ordering::Acquire) >= self.cap()
    }

    pub fn cap(&self) -> usize {
        self.cap.load(Ordering::Acquire)
    }

    /// Change the cap (at least 1). Workers over a lowered cap are not
    /// ended: new workers wait until enough have left; a raised cap lets
    /// waiting starts go at once.
    pub fn set_cap(&self, cap: usize) {
        self.cap.store(cap.max(1), Ordering::Release);
        self.freed.notify_waiters();
    }

    pub fn register(&self, pool: &Arc<Pool>) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.retain(|p| p.strong_count() > 0);
            pools.push(Arc::downgrade(pool));
        }
    }

    /// Set an application's worker budget (0: none).
    pub fn set_app_budget(&self, app: &str, max_workers: usize) {
        if let Ok(mut apps) = self.apps.lock() {
            apps.entry(app.to_owned()).or_insert((0, 0)).0 = max_workers;
        }
    }

    /// Workers and budget of every application that has either.
    pub fn app_usage(&self) -> Vec<AppUsage> {
        let Ok(apps) = self.apps.lock() else {
            return Vec::new();
        };
        let mut usage: Vec<AppUsage> = apps
            .iter()
            .map(|(app, (cap, live))| AppUsage {
                app: app.clone(),
                max_workers: *cap,
                workers: *live,
            })
            .collect();
        usage.sort_by(|a, b| a.app.cmp(&b.app));
        usage
    }

    /// Count one more worker of `app`, unless it is at its budget.
    fn app_take(&self, app: &str) -> Result<(), usize> {
        let Ok(mut apps) = self.apps.lock() else {
            return Ok(());
        };
        let entry = apps.entry(app.to_owned()).or_insert((0, 0));
        if entry.0 > 0 && entry.1 >= entry.0 {
            return Err(entry.0);
        }
        entry.1 += 1;
        Ok(())
    }

    fn app_release(&self, app: &str) {
        if let Ok(mut apps) = self.apps.lock() {
            if let Some(entry) = apps.get_mut(app) {
                entry.1 = entry.1.saturating_sub(1);
            }
        }
    }

    /// Take a place for a new worker of `asking`'s application. At the
    /// application's budget, end one of its own idle workers (least
    /// recently used pool first) or refuse at once. At the global cap, end
    /// the least recently used idle worker elsewhere if `may_evict` (a call
    /// or a deploy needs it; background warming does not evict); when
    /// every worker is busy, wait for one to leave until `deadline`.
    pub async fn take(
        self: &Arc<Self>,
        asking: &Pool,
        may_evict: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Place, NoPlace> {
        let app = asking.spec().app.clone();
        loop {
            match self.app_take(&app) {
                Ok(()) => break,
                Err(cap) => {
                    if !(may_evict && self.evict_one(asking, Some(&app))) {
                        return Err(NoPlace::App { app, cap });
                    }
                }
            }
        }
        let place = self.take_global(asking, may_evict, deadline).await;
        if place.is_err() {
            self.app_release(&app);
        }
        place.map(|mut p| {
            p.app = Some(app);
            p
        })
    }

    async fn take_global(
        self: &Arc<Self>,
        asking: &Pool,
        may_evict: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Place, NoPlace> {
        let no_place = || NoPlace::Global { cap: self.cap() };
        loop {
            // Register for wake-ups before looking, so none is missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let now = self.live.load(Ordering::Acquire);
            if now < self.cap() {
                if self
                    .live
                    .compare_exchange(now, now + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Ok(Place {
                        budget: self.clone(),
                        app: None,
                    });
                }
                continue;
            }
            if !may_evict {
                return Err(no_place());
            }
            if self.evict_one(asking, None) {
                continue;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(no_place());
            }
        }
    }

    /// End one idle worker of the pool used least recently (the asking
    /// pool last), within `app` if given: first among pools with more than
    /// one worker, so that a function keeps its last worker while others
    /// have spares (many functions called in turn, least recently used
    /// first, would otherwise lose each one's only worker just before its
    /// next call). False if no pool has an idle worker.
    fn evict_one(&self, asking: &Pool, app: Option<&str>) -> bool {
        let pools: Vec<Arc<Pool>> = match self.pools.lock() {
            Ok(p) => p.iter().filter_map(Weak::upgrade).collect(),
            Err(_) => return false,
        };
        let victim = pools
            .iter()
            .filter(|p| p.idle_count() > 0)
            .filter(|p| app.is_none_or(|a| p.spec().app == a))
            .min_by_key(|p| {
                (
                    std::ptr::eq(p.as_ref(), asking),
                    p.worker_count() <= 1,
                    p.last_used_ms(),
                )
            });
        match victim {
            Some(pool) => {
                let evicted = pool.evict_idle();
                if evicted {
                    debug!(function = %pool.spec().function, version = pool.spec().version, "idle worker evicted for the global cap");
                }
                evicted
            }
            None => false,
        }
    }

    pub fn stats(&self) -> BudgetStats {
        BudgetStats {
            cap: self.cap(),
            workers: self.live.load(Ordering::Acquire),
        }
    }
}
