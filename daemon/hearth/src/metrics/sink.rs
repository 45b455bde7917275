//! The engine's events into the metrics. Each function's label values are
//! resolved once, into a [`FunctionHandles`] made on the function's first
//! event and kept in `Metrics::functions`: a call then costs one lookup
//! under a read lock and atomic adds, never a label lookup in the families.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::{Histogram, IntCounter};

use hearth_api::StartKind;
use hearth_engine::events::{Event, EventSink};

use super::{Families, Metrics, REJECTIONS};

/// A call outcome's counter and duration histogram.
#[derive(Clone)]
struct Outcome {
    count: IntCounter,
    seconds: Histogram,
}

impl Outcome {
    fn new(f: &Families, function: &str, outcome: &str) -> Outcome {
        Outcome {
            count: f.invocations.with_label_values(&[function, outcome]),
            seconds: f.duration.with_label_values(&[function, outcome]),
        }
    }

    fn observe(&self, ms: f64) {
        self.count.inc();
        self.seconds.observe(ms / 1000.0);
    }
}

/// One function's series, resolved once.
pub struct FunctionHandles {
    function: String,
    ok: Outcome,
    function_error: Outcome,
    queue_wait: Histogram,
    /// Rarer label values, made on first need (and remembered, so the
    /// function's series can all be removed): other outcomes, rejection
    /// reasons, cold starts by (runtime, kind).
    outcomes: Mutex<HashMap<String, Outcome>>,
    rejected: Mutex<HashMap<&'static str, IntCounter>>,
    cold: Mutex<HashMap<(String, &'static str), IntCounter>>,
}

impl FunctionHandles {
    pub(super) fn new(function: &str, f: &Families) -> FunctionHandles {
        FunctionHandles {
            function: function.to_owned(),
            ok: Outcome::new(f, function, "ok"),
            function_error: Outcome::new(f, function, "function_error"),
            queue_wait: f.queue_wait.with_label_values(&[function]),
            outcomes: Mutex::new(HashMap::new()),
            rejected: Mutex::new(HashMap::new()),
            cold: Mutex::new(HashMap::new()),
        }
    }

    fn finished(&self, f: &Families, outcome: &str, ms: f64) {
        match outcome {
            "ok" => self.ok.observe(ms),
            "function_error" => self.function_error.observe(ms),
            other => {
                let mut outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
                outcomes
                    .entry(other.to_owned())
                    .or_insert_with(|| Outcome::new(f, &self.function, other))
                    .observe(ms);
                drop(outcomes);
                if let Some(&reason) = REJECTIONS.iter().find(|r| **r == other) {
                    self.rejected
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(reason)
                        .or_insert_with(|| {
                            f.rejected
                                .with_label_values(&[self.function.as_str(), reason])
                        })
                        .inc();
                }
            }
        }
    }

    fn cold_start(&self, f: &Families, runtime: &str, kind: &'static str) {
        self.cold
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((runtime.to_owned(), kind))
            .or_insert_with(|| {
                f.cold_starts
                    .with_label_values(&[self.function.as_str(), runtime, kind])
            })
            .inc();
    }

    /// Remove every series this function has (it has no pool left).
    pub(super) fn remove_series(&self, f: &Families) {
        let function = self.function.as_str();
        let outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        for outcome in ["ok", "function_error"]
            .into_iter()
            .chain(outcomes.keys().map(String::as_str))
        {
            let _ = f.invocations.remove_label_values(&[function, outcome]);
            let _ = f.duration.remove_label_values(&[function, outcome]);
        }
        let _ = f.queue_wait.remove_label_values(&[function]);
        for reason in self
            .rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
        {
            let _ = f.rejected.remove_label_values(&[function, reason]);
        }
        for (runtime, kind) in self.cold.lock().unwrap_or_else(|p| p.into_inner()).keys() {
            let _ = f
                .cold_starts
                .remove_label_values(&[function, runtime.as_str(), kind]);
        }
    }
}

impl EventSink for Metrics {
    fn on_event(&self, event: &Event<'_>) {
        let f = &self.f;
        match *event {
            Event::CallFinished {
                function,
                outcome,
                ms,
                ..
            } => self.handles(function).finished(f, outcome, ms),
            Event::Admitted {
                function, queue_ms, ..
            } => self.handles(function).queue_wait.observe(queue_ms / 1000.0),
            Event::ColdStart {
                function,
                start,
                runtime,
                spawn_ms,
                load_ms,
                ..
            } => {
                self.handles(function)
                    .cold_start(f, runtime, start.as_str());
                if start == StartKind::Fresh {
                    f.cold_phase
                        .with_label_values(&[runtime, "spawn"])
                        .observe(spawn_ms / 1000.0);
                }
                f.cold_phase
                    .with_label_values(&[runtime, "load"])
                    .observe(load_ms / 1000.0);
            }
            Event::WorkerRecycled { runtime, .. } => f
                .worker_exits
                .with_label_values(&[runtime, "recycled"])
                .inc(),
            Event::WorkerReclaimed { runtime, .. } => f
                .worker_exits
                .with_label_values(&[runtime, "reclaimed"])
                .inc(),
            Event::WorkerLost {
                runtime, reason, ..
            } => f.worker_exits.with_label_values(&[runtime, reason]).inc(),
            Event::Throttled { limit, .. } => f.throttled.with_label_values(&[limit]).inc(),
            Event::OutputInvalid {
                function, enforced, ..
            } => f
                .output_invalid
                .with_label_values(&[function, if enforced { "enforce" } else { "log" }])
                .inc(),
            Event::PageFinished {
                page,
                calls,
                deduped,
                failed,
                ..
            } => {
                f.page_members
                    .with_label_values(&[page])
                    .inc_by(calls as u64);
                if deduped > 0 {
                    f.page_deduped
                        .with_label_values(&[page])
                        .inc_by(deduped as u64);
                }
                for (field, code) in failed {
                    f.page_field_failures
                        .with_label_values(&[page, field, code])
                        .inc();
                }
            }
            Event::VersionReclaimed { function, .. } => {
                self.maybe_gone
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(function.to_owned());
            }
            _ => {}
        }
    }
}
