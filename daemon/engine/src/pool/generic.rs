//! Generic pools: per runtime, a few interpreters started ahead of need with
//! the shim and its codec imported and no function loaded. A pool that needs
//! a worker takes one and sends it the version's code; the generic pool is
//! refilled in the background. A worker that has loaded code never comes
//! back here.
//!
//! Lua is not kept generic: a Lua worker cannot change its working
//! directory or environment once started (and starts in ~5 ms anyway).

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
    /// Keep `target` idle workers for each available runtime that can be
    /// generic (Python, Node). `dir` is their working directory until load.
    pub fn new(
        runtimes: &Runtimes,
        target: usize,
        dir: PathBuf,
        isolation: Arc<Isolation>,
    ) -> Arc<GenericPools> {
        let mut slots = HashMap::new();
        for kind in [RuntimeKind::Python, RuntimeKind::Node] {
            if let Ok(rt) = runtimes.get(kind) {
                slots.insert(
                    kind,
                    Slot {
                        spec: Arc::new(WorkerSpec::generic(
                            rt.clone(),
                            dir.clone(),
                            isolation.clone(),
                        )),
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

    /// A live generic worker of `kind`, if one is waiting; a refill starts.
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
        self.refill(kind);
        taken
    }

    fn refill(self: &Arc<Self>, kind: RuntimeKind) {
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
