//! Application statistics: an [`EventSink`] that adds each `CallFinished`
//! to per-minute aggregates in memory, per (application, function, version,
//! minute), and a flush that adds them to the store (`Store::add_stats`) off
//! the call path: every few seconds (`Engine::keep_stats`), before each
//! statistics query, and at a graceful stop. What the API shows is read back
//! from the store, summed over the window's minutes.
//!
//! - Durations go into a fixed histogram per minute (`hearth_api::Histogram`,
//!   a quarter octave per bucket), so percentiles over any window merge
//!   exactly from the buckets and are within 19%.
//! - Peak concurrency is counted, not inferred: `invoke.rs` enters every call
//!   past the rate check ([`Stats::enter`]) and leaves it when it is over;
//!   on each entry the calls in flight of the version, of the function and
//!   of the application are compared with the minute's peaks. A minute's
//!   peak is thus the most calls in flight when a call started in it.
//! - Memory is bounded: at most [`MAX_PENDING`] aggregates wait for a flush;
//!   beyond, a new key's calls are not counted (and a warning says how many
//!   were left out). A failed flush keeps its aggregates for the next one.
//!
//! - A call's counting allocates nothing once its version has been seen:
//!   each (application, function, version) has a slot, found by name, and
//!   aggregates and calls in flight are kept by slot (0.8 µs of a call's
//!   CPU went to making string keys, `cargo bench --bench telemetry --
//!   --in-process`).
//!
//! Nothing here can fail or hold up a call: the sink takes one short lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_api::{
    is_rejection, ApiError, AppStats, CallStats, ErrorCode, FunctionStats, Histogram, StartKind,
    StatsWindow, VersionStats,
};
use hearth_store::{StatsQuery, StatsRecord, StoreError};
use tracing::{debug, warn};

use crate::engine::Engine;
use crate::error::PublishError;
use crate::events::{Event, EventSink};

/// The most per-minute aggregates held between two flushes.
pub const MAX_PENDING: usize = 20_000;
/// Default of `stats.flush_interval`.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Default of `stats.retention`: minutes older than this are deleted.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);
/// How often old minutes are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// A (application, function, version) the process has seen a call of: an
/// index into `Inner::slots`, so a call's counting makes no key (no
/// allocation) once its version has been seen.
type Slot = usize;

/// An aggregate waiting for a flush: its slot and minute.
type Key = (Slot, i64);

/// One (application, function, version) and its calls in flight.
struct SlotState {
    app: String,
    function: String,
    version: u32,
    /// Indexes into `Inner::function_now` and `Inner::app_now`.
    function_at: usize,
    app_at: usize,
    now: u64,
}

#[derive(Default)]
struct Inner {
    pending: HashMap<Key, StatsRecord>,
    /// Every (app, function, version) seen; never removed (one per
    /// version called since the start).
    slots: Vec<SlotState>,
    /// The slots of each function's name (newest last: the version
    /// called most is nearly always the newest).
    slot_of: HashMap<String, Vec<Slot>>,
    /// Calls in flight now, per function and per application (by the
    /// index a slot holds).
    function_at: HashMap<String, usize>,
    app_at: HashMap<String, usize>,
    function_now: Vec<u64>,
    app_now: Vec<u64>,
    /// Calls left out since the last flush (too many aggregates pending).
    dropped: u64,
}

/// The aggregates waiting for a flush, and the calls in flight.
#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
    /// One flush at a time in this process.
    flushing: tokio::sync::Mutex<()>,
}

/// The minute (since the epoch) it is now.
pub fn now_minute() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_secs() / 60) as i64)
        .unwrap_or(0)
}

/// The index of `name`'s counter in `counts`, made (at 0) at its first
/// call.
fn counter_of(at: &mut HashMap<String, usize>, counts: &mut Vec<u64>, name: &str) -> usize {
    if let Some(&i) = at.get(name) {
        return i;
    }
    counts.push(0);
    at.insert(name.to_owned(), counts.len() - 1);
    counts.len() - 1
}

impl Inner {
    /// The slot of (app, function, version), made at its first call.
    fn slot(&mut self, app: &str, function: &str, version: u32) -> Slot {
        if let Some(slots) = self.slot_of.get(function) {
            let found = slots.iter().rev().copied().find(|&at| {
                let s = &self.slots[at];
                s.version == version && s.app == app
            });
            if let Some(slot) = found {
                return slot;
            }
        }
        let function_at = counter_of(&mut self.function_at, &mut self.function_now, function);
        let app_at = counter_of(&mut self.app_at, &mut self.app_now, app);
        self.slots.push(SlotState {
            app: app.to_owned(),
            function: function.to_owned(),
            version,
            function_at,
            app_at,
            now: 0,
        });
        let slot = self.slots.len() - 1;
        match self.slot_of.get_mut(function) {
            Some(slots) => slots.push(slot),
            None => {
                self.slot_of.insert(function.to_owned(), vec![slot]);
            }
        }
        slot
    }

    /// The aggregate of `slot` this minute, made if there is room.
    fn record(&mut self, slot: Slot) -> Option<&mut StatsRecord> {
        let key = (slot, now_minute());
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&key) {
            self.dropped += 1;
            return None;
        }
        let state = &self.slots[slot];
        Some(self.pending.entry(key).or_insert_with(|| StatsRecord {
            app: state.app.clone(),
            function: state.function.clone(),
            version: state.version,
            minute: key.1,
            ..StatsRecord::default()
        }))
    }
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count a call in flight until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>, app: &str, function: &str, version: u32) -> Busy {
        let mut inner = self.lock();
        let slot = inner.slot(app, function, version);
        let (function_at, app_at) = {
            let s = &mut inner.slots[slot];
            s.now += 1;
            (s.function_at, s.app_at)
        };
        inner.function_now[function_at] += 1;
        inner.app_now[app_at] += 1;
        let v = inner.slots[slot].now;
        let (f, a) = (inner.function_now[function_at], inner.app_now[app_at]);
        if let Some(r) = inner.record(slot) {
            r.peak = r.peak.max(v);
            r.function_peak = r.function_peak.max(f);
            r.app_peak = r.app_peak.max(a);
        }
        drop(inner);
        Busy {
            stats: self.clone(),
            slot,
        }
    }

    fn leave(&self, slot: Slot) {
        let mut inner = self.lock();
        let Some(s) = inner.slots.get_mut(slot) else {
            return;
        };
        s.now = s.now.saturating_sub(1);
        let (function_at, app_at) = (s.function_at, s.app_at);
        if let Some(n) = inner.function_now.get_mut(function_at) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = inner.app_now.get_mut(app_at) {
            *n = n.saturating_sub(1);
        }
    }

    fn finished(
        &self,
        app: &str,
        function: &str,
        version: u32,
        outcome: &str,
        ms: f64,
        start: StartKind,
    ) {
        let mut inner = self.lock();
        let slot = inner.slot(app, function, version);
        let Some(r) = inner.record(slot) else {
            return;
        };
        r.calls += 1;
        if outcome == "ok" {
            r.ok += 1;
        } else if let Some(n) = r.errors.get_mut(outcome) {
            *n += 1;
        } else {
            r.errors.insert(outcome.to_owned(), 1);
        }
        if is_rejection(outcome) {
            r.rejected += 1;
            return;
        }
        let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
        r.total_ms += ms;
        r.max_ms = r.max_ms.max(ms);
        r.durations.record(ms);
        if start != StartKind::Warm {
            r.cold += 1;
        }
    }

    /// Add what is pending to the store. Returns the aggregates written; on
    /// an error they are kept for the next flush (within `MAX_PENDING`).
    pub async fn flush(&self, store: &dyn hearth_store::Store) -> Result<usize, StoreError> {
        let _one = self.flushing.lock().await;
        let (records, dropped) = {
            let mut inner = self.lock();
            let pending = std::mem::take(&mut inner.pending);
            (pending, std::mem::take(&mut inner.dropped))
        };
        if dropped > 0 {
            warn!(
                dropped,
                max = MAX_PENDING,
                "statistics: calls left out, too many aggregates between two flushes; lower stats.flush_interval"
            );
        }
        if records.is_empty() {
            return Ok(0);
        }
        let list: Vec<StatsRecord> = records.values().cloned().collect();
        match store.add_stats(&list).await {
            Ok(()) => Ok(list.len()),
            Err(e) => {
                let mut inner = self.lock();
                for (key, record) in records {
                    if inner.pending.len() >= MAX_PENDING && !inner.pending.contains_key(&key) {
                        inner.dropped += record.calls;
                        continue;
                    }
                    inner
                        .pending
                        .entry(key)
                        .and_modify(|r| r.merge(&record))
                        .or_insert(record);
                }
                Err(e)
            }
        }
    }
}

impl EventSink for Stats {
    fn on_event(&self, event: &Event<'_>) {
        if let Event::CallFinished {
            function,
            version,
            app,
            outcome,
            ms,
            start,
            ..
        } = event
        {
            self.finished(app, function, *version, outcome, *ms, *start);
        }
    }
}

/// One call in flight, counted by [`Stats::enter`] until dropped.
pub struct Busy {
    stats: Arc<Stats>,
    slot: Slot,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stats.leave(self.slot);
    }
}

/// What asking for statistics can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("no application named \"{0}\"")]
    UnknownApp(String),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<StatsError> for ApiError {
    fn from(e: StatsError) -> ApiError {
        match e {
            StatsError::UnknownApp(ref app) => ApiError::new(
                ErrorCode::AppNotFound,
                e.to_string(),
                format!("`hearth stats` (or GET /api/v1/apps) lists the applications there are; a function joins \"{app}\" with app = \"{app}\" in its hearth.toml"),
            ),
            StatsError::Publish(e) => e.into(),
            StatsError::Store(e) => ApiError::new(
                ErrorCode::Internal,
                format!("cannot read or write statistics: {e}"),
                "check the daemon's log and that its data directory is writable",
            ),
        }
    }
}

/// What a set of records comes to, with the peak `peak` picks.
fn call_stats<'a>(
    records: impl IntoIterator<Item = &'a StatsRecord>,
    peak: fn(&StatsRecord) -> u64,
) -> CallStats {
    let mut sum = StatsRecord::default();
    let mut top = 0;
    for r in records {
        sum.merge(r);
        top = top.max(peak(r));
    }
    let ran = sum.calls.saturating_sub(sum.rejected);
    let ratio = |n: u64, of: u64| (of > 0).then(|| n as f64 / of as f64);
    let q = |q: f64| sum.durations.quantile(q, sum.max_ms);
    CallStats {
        calls: sum.calls,
        ok: sum.ok,
        success_rate: ratio(sum.ok, sum.calls),
        rejected: sum.rejected,
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        mean_ms: (ran > 0).then(|| Histogram::round_ms(sum.total_ms / ran as f64)),
        max_ms: (ran > 0).then(|| Histogram::round_ms(sum.max_ms)),
        cold_starts: sum.cold,
        cold_start_ratio: ratio(sum.cold, ran),
        peak_concurrency: top,
        errors: sum.errors,
    }
}

/// A function's statistics from its records (any versions, any apps).
fn function_stats(
    function: &str,
    app: &str,
    window: StatsWindow,
    since: i64,
    records: &[&StatsRecord],
) -> FunctionStats {
    let mut by_version: BTreeMap<u32, Vec<&StatsRecord>> = BTreeMap::new();
    for r in records {
        by_version.entry(r.version).or_default().push(r);
    }
    FunctionStats {
        function: function.to_owned(),
        app: app.to_owned(),
        window,
        since,
        state: String::new(),
        live_version: None,
        stats: call_stats(records.iter().copied(), |r| r.function_peak),
        versions: by_version
            .into_iter()
            .map(|(version, rs)| VersionStats {
                version,
                stats: call_stats(rs, |r| r.peak),
            })
            .collect(),
    }
}

impl Engine {
    /// Write the statistics waiting in memory to the store.
    /// The write runs in a task of its own: a caller that goes away
    /// mid-flush (an HTTP client hanging up) loses nothing.
    pub async fn flush_stats(&self) -> Result<usize, StoreError> {
        let stats = self.stats.clone();
        let store = self.versions.store.clone();
        match tokio::spawn(async move { stats.flush(&*store).await }).await {
            Ok(written) => written,
            Err(e) => {
                warn!(error = %e, "the statistics flush task failed; report this as a bug");
                Ok(0)
            }
        }
    }

    /// Flush statistics every `every` and delete minutes older than
    /// `retention` (at start, then every 10 minutes) until `stop` is ready,
    /// then flush once more (a graceful stop loses none).
    pub async fn keep_stats(
        self: Arc<Self>,
        every: Duration,
        retention: Duration,
        stop: impl std::future::Future<Output = ()> + Send,
    ) {
        let every = every.max(Duration::from_millis(100));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune: Option<tokio::time::Instant> = None;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = &mut stop => break,
            }
            if let Err(e) = self.flush_stats().await {
                warn!(error = %e, "statistics not written; they are kept in memory and written with the next flush");
            }
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(tokio::time::Instant::now());
                let before = now_minute() - (retention.as_secs() / 60) as i64;
                match self.store().prune_stats(before).await {
                    Ok(n) => debug!(minutes = n, "old statistics deleted"),
                    Err(e) => {
                        warn!(error = %e, "old statistics not deleted; retrying in 10 minutes")
                    }
                }
            }
        }
        if let Err(e) = self.flush_stats().await {
            warn!(error = %e, "the last call statistics could not be written to the store");
        }
    }

    /// The first minute of a window, having flushed what is in memory.
    async fn stats_since(&self, window: StatsWindow) -> Result<i64, StatsError> {
        self.flush_stats().await?;
        Ok(now_minute() - window.minutes())
    }

    /// A function's statistics over `window`, split by version.
    pub async fn function_stats(
        &self,
        name: &str,
        window: StatsWindow,
    ) -> Result<FunctionStats, StatsError> {
        let info = self.function(name).await?;
        let since = self.stats_since(window).await?;
        let records = self
            .store()
            .stats(&StatsQuery {
                app: None,
                function: Some(name.to_owned()),
                since_minute: since,
            })
            .await?;
        let records: Vec<&StatsRecord> = records.iter().collect();
        let mut stats = function_stats(name, &info.app, window, since * 60_000, &records);
        stats.state = info.state;
        stats.live_version = info.live_version;
        Ok(stats)
    }

    /// An application's statistics over `window`, with each of its
    /// functions'.
    pub async fn app_stats(&self, app: &str, window: StatsWindow) -> Result<AppStats, StatsError> {
        let functions: Vec<_> = self
            .functions()
            .await?
            .functions
            .into_iter()
            .filter(|f| f.app == app)
            .collect();
        let known = !functions.is_empty()
            || self
                .store()
                .apps()
                .await
                .map_err(PublishError::from)?
                .iter()
                .any(|a| a.name == app);
        let since = self.stats_since(window).await?;
        let records = self
            .store()
            .stats(&StatsQuery {
                app: Some(app.to_owned()),
                function: None,
                since_minute: since,
            })
            .await?;
        if !known && records.is_empty() {
            return Err(StatsError::UnknownApp(app.to_owned()));
        }
        let mut by_function: BTreeMap<&str, Vec<&StatsRecord>> = BTreeMap::new();
        for f in &functions {
            by_function.entry(&f.name).or_default();
        }
        for r in &records {
            by_function.entry(&r.function).or_default().push(r);
        }
        let since_ms = since * 60_000;
        let functions = by_function
            .into_iter()
            .map(|(name, rs)| {
                let mut stats = function_stats(name, app, window, since_ms, &rs);
                if let Some(info) = functions.iter().find(|f| f.name == name) {
                    stats.state = info.state.clone();
                    stats.live_version = info.live_version;
                }
                stats
            })
            .collect();
        Ok(AppStats {
            app: app.to_owned(),
            window,
            since: since_ms,
            stats: call_stats(&records, |r| r.app_peak),
            functions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_outcome() {
        let stats = Arc::new(Stats::default());
        let busy = stats.enter("shop", "cart", 1);
        let second = stats.enter("shop", "cart", 2);
        drop(second);
        drop(busy);
        for _ in 0..7 {
            stats.finished("shop", "cart", 1, "ok", 10.0, StartKind::Warm);
        }
        stats.finished("shop", "cart", 1, "function_error", 20.0, StartKind::Fresh);
        stats.finished("shop", "cart", 1, "rate_limited", 0.1, StartKind::Warm);
        let inner = stats.lock();
        assert!(
            inner.slots.iter().all(|s| s.now == 0),
            "no call left in flight"
        );
        assert!(inner
            .function_now
            .iter()
            .chain(&inner.app_now)
            .all(|n| *n == 0));
        let records: Vec<&StatsRecord> = inner.pending.values().collect();
        let f = function_stats("cart", "shop", StatsWindow::Minute, 0, &records);
        assert_eq!((f.stats.calls, f.stats.ok, f.stats.rejected), (9, 7, 1));
        assert_eq!(f.stats.errors.get("function_error"), Some(&1));
        assert_eq!(f.stats.cold_starts, 1);
        assert_eq!(f.stats.cold_start_ratio, Some(1.0 / 8.0));
        assert_eq!(f.stats.peak_concurrency, 2, "both versions were in flight");
        assert_eq!(f.versions.len(), 2);
        assert_eq!(f.versions[0].stats.peak_concurrency, 1);
        assert_eq!(f.stats.max_ms, Some(20.0));
    }
}
