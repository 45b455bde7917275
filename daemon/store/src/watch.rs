//! Changes to the store made by anyone sharing it, as a stream of events.
//! SQLite has no notifications, so its watch polls the release mark; a
//! Postgres back end would LISTEN for the NOTIFY its releases send.

use std::time::Duration;

use tracing::warn;

use crate::Store;

/// Something changed in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChange {
    /// Releases (publish, rollback, alias move) were recorded; `mark` is the
    /// release mark after them. The first event of a watch always comes, so
    /// a watcher starts in step with the store.
    Releases { mark: i64 },
}

/// The receiving end of a watch; dropping it stops the watch.
pub type StoreWatch = tokio::sync::mpsc::Receiver<StoreChange>;

/// Poll `store.release_mark()` every `every`, sending a change whenever it
/// moved (and once at the first poll).
pub(crate) fn poll_release_mark<S: Store + Clone>(store: S, every: Duration) -> StoreWatch {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut seen = None;
        loop {
            tokio::time::sleep(every).await;
            // Nobody watches any more (the daemon is stopping, its store
            // about to close): stop before reading a closed store.
            if tx.is_closed() {
                return;
            }
            match store.release_mark().await {
                Ok(mark) if seen != Some(mark) => {
                    if tx.send(StoreChange::Releases { mark }).await.is_err() {
                        return;
                    }
                    seen = Some(mark);
                }
                Ok(_) => {
                    if tx.is_closed() {
                        return;
                    }
                }
                Err(_) if tx.is_closed() => return,
                Err(e) => {
                    warn!(error = %e, "cannot read the store's release mark; releases made by other hearth processes on this store are not seen until it can")
                }
            }
        }
    });
    rx
}
