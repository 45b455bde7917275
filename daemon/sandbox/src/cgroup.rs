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
//! Why not the `cgroups-rs` crate (0.5.1 was evaluated): its `kill()` is
//! v2-only, its v1 `memory.oom_control` parser panics (`unwrap`) on
//! unexpected contents, its v2 set-up enables controllers from the
//! hierarchy root down and ignores the no-internal-processes rule, it writes
//! `memory.memsw.limit_in_bytes` after `memory.limit_in_bytes` always
//! (which the kernel rejects when a limit is raised), it cannot set `memory.use_hierarchy`, and it
//! brings a D-Bus stack and a second `nix`. What hearth needs is a few dozen
//! reads and writes of cgroupfs files, written here.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tracing::{debug, info, warn};

/// Where the cgroup filesystem is expected to be mounted (v2 detection
/// looks here, as systemd and the kernel documentation do).
const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// On v2, the child cgroup the daemon moves itself into so that its own
/// cgroup may hand controllers down (the "no internal processes" rule).
const DAEMON_LEAF: &str = "daemon";

/// CFS period used for CPU quotas: 100 ms, so 1000 millicores = 100 000 µs
/// of CPU time per period = one full core.
const CPU_PERIOD_US: u64 = 100_000;

/// The kernel refuses CFS quotas below 1 ms.
const MIN_CPU_QUOTA_US: i64 = 1_000;

/// How long [`WorkerCgroup`]'s `Drop` may block in total.
const DROP_BUDGET: Duration = Duration::from_millis(100);

/// How much of [`DROP_BUDGET`] killing may take before removal starts.
const KILL_BUDGET: Duration = Duration::from_millis(60);

/// How long a freeze may take before killing proceeds without it.
const FREEZE_BUDGET: Duration = Duration::from_millis(20);

/// v2: the cgroup this process moved itself out of (into its `daemon`
/// leaf), so that a later [`Cgroups::detect`] in the same process (tests make
/// several) builds beside the first instead of inside the leaf. The lock also
/// serialises the delegation step between concurrent detections.
static DELEGATED_FROM: Mutex<Option<PathBuf>> = Mutex::new(None);

/// A failure to manage cgroups. Each message names the cgroupfs path
/// involved and says what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup directory could not be created.
    #[error("cannot create cgroup {path}: {source}; {}", hint(.path, .source))]
    Create {
        /// The directory that was to be created.
        path: PathBuf,
        /// The error from `mkdir`.
        source: io::Error,
    },
    /// A cgroupfs file could not be read.
    #[error("cannot read {path}: {source}; {}", hint(.path, .source))]
    Read {
        /// The file.
        path: PathBuf,
        /// The error from `read`.
        source: io::Error,
    },
    /// A value could not be written to a cgroupfs file (a limit, a
    /// controller list, ...).
    #[error("cannot write {value:?} to {path}: {source}; {}", hint(.path, .source))]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The error from `write`.
        source: io::Error,
    },
    /// A process could not be moved into a cgroup.
    #[error("cannot move process {pid} into {path}: {source}; {}", hint(.path, .source))]
    Move {
        /// The process.
        pid: u32,
        /// The `cgroup.procs` file written to.
        path: PathBuf,
        /// The error from `write`.
        source: io::Error,
    },
    /// A pid that must never be written to `cgroup.procs` (0 would move the
    /// daemon itself).
    #[error("refusing to move pid {pid} into {path}: not a worker process id (this is a bug in the caller)")]
    BadPid {
        /// The rejected pid.
        pid: u32,
        /// The cgroup it was meant for.
        path: PathBuf,
    },
    /// An application name that cannot be used as a directory name.
    #[error("application name {name:?} cannot name a cgroup: use 1 to 200 letters, digits, '-', '_' or '.', not starting with '.'")]
    BadName {
        /// The rejected name.
        name: String,
    },
    /// A cgroupfs file held something this module does not understand.
    #[error("unexpected contents in {path}: {detail}; is a cgroup filesystem mounted there? Disable cgroups with --no-cgroups if it cannot be fixed")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// [`Cgroups::cleanup`] already removed hearth's tree.
    #[error("hearth's cgroups under {path} were already removed at shutdown; no new cgroups can be made (a bug in the caller)")]
    Closed {
        /// hearth's top cgroup.
        path: PathBuf,
    },
}

/// What to do about `err` on `path`, for error messages.
fn hint(path: &Path, err: &io::Error) -> &'static str {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    match err.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => {
            if nix::unistd::geteuid().is_root() {
                "this cgroup is not hearth's to manage (under systemd give hearth's unit Delegate=yes), or disable cgroups with --no-cgroups"
            } else {
                "run hearth as root (or in a systemd unit with Delegate=yes), or disable cgroups with --no-cgroups"
            }
        }
        Some(libc::EROFS) => {
            "the cgroup filesystem is mounted read-only (inside a container?): mount it read-write, or disable cgroups with --no-cgroups"
        }
        Some(libc::ENOENT) => {
            "it does not exist: the cgroup was removed behind hearth's back, or the controller is not enabled for it"
        }
        Some(libc::ESRCH) => "the process has already exited",
        Some(libc::EBUSY) if file == "cgroup.subtree_control" || file == "cgroup.procs" => {
            "cgroup v2 forbids processes in a cgroup that hands controllers to its children: run hearth alone in its own systemd unit with Delegate=yes, or disable cgroups with --no-cgroups"
        }
        Some(libc::EBUSY) if file.starts_with("memory.") => {
            "the cgroup already uses more memory than the new limit; raise the limit or restart the workers"
        }
        Some(libc::EBUSY) => "the cgroup still has processes or child cgroups",
        Some(libc::EINVAL) if file.starts_with("cpu.") => {
            "on cgroup v1 a CPU quota may not exceed a parent cgroup's: the daemon's own cgroup may have a lower quota"
        }
        Some(libc::EINVAL) => "the kernel rejected the value",
        Some(libc::ENOSPC) => {
            "the kernel's cgroup limits are reached (cgroup.max.descendants or cgroup.max.depth)"
        }
        _ => "see the kernel log (dmesg), or disable cgroups with --no-cgroups",
    }
}

impl CgroupError {
    /// The error means "cgroups are not usable here" (no permission, a
    /// read-only mount, a cgroup that may not delegate), as opposed to a
    /// surprising failure. [`Cgroups::detect`] turns these into `Ok(None)`.
    fn means_unusable(&self) -> bool {
        let source = match self {
            CgroupError::Create { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Move { source, .. } => source,
            _ => return false,
        };
        matches!(
            source.raw_os_error(),
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) | Some(libc::EBUSY)
        )
    }
}

/// A resource controller hearth uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Controller {
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

/// How one group (hearth's root, an app, a worker) maps onto cgroupfs.
#[derive(Debug)]
enum Backend {
    /// cgroup v1: one hierarchy per controller, each with its own copy of
    /// hearth's tree rooted at the given directory (`.../hearth-<pid>`).
    V1 { roots: Vec<(Controller, PathBuf)> },
    /// cgroup v2: one tree rooted at `root` (`<own>/hearth-<pid>`), with
    /// `controllers` enabled for every level below it.
    V2 {
        root: PathBuf,
        controllers: Vec<Controller>,
    },
}

/// `base` joined with `rel`, without the trailing slash that joining an
/// empty path would add (it shows in messages).
fn under(base: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

impl Backend {
    /// Controllers in use, limits first.
    fn controllers(&self) -> Vec<Controller> {
        let mut list: Vec<Controller> = match self {
            Backend::V1 { roots } => roots.iter().map(|(c, _)| *c).collect(),
            Backend::V2 { controllers, .. } => controllers.clone(),
        };
        list.sort();
        list
    }

    /// The directories of group `rel` (relative to hearth's root): one per
    /// hierarchy.
    fn dirs(&self, rel: &Path) -> Vec<PathBuf> {
        match self {
            Backend::V1 { roots } => roots.iter().map(|(_, root)| under(root, rel)).collect(),
            Backend::V2 { root, .. } => vec![under(root, rel)],
        }
    }

    /// The directory holding controller `c`'s files for group `rel`, if `c`
    /// is in use.
    fn dir(&self, c: Controller, rel: &Path) -> Option<PathBuf> {
        match self {
            Backend::V1 { roots } => roots
                .iter()
                .find(|(rc, _)| *rc == c)
                .map(|(_, root)| under(root, rel)),
            Backend::V2 { root, controllers } => controllers.contains(&c).then(|| under(root, rel)),
        }
    }

    fn is_v2(&self) -> bool {
        matches!(self, Backend::V2 { .. })
    }
}

/// State shared by [`Cgroups`] handles and the [`WorkerCgroup`]s made from
/// them. Dropping the last reference removes hearth's tree.
#[derive(Debug)]
struct Inner {
    backend: Backend,
    /// Name of hearth's top cgroup, `hearth-<pid>`.
    name: String,
    /// Source of worker cgroup names; unique within this tree.
    next_worker: AtomicU64,
    /// Set by cleanup: no new cgroups after it.
    closed: AtomicBool,
    /// v1 only: CPU quotas must nest (a child's may not exceed its parent's),
    /// so app and worker quota changes are made one at a time, and each
    /// worker's requested quota (µs, -1 = unlimited) is remembered so that
    /// raising an app's budget can give its workers back what they asked.
    cpu: Mutex<HashMap<PathBuf, i64>>,
    /// Worker cgroups whose removal failed (a process was still exiting):
    /// tried again whenever a worker cgroup is made, so none piles up.
    leftover: Mutex<Vec<PathBuf>>,
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
    /// Detect the cgroup version and set up hearth's tree,
    /// `<own>/hearth-<daemon pid>`, under the daemon's own cgroup.
    ///
    /// On cgroup v1 (no cgroup2 at `/sys/fs/cgroup`) the memory, cpu, pids
    /// and freezer hierarchies are found in `/proc/self/mountinfo` and the
    /// tree is created in each, under the daemon's cgroup of that controller.
    ///
    /// On cgroup v2 the daemon's own cgroup must enable memory, cpu and pids
    /// for its children (`cgroup.subtree_control`), which the kernel allows
    /// only for a cgroup without processes of its own. So the daemon first
    /// moves itself into `<own>/daemon`, then enables the controllers; this
    /// is what systemd's `Delegate=yes` expects of a service. Other processes
    /// sharing the daemon's cgroup are not moved: they make the set-up fail.
    ///
    /// Returns `Ok(None)`, with the reason logged as a warning, when cgroups
    /// cannot be used here: not root, no cgroup filesystem, a read-only
    /// mount, no controllers delegated. `Err` is kept for surprising failures.
    /// A tree left by an earlier daemon with the same pid is emptied.
    ///
    /// Trees left by daemons that died (`hearth-<pid>` whose process is
    /// gone) are emptied and removed first: a worker that outlived its
    /// daemon (one that changed user loses its parent-death signal) ends
    /// here at the latest.
    pub fn detect() -> Result<Option<Cgroups>, CgroupError> {
        let found = Cgroups::detect_named(&format!("hearth-{}", std::process::id()))?;
        if let Some(cgroups) = &found {
            cgroups.sweep_stale();
        }
        Ok(found)
    }

    /// Kill everything in the tree `name` (`hearth-<pid>`) and remove it:
    /// what the reaper does when its daemon is gone.
    pub fn reap(name: &str) {
        if let Ok(Some(tree)) = Cgroups::detect_named(name) {
            tree.cleanup();
        }
    }

    /// Remove the trees of daemons that are gone.
    fn sweep_stale(&self) {
        let mut stale = BTreeSet::new();
        for root in self.root_dirs() {
            let Some(parent) = root.parent() else {
                continue;
            };
            let Ok(entries) = fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(pid) = name
                    .strip_prefix("hearth-")
                    .and_then(|p| p.parse::<u32>().ok())
                else {
                    continue;
                };
                // Gone, or the pid now belongs to another program.
                let alive = fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "hearth");
                if pid != std::process::id() && !alive {
                    stale.insert(name);
                }
            }
        }
        for name in stale {
            warn!("removing the cgroups of a hearth daemon that is gone ({name}) and any process left in them");
            if let Ok(Some(old)) = Cgroups::detect_named(&name) {
                old.cleanup();
            }
        }
    }

    /// [`Cgroups::detect`] with the top cgroup named `name` (tests use
    /// unique names so that they can run in parallel).
    fn detect_named(name: &str) -> Result<Option<Cgroups>, CgroupError> {
        let own_file = Path::new("/proc/self/cgroup");
        let own_text = match fs::read_to_string(own_file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                warn!(
                    "cgroups disabled: {} does not exist (a kernel without cgroups?)",
                    own_file.display()
                );
                return Ok(None);
            }
            Err(source) => {
                return Err(CgroupError::Read {
                    path: own_file.into(),
                    source,
                })
            }
        };
        let mountinfo_file = Path::new("/proc/self/mountinfo");
        let mountinfo = fs::read_to_string(mountinfo_file).map_err(|source| CgroupError::Read {
            path: mountinfo_file.into(),
            source,
        })?;
        let own = parse_proc_cgroup(&own_text);
        let mounts = parse_mountinfo(&mountinfo);
        let v2 = matches!(
            nix::sys::statfs::statfs(CGROUP_MOUNT),
            Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC
        );
        let result = if v2 {
            detect_v2(&mounts, &own, name)
        } else {
            detect_v1(&mounts, &own, name)
        };
        match result {
            Err(e) if e.means_unusable() => {
                warn!("cgroups disabled: {e}");
                Ok(None)
            }
            other => other,
        }
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
            if self.inner.backend.is_v2() {
                "v2"
            } else {
                "v1"
            },
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
        inner.create_group(&rel, true)?;
        inner.set_memory(&rel, budget.memory_mb)?;
        inner.set_app_cpu(&rel, budget.cpu_millicores)
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
        inner.create_group(&app_dir, true)?;
        let n = inner.next_worker.fetch_add(1, Ordering::Relaxed);
        // Built before the directories exist so that its Drop removes
        // whatever was created if a later step fails.
        let worker = WorkerCgroup {
            inner: Arc::clone(inner),
            rel: app_dir.join(format!("w-{n}")),
        };
        inner.create_group(&worker.rel, false)?;
        if let (true, Some(dir)) = (
            inner.backend.is_v2(),
            inner.backend.dir(Controller::Memory, &worker.rel),
        ) {
            // A worker is one unit: if the OOM killer picks any of its
            // processes, kill them all rather than leave a maimed worker.
            let group = dir.join("memory.oom.group");
            if group.exists() {
                write_file(&group, "1")?;
            }
        }
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
            fs::write(&procs, pid.to_string()).map_err(|source| CgroupError::Move {
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
        let inner = &self.inner;
        inner.set_memory(&self.rel, limits.memory_mb)?;
        inner.set_worker_cpu(&self.rel, limits.cpu_millicores)?;
        inner.set_pids(&self.rel, limits.pids)
    }

    /// Whether the kernel's OOM killer has killed a process of this cgroup
    /// (`oom_kill` in v1's `memory.oom_control`, v2's `memory.events`): the
    /// way to tell "exceeded its memory limit" from other SIGKILLs.
    pub fn oom_killed(&self) -> bool {
        let Some(dir) = self.inner.backend.dir(Controller::Memory, &self.rel) else {
            return false;
        };
        let file = if self.inner.backend.is_v2() {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|text| keyed_value(&text, "oom_kill"))
            .is_some_and(|n| n > 0)
    }

    /// Has a fork or thread creation been refused for the pids limit
    /// (`pids.events` "max" above 0)?
    pub fn pids_limit_hit(&self) -> bool {
        let Some(dir) = self.inner.backend.dir(Controller::Pids, &self.rel) else {
            return false;
        };
        fs::read_to_string(dir.join("pids.events"))
            .ok()
            .and_then(|text| keyed_value(&text, "max"))
            .is_some_and(|n| n > 0)
    }

    /// The most memory the cgroup has used at once, in bytes (v1
    /// `memory.max_usage_in_bytes`, v2 `memory.peak`, Linux 5.19+); `None`
    /// without the memory controller or the file.
    pub fn memory_peak_bytes(&self) -> Option<u64> {
        let dir = self.inner.backend.dir(Controller::Memory, &self.rel)?;
        let file = if self.inner.backend.is_v2() {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
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
        lock(&inner.cpu).remove(&self.rel);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cleanup();
    }
}

impl Inner {
    fn new(backend: Backend, name: &str) -> Inner {
        Inner {
            backend,
            name: name.to_string(),
            next_worker: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            cpu: Mutex::new(HashMap::new()),
            leftover: Mutex::new(Vec::new()),
        }
    }

    fn root_label(&self) -> PathBuf {
        self.backend
            .dirs(Path::new(""))
            .into_iter()
            .next()
            .unwrap_or_else(|| PathBuf::from(&self.name))
    }

    fn check_open(&self) -> Result<(), CgroupError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(CgroupError::Closed {
                path: self.root_label(),
            });
        }
        Ok(())
    }

    /// Create group `rel` in every hierarchy (existing directories are
    /// fine). On v2 a group that will hold workers hands its controllers
    /// down to them.
    fn create_group(&self, rel: &Path, holds_workers: bool) -> Result<(), CgroupError> {
        for dir in self.backend.dirs(rel) {
            make_dir(&dir)?;
        }
        if let (true, Backend::V2 { root, controllers }) = (holds_workers, &self.backend) {
            enable_v2(&under(root, rel), controllers)?;
        }
        Ok(())
    }

    /// Set group `rel`'s memory limit in MiB (0 = unlimited), swap included.
    fn set_memory(&self, rel: &Path, mb: u64) -> Result<(), CgroupError> {
        let Some(dir) = self.backend.dir(Controller::Memory, rel) else {
            return Ok(());
        };
        let bytes = (mb > 0).then(|| mb.saturating_mul(1024 * 1024));
        if self.backend.is_v2() {
            set_memory_v2(&dir, bytes)
        } else {
            set_memory_v1(&dir, bytes)
        }
    }

    /// Set group `rel`'s process limit (0 = unlimited).
    fn set_pids(&self, rel: &Path, pids: u32) -> Result<(), CgroupError> {
        let Some(dir) = self.backend.dir(Controller::Pids, rel) else {
            return Ok(());
        };
        let value = if pids == 0 {
            "max".to_string()
        } else {
            pids.to_string()
        };
        write_file(&dir.join("pids.max"), &value)
    }

    /// Set an app's CPU budget. On v1 its workers' quotas are first lowered
    /// to fit under a lower budget, or afterwards raised back towards what
    /// they asked for under a higher one.
    fn set_app_cpu(&self, rel: &Path, millicores: u32) -> Result<(), CgroupError> {
        let Some(dir) = self.backend.dir(Controller::Cpu, rel) else {
            return Ok(());
        };
        if self.backend.is_v2() {
            // v2 caps children at their parent's quota by itself.
            return set_cpu_v2(&dir, millicores);
        }
        let requested = lock(&self.cpu);
        let quota = quota_us(millicores);
        let workers: Vec<(PathBuf, i64)> = requested
            .iter()
            .filter(|(w, _)| w.parent() == Some(rel))
            .filter_map(|(w, want)| {
                let d = self.backend.dir(Controller::Cpu, w)?;
                Some((d, capped(*want, quota)))
            })
            .collect();
        // Children that must shrink go first, those that may grow after the
        // parent has grown: at no moment may a child exceed its parent.
        let mut later = Vec::new();
        for (worker_dir, target) in workers {
            let current = read_i64(&worker_dir.join("cpu.cfs_quota_us"))?;
            if unlimited_last(target) < unlimited_last(current) {
                set_quota_v1(&worker_dir, target)?;
            } else if target != current {
                later.push((worker_dir, target));
            }
        }
        set_quota_v1(&dir, quota)?;
        for (worker_dir, target) in later {
            set_quota_v1(&worker_dir, target)?;
        }
        Ok(())
    }

    /// Set a worker's CPU limit; on v1 capped at its app's quota.
    fn set_worker_cpu(&self, rel: &Path, millicores: u32) -> Result<(), CgroupError> {
        let Some(dir) = self.backend.dir(Controller::Cpu, rel) else {
            return Ok(());
        };
        if self.backend.is_v2() {
            return set_cpu_v2(&dir, millicores);
        }
        let mut requested = lock(&self.cpu);
        let want = quota_us(millicores);
        let app_quota = match dir.parent() {
            Some(app_dir) => read_i64(&app_dir.join("cpu.cfs_quota_us"))?,
            None => -1,
        };
        set_quota_v1(&dir, capped(want, app_quota))?;
        requested.insert(rel.to_path_buf(), want);
        Ok(())
    }

    /// How to freeze group `rel` while killing it, if the kernel can.
    fn freezer(&self, rel: &Path) -> Option<Freezer> {
        match &self.backend {
            Backend::V1 { .. } => {
                let state = self
                    .backend
                    .dir(Controller::Freezer, rel)?
                    .join("freezer.state");
                state.exists().then_some(Freezer::V1(state))
            }
            Backend::V2 { root, .. } => {
                let dir = under(root, rel);
                dir.join("cgroup.freeze")
                    .exists()
                    .then_some(Freezer::V2(dir))
            }
        }
    }

    /// SIGKILL everything in group `rel` (not its child groups on v1) and
    /// wait for it to be empty; false if something is still there after
    /// `budget`.
    fn kill_group(&self, rel: &Path, budget: Duration) -> bool {
        let deadline = Instant::now() + budget;
        let dirs = self.backend.dirs(rel);
        if let Backend::V2 { root, .. } = &self.backend {
            let dir = under(root, rel);
            let kill_file = dir.join("cgroup.kill");
            if kill_file.exists() && fs::write(&kill_file, "1").is_ok() {
                return wait_unpopulated(&dir, deadline);
            }
        }
        let mut freezer = self.freezer(rel).filter(|_| !procs_in(&dirs).is_empty());
        if let Some(f) = &freezer {
            // While frozen nothing can fork or exit, so the pids read below
            // are exactly the processes there and none is a recycled pid.
            if !f.freeze(Instant::now() + FREEZE_BUDGET) {
                debug!(
                    "cgroup {} did not freeze in time; killing anyway",
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        loop {
            let pids = procs_in(&dirs);
            let me = std::process::id();
            for pid in pids.iter().copied().filter(|p| *p != me) {
                if let Ok(raw) = i32::try_from(pid) {
                    // ESRCH (already gone) is what we want anyway.
                    let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
                }
            }
            // Frozen processes die only once thawed.
            if let Some(f) = freezer.take() {
                f.thaw();
            }
            if pids.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Remove group `rel`'s directory from every hierarchy, retrying while
    /// the kernel still reports it busy (processes finishing their exit)
    /// until `deadline`. A directory already gone counts as removed.
    fn remove_group(&self, rel: &Path, deadline: Instant) -> bool {
        let mut all = true;
        for dir in self.backend.dirs(rel) {
            loop {
                match fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => {
                        debug!("cannot remove {}: {e}", dir.display());
                        all = false;
                        break;
                    }
                }
            }
        }
        all
    }

    /// Kill and remove every group below hearth's root (deepest first),
    /// then the root itself when `include_root`.
    fn remove_tree(&self, include_root: bool) {
        let mut groups = BTreeSet::new();
        for root in self.backend.dirs(Path::new("")) {
            collect_groups(&root, Path::new(""), 0, &mut groups);
        }
        if self.backend.is_v2() {
            // cgroup.kill on the root takes the whole tree at once.
            self.kill_group(Path::new(""), Duration::from_millis(200));
        }
        let mut groups: Vec<PathBuf> = groups.into_iter().collect();
        groups.sort_by_key(|g| std::cmp::Reverse(g.components().count()));
        if include_root {
            groups.push(PathBuf::new());
        }
        let mut left = Vec::new();
        for rel in groups {
            self.kill_group(&rel, Duration::from_millis(200));
            if !self.remove_group(&rel, Instant::now() + Duration::from_millis(100)) {
                left.push(rel);
            }
        }
        if !left.is_empty() {
            warn!(
                "could not remove hearth's cgroups {} under {}; remove them with rmdir once their processes are gone",
                left.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", "),
                self.root_label().display()
            );
        }
    }

    fn cleanup(&self) {
        self.closed.store(true, Ordering::Release);
        self.remove_tree(true);
    }
}

/// Lock `m`, ignoring poisoning: the data (requested quotas) stays valid
/// whatever panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Relative paths of every cgroup below `dir` (which is `rel` in hearth's
/// tree). The depth cap guards against a worker that nests cgroups of its
/// own without end.
fn collect_groups(dir: &Path, rel: &Path, depth: usize, out: &mut BTreeSet<PathBuf>) {
    if depth > 16 {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let child = rel.join(entry.file_name());
            collect_groups(&entry.path(), &child, depth + 1, out);
            out.insert(child);
        }
    }
}

/// A way to stop every process of a cgroup while its pids are read and
/// signalled.
enum Freezer {
    /// v1: the group's `freezer.state` file.
    V1(PathBuf),
    /// v2: the group's directory (`cgroup.freeze`, `cgroup.events`).
    V2(PathBuf),
}

impl Freezer {
    /// Freeze and wait until the kernel reports it done; false if it is not
    /// by `deadline` (a process in uninterruptible sleep holds it up).
    fn freeze(&self, deadline: Instant) -> bool {
        let written = match self {
            Freezer::V1(state) => fs::write(state, "FROZEN"),
            Freezer::V2(dir) => fs::write(dir.join("cgroup.freeze"), "1"),
        };
        if written.is_err() {
            return false;
        }
        loop {
            let frozen = match self {
                Freezer::V1(state) => fs::read_to_string(state).is_ok_and(|s| s.trim() == "FROZEN"),
                Freezer::V2(dir) => {
                    fs::read_to_string(dir.join("cgroup.events"))
                        .ok()
                        .and_then(|t| keyed_value(&t, "frozen"))
                        == Some(1)
                }
            };
            if frozen {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn thaw(&self) {
        let result = match self {
            Freezer::V1(state) => fs::write(state, "THAWED"),
            Freezer::V2(dir) => fs::write(dir.join("cgroup.freeze"), "0"),
        };
        if let Err(e) = result {
            // ENOENT: the group is gone already, nothing stays frozen.
            if e.kind() != io::ErrorKind::NotFound {
                warn!("cannot thaw a worker cgroup: {e}; its processes stay frozen until it is removed");
            }
        }
    }
}

/// Wait until v2 cgroup `dir` and its descendants have no live process
/// (`populated 0` in `cgroup.events`); false if not by `deadline`.
fn wait_unpopulated(dir: &Path, deadline: Instant) -> bool {
    loop {
        match fs::read_to_string(dir.join("cgroup.events")) {
            Ok(text) if keyed_value(&text, "populated") != Some(1) => return true,
            Err(_) => return true,
            Ok(_) => {}
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The application's group, relative to hearth's root.
fn app_rel(app: &str) -> Result<PathBuf, CgroupError> {
    let ok = !app.is_empty()
        && app.len() <= 200
        && !app.starts_with('.')
        && app
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(CgroupError::BadName {
            name: app.to_string(),
        });
    }
    Ok(PathBuf::from(format!("app-{app}")))
}

/// `mkdir`; true if it was created, false if it already existed.
fn make_dir(dir: &Path) -> Result<bool, CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(CgroupError::Create {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

fn read_file(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_i64(path: &Path) -> Result<i64, CgroupError> {
    let text = read_file(path)?;
    text.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        detail: format!("expected a number, found {:?}", text.trim()),
    })
}

/// The number after `key` in a flat-keyed file (`key value` lines, as in
/// `memory.events`, `memory.oom_control`, `cgroup.events`).
fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != key {
            return None;
        }
        words.next()?.parse().ok()
    })
}

/// The union of the pids listed in each directory's `cgroup.procs` (a
/// missing directory lists none), without 0.
fn procs_in(dirs: &[PathBuf]) -> BTreeSet<u32> {
    dirs.iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.trim().parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|p| *p != 0)
        .collect()
}

/// CFS quota in µs per [`CPU_PERIOD_US`] for `millicores` (-1 = unlimited).
fn quota_us(millicores: u32) -> i64 {
    if millicores == 0 {
        return -1;
    }
    (i64::from(millicores) * CPU_PERIOD_US as i64 / 1000).max(MIN_CPU_QUOTA_US)
}

/// `want` capped at a parent's quota `parent` (both -1 = unlimited).
fn capped(want: i64, parent: i64) -> i64 {
    match (want, parent) {
        (w, -1) => w,
        (-1, p) => p,
        (w, p) => w.min(p),
    }
}

/// A quota for ordering, with unlimited (-1) above every limit.
fn unlimited_last(quota: i64) -> i64 {
    if quota < 0 {
        i64::MAX
    } else {
        quota
    }
}

/// v1: write the CFS period (if it differs) and quota of cgroup `dir`.
fn set_quota_v1(dir: &Path, quota: i64) -> Result<(), CgroupError> {
    let period = dir.join("cpu.cfs_period_us");
    if read_i64(&period)? != CPU_PERIOD_US as i64 {
        write_file(&period, &CPU_PERIOD_US.to_string())?;
    }
    write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())
}

/// v2: `cpu.max` is "<quota> <period>", with "max" for no quota.
fn set_cpu_v2(dir: &Path, millicores: u32) -> Result<(), CgroupError> {
    let quota = quota_us(millicores);
    let value = if quota < 0 {
        format!("max {CPU_PERIOD_US}")
    } else {
        format!("{quota} {CPU_PERIOD_US}")
    };
    write_file(&dir.join("cpu.max"), &value)
}

/// v1: set `memory.limit_in_bytes` and, when swap is accounted,
/// `memory.memsw.limit_in_bytes` (memory + swap) to the same value, so that
/// swapping does not stretch the limit. The kernel requires memsw >= limit
/// at every moment, so memsw goes first when raising and last when lowering.
fn set_memory_v1(dir: &Path, bytes: Option<u64>) -> Result<(), CgroupError> {
    let limit = dir.join("memory.limit_in_bytes");
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    let value = bytes.map_or_else(|| "-1".to_string(), |b| b.to_string());
    if !memsw.exists() {
        return write_file(&limit, &value);
    }
    let current = read_file(&limit)?;
    let current: u64 = current.trim().parse().map_err(|_| CgroupError::Parse {
        path: limit.clone(),
        detail: format!("expected a number of bytes, found {:?}", current.trim()),
    })?;
    let raising = bytes.is_none_or(|b| b > current);
    if raising {
        write_file(&memsw, &value)?;
        write_file(&limit, &value)
    } else {
        write_file(&limit, &value)?;
        write_file(&memsw, &value)
    }
}

/// v2: `memory.max`, and `memory.swap.max` 0 under a limit (v2 counts swap
/// separately; without this a limited worker would spill into swap).
fn set_memory_v2(dir: &Path, bytes: Option<u64>) -> Result<(), CgroupError> {
    let value = bytes.map_or_else(|| "max".to_string(), |b| b.to_string());
    write_file(&dir.join("memory.max"), &value)?;
    let swap = dir.join("memory.swap.max");
    if swap.exists() {
        write_file(&swap, if bytes.is_some() { "0" } else { "max" })?;
    }
    Ok(())
}

/// v2: enable `controllers` for the children of `dir` (those already
/// enabled are left alone).
fn enable_v2(dir: &Path, controllers: &[Controller]) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.subtree_control");
    let enabled = read_file(&file)?;
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.contains(&c.name()))
        .map(|c| format!("+{}", c.name()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write_file(&file, &missing.join(" "))
}

/// One line of `/proc/self/cgroup`: `<hierarchy id>:<controllers>:<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnCgroup {
    /// "0" for the v2 hierarchy.
    id: String,
    /// v1 controllers of the hierarchy (`cpu,cpuacct` gives two;
    /// `name=systemd` is kept as is); empty for v2.
    controllers: Vec<String>,
    /// The daemon's cgroup in that hierarchy, from its root (or from the
    /// cgroup namespace's root).
    path: String,
}

fn parse_proc_cgroup(text: &str) -> Vec<OwnCgroup> {
    text.lines()
        .filter_map(|line| {
            // The path may itself contain ':', so split only twice.
            let mut parts = line.splitn(3, ':');
            let id = parts.next()?.to_string();
            let controllers = parts.next()?;
            let path = parts.next()?.to_string();
            Some(OwnCgroup {
                id,
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path,
            })
        })
        .collect()
}

/// A cgroup filesystem mount from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CgroupMount {
    /// The directory of the hierarchy that is mounted (`/` unless a
    /// container bind-mounted a subtree).
    root: String,
    mount_point: PathBuf,
    /// v1: the controllers of the hierarchy (from the super options).
    controllers: Vec<String>,
    v2: bool,
}

/// The cgroup mounts in `mountinfo` (format: proc(5)).
fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    text.lines()
        .filter_map(|line| {
            // Optional fields end with a lone "-"; then fstype, source,
            // super options.
            let (left, right) = line.split_once(" - ")?;
            let mut left = left.split(' ');
            let root = unescape_octal(left.nth(3)?);
            let mount_point = PathBuf::from(unescape_octal(left.next()?));
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or("");
            let v2 = match fstype {
                "cgroup" => false,
                "cgroup2" => true,
                _ => return None,
            };
            let controllers = if v2 {
                Vec::new()
            } else {
                options
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                    .map(str::to_string)
                    .collect()
            };
            Some(CgroupMount {
                root,
                mount_point,
                controllers,
                v2,
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `path` (a cgroup path from /proc/self/cgroup) relative to a mount's
/// `root`, or `None` if the mount does not show it (a path outside the
/// mounted subtree, or with `..`, as seen from another cgroup namespace).
fn relative_to<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    if path.split('/').any(|p| p == "..") {
        return None;
    }
    let rest = if root == "/" {
        path
    } else {
        path.strip_prefix(root.trim_end_matches('/'))?
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(rest.trim_start_matches('/'))
}

/// v1: the daemon's own cgroup directory for controller `c`: `Ok(None)` if
/// the controller is not mounted, `Err(reason)` if it is but the daemon's
/// cgroup cannot be reached through any mount.
fn v1_own_dir(
    mounts: &[CgroupMount],
    own: &[OwnCgroup],
    c: Controller,
) -> Result<Option<PathBuf>, String> {
    let Some(line) = own
        .iter()
        .find(|l| l.controllers.iter().any(|x| x == c.name()))
    else {
        return Ok(None);
    };
    let mut mounted = false;
    for m in mounts
        .iter()
        .filter(|m| !m.v2 && m.controllers.iter().any(|x| x == c.name()))
    {
        mounted = true;
        if let Some(rel) = relative_to(&line.path, &m.root) {
            let dir = under(&m.mount_point, Path::new(rel));
            if dir.is_dir() {
                return Ok(Some(dir));
            }
        }
    }
    if mounted {
        Err(format!(
            "the daemon's {c} cgroup {} is not visible under any mount of that hierarchy",
            line.path
        ))
    } else {
        Ok(None)
    }
}

fn detect_v1(
    mounts: &[CgroupMount],
    own: &[OwnCgroup],
    name: &str,
) -> Result<Option<Cgroups>, CgroupError> {
    let mut own_dirs = Vec::new();
    for c in [
        Controller::Memory,
        Controller::Cpu,
        Controller::Pids,
        Controller::Freezer,
    ] {
        match v1_own_dir(mounts, own, c) {
            Ok(Some(dir)) => own_dirs.push((c, dir)),
            Ok(None) => debug!("the cgroup v1 {c} controller is not mounted"),
            Err(reason) => warn!("not using the cgroup v1 {c} controller: {reason}"),
        }
    }
    if !own_dirs.iter().any(|(c, _)| Controller::LIMITS.contains(c)) {
        warn!("cgroups disabled: {CGROUP_MOUNT} is not cgroup v2 and no cgroup v1 memory, cpu or pids hierarchy is mounted");
        return Ok(None);
    }
    let mut roots = Vec::new();
    let mut stale = false;
    for (c, own_dir) in own_dirs {
        let dir = own_dir.join(name);
        match make_dir(&dir) {
            Ok(created) => {
                stale |= !created;
                roots.push((c, dir));
            }
            Err(e) if e.means_unusable() => warn!("not using the cgroup v1 {c} controller: {e}"),
            Err(e) => {
                for (_, dir) in &roots {
                    let _ = fs::remove_dir(dir);
                }
                return Err(e);
            }
        }
    }
    if !roots.iter().any(|(c, _)| Controller::LIMITS.contains(c)) {
        for (_, dir) in &roots {
            let _ = fs::remove_dir(dir);
        }
        warn!("cgroups disabled: hearth may not create cgroups in any of the memory, cpu or pids hierarchies (see the warnings above)");
        return Ok(None);
    }
    // From here on, dropping `inner` removes what was created.
    let inner = Inner::new(Backend::V1 { roots }, name);
    if stale {
        info!(
            "emptying hearth's cgroup {} left by an earlier daemon with the same pid",
            inner.root_label().display()
        );
        inner.remove_tree(false);
    }
    if let Some(dir) = inner.backend.dir(Controller::Memory, Path::new("")) {
        // Without hierarchy an app's memory budget would not count its
        // workers. Always on since Linux 5.11; inherited by new children.
        let file = dir.join("memory.use_hierarchy");
        if fs::write(&file, "1").is_err()
            && !fs::read_to_string(&file).is_ok_and(|s| s.trim() == "1")
        {
            warn!(
                "{} is not 1: application memory budgets will not cover their workers",
                file.display()
            );
        }
    }
    Ok(Some(Cgroups {
        inner: Arc::new(inner),
    }))
}

fn detect_v2(
    mounts: &[CgroupMount],
    own: &[OwnCgroup],
    name: &str,
) -> Result<Option<Cgroups>, CgroupError> {
    let mount_root = mounts
        .iter()
        .find(|m| m.v2 && m.mount_point == Path::new(CGROUP_MOUNT))
        .map_or("/", |m| m.root.as_str());
    let Some(line) = own.iter().find(|l| l.id == "0" && l.controllers.is_empty()) else {
        warn!("cgroups disabled: /proc/self/cgroup has no cgroup v2 line although {CGROUP_MOUNT} is cgroup2");
        return Ok(None);
    };
    let Some(rel) = relative_to(&line.path, mount_root) else {
        warn!(
            "cgroups disabled: the daemon's cgroup {} is outside the cgroup2 mount at {CGROUP_MOUNT}",
            line.path
        );
        return Ok(None);
    };
    let own_dir = under(Path::new(CGROUP_MOUNT), Path::new(rel));
    let mut delegated_from = lock(&DELEGATED_FROM);
    let own_dir = match delegated_from.as_ref() {
        Some(earlier) if own_dir == earlier.join(DAEMON_LEAF) => earlier.clone(),
        _ => own_dir,
    };
    let text = read_file(&own_dir.join("cgroup.controllers"))?;
    let available: Vec<Controller> = Controller::LIMITS
        .into_iter()
        .filter(|c| text.split_whitespace().any(|w| w == c.name()))
        .collect();
    if available.is_empty() {
        warn!(
            "cgroups disabled: no memory, cpu or pids controller is available in {} (under systemd give hearth's unit Delegate=yes), or disable cgroups with --no-cgroups",
            own_dir.join("cgroup.controllers").display()
        );
        return Ok(None);
    }
    if delegate_v2(&own_dir, std::process::id(), &available)? {
        *delegated_from = Some(own_dir.clone());
    }
    build_v2(&own_dir, name, available).map(Some)
}

/// v2: make `own_dir` (the daemon's cgroup) hand `wanted` down to its
/// children. A non-root cgroup that has processes may not, so process
/// `pid` (the daemon) is first moved into `<own_dir>/daemon`. True if it
/// was moved.
fn delegate_v2(own_dir: &Path, pid: u32, wanted: &[Controller]) -> Result<bool, CgroupError> {
    let subtree = read_file(&own_dir.join("cgroup.subtree_control"))?;
    if wanted
        .iter()
        .all(|c| subtree.split_whitespace().any(|w| w == c.name()))
    {
        return Ok(false);
    }
    let moved = move_to_leaf(own_dir, pid)?;
    enable_v2(own_dir, wanted)?;
    Ok(moved)
}

/// v2: move process `pid` from `own_dir` into `<own_dir>/daemon`, unless
/// `own_dir` is the root cgroup (exempt from the no-internal-processes
/// rule; it is the one without `cgroup.type`) or has no processes. Other
/// processes are left where they are. True if it was moved.
fn move_to_leaf(own_dir: &Path, pid: u32) -> Result<bool, CgroupError> {
    let is_root = !own_dir.join("cgroup.type").exists();
    if is_root || procs_in(&[own_dir.to_path_buf()]).is_empty() {
        return Ok(false);
    }
    let leaf = own_dir.join(DAEMON_LEAF);
    make_dir(&leaf)?;
    let procs = leaf.join("cgroup.procs");
    fs::write(&procs, pid.to_string()).map_err(|source| CgroupError::Move {
        pid,
        path: procs.clone(),
        source,
    })?;
    info!(
        "moved the daemon (pid {pid}) into {} so that {} can hand controllers to hearth's cgroups",
        leaf.display(),
        own_dir.display()
    );
    Ok(true)
}

/// v2: create hearth's root `<own_dir>/<name>` handing `controllers` down.
fn build_v2(
    own_dir: &Path,
    name: &str,
    controllers: Vec<Controller>,
) -> Result<Cgroups, CgroupError> {
    let root = own_dir.join(name);
    let created = make_dir(&root)?;
    let inner = Inner::new(
        Backend::V2 {
            root: root.clone(),
            controllers,
        },
        name,
    );
    if !created {
        info!(
            "emptying hearth's cgroup {} left by an earlier daemon with the same pid",
            root.display()
        );
        inner.remove_tree(false);
    }
    if let Backend::V2 { controllers, .. } = &inner.backend {
        enable_v2(&root, controllers)?;
    }
    Ok(Cgroups {
        inner: Arc::new(inner),
    })
}

#[cfg(test)]
mod tests {
    //! These run against the real cgroupfs when the test runs as root on a
    //! machine with cgroups, and skip (printing why) otherwise. Each test
    //! uses its own tree, `hearth-<pid>-test-<label>`, so they can run in
    //! parallel, and removes it.

    use super::*;
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command, Stdio};

    /// hearth's cgroups for one test, or `None` (skip) where unusable.
    fn cgroups(label: &str) -> Option<Cgroups> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: cgroup tests need root");
            return None;
        }
        let name = format!("hearth-{}-test-{label}", std::process::id());
        match Cgroups::detect_named(&name) {
            Ok(Some(cg)) => {
                eprintln!("{}", cg.describe());
                Some(cg)
            }
            Ok(None) => {
                eprintln!("skipped: cgroups are not usable here (see the warning)");
                None
            }
            Err(e) => panic!("cgroup detection failed: {e}"),
        }
    }

    /// `sh -c script`, waiting for a line on stdin before it starts, so that
    /// the test can move it into a cgroup first.
    fn gated(script: &str) -> Child {
        Command::new("sh")
            .arg("-c")
            .arg(format!("read _ || exit 1; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh")
    }

    /// A Python in `worker` allocates 200 MB: the OOM killer must end it
    /// and the cgroup must say so.
    fn allocate_200_mb_and_be_killed(worker: &WorkerCgroup, python: &str) {
        let mut child = gated(&format!(
            "exec {python} -c 'b = bytearray(200 * 1024 * 1024); print(len(b))'"
        ));
        worker.add(child.id()).expect("add");
        go(&mut child);
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        assert!(worker.oom_killed());
    }

    fn go(child: &mut Child) {
        let stdin = child.stdin.as_mut().expect("piped stdin");
        stdin.write_all(b"go\n").expect("write to the child");
        stdin.flush().expect("flush");
    }

    /// A Python interpreter that starts fast, if there is one.
    fn python() -> Option<String> {
        let pinned = "/root/.pyenv/versions/3.11.7/bin/python3.11";
        if Path::new(pinned).exists() {
            return Some(pinned.to_string());
        }
        let ok = Command::new("python3")
            .args(["-c", "pass"])
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| "python3".to_string())
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .trim()
            .to_string()
    }

    fn assert_gone(dirs: &[PathBuf]) {
        for dir in dirs {
            assert!(!dir.exists(), "{} should have been removed", dir.display());
        }
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Cgroups>();
        check::<WorkerCgroup>();
        check::<CgroupError>();
    }

    #[test]
    fn detect_is_ok_for_anyone() {
        let name = format!("hearth-{}-test-detect", std::process::id());
        let root = nix::unistd::geteuid().is_root();
        match Cgroups::detect_named(&name) {
            Ok(Some(cg)) => {
                assert!(root, "detected usable cgroups without root");
                let roots = cg.root_dirs();
                assert!(roots.iter().all(|r| r.is_dir()));
                drop(cg);
                assert_gone(&roots);
            }
            Ok(None) => eprintln!("cgroups are not usable here"),
            Err(e) => panic!("unusable cgroups must give Ok(None), not: {e}"),
        }
    }

    #[test]
    fn parses_proc_cgroup() {
        let text = "12:cpu,cpuacct:/system.slice/x.service\n\
                    4:memory:/process_api/0234e\n\
                    9:name=systemd:/\n\
                    0::/user.slice/a:b\n";
        let own = parse_proc_cgroup(text);
        assert_eq!(own.len(), 4);
        assert_eq!(own[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(own[0].path, "/system.slice/x.service");
        assert_eq!(own[3].id, "0");
        assert!(own[3].controllers.is_empty());
        assert_eq!(own[3].path, "/user.slice/a:b");
    }

    #[test]
    fn parses_mountinfo() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /docker/abc /sys/fs/cgroup/mem\\040ory rw - cgroup cgroup ro,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(
            mounts[0].mount_point,
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(mounts[1].root, "/docker/abc");
        assert_eq!(mounts[1].mount_point, Path::new("/sys/fs/cgroup/mem ory"));
        assert_eq!(mounts[1].controllers, ["memory"]);
        assert_eq!(mounts[2].controllers, ["xattr"]);
        assert!(mounts[3].v2);
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_to("/a/b", "/"), Some("a/b"));
        assert_eq!(relative_to("/", "/"), Some(""));
        assert_eq!(relative_to("/docker/abc/x", "/docker/abc"), Some("x"));
        assert_eq!(relative_to("/docker/abc", "/docker/abc"), Some(""));
        assert_eq!(relative_to("/docker/abcd", "/docker/abc"), None);
        assert_eq!(relative_to("/other", "/docker/abc"), None);
        assert_eq!(relative_to("/../..", "/"), None);
    }

    #[test]
    fn small_helpers() {
        assert_eq!(unescape_octal("a\\040b\\134c\\04"), "a b\\c\\04");
        assert_eq!(
            keyed_value("low 0\nhigh 2\noom_kill 3\n", "oom_kill"),
            Some(3)
        );
        assert_eq!(keyed_value("oom_kill_disable 0\n", "oom_kill"), None);
        assert_eq!(quota_us(0), -1);
        assert_eq!(quota_us(1000), 100_000);
        assert_eq!(quota_us(250), 25_000);
        assert_eq!(quota_us(1), MIN_CPU_QUOTA_US);
        assert_eq!(capped(-1, 50_000), 50_000);
        assert_eq!(capped(100_000, 50_000), 50_000);
        assert_eq!(capped(20_000, -1), 20_000);
        assert!(app_rel("page-title").is_ok());
        for bad in ["", "..", ".x", "a/b", "a b", &"x".repeat(201)] {
            assert!(app_rel(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn worker_add_kill_drop() {
        let Some(cg) = cgroups("life") else { return };
        let worker = cg.worker("life", &WorkerLimits::default()).expect("worker");
        let dirs = worker.dirs();
        assert!(dirs.iter().all(|d| d.is_dir()));
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        worker.add(child.id()).expect("add");
        assert_eq!(worker.pids(), vec![child.id()]);
        assert!(worker.add(0).is_err(), "pid 0 would move the test itself");
        worker.kill_all();
        assert!(worker.pids().is_empty(), "still there: {:?}", worker.pids());
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(!worker.oom_killed());
        drop(worker);
        assert_gone(&dirs);
        cg.cleanup();
        assert_gone(&cg.root_dirs());
    }

    #[test]
    fn drop_kills_and_removes_unreaped_processes() {
        let Some(cg) = cgroups("drop") else { return };
        let worker = cg.worker("drop", &WorkerLimits::default()).expect("worker");
        let dirs = worker.dirs();
        let mut child = gated("sleep 30 & sleep 30 & wait");
        worker.add(child.id()).expect("add");
        go(&mut child);
        // The shell and its two sleeps.
        let deadline = Instant::now() + Duration::from_secs(5);
        while worker.pids().len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(worker.pids().len(), 3);
        let started = Instant::now();
        drop(worker); // The shell is not reaped yet: a zombie must not hold the cgroup.
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "drop took {:?}",
            started.elapsed()
        );
        assert_gone(&dirs);
        assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn kill_all_outruns_a_forking_loop() {
        let Some(cg) = cgroups("forks") else { return };
        let worker = cg
            .worker("forks", &WorkerLimits::default())
            .expect("worker");
        let mut child = gated("while :; do sleep 10 & done");
        worker.add(child.id()).expect("add");
        go(&mut child);
        std::thread::sleep(Duration::from_millis(100));
        let before = worker.pids().len();
        worker.kill_all();
        assert!(worker.pids().is_empty(), "left: {:?}", worker.pids());
        assert!(before > 2, "only {before} processes were running");
        assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn memory_limit_ooms() {
        let Some(cg) = cgroups("oom") else { return };
        if !cg.has(Controller::Memory) {
            eprintln!("skipped: no memory controller");
            return;
        }
        let Some(python) = python() else {
            eprintln!("skipped: no python3");
            return;
        };
        // Limits set after creation, as for a generic worker loading a function.
        let worker = cg.worker("oom", &WorkerLimits::default()).expect("worker");
        worker
            .set_limits(&WorkerLimits {
                memory_mb: 32,
                ..WorkerLimits::default()
            })
            .expect("limit");
        allocate_200_mb_and_be_killed(&worker, &python);
        let peak = worker.memory_peak_bytes().expect("peak");
        assert!(
            peak <= 33 * 1024 * 1024 && peak > 1024 * 1024,
            "peak {peak}"
        );
    }

    #[test]
    fn memory_limit_changes() {
        let Some(cg) = cgroups("memset") else { return };
        if !cg.has(Controller::Memory) {
            eprintln!("skipped: no memory controller");
            return;
        }
        let worker = cg
            .worker("memset", &WorkerLimits::default())
            .expect("worker");
        let dir = worker
            .inner
            .backend
            .dir(Controller::Memory, &worker.rel)
            .expect("memory dir");
        let v2 = cg.inner.backend.is_v2();
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        // Lower from unlimited, raise, lower below the first, lift.
        for mb in [32u64, 128, 16, 0] {
            worker
                .set_limits(&WorkerLimits {
                    memory_mb: mb,
                    ..WorkerLimits::default()
                })
                .unwrap_or_else(|e| panic!("{mb} MB: {e}"));
            if v2 {
                let want = if mb == 0 {
                    "max".to_string()
                } else {
                    (mb << 20).to_string()
                };
                assert_eq!(read(&dir.join("memory.max")), want);
            } else {
                let got: u64 = read(&dir.join("memory.limit_in_bytes"))
                    .parse()
                    .expect("number");
                if mb == 0 {
                    assert!(got > 1 << 60, "{got}");
                } else {
                    assert_eq!(got, mb << 20);
                }
                if memsw.exists() {
                    assert_eq!(read(&memsw), got.to_string());
                }
            }
        }
    }

    #[test]
    fn pids_limit_stops_forks() {
        let Some(cg) = cgroups("pids") else { return };
        if !cg.has(Controller::Pids) {
            eprintln!("skipped: no pids controller");
            return;
        }
        let limits = WorkerLimits {
            pids: 5,
            ..WorkerLimits::default()
        };
        let worker = cg.worker("pids", &limits).expect("worker");
        let mut child = gated("for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done; wait");
        worker.add(child.id()).expect("add");
        go(&mut child);
        let pids_dir = worker
            .inner
            .backend
            .dir(Controller::Pids, &worker.rel)
            .expect("pids dir");
        // dash gives up at the first fork refused, leaving the sleeps it
        // started; a shell that does not would finish after 5 s.
        child.wait().expect("wait");
        let refused = keyed_value(&read(&pids_dir.join("pids.events")), "max").unwrap_or(0);
        assert!(refused >= 1, "no fork was refused");
        let count = worker.pids().len();
        assert!(count <= 4, "{count} sleeps besides the shell");
        worker.kill_all();
        assert!(worker.pids().is_empty());
        let mut stderr = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .expect("piped stderr")
            .read_to_string(&mut stderr)
            .expect("stderr");
        assert!(stderr.to_lowercase().contains("fork"), "stderr: {stderr}");
    }

    #[test]
    fn app_budget_covers_workers() {
        let Some(cg) = cgroups("budget") else { return };
        let v2 = cg.inner.backend.is_v2();
        cg.app(
            "budget",
            &AppBudget {
                memory_mb: 32,
                cpu_millicores: 500,
            },
        )
        .expect("app");
        let app = app_rel("budget").expect("name");
        if let Some(dir) = cg.inner.backend.dir(Controller::Cpu, &app) {
            let worker = cg
                .worker(
                    "budget",
                    &WorkerLimits {
                        cpu_millicores: 1000,
                        ..WorkerLimits::default()
                    },
                )
                .expect("worker");
            let wdir = worker
                .inner
                .backend
                .dir(Controller::Cpu, &worker.rel)
                .expect("cpu dir");
            let quota = |d: &Path| {
                if v2 {
                    read(&d.join("cpu.max"))
                } else {
                    read(&d.join("cpu.cfs_quota_us"))
                }
            };
            if v2 {
                assert_eq!(quota(&dir), "50000 100000");
                assert_eq!(quota(&wdir), "100000 100000");
            } else {
                // v1: capped at the app's, lowered with it, given back when raised.
                assert_eq!(quota(&dir), "50000");
                assert_eq!(quota(&wdir), "50000");
                let budget = |mc| AppBudget {
                    memory_mb: 32,
                    cpu_millicores: mc,
                };
                cg.app("budget", &budget(200)).expect("lower");
                assert_eq!(
                    (quota(&dir), quota(&wdir)),
                    ("20000".into(), "20000".into())
                );
                cg.app("budget", &budget(2000)).expect("raise");
                assert_eq!(
                    (quota(&dir), quota(&wdir)),
                    ("200000".into(), "100000".into())
                );
                cg.app("budget", &budget(0)).expect("lift");
                assert_eq!((quota(&dir), quota(&wdir)), ("-1".into(), "100000".into()));
            }
        }
        if !cg.has(Controller::Memory) {
            eprintln!("skipped the memory half: no memory controller");
            return;
        }
        let Some(python) = python() else {
            eprintln!("skipped the memory half: no python3");
            return;
        };
        // The worker itself is unlimited: only the app's 32 MB stop it.
        let worker = cg
            .worker("budget", &WorkerLimits::default())
            .expect("worker");
        allocate_200_mb_and_be_killed(&worker, &python);
    }

    #[test]
    fn cleanup_removes_everything() {
        let Some(cg) = cgroups("cleanup") else { return };
        cg.app("cleanup", &AppBudget::default()).expect("app");
        let worker = cg
            .worker("cleanup", &WorkerLimits::default())
            .expect("worker");
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        worker.add(child.id()).expect("add");
        let roots = cg.root_dirs();
        cg.cleanup();
        assert_gone(&roots);
        assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
        cg.cleanup();
        assert!(matches!(
            cg.worker("cleanup", &WorkerLimits::default()),
            Err(CgroupError::Closed { .. })
        ));
        drop(worker); // Its directories are gone already: quietly nothing to do.
    }

    #[test]
    fn last_handle_dropped_removes_tree() {
        let Some(cg) = cgroups("lastdrop") else {
            return;
        };
        let worker = cg.worker("x", &WorkerLimits::default()).expect("worker");
        let roots = cg.root_dirs();
        drop(cg);
        assert!(
            roots.iter().all(|r| r.is_dir()),
            "a worker still holds the tree"
        );
        drop(worker);
        assert_gone(&roots);
    }

    /// The v2 hierarchy the test process sits in, as `(own dir)`, if one is
    /// mounted (on hybrid hosts like this one: `/sys/fs/cgroup/unified`,
    /// usually without controllers).
    fn v2_own_dir() -> Option<PathBuf> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: cgroup tests need root");
            return None;
        }
        let mounts = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").ok()?);
        let own = parse_proc_cgroup(&fs::read_to_string("/proc/self/cgroup").ok()?);
        let line = own.iter().find(|l| l.id == "0")?;
        let found = mounts.iter().filter(|m| m.v2).find_map(|m| {
            let rel = relative_to(&line.path, &m.root)?;
            let dir = under(&m.mount_point, Path::new(rel));
            dir.is_dir().then_some(dir)
        });
        if found.is_none() {
            eprintln!("skipped: no cgroup v2 hierarchy is mounted");
        }
        found
    }

    #[test]
    fn v2_tree_without_controllers() {
        let Some(own) = v2_own_dir() else { return };
        let name = format!("hearth-{}-test-v2", std::process::id());
        let cg = build_v2(&own, &name, Vec::new()).expect("build");
        let worker = cg
            .worker(
                "v2",
                &WorkerLimits {
                    memory_mb: 10,
                    cpu_millicores: 100,
                    pids: 3,
                },
            )
            .expect("worker");
        let dirs = worker.dirs();
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        worker.add(child.id()).expect("add");
        assert_eq!(worker.pids(), vec![child.id()]);
        assert_eq!(worker.memory_peak_bytes(), None);
        worker.kill_all();
        assert!(worker.pids().is_empty());
        assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
        drop(worker);
        assert_gone(&dirs);
        let roots = cg.root_dirs();
        cg.cleanup();
        assert_gone(&roots);
    }

    #[test]
    fn v2_delegation_moves_into_leaf() {
        let Some(own) = v2_own_dir() else { return };
        // A stand-in for the daemon's own cgroup, with a process in it.
        let fake_own = own.join(format!("hearth-{}-test-deleg", std::process::id()));
        make_dir(&fake_own).expect("mkdir");
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let moved = fs::write(fake_own.join("cgroup.procs"), child.id().to_string())
            .map_err(|e| e.to_string())
            .and_then(|()| move_to_leaf(&fake_own, child.id()).map_err(|e| e.to_string()));
        let moved_again = move_to_leaf(&fake_own, child.id()).map_err(|e| e.to_string());
        let leaf = fake_own.join(DAEMON_LEAF);
        let in_leaf = procs_in(std::slice::from_ref(&leaf));
        let in_own = procs_in(std::slice::from_ref(&fake_own));
        let _ = child.kill();
        let _ = child.wait();
        let _ = fs::remove_dir(&leaf);
        let _ = fs::remove_dir(&fake_own);
        assert_eq!(moved, Ok(true));
        assert_eq!(moved_again, Ok(false), "nothing left to move");
        assert!(in_leaf.contains(&child.id()), "{in_leaf:?}");
        assert!(in_own.is_empty(), "{in_own:?}");
        assert_gone(&[leaf, fake_own]);
    }
}
