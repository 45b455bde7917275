//! The routing table: function name → pool of its live version, and
//! (function, alias) → the pools an alias points at. Reads are lock-free (one
//! atomic load); a publish swaps the whole table atomically, so a call sees
//! either the old route or the new one, never a mix.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::pool::Pool;

/// Where an alias sends calls: `primary`, or `split.0` for `split.1` percent
/// of them.
pub struct AliasRoute {
    pub primary: Arc<Pool>,
    pub split: Option<(Arc<Pool>, u8)>,
}

impl AliasRoute {
    /// Pick the pool for one call.
    pub fn pick(&self) -> &Arc<Pool> {
        match &self.split {
            Some((pool, weight)) if fastrand::u8(0..100) < *weight => pool,
            _ => &self.primary,
        }
    }
}

/// Why every call to a function is refused, whatever it names (live
/// version, version or alias).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// `hearth offline`: 503 `function_offline`.
    Offline,
    /// `hearth delete`: 404 `function_not_found`.
    Deleted,
}

#[derive(Default)]
pub struct Router {
    live: ArcSwap<HashMap<String, Arc<Pool>>>,
    aliases: ArcSwap<HashMap<(String, String), Arc<AliasRoute>>>,
    /// Functions offline or deleted (usually none: then one atomic load).
    blocked: ArcSwap<HashMap<String, Blocked>>,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// How many functions have a live version routed.
    pub fn live_count(&self) -> usize {
        self.live.load().len()
    }

    /// The pool of `function`'s live version.
    pub fn live(&self, function: &str) -> Option<Arc<Pool>> {
        self.live.load().get(function).cloned()
    }

    /// What each function's live version says it calls (`calls`), for
    /// the functions that declare any.
    pub fn call_graph(&self) -> Vec<(String, Vec<String>)> {
        self.live
            .load()
            .iter()
            .filter(|(_, pool)| !pool.spec().calls.is_empty())
            .map(|(name, pool)| (name.clone(), pool.spec().calls.clone()))
            .collect()
    }

    pub fn alias(&self, function: &str, alias: &str) -> Option<Arc<AliasRoute>> {
        self.aliases
            .load()
            .get(&(function.to_owned(), alias.to_owned()))
            .cloned()
    }

    /// Route `function` to `pool` from now on; returns the pool it replaces.
    pub fn set_live(&self, function: &str, pool: Arc<Pool>) -> Option<Arc<Pool>> {
        self.set_live_many(vec![(function.to_owned(), pool)])
            .pop()
            .flatten()
    }

    /// Route several functions at once (one atomic swap); returns the pools
    /// they replace, in order.
    pub fn set_live_many(&self, routes: Vec<(String, Arc<Pool>)>) -> Vec<Option<Arc<Pool>>> {
        for (_, pool) in &routes {
            pool.set_keep_warm(true);
        }
        let mut previous = Vec::new();
        self.live.rcu(|table| {
            let mut next = HashMap::clone(table);
            previous = routes
                .iter()
                .map(|(name, pool)| next.insert(name.clone(), pool.clone()))
                .collect();
            next
        });
        for (old, (_, new)) in previous.iter().zip(&routes) {
            if let Some(old) = old {
                if !Arc::ptr_eq(old, new) && !self.is_routed(old) {
                    old.set_keep_warm(false);
                }
            }
        }
        previous
    }

    /// Whether calls to `function` are refused, and why.
    pub fn blocked(&self, function: &str) -> Option<Blocked> {
        let blocked = self.blocked.load();
        if blocked.is_empty() {
            return None;
        }
        blocked.get(function).copied()
    }

    /// Refuse every call to `function` (or, with None, stop refusing them).
    pub fn set_blocked(&self, function: &str, why: Option<Blocked>) {
        self.blocked.rcu(|table| {
            let mut next = HashMap::clone(table);
            match why {
                Some(why) => next.insert(function.to_owned(), why),
                None => next.remove(function),
            };
            next
        });
    }

    /// Stop routing `function`'s live version; returns the pool it had.
    pub fn remove_live(&self, function: &str) -> Option<Arc<Pool>> {
        let mut removed = None;
        self.live.rcu(|table| {
            let mut next = HashMap::clone(table);
            removed = next.remove(function);
            next
        });
        if let Some(old) = &removed {
            if !self.is_routed(old) {
                old.set_keep_warm(false);
            }
        }
        removed
    }

    /// Replace every alias route at once.
    pub fn set_aliases(&self, aliases: HashMap<(String, String), Arc<AliasRoute>>) {
        for route in aliases.values() {
            route.primary.set_keep_warm(true);
            if let Some((pool, _)) = &route.split {
                pool.set_keep_warm(true);
            }
        }
        self.aliases.store(Arc::new(aliases));
    }

    /// Is `pool` the live pool of its function, or behind an alias?
    pub fn is_routed(&self, pool: &Arc<Pool>) -> bool {
        let function = &pool.spec().function;
        if self
            .live
            .load()
            .get(function)
            .is_some_and(|p| Arc::ptr_eq(p, pool))
        {
            return true;
        }
        self.aliases.load().iter().any(|((f, _), route)| {
            f == function
                && (Arc::ptr_eq(&route.primary, pool)
                    || route
                        .split
                        .as_ref()
                        .is_some_and(|(p, _)| Arc::ptr_eq(p, pool)))
        })
    }
}
