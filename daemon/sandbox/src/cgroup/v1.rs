//! The cgroup v1 back end. Every controller is a hierarchy of its own and
//! the daemon's cgroup can differ between them, so hearth's tree is made
//! once per controller: memory, cpu, pids, and freezer when mounted (it
//! only serves to stop forks while killing). CPU quotas must nest (a
//! child's may not exceed its parent's), which makes the CPU limits of an
//! app and its workers one ordered operation; memory and swap limits are
//! written in the order the kernel accepts.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::{debug, warn};

use super::fs::{read_file, read_i64, read_keyed, under, write_file, Cgroupfs};
use super::mount::{relative_to, CgroupMount, OwnCgroup};
use super::tree::{lock, Freezer};
use super::{
    quota_us, Backend, CgroupError, Cgroups, Controller, Group, CGROUP_MOUNT, CPU_PERIOD_US,
};

/// hearth's tree on cgroup v1.
#[derive(Debug)]
pub(crate) struct V1 {
    fs: Cgroupfs,
    /// Per controller, hearth's root (`.../hearth-<pid>`) in its hierarchy.
    roots: Vec<(Controller, PathBuf)>,
    /// App and worker quota changes are made one at a time, and each
    /// worker's requested quota (µs, -1 = unlimited) is remembered so that
    /// raising an app's budget can give its workers back what they asked.
    cpu: Mutex<HashMap<PathBuf, i64>>,
}

/// Set up hearth's tree `name` under the daemon's own cgroup of each
/// controller. `Ok(None)` (with a warning) when no controller that carries
/// limits can be used.
pub(crate) fn detect(
    fs: &Cgroupfs,
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
        match own_dir(fs, mounts, own, c) {
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
        match fs.make_dir(&dir) {
            Ok(created) => {
                stale |= !created;
                roots.push((c, dir));
            }
            Err(e) if e.means_unusable() => warn!("not using the cgroup v1 {c} controller: {e}"),
            Err(e) => {
                for (_, dir) in &roots {
                    let _ = fs.remove_dir(dir);
                }
                return Err(e);
            }
        }
    }
    if !roots.iter().any(|(c, _)| Controller::LIMITS.contains(c)) {
        for (_, dir) in &roots {
            let _ = fs.remove_dir(dir);
        }
        warn!("cgroups disabled: hearth may not create cgroups in any of the memory, cpu or pids hierarchies (see the warnings above)");
        return Ok(None);
    }
    let backend = V1 {
        fs: fs.clone(),
        roots,
        cpu: Mutex::new(HashMap::new()),
    };
    Cgroups::assemble(Box::new(backend), name, stale).map(Some)
}

/// The daemon's own cgroup directory for controller `c`: `Ok(None)` if the
/// controller is not mounted, `Err(reason)` if it is but the daemon's
/// cgroup cannot be reached through any mount.
fn own_dir(
    fs: &Cgroupfs,
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
            let dir = under(&fs.resolve(&m.mount_point), Path::new(rel));
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

impl Backend for V1 {
    fn version(&self) -> &'static str {
        "v1"
    }

    fn fs(&self) -> &Cgroupfs {
        &self.fs
    }

    fn controllers(&self) -> Vec<Controller> {
        let mut list: Vec<Controller> = self.roots.iter().map(|(c, _)| *c).collect();
        list.sort();
        list
    }

    fn dirs(&self, rel: &Path) -> Vec<PathBuf> {
        self.roots
            .iter()
            .map(|(_, root)| under(root, rel))
            .collect()
    }

    fn dir(&self, c: Controller, rel: &Path) -> Option<PathBuf> {
        self.roots
            .iter()
            .find(|(rc, _)| *rc == c)
            .map(|(_, root)| under(root, rel))
    }

    /// Without hierarchy an app's memory budget would not count its
    /// workers. Always on since Linux 5.11; inherited by new children.
    fn prepare_root(&self) -> Result<(), CgroupError> {
        if let Some(dir) = self.dir(Controller::Memory, Path::new("")) {
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
        Ok(())
    }

    fn create_group(&self, rel: &Path, _kind: Group) -> Result<(), CgroupError> {
        for dir in self.dirs(rel) {
            self.fs.make_dir(&dir)?;
        }
        Ok(())
    }

    fn set_memory(&self, rel: &Path, bytes: Option<u64>) -> Result<(), CgroupError> {
        match self.dir(Controller::Memory, rel) {
            Some(dir) => set_memory(&dir, bytes),
            None => Ok(()),
        }
    }

    /// The app's workers' quotas are first lowered to fit under a lower
    /// budget, or afterwards raised back towards what they asked for under
    /// a higher one.
    fn set_app_cpu(&self, rel: &Path, millicores: u32) -> Result<(), CgroupError> {
        let Some(dir) = self.dir(Controller::Cpu, rel) else {
            return Ok(());
        };
        let requested = lock(&self.cpu);
        let quota = quota_us(millicores);
        let workers: Vec<(PathBuf, i64)> = requested
            .iter()
            .filter(|(w, _)| w.parent() == Some(rel))
            .filter_map(|(w, want)| {
                let d = self.dir(Controller::Cpu, w)?;
                Some((d, capped(*want, quota)))
            })
            .collect();
        // Children that must shrink go first, those that may grow after the
        // parent has grown: at no moment may a child exceed its parent.
        let mut later = Vec::new();
        for (worker_dir, target) in workers {
            let current = read_i64(&worker_dir.join("cpu.cfs_quota_us"))?;
            if unlimited_last(target) < unlimited_last(current) {
                set_quota(&worker_dir, target)?;
            } else if target != current {
                later.push((worker_dir, target));
            }
        }
        set_quota(&dir, quota)?;
        for (worker_dir, target) in later {
            set_quota(&worker_dir, target)?;
        }
        Ok(())
    }

    /// Capped at the app's quota; what was asked is remembered.
    fn set_worker_cpu(&self, rel: &Path, millicores: u32) -> Result<(), CgroupError> {
        let Some(dir) = self.dir(Controller::Cpu, rel) else {
            return Ok(());
        };
        let mut requested = lock(&self.cpu);
        let want = quota_us(millicores);
        let app_quota = match dir.parent() {
            Some(app_dir) => read_i64(&app_dir.join("cpu.cfs_quota_us"))?,
            None => -1,
        };
        set_quota(&dir, capped(want, app_quota))?;
        requested.insert(rel.to_path_buf(), want);
        Ok(())
    }

    fn forget(&self, rel: &Path) {
        lock(&self.cpu).remove(rel);
    }

    fn oom_kills(&self, rel: &Path) -> Option<u64> {
        let dir = self.dir(Controller::Memory, rel)?;
        read_keyed(&dir.join("memory.oom_control"), "oom_kill")
    }

    fn memory_peak(&self, rel: &Path) -> Option<u64> {
        let dir = self.dir(Controller::Memory, rel)?;
        read_i64(&dir.join("memory.max_usage_in_bytes"))
            .ok()
            .and_then(|n| u64::try_from(n).ok())
    }

    fn freezer(&self, rel: &Path) -> Option<Freezer> {
        let state = self.dir(Controller::Freezer, rel)?.join("freezer.state");
        state.exists().then(|| Freezer {
            control: state.clone(),
            freeze: "FROZEN",
            thaw: "THAWED",
            state,
            is_frozen: |text| text.trim() == "FROZEN",
        })
    }
}

/// `want` capped at a parent's quota `parent` (both -1 = unlimited).
pub(crate) fn capped(want: i64, parent: i64) -> i64 {
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

/// Write the CFS period (if it differs) and quota of cgroup `dir`.
fn set_quota(dir: &Path, quota: i64) -> Result<(), CgroupError> {
    let period = dir.join("cpu.cfs_period_us");
    if read_i64(&period)? != CPU_PERIOD_US as i64 {
        write_file(&period, &CPU_PERIOD_US.to_string())?;
    }
    write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())
}

/// Set `memory.limit_in_bytes` and, when swap is accounted,
/// `memory.memsw.limit_in_bytes` (memory + swap) to the same value, so that
/// swapping does not stretch the limit. The kernel requires memsw >= limit
/// at every moment, so memsw goes first when raising and last when lowering.
fn set_memory(dir: &Path, bytes: Option<u64>) -> Result<(), CgroupError> {
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
