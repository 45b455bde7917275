//! hearth's sandbox: how a worker process is confined (cgroups, users,
//! rlimits, namespaces, private tmp) and how nothing outlives the daemon
//! (the reaper).

pub mod cgroup;
pub mod isolation;
pub mod reaper;
