//! Generic pools: per runtime, a few interpreters started ahead of need with
//! the shim and its codec imported and no function loaded. A pool that needs
//! a worker takes one and sends it the version's code; the generic pool is
//! refilled in the background. A worker that has loaded code never comes
//! back here.
//!
//! A Lua worker cannot change its user, working directory or environment
//! once started; its generic workers are the launcher (`hearth
//! __exec-worker`, daemon/hearth/src/launcher.rs), which does that at
//! `load` and then execs Lua. Without a launcher (an engine embedded
//! elsewhere) Lua workers are started for their function.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use hearth_api::GenericStats;
use tracing::{debug, warn};

use super::worker::{Worker, WorkerSpec};
use crate::runtime::Runtimes;
use hearth_api::manifest::RuntimeKind;
use hearth_sandbox::isolation::Isolation;

/// The hearth subcommand that launches a pre-started Lua worker.
pub const EXEC_WORKER: &str = "__exec-worker";

/// How long after a generic worker is taken its replacement is started:
/// the taker loads its code first. (A new worker's move into its cgroup
/// holds the kernel's fork/exec lock for an RCU grace period on cgroup v1,
/// which would stall a load that execs, as Lua's launcher does.)
const REFILL_AFTER: Duration = Duration::from_millis(25);

/// How long starting one generic worker may take.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed start before trying again (never spin).
const RETRY_PAUSE: Duration = Duration::from_secs(5);

struct Slot {
    spec: Arc<WorkerSpec>,
    idle: Mutex<Vec<Worker>>,
    refilling: AtomicBool,
}

pub struct GenericPools {
    /// Changed at run time by `set_target` (a configuration reload).
    target: AtomicUsize,
    slots: HashMap<RuntimeKind, Slot>,
}

impl GenericPools {
    /// Keep `target` idle workers for each available runtime. `dir` is
    /// their working directory until load; `launcher` the hearth binary
    /// whose `__exec-worker` starts Lua's (None: Lua has none).
    pub fn new(
        runtimes: &Runtimes,
        target: usize,
        dir: PathBuf,
        isolation: Arc<Isolation>,
        launcher: Option<PathBuf>,
    ) -> Arc<GenericPools> {
        let mut slots = HashMap::new();
        for kind in [RuntimeKind::Python, RuntimeKind::Node, RuntimeKind::Lua] {
            if let Ok(rt) = runtimes.get(kind) {
                let rt = match (kind, &launcher) {
                    (RuntimeKind::Lua, None) => continue,
                    (RuntimeKind::Lua, Some(launcher)) => {
                        let mut args = vec![
                            EXEC_WORKER.to_owned(),
                            kind.as_str().to_owned(),
                            rt.version.clone(),
                            rt.interpreter.display().to_string(),
                        ];
                        args.extend(rt.args.iter().cloned());
                        crate::runtime::Runtime {
                            interpreter: launcher.clone(),
                            args,
                            ..rt.clone()
                        }
                    }
                    _ => rt.clone(),
                };
                slots.insert(
                    kind,
                    Slot {
                        spec: Arc::new(WorkerSpec::generic(rt, dir.clone(), isolation.clone())),
                        idle: Mutex::new(Vec::new()),
                        refilling: AtomicBool::new(false),
                    },
                );
            }
        }
        Arc::new(GenericPools {
            target: AtomicUsize::new(target),
            slots,
        })
    }

    pub fn target(&self) -> usize {
        self.target.load(Ordering::Acquire)
    }

    /// Keep `target` idle workers per runtime from now on: more are
    /// started in the background, the surplus idle ones are ended at once.
    pub fn set_target(self: &Arc<Self>, target: usize) {
        self.target.store(target, Ordering::Release);
        for slot in self.slots.values() {
            let surplus: Vec<Worker> = match slot.idle.lock() {
                Ok(mut idle) if idle.len() > target => idle.drain(target..).collect(),
                _ => Vec::new(),
            };
            drop(surplus);
        }
        self.fill();
    }

    /// Start filling every generic pool (in the background).
    pub fn fill(self: &Arc<Self>) {
        for kind in self.slots.keys() {
            self.refill(*kind);
        }
    }

    /// A live generic worker of `kind`, if one is waiting; a refill starts
    /// a moment later ([`REFILL_AFTER`]).
    pub fn take(self: &Arc<Self>, kind: RuntimeKind) -> Option<Worker> {
        let slot = self.slots.get(&kind)?;
        let taken = {
            let mut idle = slot.idle.lock().unwrap_or_else(|p| p.into_inner());
            let mut taken = None;
            while let Some(mut w) = idle.pop() {
                if w.is_alive() {
                    taken = Some(w);
                    break;
                }
            }
            taken
        };
        self.refill_after(
            kind,
            if taken.is_some() {
                REFILL_AFTER
            } else {
                Duration::ZERO
            },
        );
        taken
    }

    /// Start workers of `kind` in the background up to the target.
    pub fn refill(self: &Arc<Self>, kind: RuntimeKind) {
        self.refill_after(kind, Duration::ZERO);
    }

    fn refill_after(self: &Arc<Self>, kind: RuntimeKind, pause: Duration) {
        let Some(slot) = self.slots.get(&kind) else {
            return;
        };
        if self.target() == 0 || slot.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let pools = self.clone();
        tokio::spawn(async move {
            let Some(slot) = pools.slots.get(&kind) else {
                return;
            };
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            loop {
                let target = pools.target();
                let have = slot.idle.lock().map(|i| i.len()).unwrap_or(target);
                if have >= target || slot.spec.isolation.is_stopping() {
                    break;
                }
                let deadline = tokio::time::Instant::now() + SPAWN_TIMEOUT;
                match Worker::spawn(slot.spec.clone(), deadline).await {
                    Ok(w) => {
                        debug!(runtime = %kind, pid = w.pid(), "generic worker ready");
                        if let Ok(mut idle) = slot.idle.lock() {
                            idle.push(w);
                        }
                    }
                    Err(e) => {
                        warn!(runtime = %kind, error = %e, "cannot start a generic worker; retrying in 5 s");
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
            }
            slot.refilling.store(false, Ordering::Release);
        });
    }

    pub fn stats(&self) -> Vec<GenericStats> {
        let mut out: Vec<GenericStats> = self
            .slots
            .iter()
            .map(|(kind, slot)| {
                let idle = slot
                    .idle
                    .lock()
                    .map(|i| i.iter().map(Worker::pid).collect::<Vec<_>>())
                    .unwrap_or_default();
                GenericStats {
                    runtime: kind.to_string(),
                    idle: idle.len(),
                    target: self.target(),
                    pids: idle,
                }
            })
            .collect();
        out.sort_by(|a, b| a.runtime.cmp(&b.runtime));
        out
    }

    /// End every waiting generic worker (at shutdown).
    pub fn shutdown(&self) {
        for slot in self.slots.values() {
            if let Ok(mut idle) = slot.idle.lock() {
                idle.clear();
            }
        }
    }
}
