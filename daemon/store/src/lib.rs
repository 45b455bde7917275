//! hearth's store: applications, functions, immutable versions with their
//! files, releases and aliases, behind the [`Store`] trait. The SQLite back
//! end (`sqlite`) is the one there is; a Postgres one (releases announced by
//! LISTEN/NOTIFY) would implement the same trait and pass the same
//! [`suite`]. Records here are the store's own; the API's responses are
//! made from them (`hearth_api`'s `FunctionInfo`, `VersionInfo`, ...).

mod error;
mod records;
mod sqlite;
pub mod suite;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hearth_api::bundle::{Bundle, BundleFile};
use hearth_api::manifest::Manifest;
use hearth_api::AliasTarget;

pub use error::{Result, StoreError};
pub use records::{
    AliasRecord, AppRecord, FunctionRecord, PutVersion, ReleaseRecord, StatsQuery, StatsRecord,
    TemplateRecord, TokenRecord, VersionRecord,
};
pub use sqlite::SqliteStore;
pub use watch::{StoreChange, StoreWatch};

/// A shared handle on whichever back end the daemon runs on.
pub type DynStore = Arc<dyn Store>;

/// What hearth keeps, whatever keeps it. Every method is one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every application with its budget.
    async fn apps(&self) -> Result<Vec<AppRecord>>;

    /// Create the application if needed and set its budget.
    async fn set_app(&self, app: &AppRecord) -> Result<()>;

    /// Every function, by name (not those deleted).
    async fn list_functions(&self) -> Result<Vec<FunctionRecord>>;

    /// A function, deleted or not (`deleted_at` says).
    async fn function(&self, name: &str) -> Result<Option<FunctionRecord>>;

    /// Every function, those deleted included, by name.
    async fn list_all_functions(&self) -> Result<Vec<FunctionRecord>>;

    /// Delete a function: no version is live any more, it is no longer
    /// listed, and it is not offline; its versions, aliases and release
    /// history stay, and a `delete` release is recorded (naming the version
    /// that was live, else the latest). A deploy (`put_version`) or a
    /// release brings it back. False (nothing written) if there is no
    /// function of that name that is not deleted.
    async fn delete_function(&self, name: &str, message: &str, actor: &str) -> Result<bool>;

    /// Take a function offline (or bring it back online), recording an
    /// `offline` (`online`) release. False (nothing written) if it already
    /// is, or there is no such function that is not deleted.
    async fn set_offline(
        &self,
        name: &str,
        offline: bool,
        message: &str,
        actor: &str,
    ) -> Result<bool>;

    /// Set a function's description and category (those given); they are
    /// not part of any version. False if there is no such function that is
    /// not deleted.
    async fn edit_function(
        &self,
        name: &str,
        description: Option<&str>,
        category: Option<&str>,
    ) -> Result<bool>;

    /// Store `bundle` as the next version of the function it declares,
    /// creating the application and function on first deploy.
    /// Byte-identical code returns the existing version instead of making a
    /// new one.
    async fn put_version(
        &self,
        manifest: &Manifest,
        bundle: &Bundle,
        message: &str,
    ) -> Result<PutVersion>;

    /// A function's versions, oldest first.
    async fn versions(&self, function: &str) -> Result<Vec<VersionRecord>>;

    async fn version(&self, function: &str, number: u32) -> Result<Option<VersionRecord>>;

    /// A version's files, by path.
    async fn version_files(&self, function: &str, number: u32) -> Result<Vec<BundleFile>>;

    /// Those of a version's files whose path is in `paths` (those it has),
    /// by path: what gc reads to know a version's dependency install.
    async fn version_files_named(
        &self,
        function: &str,
        number: u32,
        paths: &[&str],
    ) -> Result<Vec<BundleFile>> {
        let mut files = self.version_files(function, number).await?;
        files.retain(|f| paths.contains(&f.path.as_str()));
        Ok(files)
    }

    /// Delete versions of `function` and their files, in one transaction.
    /// The live version and any version an alias points at (or splits
    /// traffic to) are never deleted: they are skipped. Returns the numbers
    /// deleted, in order. The release history keeps naming deleted versions.
    /// A function left with no versions, releases or aliases (a first
    /// deploy taken back) is deleted too.
    async fn delete_versions(&self, function: &str, numbers: &[u32]) -> Result<Vec<u32>>;

    /// Make several versions live in one transaction: all or none. Each
    /// release also refreshes its function's runtime and application from
    /// that version's manifest, and its category and description where that
    /// version's hearth.toml says something else than the one they were
    /// last taken from (the version live before; at first the one the
    /// function was created with): an edit (`edit_function`) stays until a
    /// hearth.toml changes the key. A deleted function comes back; an
    /// offline one stays offline. Returns the version each function had
    /// live before, in order.
    async fn release_many(
        &self,
        releases: &[(String, VersionRecord)],
        action: &str,
        message: &str,
        actor: &str,
    ) -> Result<Vec<Option<u32>>>;

    /// Make one version live (see `release_many`); returns the version that
    /// was live before.
    async fn release(
        &self,
        function: &str,
        version: &VersionRecord,
        action: &str,
        message: &str,
        actor: &str,
    ) -> Result<Option<u32>> {
        let previous = self
            .release_many(
                &[(function.to_owned(), version.clone())],
                action,
                message,
                actor,
            )
            .await?;
        Ok(previous.into_iter().next().flatten())
    }

    /// Point `alias` of `function` at `target` (a release like any other).
    /// Returns what the alias pointed at before.
    async fn set_alias(
        &self,
        function: &str,
        alias: &str,
        target: &AliasTarget,
        message: &str,
        actor: &str,
    ) -> Result<Option<AliasTarget>>;

    /// Every alias of every function.
    async fn aliases(&self) -> Result<Vec<AliasRecord>>;

    /// A number that changes whenever any release (publish, rollback, alias
    /// move) is recorded, by this process or another sharing the store.
    async fn release_mark(&self) -> Result<i64>;

    /// A function's release history, newest first.
    async fn releases(&self, function: &str) -> Result<Vec<ReleaseRecord>>;

    /// Changes made by anyone sharing the store (this process included):
    /// SQLite polls the release mark every `every`; Postgres would listen.
    fn watch(&self, every: Duration) -> StoreWatch;

    /// Every API token.
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;

    /// Add a token; false (nothing written) if one has that name already.
    async fn put_token(&self, token: &TokenRecord) -> Result<bool>;

    /// Remove a token; false if there was none of that name.
    async fn revoke_token(&self, name: &str) -> Result<bool>;

    /// Record when tokens were last used (milliseconds since the epoch).
    async fn touch_tokens(&self, used: &[(String, i64)]) -> Result<()>;

    /// Add per-minute statistics to what is stored (counts add up, peaks
    /// and the longest duration keep the larger): flushes from this process
    /// or others sharing the store may write the same minute.
    async fn add_stats(&self, minutes: &[StatsRecord]) -> Result<()>;

    /// The statistics `query` selects, summed over its minutes: one record
    /// per (application, function, version), in that order.
    async fn stats(&self, query: &StatsQuery) -> Result<Vec<StatsRecord>>;

    /// Delete statistics of the minutes before `minute`; returns the number
    /// of per-minute rows deleted.
    async fn prune_stats(&self, before_minute: i64) -> Result<u64>;

    /// Every saved template, by name (without files).
    async fn templates(&self) -> Result<Vec<TemplateRecord>>;

    /// A saved template and its files, by path.
    async fn template(&self, name: &str) -> Result<Option<(TemplateRecord, Vec<BundleFile>)>>;

    /// Save a template with its files; false (nothing written) if one has
    /// that name already.
    async fn put_template(&self, template: &TemplateRecord, files: &[BundleFile]) -> Result<bool>;

    /// Delete a saved template and its files; false if there was none.
    async fn delete_template(&self, name: &str) -> Result<bool>;

    async fn close(&self);
}
