//! Aliases: named pointers to a version (prod, canary, ...), optionally
//! splitting traffic with a second version, moved like releases and routed
//! from the store.

use std::collections::HashMap;
use std::sync::Arc;

use hearth_api::manifest::validate_name;
use hearth_api::{AliasOutcome, AliasTarget};

use crate::error::PublishError;
use crate::events::Event;
use crate::locks::FunctionLocks;
use crate::pool::Pool;
use crate::router::{AliasRoute, Blocked};
use crate::versions::Versions;

pub struct Aliases {
    versions: Arc<Versions>,
    locks: Arc<FunctionLocks>,
    /// Serialises alias route rebuilds.
    sync: tokio::sync::Mutex<()>,
}

impl Aliases {
    pub(crate) fn new(versions: Arc<Versions>, locks: Arc<FunctionLocks>) -> Aliases {
        Aliases {
            versions,
            locks,
            sync: tokio::sync::Mutex::new(()),
        }
    }

    /// Point an alias at a version (optionally splitting traffic with a
    /// second one), after proving the versions load.
    pub async fn set(
        &self,
        function: &str,
        alias: &str,
        target: &AliasTarget,
        message: &str,
        actor: &str,
    ) -> Result<AliasOutcome, PublishError> {
        if validate_name(alias).is_err() || alias.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PublishError::BadAlias(alias.to_owned()));
        }
        if let Some((_, weight)) = target.split {
            if weight > 100 {
                return Err(PublishError::BadWeight(weight));
            }
        }
        let v = &self.versions;
        let lock = self.locks.of(function);
        let _guard = lock.lock().await;
        if v.router.blocked(function) == Some(Blocked::Deleted) {
            return Err(PublishError::Deleted {
                function: function.to_owned(),
            });
        }
        let mut versions = vec![target.version];
        versions.extend(target.split.map(|(v, _)| v));
        for version in versions {
            v.record(function, version).await?;
            let pool = v.pool_for(function, version).await?;
            v.prove_loads(&pool, function, version).await?;
        }
        let previous = v
            .store
            .set_alias(function, alias, target, message, actor)
            .await?;
        self.sync().await?;
        // Moved while offline: it routes once the function is back; the
        // workers that proved it loads end now.
        if v.router.blocked(function).is_some() {
            v.close_function(function);
        }
        v.shared.events.emit(Event::AliasMoved {
            function,
            alias,
            version: target.version,
            split: target.split,
        });
        Ok(AliasOutcome {
            function: function.to_owned(),
            alias: alias.to_owned(),
            target: target.clone(),
            previous,
        })
    }

    /// Rebuild the alias routes from the store.
    pub(crate) async fn sync(&self) -> Result<(), PublishError> {
        // One rebuild at a time, so a rebuild from an older read of the
        // store never lands after one from a newer read.
        let _guard = self.sync.lock().await;
        let v = &self.versions;
        let mut routes = HashMap::new();
        for a in v.store.aliases().await? {
            // An offline or deleted function's aliases keep their targets
            // but route nothing until it is back.
            if v.router.blocked(&a.function).is_some() {
                continue;
            }
            let primary = v.pool_for(&a.function, a.target.version).await?;
            let split = match a.target.split {
                Some((version, w)) => Some((v.pool_for(&a.function, version).await?, w)),
                None => None,
            };
            routes.insert(
                (a.function, a.alias),
                Arc::new(AliasRoute { primary, split }),
            );
        }
        let before: Vec<Arc<Pool>> = v.pools();
        v.router.set_aliases(routes);
        for pool in before {
            if !v.router.is_routed(&pool) && pool.is_kept_warm() {
                pool.set_keep_warm(false);
                v.retire(pool);
            }
        }
        Ok(())
    }
}
