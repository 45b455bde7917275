//! Process isolation of workers. For now: each worker is the leader of its own
//! process group (so its whole tree can be killed at once), dies with the
//! daemon (parent-death signal), and sees the protocol pipes only on fds 3
//! and 4. rlimits, cgroups, users and namespaces land here too.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// fd on which a worker reads the daemon's messages.
pub const CHILD_IN_FD: i32 = 3;
/// fd on which a worker writes its messages to the daemon.
pub const CHILD_OUT_FD: i32 = 4;

/// Arrange for the child of `cmd` to get `child_in` as fd 3 and `child_out`
/// as fd 4, to lead its own process group, and to be killed if the daemon
/// dies. The descriptors must be close-on-exec in the daemon (so no other
/// worker inherits them); they are closed in the daemon once the child has
/// been spawned by dropping them.
pub fn prepare_worker(cmd: &mut tokio::process::Command, child_in: &OwnedFd, child_out: &OwnedFd) {
    let in_fd = child_in.as_raw_fd();
    let out_fd = child_out.as_raw_fd();
    let daemon_pid = std::process::id() as libc::pid_t;
    cmd.process_group(0);
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (fcntl, dup2, close, prctl, getppid,
    // _exit); it touches no memory shared with other threads.
    unsafe {
        cmd.pre_exec(move || {
            // Move both ends above the target numbers first, so that an end
            // which already sits on fd 3 or 4 is not clobbered by the other.
            let a = libc::fcntl(in_fd, libc::F_DUPFD, 10);
            let b = libc::fcntl(out_fd, libc::F_DUPFD, 10);
            if a < 0 || b < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::dup2(a, CHILD_IN_FD) < 0 || libc::dup2(b, CHILD_OUT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(a);
            libc::close(b);
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The daemon may have died between fork and prctl.
            if libc::getppid() != daemon_pid {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Kill a worker and every process it started (its process group).
pub fn kill_tree(pgid: u32) {
    if pgid == 0 {
        return;
    }
    // ESRCH (already gone) is fine.
    let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
}

/// A pipe whose both ends are close-on-exec.
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}
