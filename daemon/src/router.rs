//! The routing table: function name → pool of its live version. Reads are
//! lock-free (one atomic load); a publish swaps the whole table atomically.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::pool::Pool;

#[derive(Default)]
pub struct Router {
    live: ArcSwap<HashMap<String, Arc<Pool>>>,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// The pool of `function`'s live version.
    pub fn live(&self, function: &str) -> Option<Arc<Pool>> {
        self.live.load().get(function).cloned()
    }

    /// Route `function` to `pool` from now on; returns the pool it replaces.
    pub fn set_live(&self, function: &str, pool: Arc<Pool>) -> Option<Arc<Pool>> {
        pool.set_keep_warm(true);
        let mut previous = None;
        self.live.rcu(|table| {
            let mut next = HashMap::clone(table);
            previous = next.insert(function.to_owned(), pool.clone());
            next
        });
        if let Some(old) = &previous {
            if !Arc::ptr_eq(old, &pool) {
                old.set_keep_warm(false);
            }
        }
        previous
    }

    pub fn pools(&self) -> Vec<Arc<Pool>> {
        self.live.load().values().cloned().collect()
    }
}
