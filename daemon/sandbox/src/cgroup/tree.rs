//! hearth's tree of cgroups, whatever the version: the state shared by the
//! handles ([`Inner`]), how groups are named, and how they are emptied
//! (SIGKILL, with the cgroup frozen meanwhile when a freezer is available)
//! and removed, one group or the whole tree. What differs between v1 and
//! v2 is asked of the [`Backend`].

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tracing::{debug, warn};

use super::fs::procs_in;
use super::{Backend, CgroupError};

/// How long a freeze may take before killing proceeds without it.
const FREEZE_BUDGET: Duration = Duration::from_millis(20);

/// State shared by [`Cgroups`](super::Cgroups) handles and the
/// [`WorkerCgroup`](super::WorkerCgroup)s made from them. Dropping the last
/// reference removes hearth's tree.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) backend: Box<dyn Backend>,
    /// Name of hearth's top cgroup, `hearth-<pid>`.
    pub(crate) name: String,
    /// Source of worker cgroup names; unique within this tree.
    pub(crate) next_worker: AtomicU64,
    /// Set by cleanup: no new cgroups after it.
    closed: AtomicBool,
    /// Worker cgroups whose removal failed (a process was still exiting):
    /// tried again whenever a worker cgroup is made, so none piles up.
    pub(crate) leftover: Mutex<Vec<PathBuf>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cleanup();
    }
}

impl Inner {
    pub(crate) fn new(backend: Box<dyn Backend>, name: &str) -> Inner {
        Inner {
            backend,
            name: name.to_string(),
            next_worker: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            leftover: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn root_label(&self) -> PathBuf {
        self.backend
            .dirs(Path::new(""))
            .into_iter()
            .next()
            .unwrap_or_else(|| PathBuf::from(&self.name))
    }

    pub(crate) fn check_open(&self) -> Result<(), CgroupError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(CgroupError::Closed {
                path: self.root_label(),
            });
        }
        Ok(())
    }

    /// SIGKILL everything in group `rel` (not its child groups on v1) and
    /// wait for it to be empty; false if something is still there after
    /// `budget`.
    pub(crate) fn kill_group(&self, rel: &Path, budget: Duration) -> bool {
        let deadline = Instant::now() + budget;
        let dirs = self.backend.dirs(rel);
        if let Some(done) = self.backend.kill_at_once(rel, deadline) {
            return done;
        }
        let mut freezer = self
            .backend
            .freezer(rel)
            .filter(|_| !procs_in(&dirs).is_empty());
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
    pub(crate) fn remove_group(&self, rel: &Path, deadline: Instant) -> bool {
        let fs = self.backend.fs();
        let mut all = true;
        for dir in self.backend.dirs(rel) {
            loop {
                match fs.remove_dir(&dir) {
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
    pub(crate) fn remove_tree(&self, include_root: bool) {
        let mut groups = BTreeSet::new();
        for root in self.backend.dirs(Path::new("")) {
            collect_groups(&root, Path::new(""), 0, &mut groups);
        }
        if self.backend.kill_reaches_descendants() {
            // Killing the root takes the whole tree at once.
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

    pub(crate) fn cleanup(&self) {
        self.closed.store(true, Ordering::Release);
        self.remove_tree(true);
    }
}

/// Lock `m`, ignoring poisoning: the data (requested quotas, leftover
/// groups) stays valid whatever panicked while holding it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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

/// The application's group, relative to hearth's root.
pub(crate) fn app_rel(app: &str) -> Result<PathBuf, CgroupError> {
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

/// A way to stop every process of a cgroup while its pids are read and
/// signalled, as a back end describes it: which file to write what to, and
/// how to read back that the kernel is done.
#[derive(Debug)]
pub(crate) struct Freezer {
    /// The file written to (v1 `freezer.state`, v2 `cgroup.freeze`).
    pub(crate) control: PathBuf,
    /// What freezes (v1 `FROZEN`, v2 `1`).
    pub(crate) freeze: &'static str,
    /// What thaws (v1 `THAWED`, v2 `0`).
    pub(crate) thaw: &'static str,
    /// The file that tells when freezing is complete (v1 `freezer.state`
    /// again, v2 `cgroup.events`).
    pub(crate) state: PathBuf,
    /// Whether `state`'s text says frozen.
    pub(crate) is_frozen: fn(&str) -> bool,
}

impl Freezer {
    /// Freeze and wait until the kernel reports it done; false if it is not
    /// by `deadline` (a process in uninterruptible sleep holds it up).
    fn freeze(&self, deadline: Instant) -> bool {
        if fs::write(&self.control, self.freeze).is_err() {
            return false;
        }
        loop {
            if fs::read_to_string(&self.state).is_ok_and(|text| (self.is_frozen)(&text)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn thaw(&self) {
        if let Err(e) = fs::write(&self.control, self.thaw) {
            // ENOENT: the group is gone already, nothing stays frozen.
            if e.kind() != io::ErrorKind::NotFound {
                warn!("cannot thaw a worker cgroup: {e}; its processes stay frozen until it is removed");
            }
        }
    }
}
