//! The global cap on workers with code loaded, across every function: when
//! it is reached, starting a worker first ends an idle worker of the pool
//! used least recently, so thousands of registered functions can share one
//! host. Generic (not yet loaded) workers are not counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde::Serialize;
use tracing::debug;

use super::Pool;

pub struct Budget {
    cap: usize,
    live: AtomicUsize,
    pools: Mutex<Vec<Weak<Pool>>>,
    /// Woken when a place is given back.
    freed: tokio::sync::Notify,
}

/// A counted worker: dropping it gives its place back.
pub struct Place {
    budget: Arc<Budget>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.budget.live.fetch_sub(1, Ordering::AcqRel);
        self.budget.freed.notify_waiters();
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BudgetStats {
    pub cap: usize,
    pub workers: usize,
}

impl Budget {
    pub fn new(cap: usize) -> Arc<Budget> {
        Arc::new(Budget {
            cap: cap.max(1),
            live: AtomicUsize::new(0),
            pools: Mutex::new(Vec::new()),
            freed: tokio::sync::Notify::new(),
        })
    }

    pub fn is_full(&self) -> bool {
        self.live.load(Ordering::Acquire) >= self.cap
    }

    pub fn register(&self, pool: &Arc<Pool>) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.retain(|p| p.strong_count() > 0);
            pools.push(Arc::downgrade(pool));
        }
    }

    /// Take a place for a new worker. At the cap, end the least recently
    /// used idle worker elsewhere if `may_evict` (a call or a deploy needs
    /// it; background warming does not evict); when every worker is busy,
    /// wait for one to leave until `deadline`. None: no place in time.
    pub async fn take(
        self: &Arc<Self>,
        asking: &Pool,
        may_evict: bool,
        deadline: tokio::time::Instant,
    ) -> Option<Place> {
        loop {
            // Register for wake-ups before looking, so none is missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let now = self.live.load(Ordering::Acquire);
            if now < self.cap {
                if self
                    .live
                    .compare_exchange(now, now + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Some(Place {
                        budget: self.clone(),
                    });
                }
                continue;
            }
            if !may_evict {
                return None;
            }
            if self.evict_one(asking) {
                continue;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return None;
            }
        }
    }

    /// End one idle worker of the pool used least recently (the asking
    /// pool last). False if no pool has an idle worker.
    fn evict_one(&self, asking: &Pool) -> bool {
        let pools: Vec<Arc<Pool>> = match self.pools.lock() {
            Ok(p) => p.iter().filter_map(Weak::upgrade).collect(),
            Err(_) => return false,
        };
        let victim = pools
            .iter()
            .filter(|p| p.idle_count() > 0)
            .min_by_key(|p| (std::ptr::eq(p.as_ref(), asking), p.last_used_ms()));
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
            cap: self.cap,
            workers: self.live.load(Ordering::Acquire),
        }
    }
}
