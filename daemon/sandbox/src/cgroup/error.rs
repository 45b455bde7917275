//! [`CgroupError`], the one error type of the cgroup module, and the hint
//! each message ends with: what the operator can do about it.

use std::io;
use std::path::{Path, PathBuf};

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
    /// [`Cgroups::cleanup`](super::Cgroups::cleanup) already removed hearth's tree.
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
    /// surprising failure. [`Cgroups::detect`](super::Cgroups::detect) turns these into `Ok(None)`.
    pub(crate) fn means_unusable(&self) -> bool {
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
