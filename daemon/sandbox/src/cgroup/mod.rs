//! Per-application and per-worker cgroups, on cgroup v1 and cgroup v2.
//!
//! Layout. Everything hearth creates lives in one tree, `hearth-<daemon
//! pid>`, created under the daemon's *own* cgroup (read from
//! `/proc/self/cgroup`), never at a hierarchy's root: the daemon may itself
//! be confined (a container, a systemd unit, a session's memory cgroup) and
//! its limits must keep covering its workers. Below it, one cgroup per
//! application (`app-<name>`, carrying the app's budget) and one per worker
//! (`app-<name>/w-<n>`, carrying the worker's limits). Because the worker
//! cgroups are children of the app cgroup, the app budget caps the sum of
//! its workers.
//!
//! On cgroup v1 every controller is its own hierarchy and the daemon's own
//! cgroup can differ between them, so the tree is made once per controller
//! (memory, cpu, pids, and freezer when mounted, which only serves to stop
//! forks while killing). On cgroup v2 there is one tree; the daemon's own
//! cgroup must first hand the controllers down (see [`Cgroups::detect`]).
//!
//! This file holds the vocabulary: the public handles ([`Cgroups`],
//! [`WorkerCgroup`]) and limits, and the `Backend` trait that the two
//! versions implement. Where the rest is:
//! - `detect.rs`: finding the host's cgroups (and `Cgroups::detect_at`,
//!   the same on given texts and a fixture root);
//! - `mount.rs`: pure parsers of `/proc/self/mountinfo` and `/proc/self/cgroup`;
//! - `v1.rs`, `v2.rs`: the two back ends;
//! - `tree.rs`: what is common to both (naming, killing, removal);
//! - `fs.rs`: where cgroupfs is, and small file helpers;
//! - `error.rs`: [`CgroupError`].
//!
//! Why not the `cgroups-rs` crate (0.5.1 was evaluated): its `kill()` is
//! v2-only, its v1 `memory.oom_control` parser panics (`unwrap`) on
//! unexpected contents, its v2 set-up enables controllers from the
//! hierarchy root down and ignores the no-internal-processes rule, it writes
//! `memory.memsw.limit_in_bytes` after `memory.limit_in_bytes` always
//! (which the kernel rejects when a limit is raised), it cannot set `memory.use_hierarchy`, and it
//! brings a D-Bus stack and a second `nix`. What hearth needs is a few dozen
//! reads and writes of cgroupfs files, written here.

mod detect;
mod error;
mod fs;
mod mount;
mod tree;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

pub use error::CgroupError;

use fs::{procs_in, read_keyed, write_file, Cgroupfs};
use tree::{app_rel, lock, Freezer, Inner};

/// Where the cgroup filesystem is expected to be mounted (v2 detection
/// looks here, as systemd and the kernel documentation do).
const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// CFS period used for CPU quotas: 100 ms, so 1000 millicores = 100 000 µs
/// of CPU time per period = one full core.
const CPU_PERIOD_US: u64 = 100_000;

/// The kernel refuses CFS quotas below 1 ms.
const MIN_CPU_QUOTA_US: i64 = 1_000;

/// How long [`WorkerCgroup`]'s `Drop` may block in total.
const DROP_BUDGET: Duration = Duration::from_millis(100);

/// How much of [`DROP_BUDGET`] killing may take before removal starts.
const KILL_BUDGET: Duration = Duration::from_millis(60);

/// A resource controller hearth uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Controller {
    Memory,
    Cpu,
    Pids,
    /// v1 only: lets [`WorkerCgroup::kill_all`] stop forks while it kills.
    Freezer,
}

impl Controller {
    /// The controllers that carry limits, in the order they are described.
    const LIMITS: [Controller; 3] = [Controller::Memory, Controller::Cpu, Controller::Pids];

    /// The kernel's name for the controller.
    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
            Controller::Freezer => "freezer",
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A budget shared by all workers of one application. 0 means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppBudget {
    /// Memory (RAM, and swap on top of it is not allowed) for all the app's
    /// workers together, in MiB.
    pub memory_mb: u64,
    /// CPU time for all the app's workers together, in thousandths of a
    /// core: 1000 is one full core, 250 a quarter of one.
    pub cpu_millicores: u32,
}

/// Limits of one worker process and everything it forks. 0 means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerLimits {
    /// Memory in MiB (swap does not add to it).
    pub memory_mb: u64,
    /// CPU time in thousandths of a core (1000 = one full core).
    pub cpu_millicores: u32,
    /// Processes and threads alive at once, the worker included.
    pub pids: u32,
}

/// A memory limit in MiB (0 = unlimited) as bytes (`None` = unlimited).
fn memory_bytes(mb: u64) -> Option<u64> {
    (mb > 0).then(|| mb.saturating_mul(1024 * 1024))
}

/// CFS quota in µs per [`CPU_PERIOD_US`] for `millicores` (-1 = unlimited).
fn quota_us(millicores: u32) -> i64 {
    if millicores == 0 {
        return -1;
    }
    (i64::from(millicores) * CPU_PERIOD_US as i64 / 1000).max(MIN_CPU_QUOTA_US)
}

/// What a group being created is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// An application's: its children are the workers.
    App,
    /// One worker's: a leaf.
    Worker,
}

/// What differs between cgroup v1 and v2: where a group's files are and
/// what is written to them. Groups are named by their path `rel` relative
/// to hearth's root (`""` is the root itself). A limit whose controller is
/// not in use is skipped (`Ok`); a reading without it is `None`.
pub(crate) trait Backend: fmt::Debug + Send + Sync {
    /// "v1" or "v2", for [`Cgroups::describe`].
    fn version(&self) -> &'static str;

    /// The cgroup filesystem the groups live in.
    fn fs(&self) -> &Cgroupfs;

    /// Controllers in use, limits first.
    fn controllers(&self) -> Vec<Controller>;

    /// The directories of group `rel`: one per hierarchy.
    fn dirs(&self, rel: &Path) -> Vec<PathBuf>;

    /// The directory holding controller `c`'s files for group `rel`, if
    /// `c` is in use.
    fn dir(&self, c: Controller, rel: &Path) -> Option<PathBuf>;

    /// Finish setting up hearth's root once it exists and is empty.
    fn prepare_root(&self) -> Result<(), CgroupError>;

    /// Create group `rel` in every hierarchy (existing directories are
    /// fine), set up for what `kind` says it holds.
    fn create_group(&self, rel: &Path, kind: Group) -> Result<(), CgroupError>;

    /// Set group `rel`'s memory limit (`None` = unlimited), swap included.
    fn set_memory(&self, rel: &Path, bytes: Option<u64>) -> Result<(), CgroupError>;

    /// Set application group `rel`'s CPU budget (0 = unlimited).
    fn set_app_cpu(&self, rel: &Path, millicores: u32) -> Result<(), CgroupError>;

    /// Set worker group `rel`'s CPU limit (0 = unlimited).
    fn set_worker_cpu(&self, rel: &Path, millicores: u32) -> Result<(), CgroupError>;

    /// Set group `rel`'s process limit (0 = unlimited): `pids.max` on both
    /// versions.
    fn set_pids(&self, rel: &Path, pids: u32) -> Result<(), CgroupError> {
        let Some(dir) = self.dir(Controller::Pids, rel) else {
            return Ok(());
        };
        let value = if pids == 0 {
            "max".to_string()
        } else {
            pids.to_string()
        };
        write_file(&dir.join("pids.max"), &value)
    }

    /// Worker group `rel` is gone: forget what was remembered of it.
    fn forget(&self, _rel: &Path) {}

    /// How many processes of group `rel` the OOM killer has killed.
    fn oom_kills(&self, rel: &Path) -> Option<u64>;

    /// How many forks or thread creations the pids limit has refused in
    /// group `rel` (`pids.events` "max", on both versions).
    fn pids_refused(&self, rel: &Path) -> Option<u64> {
        let dir = self.dir(Controller::Pids, rel)?;
        read_keyed(&dir.join("pids.events"), "max")
    }

    /// The most memory group `rel` has used at once, in bytes.
    fn memory_peak(&self, rel: &Path) -> Option<u64>;

    /// Kill group `rel` with everything below it in one step, if the kernel
    /// can, and wait until it is empty: `Some(false)` if it is not by
    /// `deadline`, `None` if there is no such step (then processes are
    /// signalled one by one).
    fn kill_at_once(&self, _rel: &Path, _deadline: Instant) -> Option<bool> {
        None
    }

    /// Whether [`Backend::kill_at_once`] on hearth's root empties the whole
    /// tree, so that removing the tree may start with it.
    fn kill_reaches_descendants(&self) -> bool {
        false
    }

    /// How to freeze group `rel` while killing it, if the kernel can.
    fn freezer(&self, rel: &Path) -> Option<Freezer>;
}

/// hearth's cgroups: one tree under the daemon's own cgroup, with one cgroup
/// per application and one per worker. Cheap to clone (an `Arc` inside);
/// when the last clone and the last [`WorkerCgroup`] are gone the tree is
/// removed, as [`Cgroups::cleanup`] does.
#[derive(Clone, Debug)]
pub struct Cgroups {
    inner: Arc<Inner>,
}

/// One worker's cgroup (in every controller's hierarchy on v1). Dropping it
/// kills whatever is left in it and removes it.
#[derive(Debug)]
pub struct WorkerCgroup {
    inner: Arc<Inner>,
    /// Path relative to hearth's root: `app-<name>/w-<n>`.
    rel: PathBuf,
}

impl Cgroups {
    /// hearth's tree on `backend`, whose root directory exists. When it
    /// existed already (`stale`: left by an earlier daemon with the same
    /// pid) it is emptied first.
    fn assemble(
        backend: Box<dyn Backend>,
        name: &str,
        stale: bool,
    ) -> Result<Cgroups, CgroupError> {
        // From here on, dropping `inner` removes what was created.
        let inner = Inner::new(backend, name);
        if stale {
            tracing::info!(
                "emptying hearth's cgroup {} left by an earlier daemon with the same pid",
                inner.root_label().display()
            );
            inner.remove_tree(false);
        }
        inner.backend.prepare_root()?;
        Ok(Cgroups {
            inner: Arc::new(inner),
        })
    }

    /// A one-line description for the daemon's start-up log, e.g.
    /// `cgroup v1 (memory, cpu, pids, freezer) in hearth-4242`.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self
            .inner
            .backend
            .controllers()
            .iter()
            .map(|c| c.name())
            .collect();
        format!(
            "cgroup {} ({}) in {}",
            self.inner.backend.version(),
            names.join(", "),
            self.inner.name
        )
    }

    /// Create the application's cgroup `<hearth>/app-<app>` if needed, and
    /// set its budget (0 = unlimited). Its workers' cgroups are its
    /// children, so the budget covers them together. Call again to change
    /// the budget; on v1 the workers' CPU quotas are capped at the app's
    /// (the kernel insists) and restored when the app's is raised again.
    pub fn app(&self, app: &str, budget: &AppBudget) -> Result<(), CgroupError> {
        let inner = &self.inner;
        inner.check_open()?;
        let rel = app_rel(app)?;
        inner.backend.create_group(&rel, Group::App)?;
        inner
            .backend
            .set_memory(&rel, memory_bytes(budget.memory_mb))?;
        inner.backend.set_app_cpu(&rel, budget.cpu_millicores)
    }

    /// A new cgroup for one worker, `<hearth>/app-<app>/w-<n>` (in every
    /// controller on v1), with `limits`. The app's cgroup is created if
    /// [`Cgroups::app`] has not been called for it (then without a budget).
    /// Move the worker in with [`WorkerCgroup::add`].
    pub fn worker(&self, app: &str, limits: &WorkerLimits) -> Result<WorkerCgroup, CgroupError> {
        let inner = &self.inner;
        inner.check_open()?;
        let retry: Vec<PathBuf> = std::mem::take(&mut *lock(&inner.leftover));
        for rel in retry {
            if !inner.remove_group(&rel, Instant::now()) {
                lock(&inner.leftover).push(rel);
            }
        }
        let app_dir = app_rel(app)?;
        inner.backend.create_group(&app_dir, Group::App)?;
        let n = inner.next_worker.fetch_add(1, Ordering::Relaxed);
        // Built before the directories exist so that its Drop removes
        // whatever was created if a later step fails.
        let worker = WorkerCgroup {
            inner: Arc::clone(inner),
            rel: app_dir.join(format!("w-{n}")),
        };
        inner.backend.create_group(&worker.rel, Group::Worker)?;
        worker.set_limits(limits)?;
        Ok(worker)
    }

    /// Kill every process left in hearth's tree and remove the tree. Called
    /// at daemon shutdown; also runs when the last handle is dropped.
    /// Calling it twice is harmless; afterwards [`Cgroups::app`] and
    /// [`Cgroups::worker`] fail with [`CgroupError::Closed`].
    pub fn cleanup(&self) {
        self.inner.cleanup();
    }

    /// Whether controller `c` is in use (tests skip what is missing).
    #[cfg(test)]
    fn has(&self, c: Controller) -> bool {
        self.inner.backend.controllers().contains(&c)
    }

    /// Directories of hearth's root cgroup, one per hierarchy.
    fn root_dirs(&self) -> Vec<PathBuf> {
        self.inner.backend.dirs(Path::new(""))
    }
}

impl WorkerCgroup {
    /// Move process `pid`, with all its threads, into this cgroup (in every
    /// hierarchy on v1). Its future children start inside it. Call right
    /// after spawning, before the worker is given user code: memory the
    /// process used before the move stays charged to the daemon's cgroup.
    pub fn add(&self, pid: u32) -> Result<(), CgroupError> {
        let dirs = self.inner.backend.dirs(&self.rel);
        // 0 would move the daemon itself; nor may the daemon enter a worker's
        // cgroup, where kill_all would kill it.
        if pid == 0 || pid == std::process::id() || i32::try_from(pid).is_err() {
            return Err(CgroupError::BadPid {
                pid,
                path: dirs.into_iter().next().unwrap_or_default(),
            });
        }
        for dir in dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string()).map_err(|source| CgroupError::Move {
                pid,
                path: procs,
                source,
            })?;
        }
        Ok(())
    }

    /// Apply new limits (0 = no limit): a generic worker gets its function's
    /// limits when it loads the function. On v1 the CPU quota is capped at
    /// the app's (see [`Cgroups::app`]). A limit whose controller is not
    /// available is skipped ([`Cgroups::describe`] lists what is).
    pub fn set_limits(&self, limits: &WorkerLimits) -> Result<(), CgroupError> {
        let backend = &self.inner.backend;
        backend.set_memory(&self.rel, memory_bytes(limits.memory_mb))?;
        backend.set_worker_cpu(&self.rel, limits.cpu_millicores)?;
        backend.set_pids(&self.rel, limits.pids)
    }

    /// Whether the kernel's OOM killer has killed a process of this cgroup
    /// (`oom_kill` in v1's `memory.oom_control`, v2's `memory.events`): the
    /// way to tell "exceeded its memory limit" from other SIGKILLs.
    pub fn oom_killed(&self) -> bool {
        self.inner
            .backend
            .oom_kills(&self.rel)
            .is_some_and(|n| n > 0)
    }

    /// Has a fork or thread creation been refused for the pids limit
    /// (`pids.events` "max" above 0)?
    pub fn pids_limit_hit(&self) -> bool {
        self.inner
            .backend
            .pids_refused(&self.rel)
            .is_some_and(|n| n > 0)
    }

    /// The most memory the cgroup has used at once, in bytes (v1
    /// `memory.max_usage_in_bytes`, v2 `memory.peak`, Linux 5.19+); `None`
    /// without the memory controller or the file.
    pub fn memory_peak_bytes(&self) -> Option<u64> {
        self.inner.backend.memory_peak(&self.rel)
    }

    /// The processes in this cgroup (sorted; empty if it is gone).
    pub fn pids(&self) -> Vec<u32> {
        procs_in(&self.inner.backend.dirs(&self.rel))
            .into_iter()
            .collect()
    }

    /// SIGKILL every process in this cgroup and wait (up to about 60 ms)
    /// for them to be gone. v2 uses `cgroup.kill` (Linux 5.14+), which
    /// no fork can escape; otherwise the cgroup is frozen (when a freezer
    /// is available), every process is signalled, and the cgroup is thawed
    /// and re-read until empty.
    pub fn kill_all(&self) {
        if !self.inner.kill_group(&self.rel, KILL_BUDGET) {
            warn!(
                "processes are still alive in {} after SIGKILL (stuck in the kernel?)",
                self.path_label()
            );
        }
    }

    /// The cgroup's directory (the memory hierarchy's on v1), for messages.
    pub fn path_label(&self) -> String {
        let backend = &self.inner.backend;
        backend
            .dir(Controller::Memory, &self.rel)
            .or_else(|| backend.dirs(&self.rel).into_iter().next())
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| format!("{}/{}", self.inner.name, self.rel.display()))
    }

    /// Directories of this cgroup, one per hierarchy.
    #[cfg(test)]
    fn dirs(&self) -> Vec<PathBuf> {
        self.inner.backend.dirs(&self.rel)
    }
}

impl Drop for WorkerCgroup {
    /// Kill what is left and remove the cgroup from every hierarchy, giving
    /// up (with a warning; [`Cgroups::cleanup`] tries again) after about
    /// 100 ms, so that dropping a worker never stalls the daemon for long.
    fn drop(&mut self) {
        let deadline = Instant::now() + DROP_BUDGET;
        let inner = &self.inner;
        if !inner.kill_group(&self.rel, KILL_BUDGET) {
            debug!("processes still alive in {}", self.path_label());
        }
        if !inner.remove_group(&self.rel, deadline) {
            debug!(
                "cgroup {} still busy; removed later (at the next worker's start, or at shutdown)",
                self.path_label()
            );
            lock(&inner.leftover).push(self.rel.clone());
        }
        inner.backend.forget(&self.rel);
    }
}
