//! Garbage collection: what a host that deploys every day no longer needs.
//!
//! Stored versions follow a retention policy ([`Retention`]): each function
//! keeps its last `keep_versions` versions, its live version, every version
//! an alias points at (or splits traffic to), every version named in its
//! last `keep_releases` release-history entries (so recent rollbacks keep
//! working), and every version of this daemon that is routed, running
//! calls or having its pool made. The rest are deleted from the store (the
//! idle workers of their pools, if any, are ended first).
//! Then every directory that no stored version needs goes: version code
//! directories, dependency installs, and leftovers of interrupted writes
//! and of workers of a daemon that is gone.
//!
//! Races: gc works through the functions one at a time under the
//! function's lock (the one deploys, publishes, rollbacks and alias moves
//! hold), and holds `Versions::gate` while it decides and removes, which
//! every pool being made passes through as it enters the in-flight map: a
//! version being published, called or deployed is never removed under it.
//! Another daemon sharing the store is not seen: run gc from one of them.

use std::collections::HashSet;

use hearth_api::{GcDir, GcReport, GcVersion};
use hearth_store::{ReleaseRecord, VersionRecord};

use crate::code::{self, CodeDir};
use crate::deps::{self, DEPENDENCY_FILES};
use crate::engine::Engine;
use crate::error::PublishError;
use crate::leftovers;

/// Default of `hearth serve --keep-versions`.
pub const DEFAULT_KEEP_VERSIONS: u32 = 10;
/// Default of `hearth serve --keep-releases`.
pub const DEFAULT_KEEP_RELEASES: u32 = 20;

/// Which stored versions gc keeps (beyond the live, aliased and warm ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The last this many versions of each function (at least 1: the newest
    /// version is always kept).
    pub keep_versions: u32,
    /// Every version named in the last this many entries of each
    /// function's release history.
    pub keep_releases: u32,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            keep_versions: DEFAULT_KEEP_VERSIONS,
            keep_releases: DEFAULT_KEEP_RELEASES,
        }
    }
}

impl Retention {
    /// The versions of one function that this policy keeps. `versions` is
    /// oldest first, `releases` newest first.
    pub fn kept(
        &self,
        versions: &[VersionRecord],
        live: Option<u32>,
        aliased: &HashSet<u32>,
        releases: &[ReleaseRecord],
        in_use: &HashSet<u32>,
    ) -> HashSet<u32> {
        let newest = self.keep_versions.max(1) as usize;
        let mut kept: HashSet<u32> = versions
            .iter()
            .rev()
            .take(newest)
            .map(|v| v.version)
            .collect();
        kept.extend(live);
        kept.extend(aliased);
        kept.extend(in_use);
        for r in releases.iter().take(self.keep_releases as usize) {
            kept.insert(r.version);
            kept.extend(r.from_version);
            kept.extend(r.split.map(|(v, _)| v));
        }
        kept
    }
}

impl Engine {
    /// The retention policy gc applies.
    pub fn retention(&self) -> Retention {
        self.versions.retention
    }

    /// Remove (unless `dry_run`) the stored versions the retention policy
    /// does not keep and the directories no kept version needs; returns
    /// what was (or would be) removed.
    pub async fn gc(&self, dry_run: bool) -> Result<GcReport, PublishError> {
        let v = &self.versions;
        let retention = v.retention;
        let mut report = GcReport {
            dry_run,
            keep_versions: retention.keep_versions.max(1),
            keep_releases: retention.keep_releases,
            ..GcReport::default()
        };
        // Versions, one function at a time, each under its lock.
        let mut dropped: HashSet<(String, u32)> = HashSet::new();
        for f in v.store.list_functions().await? {
            let lock = self.releases.locks.of(&f.name);
            let _function = lock.lock().await;
            let _gate = v.gate.lock().await;
            let in_use: HashSet<u32> = v
                .in_use()
                .into_iter()
                .filter(|(name, _)| *name == f.name)
                .map(|(_, version)| version)
                .collect();
            let live = v
                .store
                .function(&f.name)
                .await?
                .and_then(|f| f.live_version);
            let aliased: HashSet<u32> = v
                .store
                .aliases()
                .await?
                .into_iter()
                .filter(|a| a.function == f.name)
                .flat_map(|a| [Some(a.target.version), a.target.split.map(|(v, _)| v)])
                .flatten()
                .collect();
            let versions = v.store.versions(&f.name).await?;
            let releases = v.store.releases(&f.name).await?;
            let kept = retention.kept(&versions, live, &aliased, &releases, &in_use);
            let doomed: Vec<&VersionRecord> = versions
                .iter()
                .filter(|r| !kept.contains(&r.version))
                .collect();
            if doomed.is_empty() {
                continue;
            }
            let numbers: Vec<u32> = doomed.iter().map(|r| r.version).collect();
            let removed: HashSet<u32> = if dry_run {
                numbers.into_iter().collect()
            } else {
                let numbers: Vec<u32> = numbers
                    .into_iter()
                    .filter(|n| v.reclaim(&f.name, *n))
                    .collect();
                v.store
                    .delete_versions(&f.name, &numbers)
                    .await?
                    .into_iter()
                    .collect()
            };
            for r in doomed.into_iter().filter(|r| removed.contains(&r.version)) {
                dropped.insert((f.name.clone(), r.version));
                report.bytes += r.size_bytes;
                report.versions.push(GcVersion {
                    function: f.name.clone(),
                    version: r.version,
                    size_bytes: r.size_bytes,
                    created_at: r.created_at,
                });
            }
        }
        if !dry_run && !report.versions.is_empty() {
            tracing::info!(
                versions = report.versions.len(),
                "gc: deleted stored versions no retention rule keeps"
            );
        }

        // Directories: those of every version still stored (in a dry run:
        // but those that would go) stay.
        let _gate = v.gate.lock().await;
        let mut code_kept: HashSet<(String, String)> = HashSet::new();
        let mut deps_kept: HashSet<(String, String)> = HashSet::new();
        // Runtimes not found now: their installs' keys cannot be worked
        // out, so all of them stay.
        let mut runtimes_unknown: HashSet<&'static str> = HashSet::new();
        for f in v.store.list_functions().await? {
            for r in v.store.versions(&f.name).await? {
                if dropped.contains(&(f.name.clone(), r.version)) {
                    continue;
                }
                code_kept.insert((f.name.clone(), CodeDir::dir_name(r.version, &r.hash)));
                let Ok(runtime) = v.runtimes.get(r.manifest.runtime) else {
                    runtimes_unknown.insert(r.manifest.runtime.as_str());
                    continue;
                };
                let files = v
                    .store
                    .version_files_named(&f.name, r.version, DEPENDENCY_FILES)
                    .await?;
                if let Some(plan) = deps::plan(runtime, &files) {
                    let (runtime, key) = deps::Deps::key(&plan);
                    deps_kept.insert((runtime.to_owned(), key.to_owned()));
                }
            }
        }
        // Pools hold their directories whatever the store says (but for
        // those of the versions that go: in a dry run, still there).
        for pool in v.pools() {
            let spec = pool.spec();
            if dropped.contains(&(spec.function.clone(), spec.version)) {
                continue;
            }
            if let Some(name) = code::file_name(&spec.dir) {
                code_kept.insert((spec.function.clone(), name.to_owned()));
            }
        }
        let mut doomed: Vec<(&'static str, std::path::PathBuf)> = Vec::new();
        for dir in v.code.version_dirs() {
            if !code_kept.contains(&(dir.function, dir.name)) {
                doomed.push(("code", dir.path));
            }
        }
        for install in v.deps.installs() {
            if runtimes_unknown.contains(install.runtime.as_str()) {
                continue;
            }
            if !deps_kept.contains(&(install.runtime, install.key)) {
                doomed.push(("deps", install.path));
            }
        }
        doomed.extend(leftovers::find(
            &v.code,
            &v.deps,
            &v.isolation.tmp_root,
            false,
        ));
        let dirs: Vec<GcDir> = leftovers::remove(doomed, dry_run);
        report.bytes += dirs.iter().map(|d| d.bytes).sum::<u64>();
        report.dirs = dirs;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: u32) -> VersionRecord {
        VersionRecord {
            id: i64::from(n),
            version: n,
            hash: format!("{n:012}"),
            message: String::new(),
            size_bytes: 1,
            file_count: 1,
            created_at: 0,
            manifest: hearth_api::manifest::parse(
                "name='f'\nruntime='python'\nentry='main.handler'\n",
            )
            .expect("manifest"),
        }
    }

    fn release(version: u32, from: Option<u32>, split: Option<u32>) -> ReleaseRecord {
        ReleaseRecord {
            version,
            from_version: from,
            action: "publish".into(),
            alias: String::new(),
            split: split.map(|v| (v, 10)),
            message: String::new(),
            actor: String::new(),
            created_at: 0,
        }
    }

    fn sorted(set: HashSet<u32>) -> Vec<u32> {
        let mut v: Vec<u32> = set.into_iter().collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn the_policy_keeps_recent_live_aliased_released_and_used_versions() {
        let versions: Vec<VersionRecord> = (1..=20).map(version).collect();
        let policy = Retention {
            keep_versions: 3,
            keep_releases: 2,
        };
        // Newest first: 15 went live from 14 (with a split to 13); before
        // that 12 from 11, which the policy no longer looks at.
        let releases = [
            release(15, Some(14), Some(13)),
            release(14, None, None),
            release(12, Some(11), None),
        ];
        let kept = policy.kept(
            &versions,
            Some(15),
            &HashSet::from([2]),
            &releases,
            &HashSet::from([5]),
        );
        assert_eq!(sorted(kept), [2, 5, 13, 14, 15, 18, 19, 20]);
        // At least the newest version stays, whatever the setting.
        let none = Retention {
            keep_versions: 0,
            keep_releases: 0,
        };
        let kept = none.kept(&versions, None, &HashSet::new(), &releases, &HashSet::new());
        assert_eq!(sorted(kept), [20]);
    }
}
