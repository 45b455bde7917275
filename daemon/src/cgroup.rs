//! PLACEHOLDER until the cgroup module lands (replaced wholesale).
#![allow(dead_code)]

#[derive(Debug, thiserror::Error)]
#[error("cgroups: {0}")]
pub struct CgroupError(String);

#[derive(Debug)]
pub struct Cgroups;
pub struct AppBudget {
    pub memory_mb: u64,
    pub cpu_millicores: u32,
}
pub struct WorkerLimits {
    pub memory_mb: u64,
    pub cpu_millicores: u32,
    pub pids: u32,
}
#[derive(Debug)]
pub struct WorkerCgroup;

impl Cgroups {
    pub fn detect() -> Result<Option<Cgroups>, CgroupError> {
        Ok(None)
    }
    pub fn describe(&self) -> String {
        String::new()
    }
    pub fn app(&self, _app: &str, _budget: &AppBudget) -> Result<(), CgroupError> {
        Ok(())
    }
    pub fn worker(&self, _app: &str, _limits: &WorkerLimits) -> Result<WorkerCgroup, CgroupError> {
        Err(CgroupError("placeholder".into()))
    }
    pub fn cleanup(&self) {}
}
impl WorkerCgroup {
    pub fn add(&self, _pid: u32) -> Result<(), CgroupError> {
        Ok(())
    }
    pub fn set_limits(&self, _limits: &WorkerLimits) -> Result<(), CgroupError> {
        Ok(())
    }
    pub fn oom_killed(&self) -> bool {
        false
    }
    pub fn memory_peak_bytes(&self) -> Option<u64> {
        None
    }
    pub fn pids(&self) -> Vec<u32> {
        Vec::new()
    }
    pub fn kill_all(&self) {}
    pub fn path_label(&self) -> String {
        String::new()
    }
}
