//! Call records: one per call, kept apart from the code store (their own
//! SQLite file, `<data>/calls.db`) so their volume never contends with
//! it. [`CallStore`] is the trait a back end implements (SQLite now,
//! Postgres later); [`Recorder`] takes records off the call path through a
//! bounded queue, writes them in batches, counts what a full queue drops,
//! and applies retention (by age, and by bytes per function).

mod codec;
mod error;
mod recorder;
mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use hearth_api::{CallQuery, CallRecord};

pub use codec::Batch;
pub use error::{RecordsError, Result};
pub use recorder::{Recorder, RecorderSettings, DEFAULT_QUEUE_SIZE};
pub use sqlite::SqliteCallStore;

/// The file of the SQLite back end in the data directory.
pub const CALLS_DB: &str = "calls.db";

/// How long records are kept, and how many bytes of them per function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRetention {
    /// Records older than this go (zero: no age limit).
    pub max_age: Duration,
    /// The oldest records of a function go once its records take more
    /// than this many bytes (zero: no size limit).
    pub max_bytes_per_function: u64,
}

/// Default of `records.max_age`: 7 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default of `records.max_bytes_per_function`: 64 MiB.
pub const DEFAULT_MAX_BYTES_PER_FUNCTION: u64 = 64 * 1024 * 1024;

impl Default for RecordRetention {
    fn default() -> Self {
        RecordRetention {
            max_age: DEFAULT_MAX_AGE,
            max_bytes_per_function: DEFAULT_MAX_BYTES_PER_FUNCTION,
        }
    }
}

/// Where call records are kept.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Store a batch of records, in order; each gets the next `seq`.
    /// Returns the highest `seq` given. The batch is left empty, its
    /// buffer kept for the next one.
    async fn insert(&self, batch: &mut Batch) -> Result<u64>;
    /// A function's records passing `query`: newest first, or, with
    /// `after_seq`, oldest first from there.
    async fn list(&self, function: &str, query: &CallQuery) -> Result<Vec<CallRecord>>;
    /// One call's record (the latest, should a request id repeat).
    async fn get(&self, request_id: &str) -> Result<Option<CallRecord>>;
    /// The highest `seq` stored (0: none yet).
    async fn last_seq(&self) -> Result<u64>;
    /// Remove records older than `max_age` (from `now_ms`), and the oldest
    /// records of each of `functions` (None: every function) past
    /// `max_bytes_per_function`. Returns how many went.
    async fn prune(
        &self,
        retention: &RecordRetention,
        now_ms: u64,
        functions: Option<&[String]>,
    ) -> Result<u64>;
    async fn close(&self);
}
