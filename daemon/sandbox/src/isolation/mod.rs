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
//! - a cgroup of its own (see `cgroup.rs`) for memory, CPU and processes.
//!
//! Generic workers (started before their function is known) start as root
//! in their namespaces and are handed their function's identity with
//! `load`: the shim drops privileges before importing any of its code, and
//! the daemon sets the function's rlimits on the process (`prlimit`).

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::cgroup::Cgroups;
use hearth_api::manifest::Limits;

/// fd on which a worker reads the daemon's messages.
pub const CHILD_IN_FD: i32 = 3;
/// fd on which a worker writes its messages to the daemon.
pub const CHILD_OUT_FD: i32 = 4;
/// Where the child briefly holds its temporary directory while binding it.
const TMP_FD: i32 = 9;
/// ... and the data directory, when it has to be bound back.
const DATA_FD: i32 = 8;

/// Default first uid/gid of worker identities (version id is added).
pub const DEFAULT_UID_BASE: u32 = 1_500_000;

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

/// Whose identity workers take.
#[derive(Debug, Clone)]
pub enum Users {
    /// Workers run as the daemon's own user (the daemon is not root).
    Same,
    /// Each version's workers run as uid = gid = base + version id.
    PerVersion { base: u32 },
    /// Every worker runs as one named user (`--worker-user`); its code
    /// directories are readable by that user's group.
    Shared { uid: u32, gid: u32 },
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
        let users = match (root, worker_user) {
            (false, _) => Users::Same,
            (true, Some(name)) => {
                let user = nix::unistd::User::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| IsolationError::NoSuchUser(name.to_owned()))?;
                Users::Shared {
                    uid: user.uid.as_raw(),
                    gid: user.gid.as_raw(),
                }
            }
            (true, None) => Users::PerVersion { base: uid_base },
        };
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
        match self.users {
            Users::Same => None,
            Users::Shared { uid, gid } => Some((uid, gid)),
            Users::PerVersion { base } => {
                let id = base.saturating_add(u32::try_from(version_id).unwrap_or(u32::MAX - base));
                Some((id, id))
            }
        }
    }

    /// Workers run as other users than the daemon.
    pub fn drops_privileges(&self) -> bool {
        !matches!(self.users, Users::Same)
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        let users = match &self.users {
            Users::Same => {
                "workers run as the daemon's user (not root: no per-version users, no namespaces)"
                    .to_owned()
            }
            Users::PerVersion { base } => format!("workers run as uid/gid {base}+version id"),
            Users::Shared { uid, gid } => format!("workers run as uid {uid} gid {gid}"),
        };
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
        match unsearchable_dir(path) {
            Ok(None) => Ok(()),
            Ok(Some((dir, mode))) => Err(IsolationError::Unreachable {
                path: path.to_path_buf(),
                reason: format!(
                    "{} has mode {mode:o}, which others cannot search",
                    dir.display()
                ),
            }),
            Err((dir, source)) => Err(IsolationError::Io { path: dir, source }),
        }
    }
}

/// The first of `path` and the directories above it that other users
/// cannot search (with its mode), if any.
fn unsearchable_dir(path: &Path) -> Result<Option<(PathBuf, u32)>, (PathBuf, std::io::Error)> {
    for dir in path.ancestors() {
        let mode = std::fs::metadata(dir)
            .map_err(|e| (dir.to_path_buf(), e))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Ok(Some((dir.to_path_buf(), mode & 0o7777)));
        }
    }
    Ok(None)
}

/// Is the file at `path` readable and executable by any user (and every
/// directory above it searchable)?
pub fn usable_by_others(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.permissions().mode() & 0o005 != 0o005 {
        return false;
    }
    path.parent()
        .is_none_or(|dir| matches!(unsearchable_dir(dir), Ok(None)))
}

/// A worker's private temporary directory, removed when dropped.
#[derive(Debug)]
pub struct PrivateTmp {
    pub path: PathBuf,
}

impl PrivateTmp {
    pub fn create(root: &Path, owner: Option<(u32, u32)>) -> std::io::Result<PrivateTmp> {
        let path = root.join(format!("w-{:016x}", fastrand::u64(..)));
        if !root.is_dir() {
            std::fs::create_dir_all(root)?;
        }
        std::fs::create_dir(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        let tmp = PrivateTmp { path };
        if let Some(owner) = owner {
            tmp.give_to(owner)?;
        }
        Ok(tmp)
    }

    /// Hand the directory to the worker's user.
    pub fn give_to(&self, (uid, gid): (u32, u32)) -> std::io::Result<()> {
        std::os::unix::fs::chown(&self.path, Some(uid), Some(gid))
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// rlimits applied to a worker (before exec, or later with `prlimit`).
#[derive(Debug, Clone, Copy)]
pub struct Rlimits {
    pub open_files: u64,
    pub file_size: u64,
    /// Processes of the worker's user (0: not set; root ignores it anyway).
    pub processes: u64,
}

impl Rlimits {
    pub fn for_limits(limits: &Limits) -> Rlimits {
        Rlimits {
            open_files: u64::from(limits.max_open_files),
            file_size: limits.max_file_size_mb.saturating_mul(1024 * 1024),
            // A version's workers share their user: its budget is theirs.
            processes: u64::from(limits.max_processes)
                .saturating_mul(u64::from(limits.max_workers))
                .saturating_add(8),
        }
    }

    fn table(&self) -> [(libc::__rlimit_resource_t, u64); 4] {
        [
            (libc::RLIMIT_NOFILE, self.open_files),
            (libc::RLIMIT_FSIZE, self.file_size),
            (libc::RLIMIT_NPROC, self.processes),
            // A crash leaves no core file behind.
            (libc::RLIMIT_CORE, 0),
        ]
    }

    /// Set these limits on a running process (a generic worker taking its
    /// function's limits before it loads the code).
    pub fn apply_to(&self, pid: u32) -> std::io::Result<()> {
        for (resource, value) in self.table() {
            if resource == libc::RLIMIT_NPROC && value == 0 {
                continue;
            }
            let lim = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            // SAFETY: prlimit with a valid pointer to an initialised rlimit
            // and a null old-limit pointer.
            let rc =
                unsafe { libc::prlimit(pid as libc::pid_t, resource, &lim, std::ptr::null_mut()) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// What to do in the child between fork and exec.
#[derive(Debug, Clone)]
pub struct Confinement {
    pub rlimits: Rlimits,
    /// Switch to this uid/gid (after the namespaces are set up).
    pub identity: Option<(u32, u32)>,
    /// Bind this directory over /tmp, /var/tmp and /dev/shm in a mount
    /// namespace of the worker's own.
    pub private_tmp: Option<PathBuf>,
    /// An empty network namespace of its own.
    pub no_network: bool,
    /// The data directory: if it lies under /tmp (say, in tests), it is
    /// bound back at its own path inside the private /tmp.
    pub data_dir: Option<PathBuf>,
}

/// Arrange for the child of `cmd` to get `child_in` as fd 3 and `child_out`
/// as fd 4, to lead its own process group, to be killed if the daemon dies,
/// and to be confined as `confine` says. The descriptors must be
/// close-on-exec in the daemon (so no other worker inherits them); they are
/// closed in the daemon once the child has been spawned by dropping them.
pub fn prepare_worker(
    cmd: &mut tokio::process::Command,
    child_in: &OwnedFd,
    child_out: &OwnedFd,
    confine: &Confinement,
) -> std::io::Result<()> {
    let in_fd = child_in.as_raw_fd();
    let out_fd = child_out.as_raw_fd();
    let daemon_pid = std::process::id() as libc::pid_t;
    let rlimits = confine.rlimits.table();
    let identity = confine.identity;
    let no_network = confine.no_network;
    // Everything the child needs is allocated here, before the fork. The
    // temporary directory is opened in the child's new mount namespace (a
    // bind source must be in it) and bound through that descriptor, since
    // once /tmp is covered a path under /tmp would no longer lead to it.
    let tmp_path = confine
        .private_tmp
        .as_ref()
        .and_then(|p| CString::new(p.as_os_str().as_bytes()).ok());
    let tmp_via_fd = CString::new(format!("/proc/self/fd/{TMP_FD}")).ok();
    let targets: Vec<(usize, CString)> = ["/tmp", "/var/tmp", "/dev/shm"]
        .iter()
        .enumerate()
        .filter(|(_, t)| Path::new(t).is_dir())
        .filter_map(|(i, t)| CString::new(*t).ok().map(|c| (i, c)))
        .collect();
    let root = c"/";
    // The data directory under a covered target: the directories to create
    // in the private tmp (outermost first) and the mount point.
    let mut reexpose: Vec<CString> = Vec::new();
    let mut reexpose_at: Option<usize> = None;
    if let Some(data) = confine.data_dir.as_ref().filter(|_| tmp_path.is_some()) {
        for (i, target) in ["/tmp", "/var/tmp", "/dev/shm"].iter().enumerate() {
            if let Ok(rest) = data.strip_prefix(target) {
                let mut at = PathBuf::from(target);
                for part in rest.components() {
                    at.push(part);
                    if let Ok(c) = CString::new(at.as_os_str().as_bytes()) {
                        reexpose.push(c);
                    }
                }
                reexpose_at = Some(i);
                break;
            }
        }
    }
    let data_path = confine
        .data_dir
        .as_ref()
        .and_then(|p| CString::new(p.as_os_str().as_bytes()).ok());
    let data_via_fd = CString::new(format!("/proc/self/fd/{DATA_FD}")).ok();
    cmd.process_group(0);
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (fcntl, dup2, close, setrlimit,
    // unshare, mount, setgroups, setgid, setuid, prctl, getppid, _exit) on
    // memory allocated before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            // Move both ends above the target numbers first, so that an end
            // which already sits on fd 3 or 4 is not clobbered by the other.
            let a = libc::fcntl(in_fd, libc::F_DUPFD, 10);
            let b = libc::fcntl(out_fd, libc::F_DUPFD, 10);
            if a < 0 || b < 0 {
                return fail();
            }
            if libc::dup2(a, CHILD_IN_FD) < 0 || libc::dup2(b, CHILD_OUT_FD) < 0 {
                return fail();
            }
            libc::close(a);
            libc::close(b);
            let mut flags = 0;
            if tmp_path.is_some() {
                flags |= libc::CLONE_NEWNS;
            }
            if no_network {
                flags |= libc::CLONE_NEWNET;
            }
            if flags != 0 && libc::unshare(flags) < 0 {
                return fail();
            }
            if let (Some(tmp_path), Some(tmp)) = (&tmp_path, &tmp_via_fd) {
                let fd = libc::open(tmp_path.as_ptr(), libc::O_PATH | libc::O_DIRECTORY);
                if fd < 0 || libc::dup2(fd, TMP_FD) < 0 {
                    return fail();
                }
                libc::close(fd);
                if let (Some(_), Some(data)) = (reexpose_at, &data_path) {
                    let fd = libc::open(data.as_ptr(), libc::O_PATH | libc::O_DIRECTORY);
                    if fd < 0 || libc::dup2(fd, DATA_FD) < 0 {
                        return fail();
                    }
                    libc::close(fd);
                }
                // Mounts made here stay in the worker's namespace.
                if libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) < 0
                {
                    return fail();
                }
                for (i, target) in &targets {
                    if libc::mount(
                        tmp.as_ptr(),
                        target.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ) < 0
                    {
                        return fail();
                    }
                    if reexpose_at == Some(*i) {
                        for dir in &reexpose {
                            let rc = libc::mkdir(dir.as_ptr(), 0o711);
                            if rc < 0 && *libc::__errno_location() != libc::EEXIST {
                                return fail();
                            }
                        }
                        if let (Some(point), Some(src)) = (reexpose.last(), &data_via_fd) {
                            if libc::mount(
                                src.as_ptr(),
                                point.as_ptr(),
                                std::ptr::null(),
                                libc::MS_BIND | libc::MS_REC,
                                std::ptr::null(),
                            ) < 0
                            {
                                return fail();
                            }
                        }
                        libc::close(DATA_FD);
                    }
                }
                libc::close(TMP_FD);
            }
            // The limits come last: the daemon may hold more descriptors
            // than the worker's own limit, and the steps above open some.
            for (resource, value) in rlimits {
                if resource == libc::RLIMIT_NPROC && (value == 0 || identity.is_none()) {
                    continue;
                }
                let lim = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource, &lim) < 0 {
                    return fail();
                }
            }
            if let Some((uid, gid)) = identity {
                // The pipes become the worker's (a runtime may reopen them
                // by path, as Lua does with /dev/fd/3).
                for fd in [CHILD_IN_FD, CHILD_OUT_FD, 1, 2] {
                    if libc::fchown(fd, uid, gid) < 0 {
                        return fail();
                    }
                }
                if libc::setgroups(0, std::ptr::null()) < 0
                    || libc::setgid(gid) < 0
                    || libc::setuid(uid) < 0
                {
                    return fail();
                }
            }
            // After the identity change (which clears it).
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return fail();
            }
            // The daemon may have died between fork and prctl.
            if libc::getppid() != daemon_pid {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    Ok(())
}

/// Kill a worker and every process of its process group.
pub fn kill_tree(pgid: u32) {
    signal_tree(pgid, Signal::SIGKILL);
}

/// Send `signal` to a worker's process group.
pub fn signal_tree(pgid: u32, signal: Signal) {
    if pgid == 0 {
        return;
    }
    // ESRCH (already gone) is fine.
    let _ = killpg(Pid::from_raw(pgid as i32), signal);
}

/// A pipe whose both ends are close-on-exec.
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// Make a version's code directory readable by its workers' group only:
/// `root:gid`, mode 0750 (the files inside stay world-readable, but no one
/// else can enter the directory).
pub fn restrict_code_dir(dir: &Path, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(dir, Some(0), Some(gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
}

/// Resident memory of a process, in bytes (from /proc).
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
