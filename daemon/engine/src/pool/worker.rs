//! One worker process: spawn, handshake, load, invoke, and how it ended.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures_util::stream::{FuturesUnordered, StreamExt as _};
use tracing::Instrument as _;

use crate::call::BoxFuture;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use tokio::net::unix::pipe;
use tokio::time::Instant;
use tracing::debug;

use super::output::{CallLog, Output};

use crate::runtime::Runtime;
use hearth_api::manifest::Limits;
pub use hearth_api::Timing;
use hearth_protocol::{self as protocol, FromWorker, ProtocolError, ToWorker, PROTOCOL_VERSION};
use hearth_sandbox::cgroup::{WorkerCgroup, WorkerLimits};
use hearth_sandbox::isolation::{self, Confinement, Isolation, PrivateTmp, Rlimits};

/// Everything needed to start workers of one function version.
#[derive(Debug)]
pub struct WorkerSpec {
    pub function: String,
    pub version: u32,
    pub dir: PathBuf,
    pub entry: String,
    pub limits: Limits,
    pub runtime: Runtime,
    /// Environment for this version's workers beyond the runtime's own.
    pub env: Vec<(String, String)>,
    /// The application the function belongs to (its resource partition).
    pub app: String,
    /// The uid and gid its workers run as (None: the daemon's own).
    pub identity: Option<(u32, u32)>,
    pub isolation: Arc<Isolation>,
    /// The functions its manifest says it calls (`calls`).
    pub calls: Vec<String>,
    /// Its schemas and error codes.
    pub contract: Arc<crate::contract::Contract>,
    /// A page's template (`type = "page"`): the engine runs it, and the
    /// pool never starts a worker.
    pub page: Option<Arc<hearth_api::page::Template>>,
}

impl WorkerSpec {
    /// Are its workers pinned to their cell's CPU? Python and Lua run one
    /// thread; Node's threads (its garbage collector, its compiler) would
    /// compete with the cell's, so it floats, with only its pipes in the
    /// cell. A generic worker is pinned until it becomes a Node function's.
    pub fn pinned(&self) -> bool {
        self.runtime.kind != hearth_api::manifest::RuntimeKind::Node
    }

    pub fn label(&self) -> String {
        format!("{}@{}", self.function, self.version)
    }

    /// What a worker started before its function is known runs as: the
    /// runtime alone, in `dir`.
    pub fn generic(runtime: Runtime, dir: PathBuf, isolation: Arc<Isolation>) -> WorkerSpec {
        WorkerSpec {
            function: format!("generic-{}", runtime.kind),
            version: 0,
            dir,
            entry: String::new(),
            calls: Vec::new(),
            contract: Arc::default(),
            page: None,
            limits: Limits::default(),
            runtime,
            env: Vec::new(),
            app: GENERIC_APP.to_owned(),
            identity: None,
            isolation,
        }
    }

    pub fn is_generic(&self) -> bool {
        self.entry.is_empty()
    }

    /// The cgroup limits of one of this version's workers.
    fn cgroup_limits(&self) -> WorkerLimits {
        WorkerLimits {
            memory_mb: self.limits.memory_mb,
            cpu_millicores: self.limits.cpu_percent.saturating_mul(10),
            pids: self.limits.max_processes,
        }
    }

    /// The temporary directory as the worker sees it.
    fn tmp_seen_by_worker(&self, tmp: &PrivateTmp) -> String {
        if self.isolation.namespaces {
            "/tmp".to_owned()
        } else {
            tmp.path.display().to_string()
        }
    }

    /// The function's own environment variables (on top of the runtime's).
    fn function_env(&self) -> Vec<(String, String)> {
        if self.entry.is_empty() {
            return Vec::new();
        }
        let mut env = vec![
            ("HEARTH_FUNCTION".to_owned(), self.function.clone()),
            ("HEARTH_VERSION".to_owned(), self.version.to_string()),
        ];
        env.extend(self.env.iter().cloned());
        env
    }
}

/// The cgroup "application" of generic workers (no function yet).
const GENERIC_APP: &str = "_generic";

/// A worker's cgroup. A generic worker's changes once, in the background,
/// when it moves into its application's ([`AppMove`]).
type CgroupSlot = Arc<std::sync::Mutex<Option<Arc<WorkerCgroup>>>>;

/// A generic worker's move into its application's cgroup, made after its
/// load (see [`Worker::load`]): the cgroup is made, the worker and what it
/// started moved in, and the worker's slot points at it.
struct AppMove {
    cgroups: Arc<hearth_sandbox::cgroup::Cgroups>,
    app: String,
    limits: WorkerLimits,
    slot: CgroupSlot,
    pid: u32,
    label: String,
}

impl AppMove {
    /// Move the worker, and what the function started before the move (a
    /// child stays in the cgroup it was born in), until none is left
    /// behind; then the old cgroup goes. A worker that cannot move is
    /// ended: a worker runs inside its application's budget or not at all.
    fn run(self) {
        let AppMove {
            cgroups,
            app,
            limits,
            slot,
            pid,
            label,
        } = self;
        let new = match cgroups.worker(&app, &limits) {
            Ok(cg) => Arc::new(cg),
            Err(e) => {
                tracing::warn!(function = %label, pid, error = %e,
                    "cannot make the worker's cgroup in its application's; ending it (a worker runs inside its budget or not at all)");
                isolation::kill_tree(pid);
                return;
            }
        };
        let old = lock_slot(&slot).clone();
        if let Err(e) = new.add(pid) {
            tracing::warn!(function = %label, pid, error = %e,
                "cannot move the worker into its application's cgroup; ending it (a worker runs inside its budget or not at all)");
            isolation::kill_tree(pid);
            return;
        }
        for _ in 0..16 {
            let left: Vec<u32> = old
                .as_ref()
                .map(|cg| cg.pids())
                .unwrap_or_default()
                .into_iter()
                .filter(|p| *p != pid)
                .collect();
            if left.is_empty() {
                break;
            }
            for child in left {
                // One that ended meanwhile needs no move.
                let _ = new.add(child);
            }
        }
        *lock_slot(&slot) = Some(new);
        // Empty now: dropping the last handle removes it.
        drop(old);
    }
}

fn lock_slot(slot: &CgroupSlot) -> std::sync::MutexGuard<'_, Option<Arc<WorkerCgroup>>> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// Interpreters starting at once, at most: one per CPU, at least two.
fn starting_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cpus.max(2))
    })
}

/// How a call ended, as far as the function is concerned.
#[derive(Debug)]
pub struct Answer {
    /// The handler's value, or its own error (the worker is still good).
    pub result: Result<rmpv::Value, FunctionError>,
    /// What the call printed on stdout and stderr.
    pub log: CallLog,
    /// Where the call's time went.
    pub timing: Timing,
    /// The worker that ran it.
    pub pid: u32,
    /// The worker's peak resident memory so far, in KiB (/proc).
    pub peak_memory_kb: Option<u64>,
    /// CPU time the worker used during the call, in ms (/proc; a worker
    /// running one call at a time only).
    pub cpu_ms: Option<f64>,
}

/// How long a worker's peak memory, read from /proc, is reused before it
/// is read again: a read per call would cost more than the call's record.
const PEAK_MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A process's time on a CPU so far, in nanoseconds, from
/// /proc/PID/schedstat (small, and precise where stat's ticks are 10 ms),
/// kept open: each reading is one `pread` at offset 0, which makes the
/// kernel render the file afresh (opening it for every call cost a tenth
/// of the daemon's time at full speed).
#[derive(Debug, Default)]
pub(super) struct RunTime(Option<std::fs::File>);

impl RunTime {
    pub(super) fn of(pid: u32) -> RunTime {
        RunTime(std::fs::File::open(format!("/proc/{pid}/schedstat")).ok())
    }

    pub(super) fn ns(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let file = self.0.as_ref()?;
        let mut buf = [0u8; 96];
        let n = file.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(buf.get(..n)?).ok()?;
        text.split_whitespace().next()?.parse().ok()
    }
}

/// A worker's peak memory, read at most every PEAK_MEMORY_EVERY.
#[derive(Debug, Default)]
pub(super) struct PeakMemory(std::sync::Mutex<Option<(StdInstant, u64)>>);

impl PeakMemory {
    pub(super) fn of(&self, pid: u32) -> Option<u64> {
        let mut cached = self.0.lock().ok()?;
        if let Some((at, kb)) = *cached {
            if at.elapsed() < PEAK_MEMORY_EVERY {
                return Some(kb);
            }
        }
        let kb = peak_memory_kb_of(pid)?;
        *cached = Some((StdInstant::now(), kb));
        Some(kb)
    }
}

/// A call that failed on the platform side (timeout, its worker lost, the
/// protocol broken), with what it had done: its output up to the failure
/// (within `records.max_output`, like any call's) and the worker that ran
/// it, for its record.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Lost {
    pub error: WorkerError,
    /// What the call printed before it failed.
    pub log: CallLog,
    /// The worker that ran it.
    pub pid: u32,
}

/// Nested calls of a call, polled with its frames; whatever is left when
/// the call ends (or is dropped) goes on in tasks of its own.
struct Unfinished(FuturesUnordered<BoxFuture<'static, ToWorker>>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        // (Outside a runtime, at its shutdown, there is nothing to run on.)
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for call in std::mem::take(&mut self.0) {
            runtime.spawn(call.in_current_span());
        }
    }
}

/// A process's peak resident memory so far (VmHWM), in KiB.
pub(super) fn peak_memory_kb_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The function's own error, as reported by its runtime.
#[derive(Debug, Clone)]
pub struct FunctionError {
    pub kind: String,
    pub message: String,
    pub traceback: String,
    /// The function's own error code, when it raised one by name
    /// (`hearth.Error("NOT_FOUND", ...)`).
    pub code: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start a {runtime} worker for {function}: {reason}")]
    Spawn {
        function: String,
        runtime: String,
        reason: String,
    },
    #[error("{function}'s code failed to load: {}: {}", .error.kind, .error.message)]
    LoadFailed {
        function: String,
        error: FunctionError,
    },
    #[error("the worker running {function} {how}{}", stderr_suffix(.stderr))]
    Died {
        function: String,
        how: String,
        stderr: String,
    },
    #[error("{function} did not finish within its timeout of {timeout_ms} ms (limits.timeout_ms); its worker was stopped and is replaced")]
    Timeout { function: String, timeout_ms: u64 },
    #[error("the worker running {function} was killed for using more than its memory limit of {limit_mb} MB (limits.memory_mb); raise limits.memory_mb or make the function use less memory")]
    OutOfMemory { function: String, limit_mb: u64 },
    #[error("{function} needs a new worker, and hearth is at its cap of {cap} workers, all busy (serve --max-workers-total)")]
    AtCapacity { function: String, cap: usize },
    #[error("{function} needs a new worker, and its application {app} has all {cap} workers of its budget busy (hearth app {app} --max-workers)")]
    AppAtCapacity {
        function: String,
        app: String,
        cap: usize,
    },
    /// A pipelined call's deadline passed while it waited behind another
    /// call in its worker's pipe: it did not run.
    #[error("{function} could not start this call within its timeout of {timeout_ms} ms: it waited behind other calls on its worker (limits.concurrency pipelines calls); retry, or raise limits.max_workers")]
    QueuedTooLong { function: String, timeout_ms: u64 },
    /// A pipelined call that never ran: the worker was lost while it
    /// waited behind another call.
    #[error("{function} did not run this call: it waited behind another call on the same worker, and {why} was lost")]
    NotRun { function: String, why: String },
    #[error("the worker running {function} broke the protocol: {reason}")]
    Protocol { function: String, reason: String },
}

impl WorkerError {
    /// One word for why (the `reason` of a lost worker, a metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            WorkerError::Spawn { .. } => "spawn_failed",
            WorkerError::LoadFailed { .. } => "load_failed",
            WorkerError::Died { .. } => "died",
            WorkerError::Timeout { .. } => "timeout",
            WorkerError::OutOfMemory { .. } => "out_of_memory",
            WorkerError::AtCapacity { .. } | WorkerError::AppAtCapacity { .. } => "at_capacity",
            WorkerError::QueuedTooLong { .. } => "queued_too_long",
            WorkerError::NotRun { .. } => "not_run",
            WorkerError::Protocol { .. } => "protocol",
        }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; its last output on stderr: {stderr}")
    }
}

pub struct Worker {
    spec: Arc<WorkerSpec>,
    child: tokio::process::Child,
    pid: u32,
    /// The protocol pipes (taken by `split_io` for a shared worker).
    to_worker: Option<pipe::Sender>,
    from_worker: Option<pipe::Receiver>,
    buf: Vec<u8>,
    output: Arc<Output>,
    pub calls: u64,
    pub started: StdInstant,
    /// When it last went idle.
    pub idle_since: StdInstant,
    /// A replacement is on its way; this worker leaves when it arrives.
    pub retiring: bool,
    /// Its place in the global worker budget (given back on drop).
    pub place: Option<super::budget::Place>,
    tmp: Option<PrivateTmp>,
    cgroup: CgroupSlot,
    /// SIGTERM was sent: on drop it gets the grace period, then SIGKILL.
    terminating: bool,
    /// Spawn to `ready`, in ms.
    pub spawn_ms: f64,
    /// Sending `load` to `loaded`, in ms.
    pub load_ms: f64,
    /// Its CPU time when its last call ended (ns): the next call's CPU is
    /// the difference, read once per call.
    cpu_mark: Option<u64>,
    run_time: RunTime,
    peak: PeakMemory,
    /// It was taken from a generic pool (spawned before its function).
    pub from_generic: bool,
    /// The cell it lives in (pinned to its CPU, its protocol pipes on its
    /// runtime), if the daemon runs cells.
    pub home: Option<usize>,
    /// The cell whose CPU it was last given (`Some(None)`: every CPU;
    /// `None`: never placed, it runs where it was forked).
    placed: Option<Option<usize>>,
    /// Counted among its pool's workers of that cell (given back on drop).
    pub homed: Option<super::Homed>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let pid = self.pid;
        let cgroup = lock_slot(&self.cgroup).take();
        let tmp = self.tmp.take();
        let grace = self.spec.isolation.kill_grace;
        let handle = tokio::runtime::Handle::try_current();
        match handle {
            Ok(handle) if self.terminating => {
                // Stopped at its deadline: SIGTERM went out; SIGKILL follows
                // after the grace period, to the group and the cgroup.
                handle.spawn(async move {
                    tokio::time::sleep(grace).await;
                    isolation::kill_tree(pid);
                    if let Some(cg) = cgroup {
                        let _ = tokio::task::spawn_blocking(move || drop(cg)).await;
                    }
                    drop(tmp);
                });
            }
            Ok(handle) => {
                // The process group goes with the worker, and the cgroup
                // catches anything that left the group: nothing survives.
                isolation::kill_tree(pid);
                if cgroup.is_some() || tmp.is_some() {
                    handle.spawn_blocking(move || {
                        drop(cgroup);
                        drop(tmp);
                    });
                }
            }
            Err(_) => {
                isolation::kill_tree(pid);
                drop(cgroup);
                drop(tmp);
            }
        }
    }
}

impl Worker {
    /// Spawn a worker, wait for `ready`, and load the function's code, all
    /// before `deadline`.
    pub async fn start(spec: Arc<WorkerSpec>, deadline: Instant) -> Result<Worker, WorkerError> {
        let mut worker = Worker::spawn(spec.clone(), deadline).await?;
        worker.load(spec, deadline).await?;
        Ok(worker)
    }

    /// Spawn a worker for `spec` (its runtime, directory and environment)
    /// and wait for its `ready`. A generic spec gives a worker that can load
    /// any function of its runtime later.
    pub async fn spawn(spec: Arc<WorkerSpec>, deadline: Instant) -> Result<Worker, WorkerError> {
        let spawn_err = |reason: String| WorkerError::Spawn {
            function: spec.label(),
            runtime: spec.runtime.kind.to_string(),
            reason,
        };
        let (child_in, daemon_out) =
            isolation::pipe().map_err(|e| spawn_err(format!("pipe: {e}")))?;
        let (daemon_in, child_out) =
            isolation::pipe().map_err(|e| spawn_err(format!("pipe: {e}")))?;
        let (stdout_r, stdout_w) =
            isolation::pipe().map_err(|e| spawn_err(format!("pipe: {e}")))?;
        let (stderr_r, stderr_w) =
            isolation::pipe().map_err(|e| spawn_err(format!("pipe: {e}")))?;

        let iso = &spec.isolation;
        if iso.is_stopping() {
            return Err(spawn_err("hearth is stopping".into()));
        }
        // A worker spawned for its function takes the function's identity
        // now; a generic one stays root (in its namespaces) until `load`.
        let tmp = PrivateTmp::create(&iso.tmp_root, spec.identity).map_err(|e| {
            spawn_err(format!(
                "cannot create its temporary directory under {}: {e}",
                iso.tmp_root.display()
            ))
        })?;
        let confine = Confinement {
            rlimits: Rlimits::for_limits(&spec.limits),
            identity: spec.identity,
            private_tmp: iso.namespaces.then(|| tmp.path.clone()),
            no_network: !spec.limits.network && iso.namespaces,
            data_dir: iso.tmp_root.parent().map(Path::to_path_buf),
        };
        let tmp_env = spec.tmp_seen_by_worker(&tmp);
        let rt = &spec.runtime;
        let mut cmd = tokio::process::Command::new(&rt.interpreter);
        cmd.args(&rt.args)
            .env_clear()
            .envs(rt.env.iter().map(|(k, v)| (k, v)))
            .envs(spec.function_env())
            .envs([("TMPDIR", &tmp_env), ("HOME", &tmp_env)])
            .current_dir(&spec.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout_w))
            .stderr(Stdio::from(stderr_w))
            // Dropping a Worker ends its process itself (see Drop): at once,
            // or SIGTERM first and SIGKILL after the grace at a deadline.
            .kill_on_drop(false);
        isolation::prepare_worker(&mut cmd, &child_in, &child_out, &confine)
            .map_err(|e| spawn_err(format!("cannot open its temporary directory: {e}")))?;
        // Started in a cell: on the cell's CPU from its first instruction
        // (so every thread it starts is there too), if its runtime is pinned.
        // (A process forked from a cell's thread would otherwise inherit
        // the thread's CPU: one that floats is given them all back.)
        let home = crate::cells::current();
        let set = match home {
            Some(cell) if spec.pinned() => crate::cells::cpu_set(cell),
            Some(_) => crate::cells::all_cpus(),
            None => None,
        };
        if let Some(set) = set {
            // SAFETY: the closure only makes one system call
            // (sched_setaffinity), which is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
                    Ok(())
                });
            }
        }
        // At most a few interpreters start at once: started together, they
        // all finish late (they share the CPUs, and the kernel serializes
        // their moves into cgroups).
        let _starting = starting_slots().acquire().await;
        // Forked from this (runtime) thread, which lives as long as the
        // daemon: the worker's parent-death signal follows the thread that
        // forked it, so never from a blocking-pool thread, which ends when
        // idle.
        let child = cmd
            .spawn()
            .map_err(|e| spawn_err(format!("{}: {e}", rt.interpreter.display())))?;
        drop(child_in);
        drop(child_out);
        let pid = child.id().unwrap_or(0);
        // Into a cgroup of its own before it runs any function code (it is
        // still starting its interpreter). The move blocks (an RCU grace
        // period on cgroup v1): off the async threads, which go on serving
        // calls.
        let cgroup = match iso.cgroups.clone() {
            Some(cgroups) => {
                let (app, limits) = (spec.app.clone(), spec.cgroup_limits());
                let placed = tokio::task::spawn_blocking(move || {
                    cgroups
                        .worker(&app, &limits)
                        .and_then(|cg| cg.add(pid).map(|()| cg))
                        .map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(format!("its move into a cgroup failed: {e}")));
                match placed {
                    Ok(cg) => Some(Arc::new(cg)),
                    Err(e) => {
                        isolation::kill_tree(pid);
                        return Err(spawn_err(e));
                    }
                }
            }
            None => None,
        };

        let output = Output::start(&spec.function, spec.version, pid, stdout_r, stderr_r)
            .map_err(|e| spawn_err(format!("pipe: {e}")))?;

        let to_worker =
            pipe::Sender::from_owned_fd(daemon_out).map_err(|e| spawn_err(format!("pipe: {e}")))?;
        let from_worker = pipe::Receiver::from_owned_fd(daemon_in)
            .map_err(|e| spawn_err(format!("pipe: {e}")))?;
        let mut worker = Worker {
            spec: spec.clone(),
            child,
            pid,
            to_worker: Some(to_worker),
            from_worker: Some(from_worker),
            buf: Vec::with_capacity(4096),
            output,
            calls: 0,
            started: StdInstant::now(),
            idle_since: StdInstant::now(),
            retiring: false,
            place: None,
            tmp: Some(tmp),
            cgroup: Arc::new(std::sync::Mutex::new(cgroup)),
            terminating: false,
            spawn_ms: 0.0,
            load_ms: 0.0,
            cpu_mark: None,
            run_time: RunTime::of(pid),
            peak: PeakMemory::default(),
            from_generic: false,
            home,
            placed: set.is_some().then(|| home.filter(|_| spec.pinned())),
            homed: None,
        };
        match tokio::time::timeout_at(deadline, worker.ready()).await {
            Ok(Ok(())) => {
                worker.spawn_ms = worker.started.elapsed().as_secs_f64() * 1000.0;
                Ok(worker)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(WorkerError::Timeout {
                function: spec.label(),
                timeout_ms: spec.limits.timeout_ms,
            }),
        }
    }

    /// Load `spec`'s code into this worker (spawned for it, or generic).
    /// Returns the shim's load time in milliseconds.
    pub async fn load(
        &mut self,
        spec: Arc<WorkerSpec>,
        deadline: Instant,
    ) -> Result<f64, WorkerError> {
        let was_generic = self.spec.is_generic();
        self.spec = spec.clone();
        self.output.set_owner(&spec.function, spec.version);
        let mut join_app = None;
        if was_generic {
            join_app = self
                .take_function_limits()
                .map_err(|reason| WorkerError::Spawn {
                    function: spec.label(),
                    runtime: spec.runtime.kind.to_string(),
                    reason,
                })?;
        }
        let started = StdInstant::now();
        let loaded = tokio::time::timeout_at(deadline, self.send_load()).await;
        // The move into its application's cgroup starts once the code is
        // loaded: on cgroup v1 a move holds the kernel's fork/exec lock
        // for an RCU grace period, which would stall a worker that execs
        // (Lua's launcher) or forks while it loads.
        if let Some(join) = join_app {
            tokio::task::spawn_blocking(move || join.run());
        }
        match loaded {
            Ok(Ok(load_ms)) => {
                self.load_ms = started.elapsed().as_secs_f64() * 1000.0;
                debug!(function = %spec.function, version = spec.version, pid = self.pid,
                    since_spawn_ms = self.started.elapsed().as_secs_f64() * 1000.0,
                    load_ms, wait_ms = started.elapsed().as_secs_f64() * 1000.0, "worker loaded");
                Ok(load_ms)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                self.kill();
                Err(WorkerError::Timeout {
                    function: spec.label(),
                    timeout_ms: spec.limits.timeout_ms,
                })
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A generic worker becomes its function's: its temporary directory
    /// goes to the function's user, its rlimits and cgroup to the
    /// function's limits (the shim drops to the user at `load`). Returns
    /// the move into its application's cgroup, to run in the background.
    fn take_function_limits(&mut self) -> Result<Option<AppMove>, String> {
        let spec = self.spec.clone();
        if let (Some(tmp), Some(identity)) = (&self.tmp, spec.identity) {
            tmp.give_to(identity)
                .map_err(|e| format!("cannot hand {} to its user: {e}", tmp.path.display()))?;
        }
        Rlimits::for_limits(&spec.limits)
            .apply_to(self.pid)
            .map_err(|e| format!("cannot set its rlimits: {e}"))?;
        if let Some(cgroups) = &spec.isolation.cgroups {
            let limits = spec.cgroup_limits();
            // The function's limits hold at once, in the cgroup it was
            // started in...
            if let Some(old) = self.cgroup() {
                old.set_limits(&limits).map_err(|e| e.to_string())?;
            }
            // ...and it joins its application's cgroup in the background:
            // on cgroup v1 a move waits for an RCU grace period (7-14 ms
            // here), which the first call should not pay, nor the making
            // of the new cgroup (0.3 ms).
            return Ok(Some(AppMove {
                cgroups: cgroups.clone(),
                app: spec.app.clone(),
                limits,
                slot: self.cgroup.clone(),
                pid: self.pid,
                label: spec.label(),
            }));
        }
        Ok(None)
    }

    /// Its cgroup, if it has one.
    fn cgroup(&self) -> Option<Arc<WorkerCgroup>> {
        lock_slot(&self.cgroup).clone()
    }

    /// Did it hit its process limit (a fork or thread bomb)? Such a worker
    /// is ended: what it started fills its process budget.
    pub fn hit_process_limit(&self) -> bool {
        self.cgroup().is_some_and(|cg| cg.pids_limit_hit())
    }

    async fn ready(&mut self) -> Result<(), WorkerError> {
        match self.read().await? {
            FromWorker::Ready { protocol, .. } if protocol == PROTOCOL_VERSION => {}
            FromWorker::Ready { protocol, runtime, .. } => {
                return Err(self.protocol_error(format!(
                    "its {runtime} shim speaks protocol {protocol}, this daemon speaks {PROTOCOL_VERSION}; reinstall hearth so shim and daemon match"
                )))
            }
            other => return Err(self.protocol_error(format!("expected `ready`, got {other:?}"))),
        }
        Ok(())
    }

    async fn send_load(&mut self) -> Result<f64, WorkerError> {
        let spec = self.spec.clone();
        let load = ToWorker::Load {
            id: "load".into(),
            dir: spec.dir.display().to_string(),
            entry: spec.entry.clone(),
            function: spec.function.clone(),
            version: spec.version,
            timeout_ms: spec.limits.timeout_ms,
            memory_mb: spec.limits.memory_mb,
            env: spec.function_env().into_iter().collect(),
            uid: spec.identity.map(|(u, _)| u),
            gid: spec.identity.map(|(_, g)| g),
            tmp: self.tmp.as_ref().map(|t| spec.tmp_seen_by_worker(t)),
        };
        self.write(&load).await?;
        match self.read().await? {
            FromWorker::Loaded { load_ms, .. } => Ok(load_ms),
            FromWorker::Error {
                kind,
                message,
                traceback,
                code,
                ..
            } => Err(WorkerError::LoadFailed {
                function: spec.label(),
                error: FunctionError {
                    kind,
                    message,
                    traceback,
                    code,
                },
            }),
            other => Err(self.protocol_error(format!("expected `loaded`, got {other:?}"))),
        }
    }

    /// Run one call. `Ok(Err(..))` is the function's own error; the worker is
    /// still good. `Err(..)` means the worker is not (it is killed).
    pub async fn invoke(
        &mut self,
        id: &str,
        payload: rmpv::Value,
        deadline: Instant,
        deadline_ms: u64,
        nest: Option<Arc<super::nested::Nest>>,
    ) -> Result<Answer, Lost> {
        self.calls += 1;
        if self.cpu_mark.is_none() {
            self.cpu_mark = self.run_time.ns();
        }
        self.output.begin_call(id);
        let message = ToWorker::Invoke {
            id: id.to_owned(),
            deadline_ms,
            payload,
        };
        match tokio::time::timeout_at(deadline, self.exchange(id, &message, nest)).await {
            Ok(Ok(result)) => {
                let now = self.run_time.ns();
                let cpu_ms = self
                    .cpu_mark
                    .zip(now)
                    .map(|(before, after)| after.saturating_sub(before) as f64 / 1e6);
                self.cpu_mark = now;
                Ok(Answer {
                    result,
                    log: self.output.end_call(),
                    timing: Timing::default(),
                    pid: self.pid,
                    peak_memory_kb: self.peak.of(self.pid),
                    cpu_ms,
                })
            }
            // The worker is gone (or broke): what the call printed until
            // then goes with the error (a crash's last words are already in
            // the pipes: `died` waited for the exit).
            Ok(Err(error)) => Err(Lost {
                error,
                log: self.output.end_call(),
                pid: self.pid,
            }),
            Err(_) => {
                // Its output up to the deadline, before the worker is told
                // to stop (what it prints as it stops is not this call's).
                let log = self.output.end_call();
                self.terminate();
                Err(Lost {
                    error: WorkerError::Timeout {
                        function: self.spec.label(),
                        timeout_ms: self.spec.limits.timeout_ms,
                    },
                    log,
                    pid: self.pid,
                })
            }
        }
    }

    async fn exchange(
        &mut self,
        id: &str,
        message: &ToWorker,
        nest: Option<Arc<super::nested::Nest>>,
    ) -> Result<Result<rmpv::Value, FunctionError>, WorkerError> {
        self.write(message).await?;
        // One call at a time per worker: frames answer this call, or are
        // its nested calls, served meanwhile, polled here with the read
        // (no task hop on the way back). Those still running when the call
        // ends go on in tasks of their own: they finish, never re-run.
        // (Also when this future is dropped at the call's deadline.)
        let mut nested = Unfinished(FuturesUnordered::new());
        self.serve_frames(id, nest.as_ref(), &mut nested.0).await
    }

    async fn serve_frames(
        &mut self,
        id: &str,
        nest: Option<&Arc<super::nested::Nest>>,
        nested: &mut FuturesUnordered<BoxFuture<'static, ToWorker>>,
    ) -> Result<Result<rmpv::Value, FunctionError>, WorkerError> {
        loop {
            let frame = {
                let Some(from_worker) = self.from_worker.as_mut() else {
                    return Err(self.protocol_error("its pipes are held by a shared worker".into()));
                };
                let read = protocol::read_frame(from_worker, &mut self.buf);
                tokio::pin!(read);
                loop {
                    tokio::select! {
                        biased;
                        r = &mut read => break Ok(r),
                        Some(answer) = nested.next(), if !nested.is_empty() => {
                            let written = match (protocol::encode(&answer), self.to_worker.as_mut()) {
                                (Ok(frame), Some(to_worker)) => protocol::write_frame(to_worker, &frame).await,
                                (Err(e), _) => Err(e),
                                (_, None) => Err(ProtocolError::Closed),
                            };
                            if let Err(e) = written {
                                break Err(e);
                            }
                        }
                    }
                }
            };
            // A failed read, or a failed write of a nested call's answer.
            let message = self.frame_read(frame.and_then(|read| read)).await?;
            match message {
                FromWorker::Result { id: got, value } if got == id => return Ok(Ok(value)),
                FromWorker::Error {
                    id: got,
                    kind,
                    message,
                    traceback,
                    code,
                } if got == id => {
                    return Ok(Err(FunctionError {
                        kind,
                        message,
                        traceback,
                        code,
                    }))
                }
                call @ FromWorker::Call { .. } => {
                    let Some((parent, call)) = super::nested::CallFrame::of(call) else {
                        continue;
                    };
                    let Some(nest) = nest.as_ref().filter(|_| parent == id) else {
                        return Err(self.protocol_error(format!(
                            "it sent a call to {} for invoke {parent}, which is not running (call {id} is)",
                            call.function
                        )));
                    };
                    nested.push(Box::pin(Arc::clone(nest).serve(call)));
                }
                FromWorker::Pong { .. } => {}
                other => {
                    return Err(self
                        .protocol_error(format!("unexpected message during call {id}: {other:?}")))
                }
            }
        }
    }

    /// Is the process still there? (A worker killed while idle is noticed
    /// here, before a call is sent to it.)
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill(&mut self) {
        isolation::kill_tree(self.pid);
        if let Some(cg) = self.cgroup() {
            cg.kill_all();
        }
    }

    /// Stop the worker at its deadline: SIGTERM to its process group now,
    /// SIGKILL to everything after the grace period (when it is dropped).
    pub fn terminate(&mut self) {
        isolation::signal_tree(self.pid, nix::sys::signal::Signal::SIGTERM);
        self.terminating = true;
    }

    async fn write(&mut self, message: &ToWorker) -> Result<(), WorkerError> {
        let frame = protocol::encode(message).map_err(|e| self.protocol_error(e.to_string()))?;
        let Some(to_worker) = self.to_worker.as_mut() else {
            return Err(self.protocol_error("its pipes are held by a shared worker".into()));
        };
        match protocol::write_frame(to_worker, &frame).await {
            Ok(()) => Ok(()),
            Err(ProtocolError::Closed) => Err(self.died().await),
            Err(e) => Err(self.protocol_error(e.to_string())),
        }
    }

    async fn read(&mut self) -> Result<FromWorker, WorkerError> {
        let Some(from_worker) = self.from_worker.as_mut() else {
            return Err(self.protocol_error("its pipes are held by a shared worker".into()));
        };
        let read = protocol::read_frame(from_worker, &mut self.buf).await;
        self.frame_read(read).await
    }

    /// The message a frame read into `buf` holds, or what the failure to
    /// read it means: the worker died (end of file), or broke the protocol.
    async fn frame_read(
        &mut self,
        read: Result<(), ProtocolError>,
    ) -> Result<FromWorker, WorkerError> {
        match read {
            Ok(()) => protocol::decode(&self.buf).map_err(|e| self.protocol_error(e.to_string())),
            Err(ProtocolError::Closed) => Err(self.died().await),
            Err(e) => Err(self.protocol_error(e.to_string())),
        }
    }

    /// Its stdout/stderr reader (a shared worker captures a call's log when
    /// that call runs alone).
    pub(super) fn output(&self) -> Arc<Output> {
        self.output.clone()
    }

    /// Move it to cell `cell`, or out of the cells (`None`): register its
    /// protocol pipes with that runtime (the cell's, or the main one) and
    /// pin its threads to the cell's CPU, or let them float (a Node worker,
    /// or one out of the cells), so that a call on that cell wakes nothing
    /// on another CPU. Its output pipes stay where they are (they are read
    /// only when it prints). Without cells it is where it belongs already.
    pub(super) fn rehome(&mut self, cell: Option<usize>) {
        if self.home == cell || crate::cells::count() == 0 {
            return;
        }
        let (Some(tx), Some(rx)) = (self.to_worker.take(), self.from_worker.take()) else {
            return;
        };
        let moved = crate::cells::enter(cell, || -> std::io::Result<_> {
            let tx = pipe::Sender::from_owned_fd(tx.into_nonblocking_fd()?)?;
            let rx = pipe::Receiver::from_owned_fd(rx.into_nonblocking_fd()?)?;
            Ok((tx, rx))
        });
        match moved {
            Ok((tx, rx)) => {
                self.to_worker = Some(tx);
                self.from_worker = Some(rx);
                self.place_on(cell, self.spec.pinned());
                self.home = cell;
            }
            Err(e) => {
                // Its pipes are gone: it cannot serve, and is ended.
                tracing::warn!(pid = self.pid, ?cell, error = %e, "cannot move a worker's pipes to its cell; ending it");
                self.kill();
            }
        }
    }

    /// Let the process run on cell `cell`'s CPU when `pinned` (a runtime
    /// that keeps to one thread), else on every CPU.
    pub(super) fn place_on(&mut self, cell: Option<usize>, pinned: bool) {
        let cpu = cell.filter(|_| pinned);
        if self.placed == Some(cpu) {
            return;
        }
        match crate::cells::place_process(self.pid, cpu) {
            Ok(()) => self.placed = Some(cpu),
            Err(e) => {
                tracing::debug!(pid = self.pid, ?cell, error = %e, "cannot set a worker's CPUs for its cell")
            }
        }
    }

    /// Hand the protocol pipes to a shared worker (several calls in
    /// flight: one writer at a time, one reader task).
    pub(super) fn split_io(&mut self) -> Option<(pipe::Sender, pipe::Receiver)> {
        Some((self.to_worker.take()?, self.from_worker.take()?))
    }

    pub fn spec(&self) -> &Arc<WorkerSpec> {
        &self.spec
    }

    pub(super) fn protocol_error(&mut self, reason: String) -> WorkerError {
        self.kill();
        WorkerError::Protocol {
            function: self.spec.label(),
            reason,
        }
    }

    /// The worker closed its pipe: wait (briefly) for it to exit and say how.
    pub(super) async fn died(&mut self) -> WorkerError {
        let status =
            match tokio::time::timeout(std::time::Duration::from_millis(500), self.child.wait())
                .await
            {
                Ok(Ok(status)) => Some(status),
                _ => {
                    self.kill();
                    None
                }
            };
        // The process is gone, so its last words are in the stderr pipe:
        // stderr_tail reads them from there.
        let how = match status {
            Some(status) => describe_exit(status),
            None => "closed its protocol pipe and was killed".to_owned(),
        };
        if self.cgroup().is_some_and(|cg| cg.oom_killed()) {
            return WorkerError::OutOfMemory {
                function: self.spec.label(),
                limit_mb: self.spec.limits.memory_mb,
            };
        }
        let stderr = self.output.stderr_tail();
        WorkerError::Died {
            function: self.spec.label(),
            how,
            stderr,
        }
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        let name = nix::sys::signal::Signal::try_from(sig)
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|_| format!("signal {sig}"));
        format!("was killed by {name}")
    } else {
        format!("exited with status {}", status.code().unwrap_or(-1))
    }
}
