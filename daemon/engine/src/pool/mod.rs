//! Worker pools: one per function version. Workers start on first need, are
//! reused for later calls (one call at a time each), and never exceed the
//! function's `max_workers`. A worker that dies or breaks is dropped (its
//! process tree killed) and, for the live version, replaced in the background.

mod budget;
mod generic;
pub(crate) mod nested;
mod output;
mod shared;
mod worker;

use shared::SharedWorker;

pub use budget::{AppUsage, Budget, BudgetStats, NoPlace};
pub use generic::{GenericPools, GenericStats, EXEC_WORKER};
pub use output::{call_log_max, set_call_log_max, CallLog, CALL_LOG_MAX};

pub use worker::{Answer, FunctionError, Lost, Timing, Worker, WorkerError, WorkerSpec};

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::call::Dispatch;
use crate::events::{Event, Events};
use std::time::Duration;

/// Milliseconds on a monotonic clock (for least-recently-used order).
fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// How often a pool looks after its workers' lifecycle.
const MAINTAIN_EVERY: Duration = Duration::from_millis(500);

pub use hearth_api::PoolStats;
use hearth_api::{CrashLoopInfo, StartKind};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// A call as the pool sees it.
pub struct Call {
    pub request_id: String,
    pub payload: rmpv::Value,
    /// When the caller gives up (the function's timeout from arrival).
    pub deadline: Instant,
    /// The same instant as wall-clock milliseconds, for the worker.
    pub deadline_ms: u64,
    /// The caller's lineage, for a nested call (None: a root call).
    pub above: Option<Arc<crate::call::Lineage>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// 429: too many calls already wait for this function.
    #[error("{function} has all {max_workers} workers busy and {max_queue} calls already waiting (limits.max_queue); retry in {retry_after_s} s, or raise limits.max_workers")]
    QueueFull {
        function: String,
        max_workers: u32,
        max_queue: u32,
        retry_after_s: u64,
    },
    /// 503: the call cannot finish before its deadline (judged from recent
    /// calls' duration and the calls waiting ahead), or waited until it
    /// without getting a worker. The function never ran.
    #[error("{function} cannot serve this call within its timeout of {timeout_ms} ms: {reason}; retry in {retry_after_s} s, or raise limits.max_workers")]
    Overloaded {
        function: String,
        timeout_ms: u64,
        reason: String,
        retry_after_s: u64,
    },
    /// 503: the function's workers keep dying as they start; it is backed
    /// off and no worker is started until the pause ends.
    #[error("{function} is in a crash loop: its last {crashes} workers died before finishing a call (last: {last_error}); hearth pauses it and retries in {retry_after_s} s")]
    CrashLoop {
        function: String,
        crashes: u32,
        last_error: String,
        retry_after_s: u64,
    },
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

/// A call the pool could not answer, with what it had done when it reached
/// a worker (nothing when it was refused or its worker never started).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct CallFailed {
    pub error: CallError,
    pub trace: Trace,
}

/// What a failed call leaves for its record.
#[derive(Debug, Default)]
pub struct Trace {
    /// What it printed until it failed.
    pub log: Option<CallLog>,
    /// The worker it ran on.
    pub pid: Option<u32>,
    /// Its phases: queue, how its worker came (spawn and load of a cold
    /// start), and its run until it failed.
    pub timing: Option<Timing>,
}

impl From<CallError> for CallFailed {
    fn from(error: CallError) -> CallFailed {
        CallFailed {
            error,
            trace: Trace::default(),
        }
    }
}

impl From<WorkerError> for CallFailed {
    fn from(error: WorkerError) -> CallFailed {
        CallError::Worker(error).into()
    }
}

impl CallFailed {
    /// A call lost with its worker, after `timing` (its run included).
    fn lost(lost: Lost, timing: Timing) -> CallFailed {
        CallFailed {
            error: CallError::Worker(lost.error),
            trace: Trace {
                log: Some(lost.log),
                pid: Some(lost.pid),
                timing: Some(timing),
            },
        }
    }
}

/// Consecutive crashes at start before a function is backed off.
const CRASH_THRESHOLD: u32 = 3;
/// First pause of a crash loop; it doubles with every further crash.
const FIRST_BACKOFF_MS: u64 = 500;
/// Longest pause.
const MAX_BACKOFF_MS: u64 = 60_000;

/// What every pool shares: the generic pools and the global worker budget.
#[derive(Clone, Default)]
pub struct Shared {
    pub generic: Option<Arc<GenericPools>>,
    pub budget: Option<Arc<Budget>>,
    /// Where the pool's events go.
    pub events: Events,
    /// The engine, for the nested calls of this pool's workers.
    pub dispatch: Option<Weak<dyn Dispatch>>,
}

pub struct Pool {
    spec: Arc<WorkerSpec>,
    events: Events,
    dispatch: Option<Weak<dyn Dispatch>>,
    generic: Option<Arc<GenericPools>>,
    budget: Option<Arc<Budget>>,
    /// When a call last came, in ms since the daemon's start (for LRU eviction).
    last_used_ms: AtomicU64,
    idle: Mutex<Vec<Worker>>,
    slots: Arc<Semaphore>,
    /// Keep one worker warm (set while this version is live).
    keep_warm: AtomicBool,
    /// Closed for good (its function deleted or taken offline): no worker
    /// is kept or started by upkeep; a worker coming back from a call ends.
    closed: AtomicBool,
    calls: AtomicU64,
    started: AtomicU64,
    /// Calls waiting for a worker right now.
    waiting: AtomicU64,
    /// Moving average of recent calls' duration, in microseconds (0: none yet).
    avg_call_us: AtomicU64,
    /// Retiring workers whose replacement arrived while they were busy: they
    /// leave when their call ends.
    replaced: Mutex<std::collections::HashSet<u32>>,
    recycled: AtomicU64,
    reclaimed: AtomicU64,
    /// Workers in a row that died (or failed to start) before finishing a
    /// call; reset by a successful call.
    crashes: std::sync::atomic::AtomicU32,
    /// No worker starts before this (ms since the daemon's start).
    backoff_until_ms: AtomicU64,
    last_crash: Mutex<String>,
    cold_starts: AtomicU64,
    last_cold_start: Mutex<Option<Timing>>,
    /// Workers serving several calls at once (`limits.concurrency` > 1).
    shared: Mutex<Vec<Arc<SharedWorker>>>,
    /// Workers being started right now: shared ones, and (other pools)
    /// ones started in the background for calls waiting for a worker.
    starting: std::sync::atomic::AtomicUsize,
    /// Workers out on a call (pools of one call per worker).
    out: std::sync::atomic::AtomicUsize,
    /// Calls waiting for an idle worker (all were out on calls).
    idle_waiters: std::sync::atomic::AtomicUsize,
    /// A worker came back idle.
    idle_back: tokio::sync::Notify,
    /// A shared worker got a free lane, or a new one arrived.
    lane_freed: tokio::sync::Notify,
    /// Its workers in each cell (empty without cells).
    homes: Arc<[AtomicU32]>,
    /// Calls in flight per cell: the cell's share of `max_workers` (empty
    /// without cells, and for workers serving several calls at once).
    cell_slots: Vec<Semaphore>,
    /// A cell's share has a free place and no call waiting for it: calls
    /// waiting in other cells may take it.
    cell_spare: tokio::sync::Notify,
}

/// One in a count (a worker out on a call, a call waiting) until dropped.
struct Counted<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A call's place in a cell's share of the pool.
struct CellPermit<'a> {
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
    sem: &'a Semaphore,
    spare: &'a tokio::sync::Notify,
    /// The cell whose share it is.
    group: usize,
}

impl Drop for CellPermit<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        // Nobody of that cell took the place: calls waiting elsewhere may.
        if self.sem.available_permits() > 0 {
            self.spare.notify_waiters();
        }
    }
}

/// Each cell's share of a pool's `max_workers` (none for workers serving
/// several calls at once, which spread their calls themselves).
fn cell_shares(limits: &hearth_api::manifest::Limits) -> Vec<Semaphore> {
    let n = crate::cells::count();
    if n == 0 || limits.concurrency > 1 {
        return Vec::new();
    }
    (0..n)
        .map(|i| Semaphore::new(share_of(limits.max_workers, n, i)))
        .collect()
}

/// Cell `i`'s share of `max_workers` over `n` cells (the first cells take
/// what does not divide evenly).
fn share_of(max_workers: u32, n: usize, i: usize) -> usize {
    let max = (max_workers as usize).max(1);
    max / n + usize::from(i < max % n)
}

/// A worker counted among its pool's workers of its cell while it lives.
pub struct Homed {
    counts: Arc<[AtomicU32]>,
    cell: usize,
}

impl Drop for Homed {
    fn drop(&mut self) {
        if let Some(c) = self.counts.get(self.cell) {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Pool {
    pub fn new(spec: WorkerSpec, shared: &Shared) -> Arc<Pool> {
        // One permit per call in flight: `concurrency` per worker.
        let max = spec.limits.max_workers as usize * spec.limits.concurrency.max(1) as usize;
        let cell_slots = cell_shares(&spec.limits);
        let pool = Arc::new(Pool {
            spec: Arc::new(spec),
            events: shared.events.clone(),
            dispatch: shared.dispatch.clone(),
            generic: shared.generic.clone(),
            budget: shared.budget.clone(),
            last_used_ms: AtomicU64::new(now_ms()),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(max)),
            keep_warm: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            started: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            avg_call_us: AtomicU64::new(0),
            replaced: Mutex::new(Default::default()),
            recycled: AtomicU64::new(0),
            reclaimed: AtomicU64::new(0),
            crashes: Default::default(),
            backoff_until_ms: AtomicU64::new(0),
            last_crash: Mutex::new(String::new()),
            cold_starts: AtomicU64::new(0),
            last_cold_start: Mutex::new(None),
            shared: Mutex::new(Vec::new()),
            starting: Default::default(),
            out: Default::default(),
            idle_waiters: Default::default(),
            idle_back: tokio::sync::Notify::new(),
            lane_freed: tokio::sync::Notify::new(),
            homes: (0..crate::cells::count())
                .map(|_| AtomicU32::new(0))
                .collect(),
            cell_slots,
            cell_spare: tokio::sync::Notify::new(),
        });
        // A page's pool starts no worker: it only routes.
        if pool.spec.page.is_some() {
            return pool;
        }
        if let Some(budget) = &pool.budget {
            budget.register(&pool);
        }
        // Lifecycle upkeep, for as long as the pool exists.
        let weak = Arc::downgrade(&pool);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(MAINTAIN_EVERY).await;
                match weak.upgrade() {
                    Some(pool) => pool.maintain(),
                    None => break,
                }
            }
        });
        pool
    }

    pub fn spec(&self) -> &WorkerSpec {
        &self.spec
    }

    /// The engine, to dispatch a nested call of one of this pool's workers.
    pub fn dispatcher(&self) -> Option<Arc<dyn Dispatch>> {
        self.dispatch.as_ref().and_then(Weak::upgrade)
    }

    /// Emit one of this pool's events: it feeds the pool's counters, then
    /// goes to the engine's events (its log line, and every sink).
    /// A worker of this pool died or broke during a call.
    fn emit_lost(&self, pid: u32, request_id: &str, shared: bool, e: &WorkerError) {
        self.emit(Event::WorkerLost {
            function: &self.spec.function,
            version: self.spec.version,
            pid,
            request_id,
            shared,
            error: &e.to_string(),
            runtime: self.spec.runtime.kind.as_str(),
            reason: e.reason(),
        });
    }

    fn emit(&self, event: Event<'_>) {
        match &event {
            Event::WorkerStarted { .. } => {
                self.started.fetch_add(1, Ordering::Relaxed);
            }
            Event::ColdStart { .. } => {
                self.cold_starts.fetch_add(1, Ordering::Relaxed);
            }
            Event::WorkerRecycled { .. } => {
                self.recycled.fetch_add(1, Ordering::Relaxed);
            }
            Event::WorkerReclaimed { .. } => {
                self.reclaimed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        self.events.emit(event);
    }

    fn reclaimed_event(&self, pid: u32) -> Event<'_> {
        Event::WorkerReclaimed {
            function: &self.spec.function,
            version: self.spec.version,
            pid,
            runtime: self.spec.runtime.kind.as_str(),
        }
    }

    pub fn is_kept_warm(&self) -> bool {
        self.keep_warm.load(Ordering::Relaxed)
    }

    pub fn set_keep_warm(&self, on: bool) {
        self.keep_warm.store(on, Ordering::Relaxed);
    }

    /// An idle worker for a call; `group`: the cell share the call holds.
    fn take_idle(&self, group: Option<usize>) -> Option<Worker> {
        let mut idle = self.idle.lock().ok()?;
        if let Some(g) = group {
            // A worker of the caller's own cell first (the most recently
            // used of them).
            if let Some(i) = idle.iter().rposition(|w| w.home == Some(g)) {
                let mut w = idle.remove(i);
                if w.is_alive() {
                    return Some(w);
                }
                warn!(function = %self.spec.function, version = self.spec.version, pid = w.pid(), "idle worker had died; dropping it");
            }
            // Short of its share: a worker from a cell that has more than
            // its own moves here. Otherwise another cell's idle worker
            // serves the call where it is (a cold start would be slower),
            // and only with none idle does a worker start here.
            let homed = |i: usize| {
                self.homes
                    .get(i)
                    .map_or(0, |c| c.load(Ordering::Relaxed) as usize)
            };
            if homed(g) < self.cell_share(g) {
                let spare = idle.iter().rposition(|w| {
                    w.home
                        .is_none_or(|h| h >= self.homes.len() || homed(h) > self.cell_share(h))
                });
                if let Some(i) = spare {
                    let mut w = idle.remove(i);
                    drop(idle);
                    if !w.is_alive() {
                        return None;
                    }
                    self.settle(&mut w, Some(g));
                    return Some(w);
                }
            }
        }
        while let Some(mut w) = idle.pop() {
            if w.is_alive() {
                return Some(w);
            }
            warn!(function = %self.spec.function, version = self.spec.version, pid = w.pid(), "idle worker had died; dropping it");
        }
        None
    }

    fn put_idle(self: &Arc<Self>, mut worker: Worker) {
        if self.closed.load(Ordering::Relaxed) {
            self.emit(self.reclaimed_event(worker.pid()));
            return;
        }
        if self.is_shared() {
            match SharedWorker::new(worker, now_ms()) {
                Ok(w) => {
                    if let Ok(mut shared) = self.shared.lock() {
                        shared.push(w);
                    }
                    self.lane_freed.notify_waiters();
                }
                Err(e) => {
                    warn!(function = %self.spec.function, error = %e, "cannot share a worker")
                }
            }
            return;
        }
        if worker.retiring
            && self
                .replaced
                .lock()
                .map(|mut r| r.remove(&worker.pid()))
                .unwrap_or(false)
        {
            return; // its replacement is already here
        }
        if !worker.retiring && self.needs_recycle(&worker) {
            worker.retiring = true;
            self.replace(worker.pid());
        }
        worker.idle_since = std::time::Instant::now();
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(worker);
        }
        if self.idle_waiters.load(Ordering::Acquire) > 0 {
            self.idle_back.notify_one();
        }
    }

    /// Has this worker served its calls or its time, or grown past its
    /// memory (each limit ±10% per worker, so a pool never recycles all its
    /// workers at once)?
    fn needs_recycle(&self, w: &Worker) -> bool {
        self.recycle_due(w.pid(), w.calls, w.started)
    }

    /// The recycling limits, for a worker of `pid` that has served `calls`
    /// since `started` (exclusive and shared workers alike).
    fn recycle_due(&self, pid: u32, calls: u64, started: std::time::Instant) -> bool {
        let limits = &self.spec.limits;
        let jitter = 0.9 + f64::from(pid % 21) / 100.0;
        (limits.max_requests > 0 && calls as f64 >= limits.max_requests as f64 * jitter)
            || (limits.max_age_ms > 0
                && started.elapsed().as_secs_f64() * 1000.0 >= limits.max_age_ms as f64 * jitter)
            // Resident memory is read from /proc only when the limit is set.
            || (limits.recycle_memory_mb > 0
                && hearth_sandbox::isolation::resident_bytes(pid).is_some_and(|rss| {
                    rss as f64 >= (limits.recycle_memory_mb * 1024 * 1024) as f64 * jitter
                }))
    }

    /// A worker reached `limits.max_processes` (a fork or thread bomb): it
    /// is ended with everything it started.
    fn warn_process_limit(&self, pid: u32) {
        warn!(function = %self.spec.function, version = self.spec.version, pid,
            max_processes = self.spec.limits.max_processes,
            "worker reached limits.max_processes; ending it and everything it started");
    }

    /// The call ran: its run time, and, for a cold start, the pool keeps
    /// its phases.
    fn finish_timing(&self, timing: &mut Timing, took: Duration) {
        timing.run_ms = ms(took);
        if timing.start != StartKind::Warm {
            if let Ok(mut last) = self.last_cold_start.lock() {
                *last = Some(timing.clone());
            }
        }
    }

    /// Start a replacement for worker `old`; once it is ready, the old one
    /// leaves (now if idle, else after its call).
    fn replace(self: &Arc<Self>, old: u32) {
        let pool = self.clone();
        tokio::spawn(async move {
            let deadline =
                Instant::now() + Duration::from_millis(pool.spec.limits.timeout_ms.max(10_000));
            match pool.start_worker(deadline, false, None).await {
                Ok(new) => {
                    pool.emit(Event::WorkerRecycled {
                        function: &pool.spec.function,
                        version: pool.spec.version,
                        old,
                        new: new.pid(),
                        runtime: pool.spec.runtime.kind.as_str(),
                    });
                    let Ok(mut idle) = pool.idle.lock() else {
                        return;
                    };
                    match idle.iter().position(|w| w.pid() == old) {
                        Some(i) => drop(idle.swap_remove(i)),
                        None => {
                            if let Ok(mut r) = pool.replaced.lock() {
                                r.insert(old);
                            }
                        }
                    }
                    idle.push(new);
                }
                Err(e) => {
                    if matches!(
                        e,
                        WorkerError::AtCapacity { .. } | WorkerError::AppAtCapacity { .. }
                    ) {
                        debug!(function = %pool.spec.function, "no room under the global cap for a replacement; the old worker stays");
                    } else {
                        warn!(function = %pool.spec.function, version = pool.spec.version, error = %e, "cannot start a replacement; the old worker stays");
                    }
                    if let Ok(mut idle) = pool.idle.lock() {
                        if let Some(w) = idle.iter_mut().find(|w| w.pid() == old) {
                            w.retiring = false;
                        }
                    }
                }
            }
        });
    }

    /// A worker died or failed before finishing a call: count it, and
    /// past the threshold pause the function (doubling each time).
    fn note_crash(&self, error: &WorkerError) {
        if matches!(
            error,
            WorkerError::AtCapacity { .. }
                | WorkerError::AppAtCapacity { .. }
                | WorkerError::Timeout { .. }
                | WorkerError::QueuedTooLong { .. }
                | WorkerError::NotRun { .. }
        ) {
            return; // not the function's start failing
        }
        let n = self.crashes.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut last) = self.last_crash.lock() {
            *last = error.to_string();
        }
        if n >= CRASH_THRESHOLD {
            let pause = FIRST_BACKOFF_MS
                .saturating_mul(1 << (n - CRASH_THRESHOLD).min(16))
                .min(MAX_BACKOFF_MS);
            self.backoff_until_ms
                .store(now_ms() + pause, Ordering::Relaxed);
            self.emit(Event::CrashLoop {
                function: &self.spec.function,
                version: self.spec.version,
                crashes: n,
                pause_ms: pause,
                error: &error.to_string(),
            });
        }
    }

    fn note_success(&self) {
        if self.crashes.load(Ordering::Relaxed) != 0 {
            self.crashes.store(0, Ordering::Relaxed);
            self.backoff_until_ms.store(0, Ordering::Relaxed);
        }
    }

    /// Milliseconds left of a crash-loop pause (no clock read when there
    /// is none: this is on every call's path).
    fn backoff_left_ms(&self) -> u64 {
        match self.backoff_until_ms.load(Ordering::Relaxed) {
            0 => 0,
            until => until.saturating_sub(now_ms()),
        }
    }

    /// While paused in a crash loop: `{crashes, retry_in_ms, last_error}`.
    pub fn crash_loop(&self) -> Option<CrashLoopInfo> {
        let left = self.backoff_left_ms();
        (left > 0).then(|| CrashLoopInfo {
            crashes: self.crashes.load(Ordering::Relaxed),
            retry_in_ms: left,
            last_error: self.last_crash(),
        })
    }

    /// Why the last worker died at start.
    fn last_crash(&self) -> String {
        self.last_crash
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    fn crash_loop_error(&self, left_ms: u64) -> CallError {
        CallError::CrashLoop {
            function: self.spec.label(),
            crashes: self.crashes.load(Ordering::Relaxed),
            last_error: self.last_crash(),
            retry_after_s: left_ms.div_ceil(1000).max(1),
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|i| i.len()).unwrap_or(0) + self.shared_idle().len()
    }

    /// Its workers, idle and busy.
    pub fn worker_count(&self) -> usize {
        self.idle.lock().map(|i| i.len()).unwrap_or(0)
            + self.out.load(Ordering::Acquire)
            + self.shared.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Its workers serve several calls at once (`limits.concurrency` > 1):
    /// they and their calls stay out of the cells.
    pub fn is_shared(&self) -> bool {
        self.spec.limits.concurrency > 1
    }

    /// Shared workers with no call in flight (pids).
    fn shared_idle(&self) -> Vec<u32> {
        self.shared
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|w| w.in_flight.load(Ordering::Relaxed) == 0 && !w.is_dead())
                    .map(|w| w.pid())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Remove shared workers that are dead, or retiring with nothing in
    /// flight, or (`reclaim`) idle past the idle timeout above the minimum.
    fn tidy_shared(&self, reclaim: bool) {
        let min = self.min_warm();
        let idle_timeout = self.spec.limits.idle_timeout_ms;
        let now = now_ms();
        let Ok(mut shared) = self.shared.lock() else {
            return;
        };
        shared.retain(|w| {
            !(w.is_dead()
                || (w.retiring.load(Ordering::Relaxed) && w.in_flight.load(Ordering::Relaxed) == 0))
        });
        if reclaim {
            while shared.len() > min {
                let oldest = shared
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| {
                        w.in_flight.load(Ordering::Relaxed) == 0
                            && now.saturating_sub(w.idle_since_ms.load(Ordering::Relaxed))
                                >= idle_timeout
                    })
                    .min_by_key(|(_, w)| w.idle_since_ms.load(Ordering::Relaxed))
                    .map(|(i, _)| i);
                match oldest {
                    Some(i) => {
                        let w = shared.swap_remove(i);
                        self.emit(self.reclaimed_event(w.pid()));
                    }
                    None => break,
                }
            }
            // Recycle: it takes no new calls (the next call that finds no
            // free lane starts a new worker) and leaves when its calls end.
            for w in shared.iter() {
                let due = self.recycle_due(w.pid(), w.calls.load(Ordering::Relaxed), w.started);
                if due && !w.retiring.swap(true, Ordering::Relaxed) {
                    // Its successor is whichever worker the next call starts.
                    self.emit(Event::WorkerRecycled {
                        function: &self.spec.function,
                        version: self.spec.version,
                        old: w.pid(),
                        new: 0,
                        runtime: self.spec.runtime.kind.as_str(),
                    });
                }
            }
        }
    }

    pub fn last_used_ms(&self) -> u64 {
        self.last_used_ms.load(Ordering::Relaxed)
    }

    /// End the idle worker that has waited longest (global cap eviction).
    pub fn evict_idle(&self) -> bool {
        if self.is_shared() {
            let Ok(mut shared) = self.shared.lock() else {
                return false;
            };
            let found = shared
                .iter()
                .position(|w| w.in_flight.load(Ordering::Relaxed) == 0);
            if let Some(i) = found {
                let w = shared.swap_remove(i);
                self.emit(self.reclaimed_event(w.pid()));
                return true;
            }
            return false;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return false;
        };
        match idle
            .iter()
            .enumerate()
            .max_by_key(|(_, w)| w.idle_since.elapsed())
            .map(|(i, _)| i)
        {
            Some(i) => {
                let w = idle.swap_remove(i);
                self.emit(self.reclaimed_event(w.pid()));
                drop(w);
                true
            }
            None => false,
        }
    }

    /// Workers this pool keeps started: `min_workers`, and at least one while
    /// the version is live.
    fn min_warm(&self) -> usize {
        let min = self.spec.limits.min_workers as usize;
        if self.is_kept_warm() {
            min.max(1)
        } else {
            min
        }
    }

    /// Periodic upkeep: end workers idle past `idle_timeout_ms` (oldest first,
    /// down to the minimum), recycle idle workers past `max_age_ms`, and start
    /// workers up to the minimum.
    fn maintain(self: &Arc<Self>) {
        if self.spec.isolation.is_stopping() {
            return;
        }
        if self.closed.load(Ordering::Relaxed) {
            // A shared worker whose calls ended since the close goes now.
            self.tidy_shared(false);
            if let Ok(mut shared) = self.shared.lock() {
                shared.retain(|w| w.in_flight.load(Ordering::Relaxed) > 0);
            }
            return;
        }
        let limits = &self.spec.limits;
        let busy = (limits.max_workers as usize).saturating_sub(self.slots.available_permits());
        let min = self.min_warm();
        let idle_timeout = Duration::from_millis(limits.idle_timeout_ms);
        let mut to_recycle = Vec::new();
        let have = {
            let Ok(mut idle) = self.idle.lock() else {
                return;
            };
            idle.retain_mut(|w| {
                if w.hit_process_limit() {
                    // A fork or thread bomb: its processes go with it.
                    self.warn_process_limit(w.pid());
                    return false;
                }
                w.is_alive()
            });
            // Oldest idle first (the list is used from its end).
            idle.sort_by_key(|w| std::cmp::Reverse(w.idle_since.elapsed()));
            while idle.len() + busy > min
                && idle
                    .first()
                    .is_some_and(|w| w.idle_since.elapsed() >= idle_timeout)
            {
                let w = idle.remove(0);
                self.emit(self.reclaimed_event(w.pid()));
            }
            for w in idle.iter_mut() {
                if !w.retiring && self.needs_recycle(w) {
                    w.retiring = true;
                    to_recycle.push(w.pid());
                }
            }
            idle.len() + busy
        };
        for pid in to_recycle {
            self.replace(pid);
        }
        let have = if self.is_shared() {
            self.tidy_shared(true);
            self.shared.lock().map(|s| s.len()).unwrap_or(0)
        } else {
            have
        };
        // Background warming never evicts: at the global cap it waits for room.
        let at_cap = self.budget.as_ref().is_some_and(|b| b.is_full());
        if have < min && !at_cap && self.backoff_left_ms() == 0 {
            let pool = self.clone();
            tokio::spawn(async move {
                for _ in have..min {
                    match pool.warm_one().await {
                        Ok(()) => {}
                        Err(WorkerError::AtCapacity { .. } | WorkerError::AppAtCapacity { .. }) => {
                            break
                        }
                        Err(e) => {
                            warn!(function = %pool.spec.function, version = pool.spec.version, error = %e, "cannot start a minimum worker");
                            break;
                        }
                    }
                }
            });
        }
    }

    /// Start one more idle worker (within max_workers).
    async fn warm_one(self: &Arc<Self>) -> Result<(), WorkerError> {
        let Ok(_permit) = self.slots.try_acquire() else {
            return Ok(()); // all busy: the pool is warm enough
        };
        let deadline =
            Instant::now() + Duration::from_millis(self.spec.limits.timeout_ms.max(10_000));
        let w = self.start_worker(deadline, false, None).await?;
        self.put_idle(w);
        Ok(())
    }

    /// A new worker with this version's code loaded: a generic one if one is
    /// waiting (only the code load is left to do), else a fresh process.
    /// `may_evict`: at the global cap, end another function's idle worker to
    /// make room (calls and deploys may; background warming may not).
    async fn start_worker(
        &self,
        deadline: Instant,
        may_evict: bool,
        group: Option<usize>,
    ) -> Result<Worker, WorkerError> {
        let place = match &self.budget {
            Some(budget) => Some(budget.take(self, may_evict, deadline).await.map_err(
                |no| match no {
                    NoPlace::Global { cap } => WorkerError::AtCapacity {
                        function: self.spec.label(),
                        cap,
                    },
                    NoPlace::App { app, cap } => WorkerError::AppAtCapacity {
                        function: self.spec.label(),
                        app,
                        cap,
                    },
                },
            )?),
            None => None,
        };
        // A generic worker shares the host's network: a function without
        // network gets a fresh process in a namespace of its own.
        let generic = self
            .generic
            .as_ref()
            .filter(|_| self.spec.limits.network || !self.spec.isolation.namespaces)
            .and_then(|g| g.take(self.spec.runtime.kind));
        let started = match generic {
            Some(mut w) => {
                w.from_generic = true;
                // On its cell's CPU before it loads: moving a process that
                // runs (just answered `loaded`) to another CPU waits for
                // that CPU; one that waits for its `load` moves at once.
                if !self.cell_slots.is_empty() {
                    if let Some(cell) = self.pick_home(group) {
                        w.place_on(Some(cell), self.spec.pinned());
                    }
                }
                w.load(self.spec.clone(), deadline).await.map(|_| w)
            }
            None => Worker::start(self.spec.clone(), deadline).await,
        };
        let w = started.inspect_err(|e| self.note_crash(e))?;
        let mut w = w;
        w.place = place;
        self.settle(&mut w, group);
        self.emit(Event::WorkerStarted {
            function: &self.spec.function,
            version: self.spec.version,
            pid: w.pid(),
            from_generic: w.from_generic,
        });
        Ok(w)
    }

    /// The share of `max_workers` whose calls the caller's cell waits
    /// for: its own, or (a cell with no share: fewer workers than cells)
    /// another cell's.
    fn cell_group(&self) -> Option<usize> {
        let n = self.cell_slots.len();
        let c = crate::cells::current()?;
        if n == 0 || c >= n {
            return None;
        }
        // Cells 0..with_share have a share of one worker or more.
        let with_share = (self.spec.limits.max_workers as usize).clamp(1, n);
        Some(c % with_share)
    }

    /// The cell a new worker of this pool should live in: the one whose
    /// share the call holds; for a worker started in the background, the
    /// cell with the fewest of this pool's workers.
    fn pick_home(&self, group: Option<usize>) -> Option<usize> {
        if group.is_some() {
            return group;
        }
        let n = self.homes.len();
        let load = |i: usize| self.homes[i].load(Ordering::Relaxed);
        (0..n).min_by_key(|&i| load(i))
    }

    /// A place in cell share `own` (the caller's), or in another cell's
    /// share that is free (that cell has no call waiting); if none is,
    /// wait for the own share, or for another share to come free.
    async fn cell_permit(&self, own: usize, call: &Call) -> Result<CellPermit<'_>, CallError> {
        let permit = |p, group| CellPermit {
            permit: Some(p),
            sem: &self.cell_slots[group],
            spare: &self.cell_spare,
            group,
        };
        let others = || {
            (0..self.cell_slots.len())
                .filter(move |&g| g != own)
                .find_map(|g| self.cell_slots[g].try_acquire().ok().map(|p| (p, g)))
        };
        if let Ok(p) = self.cell_slots[own].try_acquire() {
            return Ok(permit(p, own));
        }
        loop {
            let spare = self.cell_spare.notified();
            tokio::pin!(spare);
            spare.as_mut().enable();
            if let Some((p, g)) = others() {
                return Ok(permit(p, g));
            }
            tokio::select! {
                biased;
                got = self.wait_for_worker(call, &self.cell_slots[own]) => return got.map(|p| permit(p, own)),
                () = &mut spare => {}
            }
        }
    }

    /// How many of `max_workers` cell `i` has.
    fn cell_share(&self, i: usize) -> usize {
        share_of(
            self.spec.limits.max_workers,
            self.cell_slots.len().max(1),
            i,
        )
    }

    /// Give a worker its home cell (pinned there, its pipes on that cell's
    /// runtime) and count it there.
    fn settle(&self, w: &mut Worker, group: Option<usize>) {
        if self.cell_slots.is_empty() {
            // No cells, or workers serving several calls at once: those
            // float, with their pipes on the main runtime (a generic
            // worker started in a cell leaves it).
            w.rehome(None);
            return;
        }
        let Some(cell) = self.pick_home(group) else {
            return;
        };
        w.rehome(Some(cell));
        if w.home == Some(cell) && w.homed.as_ref().is_none_or(|h| h.cell != cell) {
            self.homes[cell].fetch_add(1, Ordering::Relaxed);
            w.homed = Some(Homed {
                counts: self.homes.clone(),
                cell,
            });
        }
    }

    /// Make sure one loaded worker is waiting, starting it if needed. Used at
    /// deploy and publish: the code is proven to load before it goes live.
    pub async fn warm(self: &Arc<Self>, load_timeout: Duration) -> Result<(), WorkerError> {
        if self.spec.page.is_some() {
            return Ok(());
        }
        let deadline = Instant::now() + load_timeout;
        let Ok(_permit) = self.slots.acquire().await else {
            return Ok(());
        };
        if let Some(w) = self.take_idle(None) {
            self.put_idle(w);
            return Ok(());
        }
        if self
            .shared
            .lock()
            .is_ok_and(|s| s.iter().any(|w| !w.is_dead()))
        {
            return Ok(());
        }
        let w = self.start_worker(deadline, true, None).await?;
        self.put_idle(w);
        Ok(())
    }

    /// Run one call on a worker of this pool.
    pub async fn call(self: Arc<Self>, call: Call) -> Result<Answer, CallFailed> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.last_used_ms.store(now_ms(), Ordering::Relaxed);
        let left = self.backoff_left_ms();
        if left > 0 {
            return Err(self.crash_loop_error(left).into());
        }
        let arrived = Instant::now();
        // In a cell: first a place among the workers of the caller's cell
        // (so that calls wait for a worker on their own CPU), then one in
        // the pool.
        let local = match self.cell_group() {
            Some(own) => Some(self.cell_permit(own, &call).await?),
            None => None,
        };
        let group = local.as_ref().map(|p| p.group);
        let permit = match self.slots.try_acquire() {
            Ok(p) => p,
            Err(_) => self.wait_for_worker(&call, &self.slots).await?,
        };
        let permit = (permit, local);
        let mut timing = Timing {
            queue_ms: ms(arrived.elapsed()),
            start: StartKind::Warm,
            ..Timing::default()
        };
        self.emit(Event::Admitted {
            function: &self.spec.function,
            version: self.spec.version,
            queue_ms: timing.queue_ms,
        });
        let nest = Arc::new(nested::Nest::new(
            self.dispatch.clone(),
            &call.request_id,
            self.spec.clone(),
            call.above.clone(),
            call.deadline,
        ));
        if self.is_shared() {
            let outcome = self.call_shared(call, timing, nest).await;
            drop(permit);
            return outcome;
        }
        let mut worker = match self.take_idle(group) {
            Some(w) => w,
            None if self.out.load(Ordering::Acquire) == 0 => {
                // No worker will come back: this call starts one.
                let w = self.start_for_call(call.deadline, group).await?;
                self.note_cold_start(&mut timing, &w);
                w
            }
            None => {
                let waited = Instant::now();
                let (w, cold) = self.idle_or_started(call.deadline, group).await?;
                if cold {
                    self.note_cold_start(&mut timing, &w);
                } else {
                    timing.queue_ms += ms(waited.elapsed());
                }
                w
            }
        };
        self.out.fetch_add(1, Ordering::AcqRel);
        let _out = Counted(&self.out);
        let began = Instant::now();
        let outcome = worker
            .invoke(
                &call.request_id,
                call.payload,
                call.deadline,
                call.deadline_ms,
                Some(nest),
            )
            .await;
        let took = began.elapsed();
        self.record_duration(took);
        match outcome {
            Ok(mut result) => {
                self.finish_timing(&mut timing, took);
                result.timing = timing;
                self.note_success();
                if result.result.is_err() && worker.hit_process_limit() {
                    // It raised after a fork or thread bomb: end it and all
                    // it started rather than keep a worker with no room.
                    self.warn_process_limit(worker.pid());
                    drop(worker);
                    drop(permit);
                    self.replace_in_background();
                } else {
                    self.put_idle(worker);
                    drop(permit);
                }
                Ok(result)
            }
            Err(lost) => {
                let e = &lost.error;
                self.emit_lost(worker.pid(), &call.request_id, false, e);
                if worker.calls <= 1 {
                    // It died on its first call: the function cannot start.
                    self.note_crash(e);
                }
                drop(worker);
                drop(permit);
                self.replace_in_background();
                timing.run_ms = ms(took);
                Err(CallFailed::lost(lost, timing))
            }
        }
    }

    /// Start a worker for a call. From a cell, on the main runtime: a start
    /// forks the daemon and writes files and cgroups, which would hold up
    /// every connection of the cell; the worker then moves to the cell
    /// (`settle`).
    async fn start_for_call(
        self: &Arc<Self>,
        deadline: Instant,
        group: Option<usize>,
    ) -> Result<Worker, WorkerError> {
        if crate::cells::current().is_none() {
            return self.start_worker(deadline, true, group).await;
        }
        let me = self.clone();
        crate::cells::spawn_main(async move { me.start_worker(deadline, true, group).await })
            .await
            .map_err(|e| self.start_task_failed(e))?
    }

    /// A start's task ended without a worker or an error (it panicked).
    fn start_task_failed(&self, e: tokio::task::JoinError) -> WorkerError {
        WorkerError::Spawn {
            function: self.spec.label(),
            runtime: self.spec.runtime.kind.to_string(),
            reason: format!("its start failed: {e}"),
        }
    }

    /// Every worker is out on a call: take the first one back, unless it
    /// is slow to come. After a patience of about four recent calls' time
    /// (20 to 200 ms) a worker is started in the background too, from free
    /// room under the worker cap only (no other function's worker is ended
    /// for it), and the call takes whichever is free first: a worker that
    /// comes back, or the new one (`true`: it paid that start). A start costs a Python worker
    /// tens of milliseconds of CPU and the call far more than waiting for
    /// a 5 ms call to end, which is what many functions called round robin
    /// at once mostly need; a pool under lasting load still grows.
    async fn idle_or_started(
        self: &Arc<Self>,
        deadline: Instant,
        group: Option<usize>,
    ) -> Result<(Worker, bool), WorkerError> {
        /// How often a waiting call looks again without being told (a
        /// worker out on a call that died never comes back).
        const RECHECK: Duration = Duration::from_millis(20);
        self.idle_waiters.fetch_add(1, Ordering::AcqRel);
        let _waiting = Counted(&self.idle_waiters);
        let avg = Duration::from_micros(self.avg_call_us.load(Ordering::Relaxed));
        let patience = (avg * 4).clamp(Duration::from_millis(20), Duration::from_millis(200));
        // A start that found no room under the cap is not tried again.
        let mut may_start = true;
        let start_after = Instant::now() + patience;
        let mut start: Option<tokio::task::JoinHandle<Result<Worker, WorkerError>>> = None;
        loop {
            let back = self.idle_back.notified();
            tokio::pin!(back);
            back.as_mut().enable();
            if let Some(w) = self.take_idle(group) {
                if let Some(h) = start.take() {
                    // Its worker joins the pool when it is ready.
                    let me = self.clone();
                    tokio::spawn(async move {
                        if let Ok(Ok(w)) = h.await {
                            me.put_idle(w);
                        }
                    });
                }
                return Ok((w, false));
            }
            let out = self.out.load(Ordering::Acquire);
            let starting = self.starting.load(Ordering::Acquire);
            if start.is_none() && out == 0 && starting == 0 {
                // Nothing will come back (the workers out died): start here.
                return self
                    .start_for_call(deadline, group)
                    .await
                    .map(|w| (w, true));
            }
            let max = self.spec.limits.max_workers as usize;
            if start.is_none()
                && may_start
                && Instant::now() >= start_after
                && starting < self.idle_waiters.load(Ordering::Acquire)
                && out + starting < max
            {
                self.starting.fetch_add(1, Ordering::AcqRel);
                let me = self.clone();
                // Growing a pool that has workers takes free room only: it
                // never ends another function's idle worker.
                start = Some(crate::cells::spawn_main(async move {
                    let started = me.start_worker(deadline, false, group).await;
                    me.starting.fetch_sub(1, Ordering::AcqRel);
                    started
                }));
            }
            let wake = if start.is_none() && Instant::now() < start_after {
                start_after
            } else {
                Instant::now() + RECHECK
            };
            tokio::select! {
                () = &mut back => {}
                started = async {
                    match start.as_mut() {
                        Some(h) => h.await,
                        None => std::future::pending().await,
                    }
                } => {
                    start = None;
                    match started {
                        Ok(Ok(w)) => return Ok((w, true)),
                        // No room under the cap: wait for a worker back.
                        Ok(Err(WorkerError::AtCapacity { .. } | WorkerError::AppAtCapacity { .. })) => {
                            may_start = false;
                        }
                        Ok(Err(e)) => return Err(e),
                        Err(e) => return Err(self.start_task_failed(e)),
                    }
                }
                () = tokio::time::sleep_until(wake.min(deadline)) => {
                    if Instant::now() >= deadline {
                        return Err(WorkerError::Timeout {
                            function: self.spec.label(),
                            timeout_ms: self.spec.limits.timeout_ms,
                        });
                    }
                }
            }
        }
    }

    /// A call started its worker: how it came, and its phases.
    fn note_cold_start(&self, timing: &mut Timing, w: &Worker) {
        timing.start = if w.from_generic {
            StartKind::Generic
        } else {
            StartKind::Fresh
        };
        timing.spawn_ms = if w.from_generic { 0.0 } else { w.spawn_ms };
        timing.load_ms = w.load_ms;
        self.emit(Event::ColdStart {
            function: &self.spec.function,
            version: self.spec.version,
            start: timing.start,
            runtime: self.spec.runtime.kind.as_str(),
            spawn_ms: timing.spawn_ms,
            load_ms: timing.load_ms,
        });
    }

    /// A call on a shared worker: the least busy one with a free lane, or
    /// a new one while under `max_workers`, or the next lane to come free.
    async fn call_shared(
        self: &Arc<Self>,
        call: Call,
        mut timing: Timing,
        nest: Arc<nested::Nest>,
    ) -> Result<Answer, CallFailed> {
        let lanes = self.spec.limits.concurrency;
        let max_workers = self.spec.limits.max_workers as usize;
        let (worker, alone) = loop {
            let freed = self.lane_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            enum Pick {
                /// A worker, and (if the call is alone on it) the overlap
                /// count at admission.
                Use(Arc<SharedWorker>, Option<u64>),
                Start,
                Wait,
            }
            let pick = {
                self.tidy_shared(false);
                let shared = self.shared.lock().map_err(|_| {
                    CallError::Worker(WorkerError::Spawn {
                        function: self.spec.label(),
                        runtime: self.spec.runtime.kind.to_string(),
                        reason: "pool lock poisoned".into(),
                    })
                })?;
                let best = shared
                    .iter()
                    .filter(|w| !w.is_dead() && !w.retiring.load(Ordering::Relaxed))
                    .min_by_key(|w| w.in_flight.load(Ordering::Relaxed));
                match best {
                    Some(w) if w.in_flight.load(Ordering::Relaxed) < lanes => {
                        if w.in_flight.fetch_add(1, Ordering::Relaxed) > 0 {
                            w.overlap.fetch_add(1, Ordering::Relaxed);
                            Pick::Use(w.clone(), None)
                        } else {
                            Pick::Use(w.clone(), Some(w.overlap.load(Ordering::Relaxed)))
                        }
                    }
                    _ if shared.len() + self.starting.load(Ordering::Relaxed) < max_workers => {
                        self.starting.fetch_add(1, Ordering::Relaxed);
                        Pick::Start
                    }
                    _ => Pick::Wait,
                }
            };
            match pick {
                Pick::Use(w, alone) => break (w, alone),
                Pick::Start => {
                    let started = self.start_worker(call.deadline, true, None).await;
                    self.starting.fetch_sub(1, Ordering::Relaxed);
                    self.lane_freed.notify_waiters();
                    let w = started?;
                    self.note_cold_start(&mut timing, &w);
                    let w = SharedWorker::new(w, now_ms())?;
                    w.in_flight.store(1, Ordering::Relaxed);
                    if let Ok(mut shared) = self.shared.lock() {
                        shared.push(w.clone());
                    }
                    break (w, Some(0));
                }
                Pick::Wait => {
                    if tokio::time::timeout_at(call.deadline, freed).await.is_err() {
                        return Err(CallError::Overloaded {
                            function: self.spec.label(),
                            timeout_ms: self.spec.limits.timeout_ms,
                            reason: "no worker had a free lane in time".into(),
                            retry_after_s: 1,
                        }
                        .into());
                    }
                }
            }
        };
        let began = Instant::now();
        let outcome = worker
            .invoke(
                &call.request_id,
                call.payload,
                call.deadline,
                call.deadline_ms,
                alone,
                nest,
            )
            .await;
        let took = began.elapsed();
        self.record_duration(took);
        let first_call = worker.calls.load(Ordering::Relaxed) <= 1;
        if worker.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            worker.idle_since_ms.store(now_ms(), Ordering::Relaxed);
        }
        self.lane_freed.notify_waiters();
        match outcome {
            Ok(mut answer) => {
                self.finish_timing(&mut timing, took);
                answer.timing = timing;
                self.note_success();
                if answer.result.is_err() && worker.hit_process_limit() {
                    self.warn_process_limit(worker.pid());
                    worker.retire_now();
                    drop(worker);
                    self.tidy_shared(false);
                    self.replace_in_background();
                }
                Ok(answer)
            }
            Err(lost) => {
                let e = &lost.error;
                self.emit_lost(worker.pid(), &call.request_id, true, e);
                if first_call && worker.is_dead() {
                    self.note_crash(e);
                }
                drop(worker);
                self.tidy_shared(false);
                self.replace_in_background();
                timing.run_ms = ms(took);
                Err(CallFailed::lost(lost, timing))
            }
        }
    }

    /// Admission: every worker is busy. Wait in the bounded queue, unless it
    /// is full (429) or the call cannot finish before its deadline (503);
    /// both are answered at once, so nothing waits that cannot be served.
    async fn wait_for_worker<'a>(
        &self,
        call: &Call,
        slots: &'a Semaphore,
    ) -> Result<tokio::sync::SemaphorePermit<'a>, CallError> {
        let limits = &self.spec.limits;
        let max_workers = u64::from(limits.max_workers);
        let avg = Duration::from_micros(self.avg_call_us.load(Ordering::Relaxed));
        let ahead = self.waiting.load(Ordering::Relaxed);
        // Rough wait: the calls ahead, spread over the workers, each about as
        // long as recent calls; then this call's own run.
        let expected = avg * (ahead / max_workers + 1) as u32 + avg;
        let retry_after_s = expected.as_secs().max(1);
        if ahead >= u64::from(limits.max_queue) {
            return Err(CallError::QueueFull {
                function: self.spec.label(),
                max_workers: limits.max_workers,
                max_queue: limits.max_queue,
                retry_after_s,
            });
        }
        let now = Instant::now();
        if !avg.is_zero() && now + expected > call.deadline {
            return Err(CallError::Overloaded {
                function: self.spec.label(),
                timeout_ms: limits.timeout_ms,
                reason: format!(
                    "{ahead} calls wait ahead of it for {max_workers} busy workers, and recent calls took {} ms each",
                    avg.as_millis()
                ),
                retry_after_s,
            });
        }
        // Counted while it waits, even if the wait is given up (a call in
        // a cell stops waiting when another cell's share comes free).
        struct Waiting<'a>(&'a AtomicU64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let waiting = Waiting(&self.waiting);
        let got = tokio::time::timeout_at(call.deadline, slots.acquire()).await;
        drop(waiting);
        match got {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(CallError::Overloaded {
                function: self.spec.label(),
                timeout_ms: limits.timeout_ms,
                reason: format!("no worker of {max_workers} came free in time"),
                retry_after_s,
            }),
        }
    }

    /// Fold one call's duration into the moving average (weight 1/8).
    fn record_duration(&self, took: Duration) {
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let old = self.avg_call_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            us.max(1)
        } else {
            (old * 7 + us) / 8
        };
        self.avg_call_us.store(new.max(1), Ordering::Relaxed);
    }

    /// After losing a worker, start a new one if this version is live and
    /// nothing is waiting, so the next call does not pay for a cold start.
    fn replace_in_background(self: &Arc<Self>) {
        if !self.keep_warm.load(Ordering::Relaxed) || self.backoff_left_ms() > 0 {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            match pool.warm_one().await {
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
        let idle = self.idle_count();
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
            waiting: self.waiting.load(Ordering::Relaxed),
            recycled: self.recycled.load(Ordering::Relaxed),
            reclaimed: self.reclaimed.load(Ordering::Relaxed),
            pids: self
                .idle
                .lock()
                .map(|i| i.iter().map(Worker::pid).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .chain(self.shared_idle())
                .collect(),
            avg_call_ms: self.avg_call_us.load(Ordering::Relaxed) as f64 / 1000.0,
            crashes: self.crashes.load(Ordering::Relaxed),
            backoff_ms: self.backoff_left_ms(),
            cold_starts: self.cold_starts.load(Ordering::Relaxed),
            last_cold_start: self.last_cold_start.lock().ok().and_then(|l| l.clone()),
        }
    }

    /// Kill every idle worker (busy ones go when their call ends and the
    /// pool is dropped).
    /// End every worker for good: the idle ones now, the busy ones as
    /// their calls end (calls already running finish); upkeep starts none.
    pub fn close(&self) {
        self.keep_warm.store(false, Ordering::Relaxed);
        self.closed.store(true, Ordering::Relaxed);
        if let Ok(mut shared) = self.shared.lock() {
            shared.retain(|w| w.in_flight.load(Ordering::Relaxed) > 0);
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    pub fn shutdown(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        if let Ok(mut shared) = self.shared.lock() {
            shared.clear();
        }
    }
}
