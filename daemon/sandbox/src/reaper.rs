//! The reaper: a small process of the daemon's binary (`hearth reap
//! hearth-<pid>`) that outlives the daemon only to empty its cgroups,
//! however the daemon ends. A worker that changed user has lost its
//! parent-death signal, so if the daemon is killed the reaper ends it.
//! [`start_reaper`] runs in the daemon; [`reap`] is the reaper's body.

use crate::cgroup::Cgroups;

/// Start the reaper of this daemon's cgroup tree: the current executable
/// run as `<exe> reap hearth-<daemon pid>`, which must call [`reap`]. It
/// gets SIGTERM when the daemon dies (its parent-death signal), and exits
/// at once if the daemon is already gone when it starts.
pub fn start_reaper() -> std::io::Result<tokio::process::Child> {
    let daemon_pid = std::process::id() as libc::pid_t;
    let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
    cmd.args(["reap", &format!("hearth-{daemon_pid}")])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(false);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != daemon_pid {
                libc::_exit(0);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// `hearth reap TREE`: wait for the daemon (our parent) to end, then empty
/// and remove its cgroup tree.
pub async fn reap(tree: &str) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // The parent-death signal is SIGTERM; Ctrl-C in a terminal reaches the
    // whole group, and the daemon needs its time to stop: only SIGTERM
    // (or the parent vanishing) ends the wait.
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => continue,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {
                if nix::unistd::getppid().as_raw() == 1 {
                    break;
                }
            }
        }
    }
    Cgroups::reap(tree);
    Ok(())
}
