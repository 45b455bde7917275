//! What is stored, as the management API lists it: functions (with the
//! health of their live version; a deleted one is not listed, but its
//! versions, releases and aliases still read), versions, releases and
//! aliases.

use hearth_api::{
    AliasInfo, AliasList, FunctionFilter, FunctionInfo, FunctionList, ReleaseList, VersionInfo,
    VersionList,
};
use hearth_store::FunctionRecord;

use crate::engine::Engine;
use crate::error::PublishError;

impl Engine {
    /// Every function (not those deleted).
    pub async fn functions(&self) -> Result<FunctionList, PublishError> {
        self.find_functions(&FunctionFilter::default()).await
    }

    /// The functions that meet every condition of `filter`.
    pub async fn find_functions(
        &self,
        filter: &FunctionFilter,
    ) -> Result<FunctionList, PublishError> {
        let records = self.store().list_functions().await?;
        let graph = self.versions.router.call_graph();
        Ok(FunctionList {
            functions: records
                .into_iter()
                .map(|f| self.with_health(f.into(), &graph))
                .filter(|f| filter.matches(f))
                .collect(),
        })
    }

    /// One function, or `UnknownFunction` (`Deleted` for one deleted).
    pub async fn function(&self, name: &str) -> Result<FunctionInfo, PublishError> {
        let record = self.known(name).await?;
        if record.deleted_at.is_some() {
            return Err(PublishError::Deleted {
                function: name.to_owned(),
            });
        }
        Ok(self.with_health(record.into(), &self.versions.router.call_graph()))
    }

    /// A function's record, deleted or not (its versions and history stay
    /// readable), or `UnknownFunction`.
    pub(crate) async fn known(&self, name: &str) -> Result<FunctionRecord, PublishError> {
        self.store()
            .function(name)
            .await?
            .ok_or_else(|| PublishError::UnknownFunction(name.to_owned()))
    }

    /// A live version paused in a crash loop shows it in its function's
    /// state; and each function shows whom it calls and who calls it.
    fn with_health(&self, mut f: FunctionInfo, graph: &[(String, Vec<String>)]) -> FunctionInfo {
        for (caller, calls) in graph {
            if *caller == f.name {
                f.calls = calls.clone();
            } else if calls.contains(&f.name) {
                f.called_by.push(caller.clone());
            }
        }
        f.called_by.sort();
        if f.state == "offline" {
            return f;
        }
        if let Some(backoff) = self
            .versions
            .router
            .live(&f.name)
            .and_then(|pool| pool.crash_loop())
        {
            f.state = "crash-loop".into();
            f.backoff = Some(backoff);
        }
        f
    }

    pub async fn versions(&self, name: &str) -> Result<VersionList, PublishError> {
        let f = self.known(name).await?;
        let versions = self.store().versions(name).await?;
        Ok(VersionList {
            function: f.name,
            live_version: f.live_version,
            versions: versions.into_iter().map(VersionInfo::from).collect(),
        })
    }

    pub async fn releases(&self, name: &str) -> Result<ReleaseList, PublishError> {
        self.known(name).await?;
        let releases = self.store().releases(name).await?;
        Ok(ReleaseList {
            function: name.to_owned(),
            releases: releases.into_iter().map(Into::into).collect(),
        })
    }

    pub async fn aliases(&self, name: &str) -> Result<AliasList, PublishError> {
        self.known(name).await?;
        let aliases = self.store().aliases().await?;
        Ok(AliasList {
            function: name.to_owned(),
            aliases: aliases
                .into_iter()
                .filter(|a| a.function == name)
                .map(AliasInfo::from)
                .collect(),
        })
    }
}
