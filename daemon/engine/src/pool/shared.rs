//! A worker that serves several calls at once (`limits.concurrency` > 1;
//! Node only: its shim starts each `invoke` as it arrives). Callers write
//! whole frames one at a time; one reader task hands each answer to the
//! call with its id.
//!
//! Python and Lua workers run one call at a time; with `concurrency` > 1
//! their calls are *pipelined*: the next calls already wait in the pipe, so
//! a busy worker goes from one call to the next without sleeping, and the
//! answers come back in order ("sequential" here).
//!
//! What changes for such a worker's calls: their output cannot be told
//! apart, so it goes to the daemon's log (tagged with function, version and
//! pid) and no call gets a log of its own; and a call that runs past its
//! deadline stops the worker, so the calls in flight with it fail too (504
//! for the late one, 502 for the others). A pipelined call that never ran
//! (its deadline passed while it waited behind another in the pipe, or the
//! call ahead of it took the worker down) is answered 503: retry it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::warn;

use super::output::{CallLog, Output};
use super::worker::{Answer, FunctionError, Lost, Timing, Worker, WorkerError};
use hearth_protocol::{self as protocol, FromWorker, ProtocolError, ToWorker};

type Reply = Result<Result<rmpv::Value, FunctionError>, WorkerError>;

pub struct SharedWorker {
    pid: u32,
    /// function@version, for messages.
    label: String,
    /// The process (for how it ended, and to stop it); pipes taken out.
    worker: tokio::sync::Mutex<Worker>,
    writer: tokio::sync::Mutex<pipe::Sender>,
    pending: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    /// The nested-call context of each call in flight, by its id.
    nests: Mutex<HashMap<String, Arc<super::nested::Nest>>>,
    pub in_flight: AtomicU32,
    pub calls: AtomicU64,
    dead: AtomicBool,
    /// No new calls: a replacement is coming, or it is being reclaimed.
    pub retiring: AtomicBool,
    pub started: std::time::Instant,
    /// When its last call ended (ms since the daemon's start).
    pub idle_since_ms: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
    /// Answers come in the order the calls were written (one at a time).
    sequential: bool,
    /// Calls written and not yet answered, oldest (the running one) first.
    order: Mutex<std::collections::VecDeque<String>>,
    output: Arc<Output>,
    /// Counts calls that started while another was in flight: a call that
    /// began alone keeps its log only if this did not move meanwhile.
    pub overlap: AtomicU64,
    peak: super::worker::PeakMemory,
}

impl Drop for SharedWorker {
    fn drop(&mut self) {
        self.reader.abort();
        // Dropping `worker` kills the process tree.
    }
}

impl SharedWorker {
    /// Take over a started, loaded worker.
    pub fn new(mut worker: Worker, now_ms: u64) -> Result<Arc<SharedWorker>, WorkerError> {
        let Some((writer, reader)) = worker.split_io() else {
            return Err(worker.protocol_error("its pipes were already taken".into()));
        };
        let pid = worker.pid();
        let label = worker.spec().label();
        let sequential = worker.spec().runtime.kind != hearth_api::manifest::RuntimeKind::Node;
        let output = worker.output();
        let started = worker.started;
        Ok(Arc::new_cyclic(|weak: &std::sync::Weak<SharedWorker>| {
            let weak = weak.clone();
            // Such a worker stays out of the cells: its pipes are on the
            // main runtime (`Pool::settle`), and so is its reader.
            let task = crate::cells::spawn_main(async move { read_answers(weak, reader).await });
            SharedWorker {
                pid,
                label,
                worker: tokio::sync::Mutex::new(worker),
                writer: tokio::sync::Mutex::new(writer),
                pending: Mutex::new(HashMap::new()),
                nests: Mutex::new(HashMap::new()),
                in_flight: AtomicU32::new(0),
                calls: AtomicU64::new(0),
                dead: AtomicBool::new(false),
                retiring: AtomicBool::new(false),
                started,
                idle_since_ms: AtomicU64::new(now_ms),
                reader: task,
                sequential,
                order: Mutex::new(std::collections::VecDeque::new()),
                output,
                overlap: AtomicU64::new(0),
                peak: Default::default(),
            }
        }))
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// Run one call on it (the caller has counted it in `in_flight`).
    /// `alone`: it was the only call in flight when admitted (with the
    /// `overlap` count then): its output is captured as its log, and kept
    /// if no other call started before it ended.
    pub async fn invoke(
        &self,
        id: &str,
        payload: rmpv::Value,
        deadline: Instant,
        deadline_ms: u64,
        alone: Option<u64>,
        nest: Arc<super::nested::Nest>,
    ) -> Result<Answer, Lost> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if alone.is_some() {
            self.output.begin_call(id);
        }
        if let Ok(mut nests) = self.nests.lock() {
            nests.insert(id.to_owned(), nest);
        }
        let outcome = self.exchange(id, payload, deadline, deadline_ms).await;
        if let Ok(mut nests) = self.nests.lock() {
            nests.remove(id);
        }
        let log = match alone {
            Some(gen) => {
                let log = self.output.end_call();
                if self.overlap.load(Ordering::Relaxed) == gen {
                    log
                } else {
                    CallLog::unattributed()
                }
            }
            None => CallLog::unattributed(),
        };
        match outcome {
            Ok(mut answer) => {
                answer.log = log;
                Ok(answer)
            }
            Err(error) => Err(Lost {
                error,
                log,
                pid: self.pid,
            }),
        }
    }

    async fn exchange(
        &self,
        id: &str,
        payload: rmpv::Value,
        deadline: Instant,
        deadline_ms: u64,
    ) -> Result<Answer, WorkerError> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(id.to_owned(), tx);
        }
        let frame = protocol::encode(&ToWorker::Invoke {
            id: id.to_owned(),
            deadline_ms,
            payload,
        })
        .map_err(|e| self.protocol_error(e.to_string()));
        let written = match frame {
            Ok(frame) => {
                let mut writer = self.writer.lock().await;
                if let Ok(mut order) = self.order.lock() {
                    order.push_back(id.to_owned());
                }
                match protocol::write_frame(&mut *writer, &frame).await {
                    Ok(()) => Ok(()),
                    // The reader sees the end too and says how it died.
                    Err(ProtocolError::Closed) => Ok(()),
                    Err(e) => Err(self.protocol_error(e.to_string())),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            self.forget(id);
            return Err(e);
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => reply.map(|result| Answer {
                result,
                log: CallLog::default(),
                timing: Timing::default(),
                pid: self.pid,
                peak_memory_kb: self.peak.of(self.pid),
                cpu_ms: None,
            }),
            Ok(Err(_)) => Err(self.lost("its answer channel closed")),
            Err(_) if self.sequential && !self.is_running(id) => {
                // Still behind another call in the pipe: it never ran. The
                // worker runs it later and its answer is dropped.
                self.forget(id);
                Err(WorkerError::QueuedTooLong {
                    function: self.label.clone(),
                    timeout_ms: self.worker.lock().await.spec().limits.timeout_ms,
                })
            }
            Err(_) => {
                self.forget(id);
                // The late call stops the worker (the others in flight fail).
                self.dead.store(true, Ordering::Relaxed);
                let mut worker = self.worker.lock().await;
                worker.terminate();
                let spec = worker.spec();
                Err(WorkerError::Timeout {
                    function: spec.label(),
                    timeout_ms: spec.limits.timeout_ms,
                })
            }
        }
    }

    /// Did it reach its process limit (a fork or thread bomb)?
    pub fn hit_process_limit(&self) -> bool {
        self.worker
            .try_lock()
            .map(|w| w.hit_process_limit())
            .unwrap_or(false)
    }

    /// End it now (its cgroup goes when the last call holding it is done).
    pub fn retire_now(&self) {
        self.dead.store(true, Ordering::Relaxed);
        hearth_sandbox::isolation::kill_tree(self.pid);
    }

    /// Is `id` the call the (sequential) worker is running now?
    fn is_running(&self, id: &str) -> bool {
        self.order
            .lock()
            .map(|o| o.front().is_some_and(|f| f == id))
            .unwrap_or(true)
    }

    /// An answer (or a given-up call) leaves the order.
    fn answered(&self, id: &str) {
        if let Ok(mut order) = self.order.lock() {
            if let Some(i) = order.iter().position(|x| x == id) {
                order.remove(i);
            }
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(id);
        }
    }

    fn protocol_error(&self, reason: String) -> WorkerError {
        self.dead.store(true, Ordering::Relaxed);
        hearth_sandbox::isolation::kill_tree(self.pid);
        WorkerError::Protocol {
            function: self.label.clone(),
            reason,
        }
    }

    fn lost(&self, why: &str) -> WorkerError {
        WorkerError::Died {
            function: self.label.clone(),
            how: why.to_owned(),
            stderr: String::new(),
        }
    }

    /// Fail every call in flight with `error`.
    fn fail_all(&self, error: &WorkerError) {
        let pending: Vec<_> = match self.pending.lock() {
            Ok(mut p) => p.drain().collect(),
            Err(_) => return,
        };
        // On a sequential worker only the oldest call was running; the
        // others never ran and can be retried.
        let running = if self.sequential {
            self.order.lock().ok().and_then(|o| o.front().cloned())
        } else {
            None
        };
        for (id, tx) in pending {
            let e = match &running {
                Some(head) if *head != id => WorkerError::NotRun {
                    function: self.label.clone(),
                    why: format!("the worker it waited for ({error})"),
                },
                _ => error.clone(),
            };
            let _ = tx.send(Err(e));
        }
    }
}

/// The reader task: answers to their calls, until the pipe ends.
async fn read_answers(weak: std::sync::Weak<SharedWorker>, mut reader: pipe::Receiver) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let read = protocol::read_frame(&mut reader, &mut buf).await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let message = match read {
            Ok(()) => protocol::decode::<FromWorker>(&buf),
            Err(e) => Err(e),
        };
        let (id, reply) = match message {
            Ok(FromWorker::Result { id, value }) => (id, Ok(Ok(value))),
            Ok(FromWorker::Error {
                id,
                kind,
                message,
                traceback,
                code,
            }) => (
                id,
                Ok(Err(FunctionError {
                    kind,
                    message,
                    traceback,
                    code,
                })),
            ),
            Ok(call @ FromWorker::Call { .. }) => {
                let Some((parent, call)) = super::nested::CallFrame::of(call) else {
                    continue;
                };
                let nest = shared
                    .nests
                    .lock()
                    .ok()
                    .and_then(|n| n.get(&parent).cloned());
                let weak = weak.clone();
                tokio::spawn(async move {
                    let (answer, late) = match nest {
                        Some(nest) => (nest.serve(call).await, false),
                        // Its invoke was given up (its deadline passed):
                        // the worker must not wait for an answer.
                        None => (super::nested::too_late(call, &parent), true),
                    };
                    let Some(shared) = weak.upgrade() else { return };
                    // An invoke that has ended gets no more answers.
                    let running = shared.nests.lock().is_ok_and(|n| n.contains_key(&parent));
                    if !running && !late {
                        return;
                    }
                    if let Ok(frame) = protocol::encode(&answer) {
                        let mut writer = shared.writer.lock().await;
                        let _ = protocol::write_frame(&mut *writer, &frame).await;
                    }
                });
                continue;
            }
            Ok(FromWorker::Pong { .. }) => continue,
            Ok(other) => {
                let e = shared.protocol_error(format!("unexpected message: {other:?}"));
                shared.fail_all(&e);
                return;
            }
            Err(ProtocolError::Closed) => {
                shared.dead.store(true, Ordering::Relaxed);
                let e = shared.worker.lock().await.died().await;
                warn!(pid = shared.pid, error = %e, "shared worker lost");
                shared.fail_all(&e);
                return;
            }
            Err(e) => {
                let e = shared.protocol_error(e.to_string());
                shared.fail_all(&e);
                return;
            }
        };
        shared.answered(&id);
        let tx = shared.pending.lock().ok().and_then(|mut p| p.remove(&id));
        if let Some(tx) = tx {
            let _ = tx.send(reply);
        }
    }
}
