//! The rlimits of a worker: open files, file size, processes of its user,
//! and no core files. Set in the child before exec (by
//! [`prepare_worker`](super::prepare_worker)), or on a running generic
//! worker with `prlimit`.

use hearth_api::manifest::Limits;

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

    pub(crate) fn table(&self) -> [(libc::__rlimit_resource_t, u64); 4] {
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
