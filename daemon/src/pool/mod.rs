//! Worker pools: one per function version. Workers start on first need, are
//! reused for later calls (one call at a time each), and never exceed the
//! function's `max_workers`. A worker that dies or breaks is dropped (its
//! process tree killed) and, for the live version, replaced in the background.

mod generic;
mod output;
mod worker;

pub use generic::{GenericPools, GenericStats};
pub use output::CallLog;

pub use worker::{Answer, FunctionError, Worker, WorkerError, WorkerSpec};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{info, warn};

/// A call as the pool sees it.
pub struct Call {
    pub request_id: String,
    pub payload: rmpv::Value,
    /// When the caller gives up (the function's timeout from arrival).
    pub deadline: Instant,
    /// The same instant as wall-clock milliseconds, for the worker.
    pub deadline_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{function} has all {max_workers} workers busy and none came free before its timeout of {timeout_ms} ms; raise limits.max_workers or make calls shorter")]
    Saturated {
        function: String,
        max_workers: u32,
        timeout_ms: u64,
    },
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolStats {
    pub function: String,
    pub version: u32,
    pub idle: usize,
    pub busy: usize,
    pub max_workers: u32,
    pub calls: u64,
    pub started: u64,
}

pub struct Pool {
    spec: Arc<WorkerSpec>,
    generic: Option<Arc<GenericPools>>,
    idle: Mutex<Vec<Worker>>,
    slots: Arc<Semaphore>,
    /// Keep one worker warm (set while this version is live).
    keep_warm: AtomicBool,
    calls: AtomicU64,
    started: AtomicU64,
}

impl Pool {
    pub fn new(spec: WorkerSpec, generic: Option<Arc<GenericPools>>) -> Arc<Pool> {
        let max = spec.limits.max_workers as usize;
        Arc::new(Pool {
            spec: Arc::new(spec),
            generic,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(max)),
            keep_warm: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            started: AtomicU64::new(0),
        })
    }

    pub fn spec(&self) -> &WorkerSpec {
        &self.spec
    }

    pub fn is_kept_warm(&self) -> bool {
        self.keep_warm.load(Ordering::Relaxed)
    }

    pub fn set_keep_warm(&self, on: bool) {
        self.keep_warm.store(on, Ordering::Relaxed);
    }

    fn take_idle(&self) -> Option<Worker> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(mut w) = idle.pop() {
            if w.is_alive() {
                return Some(w);
            }
            warn!(function = %self.spec.function, version = self.spec.version, pid = w.pid(), "idle worker had died; dropping it");
        }
        None
    }

    fn put_idle(&self, worker: Worker) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(worker);
        }
    }

    /// A new worker with this version's code loaded: a generic one if one is
    /// waiting (only the code load is left to do), else a fresh process.
    async fn start_worker(&self, deadline: Instant) -> Result<Worker, WorkerError> {
        let generic = self
            .generic
            .as_ref()
            .and_then(|g| g.take(self.spec.runtime.kind));
        let w = match generic {
            Some(mut w) => {
                w.load(self.spec.clone(), deadline).await?;
                w
            }
            None => Worker::start(self.spec.clone(), deadline).await?,
        };
        self.started.fetch_add(1, Ordering::Relaxed);
        Ok(w)
    }

    /// Make sure one loaded worker is waiting, starting it if needed. Used at
    /// deploy and publish: the code is proven to load before it goes live.
    pub async fn warm(&self, load_timeout: Duration) -> Result<(), WorkerError> {
        let deadline = Instant::now() + load_timeout;
        let Ok(_permit) = self.slots.acquire().await else {
            return Ok(());
        };
        if let Some(w) = self.take_idle() {
            self.put_idle(w);
            return Ok(());
        }
        let w = self.start_worker(deadline).await?;
        self.put_idle(w);
        Ok(())
    }

    /// Run one call on a worker of this pool.
    pub async fn call(self: Arc<Self>, call: Call) -> Result<Answer, CallError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let permit = match tokio::time::timeout_at(call.deadline, self.slots.acquire()).await {
            Ok(Ok(p)) => p,
            _ => {
                return Err(CallError::Saturated {
                    function: self.spec.label(),
                    max_workers: self.spec.limits.max_workers,
                    timeout_ms: self.spec.limits.timeout_ms,
                })
            }
        };
        let mut worker = match self.take_idle() {
            Some(w) => w,
            None => self.start_worker(call.deadline).await?,
        };
        let outcome = worker
            .invoke(
                &call.request_id,
                call.payload,
                call.deadline,
                call.deadline_ms,
            )
            .await;
        match outcome {
            Ok(result) => {
                self.put_idle(worker);
                drop(permit);
                Ok(result)
            }
            Err(e) => {
                warn!(function = %self.spec.function, version = self.spec.version, pid = worker.pid(),
                    request_id = %call.request_id, error = %e, "worker lost");
                drop(worker);
                drop(permit);
                self.replace_in_background();
                Err(e.into())
            }
        }
    }

    /// After losing a worker, start a new one if this version is live and
    /// nothing is waiting, so the next call does not pay for a cold start.
    fn replace_in_background(self: &Arc<Self>) {
        if !self.keep_warm.load(Ordering::Relaxed) {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            let timeout = Duration::from_millis(pool.spec.limits.timeout_ms.max(10_000));
            match pool.warm(timeout).await {
                Ok(()) => {
                    info!(function = %pool.spec.function, version = pool.spec.version, "replacement worker ready")
                }
                Err(e) => {
                    warn!(function = %pool.spec.function, version = pool.spec.version, error = %e, "cannot start a replacement worker")
                }
            }
        });
    }

    pub fn stats(&self) -> PoolStats {
        let idle = self.idle.lock().map(|i| i.len()).unwrap_or(0);
        let max = self.spec.limits.max_workers;
        let free = self.slots.available_permits();
        PoolStats {
            function: self.spec.function.clone(),
            version: self.spec.version,
            idle,
            busy: (max as usize).saturating_sub(free),
            max_workers: max,
            calls: self.calls.load(Ordering::Relaxed),
            started: self.started.load(Ordering::Relaxed),
        }
    }

    /// Kill every idle worker (busy ones go when their call ends and the
    /// pool is dropped).
    pub fn shutdown(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}
