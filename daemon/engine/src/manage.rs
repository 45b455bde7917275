//! A function as a whole: delete it (its versions and history stay, and
//! deploying it again brings it back), take it offline and back online,
//! and edit its information (description, category), which is not part of
//! any version. Delete and offline end its workers and refuse its calls
//! whatever they name (`Router::blocked`, checked by `Engine::resolve`);
//! each is recorded as a release, which moves the store's release mark so
//! other daemons sharing the store do the same (watch.rs).

use hearth_api::{FunctionEdit, FunctionInfo, FunctionStateOutcome};

use hearth_store::FunctionRecord;

use crate::engine::Engine;
use crate::error::PublishError;
use crate::router::Blocked;

/// Longest description or category an edit may set, in bytes.
pub const MAX_INFO_BYTES: usize = 4096;

impl Engine {
    /// Delete `name`: refused while other functions (not deleted) declare
    /// they call it, unless `force`. Its workers end and its calls get 404
    /// from now on; its versions, aliases and release history stay.
    pub async fn delete_function(
        &self,
        name: &str,
        force: bool,
        actor: &str,
    ) -> Result<FunctionStateOutcome, PublishError> {
        let lock = self.releases.locks.of(name);
        let _guard = lock.lock().await;
        let record = self.undeleted(name).await?;
        if !force {
            let callers = self.callers_of(name).await?;
            if !callers.is_empty() {
                return Err(PublishError::InUse {
                    function: name.to_owned(),
                    callers,
                });
            }
        }
        let changed = self.store().delete_function(name, "", actor).await?;
        self.close(name, Blocked::Deleted).await;
        tracing::info!(function = %name, live_version = ?record.live_version, force, "function deleted: its workers end and its calls are refused; its versions and history are kept");
        Ok(FunctionStateOutcome {
            function: name.to_owned(),
            state: "deleted".into(),
            live_version: record.live_version,
            changed,
        })
    }

    /// Take `name` offline (every call refused with 503, its workers end;
    /// versions, aliases and live version kept), or bring it back online.
    pub async fn set_offline(
        &self,
        name: &str,
        offline: bool,
        actor: &str,
    ) -> Result<FunctionStateOutcome, PublishError> {
        let lock = self.releases.locks.of(name);
        let _guard = lock.lock().await;
        let record = self.undeleted(name).await?;
        let changed = self.store().set_offline(name, offline, "", actor).await?;
        let state = if offline {
            self.close(name, Blocked::Offline).await;
            "offline"
        } else {
            self.versions.router.set_blocked(name, None);
            if record.live_version.is_some() {
                self.releases.route_from_store_locked(name).await?;
            }
            if let Err(e) = self.aliases.sync().await {
                tracing::warn!(function = %name, error = %e, "cannot route the aliases of a function back online; they route again at the next release");
            }
            if record.live_version.is_some() {
                "live"
            } else {
                "draft"
            }
        };
        if changed {
            tracing::info!(function = %name, state, "function {}", if offline { "taken offline: its workers end and its calls are refused" } else { "back online" });
        }
        Ok(FunctionStateOutcome {
            function: name.to_owned(),
            state: state.into(),
            live_version: record.live_version,
            changed,
        })
    }

    /// A function's record, or `Deleted` / `UnknownFunction`.
    async fn undeleted(&self, name: &str) -> Result<FunctionRecord, PublishError> {
        let record = self.known(name).await?;
        if record.deleted_at.is_some() {
            return Err(PublishError::Deleted {
                function: name.to_owned(),
            });
        }
        Ok(record)
    }

    /// Set a function's description and category (those given).
    pub async fn edit_function(
        &self,
        name: &str,
        edit: &FunctionEdit,
    ) -> Result<FunctionInfo, PublishError> {
        let fields = [
            ("description", edit.description.as_deref()),
            ("category", edit.category.as_deref()),
        ];
        for (field, value) in fields {
            if let Some(v) = value.filter(|v| v.len() > MAX_INFO_BYTES) {
                return Err(PublishError::EditTooLong {
                    function: name.to_owned(),
                    field,
                    len: v.len(),
                    max: MAX_INFO_BYTES,
                });
            }
        }
        let edited = self
            .store()
            .edit_function(name, edit.description.as_deref(), edit.category.as_deref())
            .await?;
        if !edited {
            // Nothing of that name, or deleted: the lookup says which.
            self.function(name).await?;
        }
        self.function(name).await
    }

    /// Refuse `name`'s calls from now on and end its workers: its live
    /// route and alias routes go first, then its pools close.
    async fn close(&self, name: &str, why: Blocked) {
        self.versions.router.set_blocked(name, Some(why));
        if let Err(e) = self.aliases.sync().await {
            tracing::warn!(function = %name, error = %e, "cannot rebuild the alias routes; its calls are refused all the same");
        }
        self.versions.close_function(name);
    }

    /// The functions (not deleted) whose live version declares it calls
    /// `name` (`calls` in its hearth.toml), by name.
    async fn callers_of(&self, name: &str) -> Result<Vec<String>, PublishError> {
        let mut callers = Vec::new();
        for f in self.store().list_functions().await? {
            let Some(live) = f.live_version.filter(|_| f.name != name) else {
                continue;
            };
            let calls_it = self
                .store()
                .version(&f.name, live)
                .await?
                .is_some_and(|v| v.manifest.calls.iter().any(|c| c == name));
            if calls_it {
                callers.push(f.name);
            }
        }
        Ok(callers)
    }
}
