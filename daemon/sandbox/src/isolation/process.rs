//! Helpers on a running worker's processes: signalling its process group
//! (every worker leads one) and reading its resident memory from /proc.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

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

/// Is there a process with this pid (of any user)? Leftovers named after
/// the pid of the daemon that made them are removed once it is gone.
pub fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match nix::sys::signal::kill(Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        // EPERM: it exists, as another user's.
        Err(_) => true,
    }
}

/// Resident memory of a process, in bytes (from /proc).
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
