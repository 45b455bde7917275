//! Typed events: each is emitted in one place, and emitting it writes its
//! tracing line and feeds whatever listens (the pools' own counters are fed
//! where the pool emits; call records and Prometheus metrics will be sinks
//! here). In the spirit of vector's internal_events: one event, one log
//! line, its metrics.

use std::sync::{Arc, RwLock};

use hearth_api::{StartKind, Timing};
use tracing::{debug, info, warn};

use crate::call::Caller;
use crate::pool::CallLog;

/// Something that happened in the engine.
#[derive(Debug)]
pub enum Event<'a> {
    /// A call got its answer (or error), by whatever path it came.
    CallFinished {
        function: &'a str,
        version: u32,
        /// The application the function belongs to.
        app: &'a str,
        request_id: &'a str,
        caller: Caller,
        /// The HTTP status the outcome answers with (200 for `ok`).
        status: u16,
        /// `ok`, `function_error`, or the error code it failed with.
        outcome: &'a str,
        ms: f64,
        start: StartKind,
        error: Option<&'a str>,
        /// The rest of what a call record holds (added for the records
        /// sink; the fields above are read by metrics and statistics).
        detail: CallDetail<'a>,
    },
    /// A worker was started and its code loaded.
    WorkerStarted {
        function: &'a str,
        version: u32,
        pid: u32,
        from_generic: bool,
    },
    /// A call started its worker (a cold start).
    ColdStart {
        function: &'a str,
        version: u32,
        start: StartKind,
        /// The function's runtime (`python`, `node`, `lua`).
        runtime: &'a str,
        /// Starting the interpreter (0 for a pre-started one), in ms.
        spawn_ms: f64,
        /// Loading the function's code, in ms.
        load_ms: f64,
    },
    /// A call got its place on a worker after waiting `queue_ms` for it
    /// (0 when a worker was free): emitted for every call a pool admits.
    Admitted {
        function: &'a str,
        version: u32,
        queue_ms: f64,
    },
    /// A worker left for a younger one (max_requests, max_age_ms, memory).
    WorkerRecycled {
        function: &'a str,
        version: u32,
        old: u32,
        new: u32,
        runtime: &'a str,
    },
    /// An idle worker was ended (idle timeout, eviction, old version).
    WorkerReclaimed {
        function: &'a str,
        version: u32,
        pid: u32,
        runtime: &'a str,
    },
    /// A worker died or broke during a call.
    WorkerLost {
        function: &'a str,
        version: u32,
        pid: u32,
        request_id: &'a str,
        shared: bool,
        error: &'a str,
        runtime: &'a str,
        /// Why, in one word: `died`, `timeout`, `out_of_memory`,
        /// `protocol`, ... ([`crate::pool::WorkerError::reason`]).
        reason: &'a str,
    },
    /// Too many workers in a row died at start: the function is paused.
    CrashLoop {
        function: &'a str,
        version: u32,
        crashes: u32,
        pause_ms: u64,
        error: &'a str,
    },
    /// A version was stored (or found already stored) by a deploy.
    VersionStored {
        function: &'a str,
        version: u32,
        created: bool,
        runtime: &'a str,
    },
    /// A version's code failed to load at deploy or publish.
    LoadFailed {
        function: &'a str,
        version: u32,
        kind: &'a str,
    },
    /// A version went live (publish, rollback), alone or in a batch.
    Released {
        function: &'a str,
        version: u32,
        previous: Option<u32>,
        action: &'a str,
    },
    /// A batch of versions went live together.
    BatchReleased { count: usize },
    /// An alias was created or moved.
    AliasMoved {
        function: &'a str,
        alias: &'a str,
        version: u32,
        split: Option<(u32, u8)>,
    },
    /// A release made by another process sharing the store was routed.
    ReleaseSeen { function: &'a str, version: u32 },
    /// A version that stopped being routed had its workers ended.
    VersionReclaimed { function: &'a str, version: u32 },
    /// A line of progress of a long operation (deploy, dependency install).
    Progress { message: &'a str },
    /// A request refused for a rate limit: `limit` is `function` or
    /// `token`, `key` the function's or the token's name.
    Throttled { limit: &'a str, key: &'a str },
    /// A call's answer did not match its version's `[output]` schema
    /// (`output_validation` log or enforce); `first` is the first failure.
    OutputInvalid {
        function: &'a str,
        version: u32,
        request_id: &'a str,
        enforced: bool,
        first: &'a str,
    },
    /// A page call ended (its CallFinished follows): how its fields went.
    PageFinished {
        page: &'a str,
        version: u32,
        request_id: &'a str,
        fields: usize,
        /// Member calls made.
        calls: usize,
        /// Fields that shared another field's identical call.
        deduped: usize,
        /// Each field that failed or was late, with its code.
        failed: &'a [(&'a str, &'a str)],
        /// The sum of the critical path's member calls, in ms.
        critical_ms: f64,
    },
}

impl Event<'_> {
    /// The event's tracing line.
    fn log(&self) {
        match *self {
            Event::CallFinished {
                ms, outcome, error, ..
            } => match (outcome, error) {
                ("ok", _) => debug!(ms, "call ok"),
                ("function_error", Some(kind)) => info!(ms, kind, "call raised"),
                (_, Some(error)) => warn!(ms, error, "call failed"),
                (_, None) => warn!(ms, outcome, "call failed"),
            },
            Event::WorkerStarted {
                function,
                version,
                pid,
                from_generic,
            } => debug!(function, version, pid, from_generic, "worker started"),
            Event::ColdStart { .. } | Event::Admitted { .. } => {}
            Event::WorkerRecycled {
                function,
                version,
                old,
                new,
                ..
            } => debug!(function, version, old, new, "worker recycled"),
            Event::WorkerReclaimed {
                function,
                version,
                pid,
                ..
            } => debug!(function, version, pid, "idle worker reclaimed"),
            Event::WorkerLost {
                function,
                version,
                pid,
                request_id,
                shared,
                error,
                ..
            } => {
                if shared {
                    warn!(
                        function,
                        version, pid, request_id, error, "shared worker call failed"
                    )
                } else {
                    warn!(function, version, pid, request_id, error, "worker lost")
                }
            }
            Event::CrashLoop {
                function,
                version,
                crashes,
                pause_ms,
                error,
            } => warn!(
                function,
                version,
                crashes,
                pause_ms,
                error,
                "crash loop: no new worker starts until the pause ends"
            ),
            Event::VersionStored {
                function,
                version,
                created,
                runtime,
            } => info!(function, version, created, runtime, "version stored"),
            Event::LoadFailed {
                function,
                version,
                kind,
            } => warn!(
                function,
                version, kind, "code failed to load; not published"
            ),
            Event::Released {
                function,
                version,
                previous,
                action,
            } => info!(function, version, previous = ?previous, action, "released"),
            Event::BatchReleased { count } => info!(count, "batch published"),
            Event::AliasMoved {
                function,
                alias,
                version,
                split,
            } => info!(function, alias, version, split = ?split, "alias moved"),
            Event::ReleaseSeen { function, version } => {
                info!(function, version, "release made elsewhere picked up")
            }
            Event::VersionReclaimed { function, version } => {
                info!(function, version, "old version's workers reclaimed")
            }
            Event::Progress { message } => info!(target: "hearth::progress", "{message}"),
            Event::Throttled { limit, key } => debug!(limit, key, "rate limited"),
            Event::OutputInvalid {
                function,
                version,
                request_id,
                enforced,
                first,
            } => warn!(
                function,
                version,
                request_id,
                enforced,
                "the answer does not match the function's [output] schema: {first}"
            ),
            Event::PageFinished {
                page,
                version,
                request_id,
                fields,
                calls,
                deduped,
                failed,
                critical_ms,
            } => {
                if failed.is_empty() {
                    debug!(
                        page,
                        version, fields, calls, deduped, critical_ms, "page done"
                    );
                } else {
                    let failed: Vec<String> =
                        failed.iter().map(|(f, c)| format!("{f} ({c})")).collect();
                    info!(
                        page,
                        version,
                        request_id,
                        fields,
                        calls,
                        deduped,
                        "page done without some fields: {}",
                        failed.join(", ")
                    );
                }
            }
        }
    }
}

/// More of a finished call: what its record needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallDetail<'a> {
    /// The request id of the call that made this one.
    pub parent: Option<&'a str>,
    /// When the call arrived, in ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Its phases (None: it never reached a worker).
    pub timing: Option<&'a Timing>,
    pub pid: Option<u32>,
    pub peak_memory_kb: Option<u64>,
    pub cpu_ms: Option<f64>,
    /// Size of the event (the request body of an HTTP call).
    pub bytes_in: u64,
    /// Size of the result as JSON (0 for an error).
    pub bytes_out: u64,
    /// What the call printed.
    pub log: Option<&'a CallLog>,
}

/// Listens to events (call records, metrics).
pub trait EventSink: Send + Sync {
    fn on_event(&self, event: &Event<'_>);
}

/// Where events go: their log line, then every sink.
#[derive(Clone, Default)]
pub struct Events {
    sinks: Arc<RwLock<Vec<Arc<dyn EventSink>>>>,
}

impl Events {
    pub fn new() -> Events {
        Events::default()
    }

    /// Add a listener for every event from now on.
    pub fn subscribe(&self, sink: Arc<dyn EventSink>) {
        if let Ok(mut sinks) = self.sinks.write() {
            sinks.push(sink);
        }
    }

    pub fn emit(&self, event: Event<'_>) {
        event.log();
        if let Ok(sinks) = self.sinks.read() {
            for sink in sinks.iter() {
                sink.on_event(&event);
            }
        }
    }
}
