//! Process isolation of workers.
//!
//! Every worker leads its own process group (so its whole tree can be
//! signalled at once), dies with the daemon (parent-death signal), sees the
//! protocol pipes only on fds 3 and 4, and starts with rlimits set before
//! exec. When the daemon runs as root, a worker also gets:
//! - a user and group of its own version (`--worker-uid-base` + the
//!   version's id), so it can read its own code directory (group-readable)
//!   and nothing of other versions, the store or the data directory;
//! - a mount namespace in which `/tmp`, `/var/tmp` and `/dev/shm` are its
//!   private temporary directory;
//! - optionally (`limits.network = false`) an empty network namespace;
//! - a cgroup of its own (see [`crate::cgroup`]) for memory, CPU and processes.
//!
//! Generic workers (started before their function is known) start as root
//! in their namespaces and are handed their function's identity with
//! `load`: the shim drops privileges before importing any of its code, and
//! the daemon sets the function's rlimits on the process (`prlimit`).

//!
//! This file holds [`Isolation`], what the daemon decided it can do; the
//! rest is split by concern: `users.rs` (whose identity workers take, and
//! the permissions that go with it), `spawn.rs` (what the child does
//! between fork and exec), `rlimits.rs`, `tmp.rs` (private temporary
//! directories) and `process.rs` (signalling a worker's process group,
//! reading its memory). The reaper, which empties the cgroups once the
//! daemon is gone, is [`crate::reaper`].

mod process;
mod rlimits;
mod spawn;
mod tmp;
mod users;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cgroup::Cgroups;

pub use process::{kill_tree, process_alive, resident_bytes, signal_tree};
pub use rlimits::Rlimits;
pub use spawn::{pipe, prepare_worker, take_identity, Confinement, CHILD_IN_FD, CHILD_OUT_FD};
pub use tmp::{owner_pid as tmp_owner_pid, PrivateTmp};
pub use users::{restrict_code_dir, usable_by_others, Users, DEFAULT_UID_BASE};

#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("workers run as unprivileged users and cannot reach {path}: {reason}; run `chmod o+x` on it (and each directory above it), or choose another --data-dir")]
    Unreachable { path: PathBuf, reason: String },
    #[error("cannot prepare {path}: {source}; check the data directory's permissions")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no user named {0}; create it (useradd --system {0}) or choose another --worker-user")]
    NoSuchUser(String),
}

/// How workers are confined; decided once when the daemon starts.
#[derive(Debug)]
pub struct Isolation {
    pub users: Users,
    /// Mount (private /tmp) and network namespaces are available (root).
    pub namespaces: bool,
    /// Parent of the workers' private temporary directories.
    pub tmp_root: PathBuf,
    /// Between SIGTERM and SIGKILL when a worker is stopped at its deadline.
    pub kill_grace: Duration,
    pub cgroups: Option<Arc<Cgroups>>,
    /// The daemon is stopping: no new worker starts.
    pub stopping: std::sync::atomic::AtomicBool,
}

impl Isolation {
    /// From now on no worker starts (the daemon is stopping).
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// No confinement beyond process groups and rlimits (for tools and
    /// benches that start workers outside a daemon).
    pub fn minimal(tmp_root: PathBuf) -> Isolation {
        Isolation {
            users: Users::Same,
            namespaces: false,
            tmp_root,
            kill_grace: Duration::from_secs(1),
            cgroups: None,
            stopping: Default::default(),
        }
    }

    /// What the daemon can do here: root gets users, namespaces and
    /// cgroups (unless turned off); others get rlimits and process groups.
    pub fn detect(
        tmp_root: PathBuf,
        worker_user: Option<&str>,
        uid_base: u32,
        use_cgroups: bool,
        kill_grace: Duration,
    ) -> Result<Isolation, IsolationError> {
        let root = nix::unistd::geteuid().is_root();
        let users = Users::detect(root, worker_user, uid_base)?;
        std::fs::create_dir_all(&tmp_root).map_err(|source| IsolationError::Io {
            path: tmp_root.clone(),
            source,
        })?;
        // Workers enter their own temporary directory only.
        let _ = std::fs::set_permissions(&tmp_root, std::fs::Permissions::from_mode(0o711));
        let cgroups = if use_cgroups {
            match Cgroups::detect() {
                Ok(found) => found.map(Arc::new),
                Err(e) => {
                    tracing::warn!(error = %e, "cgroups unavailable; memory, CPU and process limits fall back to rlimits and polling");
                    None
                }
            }
        } else {
            None
        };
        Ok(Isolation {
            users,
            namespaces: root,
            tmp_root,
            kill_grace,
            cgroups,
            stopping: Default::default(),
        })
    }

    /// The uid and gid a version's workers run as (None: the daemon's own).
    pub fn identity(&self, version_id: i64) -> Option<(u32, u32)> {
        self.users.identity(version_id)
    }

    /// Workers run as other users than the daemon.
    pub fn drops_privileges(&self) -> bool {
        self.users.drops_privileges()
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        let users = self.users.describe();
        let cg = match &self.cgroups {
            Some(c) => c.describe(),
            None => "no cgroups".to_owned(),
        };
        format!(
            "{users}; {}; {cg}",
            if self.namespaces {
                "private /tmp per worker"
            } else {
                "shared /tmp (TMPDIR per worker)"
            }
        )
    }

    /// Check that a worker of another user can reach `path` (every
    /// directory above it searchable by others).
    pub fn check_reachable(&self, path: &Path) -> Result<(), IsolationError> {
        if !self.drops_privileges() {
            return Ok(());
        }
        users::check_reachable(path)
    }
}
