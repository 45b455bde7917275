//! The sink that makes call records: each `CallFinished` event becomes one
//! [`CallRecord`], handed to the [`Recorder`] (a bounded queue written off
//! the call path; `hearth-records`).

use std::sync::Arc;

use hearth_api::{outcome_class, CallRecord};
use hearth_engine::{Event, EventSink};
use hearth_records::Recorder;

pub struct RecordSink(pub Arc<Recorder>);

impl EventSink for RecordSink {
    fn on_event(&self, event: &Event<'_>) {
        if let Some(record) = record_of(event) {
            self.0.offer(&record);
        }
    }
}

/// The record of a finished call (None for any other event).
pub fn record_of(event: &Event<'_>) -> Option<CallRecord> {
    let Event::CallFinished {
        function,
        version,
        app,
        request_id,
        caller,
        status,
        outcome,
        ms,
        start,
        error,
        detail,
    } = event
    else {
        return None;
    };
    let class = outcome_class(outcome);
    let mut timing = detail.timing.cloned().unwrap_or_default();
    timing.start = *start;
    let (log, dropped, unattributed) = match detail.log {
        Some(log) => (log.lines.clone(), log.dropped as u64, log.unattributed),
        None => (Vec::new(), 0, false),
    };
    Some(CallRecord {
        seq: 0,
        request_id: (*request_id).to_owned(),
        parent_id: detail.parent.map(str::to_owned),
        function: (*function).to_owned(),
        version: *version,
        app: (*app).to_owned(),
        caller: caller.as_str().to_owned(),
        started_at_ms: detail.started_at_ms,
        duration_ms: *ms,
        outcome: class.to_owned(),
        code: (*outcome).to_owned(),
        reason: (class == "rejected").then(|| (*outcome).to_owned()),
        error: error.map(str::to_owned),
        status: *status,
        timing,
        pid: detail.pid,
        peak_memory_kb: detail.peak_memory_kb,
        cpu_ms: detail.cpu_ms,
        bytes_in: detail.bytes_in,
        bytes_out: detail.bytes_out,
        log,
        log_truncated: dropped > 0,
        log_dropped_bytes: dropped,
        log_unattributed: unattributed,
    })
}
