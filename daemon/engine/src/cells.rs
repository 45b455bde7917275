//! Cells: one async thread per CPU, each with a runtime of its own, serving
//! the connections handed to it with the workers that live on its CPU.
//!
//! A call that crosses CPUs pays for it: waking a process on another vCPU
//! takes an inter-processor interrupt (tens of µs on a VM), and a warm call
//! wakes three (the gateway, the worker, the gateway again). In a cell the
//! connection's task, its worker and the worker's pipes all belong to one
//! CPU, so those wake-ups stay local.
//!
//! - [`start`] makes the cells (a thread each, pinned to its CPU, running a
//!   current-thread runtime until [`stop`]).
//! - The gateway hands each accepted connection to a cell ([`next`],
//!   [`handle`]).
//! - A pool gives each worker a home cell: the worker is pinned to the
//!   cell's CPU and its protocol pipes are registered with the cell's
//!   runtime ([`pin_process`], [`enter`]). A call takes an idle worker of
//!   its own cell first, and any other one if there is none.
//!
//! Without cells (`server.cells = 0`, one CPU, or code outside the daemon
//! such as tests of the engine) [`current`] is `None` and nothing changes:
//! connections and workers float over every CPU.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use tokio::runtime::Handle;

struct Cells {
    /// The runtime that started the cells (the daemon's main one).
    main: Handle,
    handles: Vec<Handle>,
    cpus: Vec<usize>,
    next: AtomicUsize,
    stops: Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
}

static CELLS: OnceLock<Cells> = OnceLock::new();

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The CPUs this process may run on, in order: read once, before any
/// thread is pinned (a pinned thread's own affinity is its one CPU).
pub fn allowed_cpus() -> &'static [usize] {
    static ALLOWED: OnceLock<Vec<usize>> = OnceLock::new();
    ALLOWED.get_or_init(|| match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    })
}

/// How many cells `wanted` gives on this host: `None` is one per CPU the
/// daemon may run on (none with a single CPU); `Some(n)` is `n` (`0`: none).
pub fn resolve(wanted: Option<usize>) -> usize {
    match wanted {
        Some(n) => n,
        None => match allowed_cpus().len() {
            0 | 1 => 0,
            n => n,
        },
    }
}

/// Start `n` cells (once per process; later calls do nothing), the i-th
/// pinned to the i-th CPU the daemon may run on (round robin when there are
/// more cells than CPUs). Returns how many run.
pub fn start(n: usize) -> std::io::Result<usize> {
    if n == 0 || CELLS.get().is_some() {
        return Ok(count());
    }
    let allowed = allowed_cpus();
    let mut handles = Vec::with_capacity(n);
    let mut cpus = Vec::with_capacity(n);
    let mut stops = Vec::with_capacity(n);
    for i in 0..n {
        let cpu = allowed.get(i % allowed.len().max(1)).copied().unwrap_or(i);
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("hearth-cell-{i}"))
            .spawn(move || {
                CURRENT.with(|c| c.set(i));
                if pin_thread(cpu).is_err() {
                    tracing::debug!(cell = i, cpu, "cannot pin the cell's thread to its CPU");
                }
                // Its blocking pool's threads (file and cgroup work) float:
                // they would inherit the cell's CPU.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .on_thread_start(|| {
                        if current().is_none() {
                            if let Some(set) = all_cpus() {
                                let _ = sched_setaffinity(Pid::from_raw(0), &set);
                            }
                        }
                    })
                    .build();
                match runtime {
                    Ok(rt) => {
                        let _ = tx.send(Ok(rt.handle().clone()));
                        rt.block_on(async {
                            let _ = stopped.await;
                        });
                        // Whatever is still running on it (a worker's
                        // leftovers) is dropped here: the daemon is ending.
                        rt.shutdown_background();
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })?;
        let handle = rx
            .recv()
            .map_err(|_| std::io::Error::other("a cell's thread ended at start"))??;
        handles.push(handle);
        cpus.push(cpu);
        stops.push(stop);
    }
    let main = Handle::try_current().map_err(std::io::Error::other)?;
    let _ = CELLS.set(Cells {
        main,
        handles,
        cpus,
        next: AtomicUsize::new(0),
        stops: Mutex::new(stops),
    });
    Ok(count())
}

/// End every cell's thread (at the end of `hearth serve`).
pub fn stop() {
    if let Some(cells) = CELLS.get() {
        if let Ok(mut stops) = cells.stops.lock() {
            for s in stops.drain(..) {
                let _ = s.send(());
            }
        }
    }
}

/// How many cells run (0: none).
pub fn count() -> usize {
    CELLS.get().map_or(0, |c| c.handles.len())
}

/// The cell whose thread this is, if any.
pub fn current() -> Option<usize> {
    let i = CURRENT.with(Cell::get);
    (i != usize::MAX).then_some(i)
}

/// The runtime of cell `i`.
pub fn handle(i: usize) -> Option<&'static Handle> {
    CELLS.get()?.handles.get(i)
}

/// The cell the next connection goes to (round robin), if there are cells.
pub fn next() -> Option<usize> {
    let cells = CELLS.get()?;
    let n = cells.handles.len();
    (n > 0).then(|| cells.next.fetch_add(1, Ordering::Relaxed) % n)
}

/// The CPU of cell `i`.
pub fn cpu(i: usize) -> Option<usize> {
    CELLS.get()?.cpus.get(i).copied()
}

fn set_of(cpu: usize) -> nix::Result<CpuSet> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    Ok(set)
}

fn pin_thread(cpu: usize) -> nix::Result<()> {
    sched_setaffinity(Pid::from_raw(0), &set_of(cpu)?)
}

/// The CPU set a process started for cell `i` is given before it runs
/// (in its pre-exec, so that every thread it starts inherits it).
pub fn cpu_set(i: usize) -> Option<CpuSet> {
    set_of(cpu(i)?).ok()
}

/// Every CPU the daemon may use (what a floating process is given).
pub fn all_cpus() -> Option<CpuSet> {
    let mut set = CpuSet::new();
    for &c in allowed_cpus() {
        set.set(c).ok()?;
    }
    Some(set)
}

/// Give every thread of process `pid` the CPU of cell `i`, or every CPU
/// the daemon may use (`None`: it floats); a worker moving between cells,
/// or out of them. Threads that end meanwhile are skipped.
pub fn place_process(pid: u32, cell: Option<usize>) -> nix::Result<()> {
    let set = match cell {
        Some(i) => set_of(cpu(i).ok_or(nix::Error::EINVAL)?)?,
        None => all_cpus().ok_or(nix::Error::EINVAL)?,
    };
    let mut placed = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                placed |= sched_setaffinity(Pid::from_raw(tid), &set).is_ok();
            }
        }
    }
    if placed {
        Ok(())
    } else {
        sched_setaffinity(Pid::from_raw(pid as i32), &set)
    }
}

/// Run `f` with cell `i`'s runtime (`None`: the main one) as the current
/// one: what it registers (a pipe, a timer) belongs to that runtime.
pub fn enter<R>(cell: Option<usize>, f: impl FnOnce() -> R) -> R {
    let handle = match cell {
        Some(i) => handle(i),
        None => CELLS.get().map(|c| &c.main),
    };
    match handle {
        Some(h) => {
            let _guard = h.enter();
            f()
        }
        None => f(),
    }
}

/// Spawn `fut` on the daemon's main (multi-thread) runtime when there are
/// cells, else on the current one: for work that should not stay on one
/// CPU (workers serving several calls at once spread theirs themselves).
pub fn spawn_main<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match CELLS.get() {
        Some(cells) => cells.main.spawn(fut),
        None => tokio::spawn(fut),
    }
}

/// Spawn `fut` on cell `i` (or on the current runtime when there is no
/// such cell).
pub fn spawn_on<F>(i: Option<usize>, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match i.and_then(handle) {
        Some(h) => h.spawn(fut),
        None => tokio::spawn(fut),
    }
}
