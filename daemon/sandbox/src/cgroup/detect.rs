//! Finding this host's cgroups: reading `/proc/self/cgroup` and
//! `/proc/self/mountinfo`, telling v1 from v2, handing the texts to the
//! right back end, and sweeping away the trees of daemons that died.
//! [`Cgroups::detect_at`] is the same detection on given texts and a given
//! root directory, which is how the fixture tests run it without root.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use tracing::warn;

use super::fs::Cgroupfs;
use super::mount::{parse_mountinfo, parse_proc_cgroup};
use super::{v1, v2, CgroupError, Cgroups, CGROUP_MOUNT};

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
                // A hearth daemon: its command name starts with "hearth"
                // (a binary named hearth-1.2 too), or it runs the same
                // binary as this one, whatever its name.
                let alive = fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim().starts_with("hearth"))
                    || fs::read_link(format!("/proc/{pid}/exe"))
                        .ok()
                        .zip(fs::read_link("/proc/self/exe").ok())
                        .is_some_and(|(theirs, ours)| theirs == ours);
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
    /// unique names so that they can run in parallel), on this host.
    pub(crate) fn detect_named(name: &str) -> Result<Option<Cgroups>, CgroupError> {
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
        let unified = matches!(
            nix::sys::statfs::statfs(CGROUP_MOUNT),
            Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC
        );
        Cgroups::detect_at(&Cgroupfs::host(), &mountinfo, &own_text, unified, name)
    }

    /// Set up hearth's tree `name` as [`Cgroups::detect`] does, from the
    /// texts of `/proc/self/mountinfo` and `/proc/self/cgroup`, with every
    /// cgroupfs path resolved in `fs` (the host's own, or a fixture tree).
    /// `unified`: `/sys/fs/cgroup` is a cgroup2 mount (v2), else v1.
    pub(crate) fn detect_at(
        fs: &Cgroupfs,
        mountinfo: &str,
        proc_cgroup: &str,
        unified: bool,
        name: &str,
    ) -> Result<Option<Cgroups>, CgroupError> {
        let own = parse_proc_cgroup(proc_cgroup);
        let mounts = parse_mountinfo(mountinfo);
        let result = if unified {
            v2::detect(fs, &mounts, &own, name)
        } else {
            v1::detect(fs, &mounts, &own, name)
        };
        match result {
            Err(e) if e.means_unusable() => {
                warn!("cgroups disabled: {e}");
                Ok(None)
            }
            other => other,
        }
    }
}
