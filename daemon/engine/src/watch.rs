//! Releases made by other processes sharing the store: the store's watch
//! says something changed, and the routes are brought in line with it.

use std::time::Duration;

use hearth_store::StoreChange;
use tracing::warn;

use crate::aliases::Aliases;
use crate::error::PublishError;
use crate::events::Event;
use crate::releases::Releases;
use crate::versions::blocked_of;

/// How often SQLite is polled for releases made by other processes.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Route every function whose live version the store has moved, then
/// rebuild the alias routes.
pub(crate) async fn sync_from_store(
    releases: &Releases,
    aliases: &Aliases,
) -> Result<(), PublishError> {
    let v = &releases.versions;
    // Taken offline, deleted or brought back by another process: looked
    // at without the lock, checked again under it.
    let mut closed = Vec::new();
    let all = v.store.list_all_functions().await?;
    for f in &all {
        if v.router.blocked(&f.name) != blocked_of(f) {
            let lock = releases.locks.of(&f.name);
            let _guard = lock.lock().await;
            if v.refresh_blocked(&f.name).await?.is_some() {
                closed.push(f.name.clone());
            }
        }
    }
    for f in all {
        if f.deleted_at.is_some() || f.offline {
            continue;
        }
        let Some(version) = f.live_version else {
            continue;
        };
        let routed = v.router.live(&f.name).map(|p| p.spec().version);
        if routed != Some(version) {
            // Looked at without the lock: check again under it.
            let (pool, changed) = releases.route_from_store(&f.name).await?;
            if changed {
                v.shared.events.emit(Event::ReleaseSeen {
                    function: &f.name,
                    version: pool.spec().version,
                });
            }
        }
    }
    aliases.sync().await?;
    // Their alias routes are gone: now their workers end.
    for function in closed {
        v.close_function(&function);
    }
    Ok(())
}

/// Follow the store's changes until the watch ends. A sync that fails is
/// tried again every interval until one succeeds.
pub(crate) async fn follow(releases: &Releases, aliases: &Aliases) {
    let mut watch = releases.versions.store.watch(WATCH_INTERVAL);
    let mut pending = false;
    loop {
        let next = if pending {
            match tokio::time::timeout(WATCH_INTERVAL, watch.recv()).await {
                Ok(change) => change,
                Err(_) => Some(StoreChange::Releases { mark: -1 }),
            }
        } else {
            watch.recv().await
        };
        let Some(StoreChange::Releases { .. }) = next else {
            return;
        };
        pending = match sync_from_store(releases, aliases).await {
            Ok(()) => false,
            Err(e) => {
                warn!(error = %e, "cannot sync routes from the store");
                true
            }
        };
    }
}
