//! Prometheus metrics at `GET /metrics` (docs/METRICS.md lists every one).
//!
//! [`Metrics`] is an [`EventSink`]: the engine's typed events feed its
//! counters and histograms (`sink.rs`), resolved once per function into a
//! [`sink::FunctionHandles`] so that a call costs one read-locked map
//! lookup and a few atomic adds. Gauges of the present (workers, calls in
//! flight, calls waiting) are read from the engine at each scrape, so they
//! only ever name pools that exist. A function with no pool left after a
//! version of it was reclaimed has its series removed at the next scrape.
//!
//! The crate is `prometheus` (tikv/rust-prometheus): it writes the classic
//! text format 0.0.4 that every Prometheus version and `promtool check
//! metrics` read, and its process collector gives the standard `process_*`
//! metrics from /proc.

mod sink;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use prometheus::core::Collector;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use hearth_engine::Engine;

pub use sink::FunctionHandles;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "cannot register the metric {name}: {error}; this is a bug in hearth, please report it"
    )]
    Register {
        name: &'static str,
        error: prometheus::Error,
    },
    #[error("cannot write the metrics as text: {0}; this is a bug in hearth, please report it")]
    Encode(prometheus::Error),
}

/// Buckets for call durations and queue waits, in seconds: warm calls take
/// a fraction of a millisecond, timeouts up to minutes.
const CALL_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Buckets for the phases of a cold start, in seconds.
const COLD_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Outcomes of a call that the function never ran: refused at admission
/// (one list for metrics, statistics and records).
pub use hearth_api::REJECTIONS;

/// Every metric family.
struct Families {
    invocations: IntCounterVec,
    duration: HistogramVec,
    cold_starts: IntCounterVec,
    cold_phase: HistogramVec,
    queue_wait: HistogramVec,
    rejected: IntCounterVec,
    worker_exits: IntCounterVec,
    throttled: IntCounterVec,
    output_invalid: IntCounterVec,
    page_members: IntCounterVec,
    page_deduped: IntCounterVec,
    page_field_failures: IntCounterVec,
    records_dropped: IntCounter,
    inflight: IntGaugeVec,
    queued: IntGaugeVec,
    workers: IntGaugeVec,
    generic: IntGaugeVec,
    budget: IntGaugeVec,
    build_info: IntGaugeVec,
}

/// The daemon's metrics: the registry, and the sink the engine feeds.
pub struct Metrics {
    registry: Registry,
    f: Families,
    /// Each function's handles, made on its first event.
    functions: RwLock<HashMap<String, Arc<FunctionHandles>>>,
    /// Functions a version of which was reclaimed: their series go at the
    /// next scrape if no pool of theirs is left.
    maybe_gone: Mutex<HashSet<String>>,
    /// One scrape at a time (the gauges are reset and set for each).
    scrape: Mutex<()>,
}

impl Metrics {
    pub fn new() -> Result<Arc<Metrics>, MetricsError> {
        let registry = Registry::new();
        fn reg<C: Collector + Clone + 'static>(
            registry: &Registry,
            name: &'static str,
            c: Result<C, prometheus::Error>,
        ) -> Result<C, MetricsError> {
            let c = c.map_err(|error| MetricsError::Register { name, error })?;
            registry
                .register(Box::new(c.clone()))
                .map_err(|error| MetricsError::Register { name, error })?;
            Ok(c)
        }
        macro_rules! counter {
            ($name:literal, $help:literal, $labels:expr) => {
                reg(
                    &registry,
                    $name,
                    IntCounterVec::new(Opts::new($name, $help), $labels),
                )?
            };
        }
        macro_rules! gauge {
            ($name:literal, $help:literal, $labels:expr) => {
                reg(
                    &registry,
                    $name,
                    IntGaugeVec::new(Opts::new($name, $help), $labels),
                )?
            };
        }
        macro_rules! histogram {
            ($name:literal, $help:literal, $labels:expr, $buckets:expr) => {
                reg(
                    &registry,
                    $name,
                    HistogramVec::new(
                        HistogramOpts::new($name, $help).buckets($buckets.to_vec()),
                        $labels,
                    ),
                )?
            };
        }
        let f = Families {
            invocations: counter!(
                "hearth_invocations_total",
                "Calls finished, by function and outcome (ok, function_error, or the error code).",
                &["function", "outcome"]
            ),
            duration: histogram!(
                "hearth_invocation_duration_seconds",
                "Time from a call's arrival to its answer, by function and outcome.",
                &["function", "outcome"],
                CALL_BUCKETS
            ),
            cold_starts: counter!(
                "hearth_cold_starts_total",
                "Calls that had to start their worker, by function, runtime and kind (generic: a pre-started interpreter loaded the code; fresh: a new process).",
                &["function", "runtime", "kind"]
            ),
            cold_phase: histogram!(
                "hearth_cold_start_phase_seconds",
                "The phases of cold starts: spawn (interpreter start, fresh processes only) and load (the function's code).",
                &["runtime", "phase"],
                COLD_BUCKETS
            ),
            queue_wait: histogram!(
                "hearth_queue_wait_seconds",
                "Time an admitted call waited for a free worker slot, by function.",
                &["function"],
                CALL_BUCKETS
            ),
            rejected: counter!(
                "hearth_rejected_total",
                "Calls refused before the function ran, by function and reason (queue_full, overloaded, app_over_budget, crash_loop, rate_limited).",
                &["function", "reason"]
            ),
            worker_exits: counter!(
                "hearth_worker_exits_total",
                "Workers that left, by runtime and reason (recycled, reclaimed, or why one was lost: died, timeout, out_of_memory, protocol, ...).",
                &["runtime", "reason"]
            ),
            throttled: counter!(
                "hearth_throttled_total",
                "Requests refused for a rate limit, by limit (function: limits.rate; token: auth.api_rate).",
                &["limit"]
            ),
            output_invalid: counter!(
                "hearth_output_invalid_total",
                "Answers that did not match their function's [output] schema (output_validation log or enforce), by function and mode.",
                &["function", "mode"]
            ),
            page_members: counter!(
                "hearth_page_member_calls_total",
                "Member calls made by page calls, by page.",
                &["page"]
            ),
            page_deduped: counter!(
                "hearth_page_deduped_fields_total",
                "Page fields that shared an identical member call (same function, version and input) of another field of the same page call, by page.",
                &["page"]
            ),
            page_field_failures: counter!(
                "hearth_page_field_failures_total",
                "Page fields whose function failed or was late (they got their fallback), by page, field and code.",
                &["page", "field", "code"]
            ),
            records_dropped: reg(
                &registry,
                "hearth_call_records_dropped_total",
                IntCounter::new(
                    "hearth_call_records_dropped_total",
                    "Call records dropped because the record writer could not keep up.",
                ),
            )?,
            inflight: gauge!(
                "hearth_inflight",
                "Calls holding a worker slot now (running, or starting their worker), by function.",
                &["function"]
            ),
            queued: gauge!(
                "hearth_queue_depth",
                "Calls waiting for a worker slot now, by function.",
                &["function"]
            ),
            workers: gauge!(
                "hearth_workers",
                "Workers with code loaded, by function and state (idle, busy).",
                &["function", "state"]
            ),
            generic: gauge!(
                "hearth_generic_workers",
                "Idle pre-started interpreters, by runtime.",
                &["runtime"]
            ),
            budget: gauge!(
                "hearth_worker_budget",
                "The global worker budget: its cap (pools.max_workers_total) and the workers counted against it.",
                &["kind"]
            ),
            build_info: gauge!(
                "hearth_build_info",
                "Always 1; the version of this hearth.",
                &["version"]
            ),
        };
        f.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .map_err(|error| MetricsError::Register {
                name: "process_*",
                error,
            })?;
        Ok(Arc::new(Metrics {
            registry,
            f,
            functions: RwLock::new(HashMap::new()),
            maybe_gone: Mutex::new(HashSet::new()),
            scrape: Mutex::new(()),
        }))
    }

    /// Bring `hearth_call_records_dropped_total` up to the call record
    /// writer's own count (read at each scrape).
    pub fn sync_call_records_dropped(&self, total: u64) {
        let now = self.f.records_dropped.get();
        if total > now {
            self.f.records_dropped.inc_by(total - now);
        }
    }

    /// The metrics as Prometheus text: the gauges of the present are read
    /// from `engine` first, and functions left with no pool lose their
    /// series.
    pub fn render(&self, engine: &Engine) -> Result<String, MetricsError> {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let info = engine.workers();
        let live: HashSet<&str> = info.pools.iter().map(|p| p.function.as_str()).collect();
        let gone: Vec<String> = {
            let mut maybe = self.maybe_gone.lock().unwrap_or_else(|p| p.into_inner());
            maybe
                .drain()
                .filter(|f| !live.contains(f.as_str()))
                .collect()
        };
        for function in gone {
            self.forget(&function);
        }
        let f = &self.f;
        f.inflight.reset();
        f.queued.reset();
        f.workers.reset();
        f.generic.reset();
        f.budget.reset();
        let mut per_function: HashMap<&str, (i64, i64, i64)> = HashMap::new();
        for pool in &info.pools {
            let e = per_function.entry(pool.function.as_str()).or_default();
            e.0 += pool.idle as i64;
            e.1 += pool.busy as i64;
            e.2 += pool.waiting as i64;
        }
        for (function, (idle, busy, waiting)) in per_function {
            f.workers.with_label_values(&[function, "idle"]).set(idle);
            f.workers.with_label_values(&[function, "busy"]).set(busy);
            f.inflight.with_label_values(&[function]).set(busy);
            f.queued.with_label_values(&[function]).set(waiting);
        }
        for g in &info.generic {
            f.generic
                .with_label_values(&[g.runtime.as_str()])
                .set(g.idle as i64);
        }
        if let Some(b) = &info.budget {
            f.budget.with_label_values(&["cap"]).set(b.cap as i64);
            f.budget.with_label_values(&["used"]).set(b.workers as i64);
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .map_err(MetricsError::Encode)
    }

    /// A function's handles, made on its first event.
    fn handles(&self, function: &str) -> Arc<FunctionHandles> {
        if let Some(h) = self
            .functions
            .read()
            .ok()
            .and_then(|m| m.get(function).cloned())
        {
            return h;
        }
        let mut map = self.functions.write().unwrap_or_else(|p| p.into_inner());
        map.entry(function.to_owned())
            .or_insert_with(|| Arc::new(FunctionHandles::new(function, &self.f)))
            .clone()
    }

    /// Remove every series of a function that has no pool left.
    fn forget(&self, function: &str) {
        let removed = self
            .functions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(function);
        if let Some(h) = removed {
            h.remove_series(&self.f);
        }
    }
}
