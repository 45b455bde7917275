//! The cgroup v2 back end. There is one tree; every level below the
//! daemon's own cgroup must hand the controllers down to the next
//! (`cgroup.subtree_control`), which the kernel allows only for a cgroup
//! without processes of its own. So the daemon first moves itself into
//! `<own>/daemon`, then enables the controllers: this is what systemd's
//! `Delegate=yes` expects of a service. `cgroup.kill` (Linux 5.14+) empties
//! a group and its descendants in one write.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::fs::{
    keyed_value, procs_in, read_file, read_i64, read_keyed, under, write_file, Cgroupfs,
};
use super::mount::{relative_to, CgroupMount, OwnCgroup};
use super::tree::{lock, Freezer};
use super::{
    quota_us, Backend, CgroupError, Cgroups, Controller, Group, CGROUP_MOUNT, CPU_PERIOD_US,
};

/// The child cgroup the daemon moves itself into so that its own cgroup
/// may hand controllers down (the "no internal processes" rule).
pub(crate) const DAEMON_LEAF: &str = "daemon";

/// The cgroups this process moved itself out of (into their `daemon`
/// leaf), so that a later detection in the same process (tests make
/// several) builds beside the first instead of inside the leaf. The lock
/// also serialises the delegation step between concurrent detections.
static DELEGATED_FROM: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// hearth's tree on cgroup v2.
#[derive(Debug)]
pub(crate) struct V2 {
    fs: Cgroupfs,
    /// hearth's root, `<own>/hearth-<pid>`.
    root: PathBuf,
    /// Enabled for every level below `root`.
    controllers: Vec<Controller>,
}

/// Set up hearth's tree `name` under the daemon's own cgroup, delegating
/// the controllers to it first. `Ok(None)` (with a warning) when the
/// daemon's cgroup cannot be found or offers no controller.
pub(crate) fn detect(
    fs: &Cgroupfs,
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
    let own_dir = under(&fs.resolve(Path::new(CGROUP_MOUNT)), Path::new(rel));
    let mut delegated_from = lock(&DELEGATED_FROM);
    let own_dir = match delegated_from
        .iter()
        .find(|earlier| own_dir == earlier.join(DAEMON_LEAF))
    {
        Some(earlier) => earlier.clone(),
        None => own_dir,
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
    if delegate(fs, &own_dir, std::process::id(), &available)? {
        delegated_from.push(own_dir.clone());
    }
    build(fs, &own_dir, name, available).map(Some)
}

/// Make `own_dir` (the daemon's cgroup) hand `wanted` down to its
/// children. A non-root cgroup that has processes may not, so process
/// `pid` (the daemon) is first moved into `<own_dir>/daemon`. True if it
/// was moved.
fn delegate(
    fs: &Cgroupfs,
    own_dir: &Path,
    pid: u32,
    wanted: &[Controller],
) -> Result<bool, CgroupError> {
    let subtree = read_file(&own_dir.join("cgroup.subtree_control"))?;
    if wanted
        .iter()
        .all(|c| subtree.split_whitespace().any(|w| w == c.name()))
    {
        return Ok(false);
    }
    let moved = move_to_leaf(fs, own_dir, pid)?;
    enable(own_dir, wanted)?;
    Ok(moved)
}

/// Move process `pid` from `own_dir` into `<own_dir>/daemon`, unless
/// `own_dir` is the root cgroup (exempt from the no-internal-processes
/// rule; it is the one without `cgroup.type`) or has no processes. Other
/// processes are left where they are. True if it was moved.
pub(crate) fn move_to_leaf(fs: &Cgroupfs, own_dir: &Path, pid: u32) -> Result<bool, CgroupError> {
    let is_root = !own_dir.join("cgroup.type").exists();
    if is_root || procs_in(&[own_dir.to_path_buf()]).is_empty() {
        return Ok(false);
    }
    let leaf = own_dir.join(DAEMON_LEAF);
    fs.make_dir(&leaf)?;
    let procs = leaf.join("cgroup.procs");
    std::fs::write(&procs, pid.to_string()).map_err(|source| CgroupError::Move {
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

/// Create hearth's root `<own_dir>/<name>` handing `controllers` down.
pub(crate) fn build(
    fs: &Cgroupfs,
    own_dir: &Path,
    name: &str,
    controllers: Vec<Controller>,
) -> Result<Cgroups, CgroupError> {
    let root = own_dir.join(name);
    let created = fs.make_dir(&root)?;
    let backend = V2 {
        fs: fs.clone(),
        root,
        controllers,
    };
    Cgroups::assemble(Box::new(backend), name, !created)
}

impl Backend for V2 {
    fn version(&self) -> &'static str {
        "v2"
    }

    fn fs(&self) -> &Cgroupfs {
        &self.fs
    }

    fn controllers(&self) -> Vec<Controller> {
        let mut list = self.controllers.clone();
        list.sort();
        list
    }

    fn dirs(&self, rel: &Path) -> Vec<PathBuf> {
        vec![under(&self.root, rel)]
    }

    fn dir(&self, c: Controller, rel: &Path) -> Option<PathBuf> {
        self.controllers
            .contains(&c)
            .then(|| under(&self.root, rel))
    }

    fn prepare_root(&self) -> Result<(), CgroupError> {
        enable(&self.root, &self.controllers)
    }

    /// An app's group hands the controllers down to its workers'; a worker
    /// is one unit: if the OOM killer picks any of its processes, it kills
    /// them all rather than leave a maimed worker (`memory.oom.group`).
    fn create_group(&self, rel: &Path, kind: Group) -> Result<(), CgroupError> {
        let dir = under(&self.root, rel);
        self.fs.make_dir(&dir)?;
        match kind {
            Group::App => enable(&dir, &self.controllers),
            Group::Worker => {
                if let Some(dir) = self.dir(Controller::Memory, rel) {
                    let group = dir.join("memory.oom.group");
                    if group.exists() {
                        write_file(&group, "1")?;
                    }
                }
                Ok(())
            }
        }
    }

    /// `memory.max`, and `memory.swap.max` 0 under a limit (v2 counts swap
    /// separately; without this a limited worker would spill into swap).
    fn set_memory(&self, rel: &Path, bytes: Option<u64>) -> Result<(), CgroupError> {
        let Some(dir) = self.dir(Controller::Memory, rel) else {
            return Ok(());
        };
        let value = bytes.map_or_else(|| "max".to_string(), |b| b.to_string());
        write_file(&dir.join("memory.max"), &value)?;
        let swap = dir.join("memory.swap.max");
        if swap.exists() {
            write_file(&swap, if bytes.is_some() { "0" } else { "max" })?;
        }
        Ok(())
    }

    /// v2 caps children at their parent's quota by itself.
    fn set_app_cpu(&self, rel: &Path, millicores: u32) -> Result<(), CgroupError> {
        match self.dir(Controller::Cpu, rel) {
            Some(dir) => set_cpu(&dir, millicores),
            None => Ok(()),
        }
    }

    fn set_worker_cpu(&self, rel: &Path, millicores: u32) -> Result<(), CgroupError> {
        self.set_app_cpu(rel, millicores)
    }

    fn oom_kills(&self, rel: &Path) -> Option<u64> {
        let dir = self.dir(Controller::Memory, rel)?;
        read_keyed(&dir.join("memory.events"), "oom_kill")
    }

    /// `memory.peak` (Linux 5.19+).
    fn memory_peak(&self, rel: &Path) -> Option<u64> {
        let dir = self.dir(Controller::Memory, rel)?;
        read_i64(&dir.join("memory.peak"))
            .ok()
            .and_then(|n| u64::try_from(n).ok())
    }

    fn kill_at_once(&self, rel: &Path, deadline: Instant) -> Option<bool> {
        let dir = under(&self.root, rel);
        let kill_file = dir.join("cgroup.kill");
        (kill_file.exists() && fs::write(&kill_file, "1").is_ok())
            .then(|| wait_unpopulated(&dir, deadline))
    }

    fn kill_reaches_descendants(&self) -> bool {
        true
    }

    fn freezer(&self, rel: &Path) -> Option<Freezer> {
        let dir = under(&self.root, rel);
        let control = dir.join("cgroup.freeze");
        control.exists().then(|| Freezer {
            control,
            freeze: "1",
            thaw: "0",
            state: dir.join("cgroup.events"),
            is_frozen: |text| keyed_value(text, "frozen") == Some(1),
        })
    }
}

/// `cpu.max` is `"<quota> <period>"`, with `max` for no quota.
fn set_cpu(dir: &Path, millicores: u32) -> Result<(), CgroupError> {
    let quota = quota_us(millicores);
    let value = if quota < 0 {
        format!("max {CPU_PERIOD_US}")
    } else {
        format!("{quota} {CPU_PERIOD_US}")
    };
    write_file(&dir.join("cpu.max"), &value)
}

/// Enable `controllers` for the children of `dir` (those already enabled
/// are left alone).
fn enable(dir: &Path, controllers: &[Controller]) -> Result<(), CgroupError> {
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

/// Wait until cgroup `dir` and its descendants have no live process
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
