//! Spawning a confined worker: what the child does between fork and exec
//! ([`prepare_worker`]): the protocol pipes on fds 3 and 4, its own process
//! group, death with the daemon, private /tmp and network namespaces,
//! rlimits, and its user. Also the close-on-exec [`pipe`] the protocol
//! pipes are made with.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Rlimits;

/// fd on which a worker reads the daemon's messages.
pub const CHILD_IN_FD: i32 = 3;
/// fd on which a worker writes its messages to the daemon.
pub const CHILD_OUT_FD: i32 = 4;
/// Where the child briefly holds its temporary directory while binding it.
const TMP_FD: i32 = 9;
/// ... and the data directory, when it has to be bound back.
const DATA_FD: i32 = 8;

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
                take_identity(uid, gid)?;
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

/// Become `uid`/`gid` for good: the protocol pipes and stdout/stderr
/// become theirs (a runtime may reopen them by path, as Lua does with
/// /dev/fd/3), then no supplementary groups, the group, the user. Used
/// between fork and exec, and by hearth's launcher of pre-started Lua
/// workers.
///
/// # Safety
/// It changes this process's credentials and the owner of fds 1 to 4. It
/// allocates nothing (async-signal-safe), so it may run after a fork.
pub unsafe fn take_identity(uid: u32, gid: u32) -> std::io::Result<()> {
    for fd in [CHILD_IN_FD, CHILD_OUT_FD, 1, 2] {
        if libc::fchown(fd, uid, gid) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    if libc::setgroups(0, std::ptr::null()) < 0 || libc::setgid(gid) < 0 || libc::setuid(uid) < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A pipe whose both ends are close-on-exec.
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}
