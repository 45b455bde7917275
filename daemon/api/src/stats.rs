//! `GET /api/v1/apps/{app}/stats` and `GET /api/v1/functions/{name}/stats`:
//! what an application's and a function's calls came to over a window
//! (calls, errors by outcome, success rate, duration percentiles, cold
//! starts, rejections, peak concurrency), with a split per version.
//!
//! Statistics are kept as per-minute aggregates; durations in each minute as
//! a fixed histogram ([`Histogram`]) whose buckets merge exactly over any
//! window, so percentiles over a week are as exact as over a minute: within
//! one bucket, a quarter of an octave (19%).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The outcomes that are refusals at admission (the call never ran): they
/// count as calls and errors, and as `rejected`, but not in durations or
/// cold starts.
pub const REJECTIONS: &[&str] = &[
    "queue_full",
    "overloaded",
    "app_over_budget",
    "crash_loop",
    "rate_limited",
];

/// Whether an outcome is a refusal at admission.
pub fn is_rejection(outcome: &str) -> bool {
    REJECTIONS.contains(&outcome)
}

/// How far back statistics look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StatsWindow {
    #[serde(rename = "1m")]
    Minute,
    #[default]
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
}

impl StatsWindow {
    pub const ALL: &'static [StatsWindow] = &[
        StatsWindow::Minute,
        StatsWindow::Hour,
        StatsWindow::Day,
        StatsWindow::Week,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StatsWindow::Minute => "1m",
            StatsWindow::Hour => "1h",
            StatsWindow::Day => "24h",
            StatsWindow::Week => "7d",
        }
    }

    /// `1m`, `1h`, `24h` or `7d` (also `60m`, `1d`, `168h`, `1w`).
    pub fn parse(text: &str) -> Option<StatsWindow> {
        match text.trim() {
            "1m" => Some(StatsWindow::Minute),
            "1h" | "60m" => Some(StatsWindow::Hour),
            "24h" | "1d" => Some(StatsWindow::Day),
            "7d" | "168h" | "1w" => Some(StatsWindow::Week),
            _ => None,
        }
    }

    /// The whole minutes the window covers before the current one: a window
    /// is those minutes and the current, partial minute (so `1m` always
    /// holds the calls of the last 60 seconds, and up to 120 s of them).
    pub fn minutes(self) -> i64 {
        match self {
            StatsWindow::Minute => 1,
            StatsWindow::Hour => 60,
            StatsWindow::Day => 24 * 60,
            StatsWindow::Week => 7 * 24 * 60,
        }
    }
}

impl std::fmt::Display for StatsWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The query of the statistics routes (`?window=1h`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatsQuery {
    /// How far back: `1m`, `1h` (the default), `24h` or `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<StatsWindow>,
}

/// Durations as a fixed histogram: bucket 0 holds durations under
/// [`Histogram::FIRST_MS`]; bucket `i` (1..=96) holds those from
/// `FIRST_MS·2^((i-1)/4)` up to `FIRST_MS·2^(i/4)` (four buckets per
/// doubling, each 19% wider than the last); the last bucket (97) holds
/// everything from about 28 minutes up. Two histograms merge by adding
/// their buckets, exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Counts by bucket index (only non-empty buckets).
    pub buckets: BTreeMap<u16, u64>,
}

impl Histogram {
    /// The upper bound of bucket 0, in milliseconds.
    pub const FIRST_MS: f64 = 0.1;
    /// Buckets per doubling of the duration.
    pub const PER_OCTAVE: f64 = 4.0;
    /// The index of the last bucket (everything longer).
    pub const LAST: u16 = 97;

    /// The bucket a duration falls in.
    pub fn bucket_of(ms: f64) -> u16 {
        if ms.is_nan() || ms < Self::FIRST_MS {
            return 0;
        }
        let i = ((ms / Self::FIRST_MS).log2() * Self::PER_OCTAVE).floor() as i64 + 1;
        i.clamp(1, i64::from(Self::LAST)) as u16
    }

    /// The upper bound of a bucket, in milliseconds (the last is open).
    pub fn upper_ms(bucket: u16) -> f64 {
        Self::FIRST_MS * 2f64.powf(f64::from(bucket) / Self::PER_OCTAVE)
    }

    pub fn record(&mut self, ms: f64) {
        *self.buckets.entry(Self::bucket_of(ms)).or_default() += 1;
    }

    pub fn add(&mut self, bucket: u16, count: u64) {
        if count > 0 {
            *self.buckets.entry(bucket.min(Self::LAST)).or_default() += count;
        }
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (&b, &n) in &other.buckets {
            self.add(b, n);
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The `q` quantile (0 < q ≤ 1): the upper bound of the bucket the
    /// `ceil(q·n)`-th shortest duration falls in, never more than `max_ms`
    /// (the longest duration seen). None without durations.
    pub fn quantile(&self, q: f64, max_ms: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (&b, &count) in &self.buckets {
            seen += count;
            if seen >= rank {
                let upper = if b >= Self::LAST {
                    max_ms
                } else {
                    Self::upper_ms(b)
                };
                return Some(Self::round_ms(upper.min(max_ms)));
            }
        }
        Some(Self::round_ms(max_ms))
    }

    /// Milliseconds as the API shows them: to the microsecond.
    pub fn round_ms(ms: f64) -> f64 {
        (ms * 1000.0).round() / 1000.0
    }
}

/// What a set of calls came to (a function, one of its versions, or an
/// application).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallStats {
    /// Every call that got an answer or an error, rejections included.
    pub calls: u64,
    /// Calls answered with the function's value.
    pub ok: u64,
    /// Calls that did not succeed, by outcome: `function_error` (the
    /// function raised) or an error code (`timeout`, `queue_full`, ...).
    pub errors: BTreeMap<String, u64>,
    /// `ok / calls`, from 0 to 1; null without calls.
    pub success_rate: Option<f64>,
    /// Calls refused at admission (the outcomes of [`REJECTIONS`]): they
    /// never ran, so durations and cold starts leave them out.
    pub rejected: u64,
    /// Duration percentiles of the calls that ran, in milliseconds (the
    /// upper bound of their histogram bucket: within 19%); null without any.
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Calls that ran on a worker started for them (a pre-started
    /// interpreter or a new process): not warm.
    pub cold_starts: u64,
    /// `cold_starts` over the calls that ran; null without any.
    pub cold_start_ratio: Option<f64>,
    /// The most calls in flight at once (for an application: of its
    /// functions together; for a version: of that version).
    pub peak_concurrency: u64,
}

/// One version's share of a function's calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VersionStats {
    pub version: u32,
    #[serde(flatten)]
    pub stats: CallStats,
}

/// A function's statistics over a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FunctionStats {
    pub function: String,
    pub app: String,
    pub window: StatsWindow,
    /// The first minute the window covers (milliseconds since the epoch).
    pub since: i64,
    /// `draft`, `live` or `crash-loop`; empty for a function no longer stored.
    #[serde(default)]
    pub state: String,
    pub live_version: Option<u32>,
    #[serde(flatten)]
    pub stats: CallStats,
    /// Each version that had calls in the window, in order.
    pub versions: Vec<VersionStats>,
}

/// An application's statistics over a window, with its functions'.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AppStats {
    pub app: String,
    pub window: StatsWindow,
    pub since: i64,
    #[serde(flatten)]
    pub stats: CallStats,
    /// Every function of the application (with or without calls), by name.
    pub functions: Vec<FunctionStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_a_quarter_octave() {
        assert_eq!(Histogram::bucket_of(0.0), 0);
        assert_eq!(Histogram::bucket_of(0.1), 1);
        assert_eq!(Histogram::bucket_of(0.2), 5);
        assert_eq!(Histogram::bucket_of(1e12), Histogram::LAST);
        for ms in [0.5, 3.0, 17.0, 250.0, 9_000.0] {
            let b = Histogram::bucket_of(ms);
            assert!(Histogram::upper_ms(b - 1) <= ms && ms < Histogram::upper_ms(b));
        }
    }

    #[test]
    fn quantiles_merge_exactly() {
        let (mut a, mut b, mut all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for i in 1..=50 {
            a.record(f64::from(i));
            all.record(f64::from(i));
        }
        for i in 51..=100 {
            b.record(f64::from(i));
            all.record(f64::from(i));
        }
        a.merge(&b);
        assert_eq!(a, all);
        let p50 = a.quantile(0.5, 100.0).expect("p50");
        assert!((50.0..50.0 * 1.19).contains(&p50), "{p50}");
        assert_eq!(a.quantile(1.0, 100.0), Some(100.0), "capped at the max");
        assert_eq!(Histogram::default().quantile(0.5, 0.0), None);
    }

    #[test]
    fn windows_parse() {
        for w in StatsWindow::ALL {
            assert_eq!(StatsWindow::parse(w.as_str()), Some(*w));
        }
        assert_eq!(StatsWindow::parse("2h"), None);
    }
}
