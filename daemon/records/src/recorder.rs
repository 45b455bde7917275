//! Records off the call path: a call hands its record to a bounded queue
//! (never waiting: a full queue drops the record and counts it), and one
//! task writes what the queue holds in batches, then applies retention.
//! A watch of the last `seq` written wakes follow streams.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_api::CallRecord;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::codec::Batch;
use crate::{CallStore, RecordRetention};

/// Default of `records.queue_size`: records waiting to be written.
pub const DEFAULT_QUEUE_SIZE: usize = 10_000;
/// A pause after each write, so records are written a few hundred to a
/// transaction at full speed rather than one each (a commit per record
/// cost a quarter of the throughput); records show this much later.
const GATHER: Duration = Duration::from_millis(50);

/// Bytes of records waiting, at most (with `records.queue_size`): past
/// it, records are dropped and counted as for a full queue.
pub const MAX_PENDING_BYTES: usize = 64 << 20;

thread_local! {
    /// Each calling thread's record, encoded before it is copied into the
    /// batch.
    static ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The largest encoding buffer a calling thread keeps.
const SCRATCH_MAX: usize = 256 << 10;

/// The largest batch buffer kept for the next batch.
const SPARE_MAX: usize = 4 << 20;

/// How the recorder runs.
#[derive(Debug, Clone, Copy)]
pub struct RecorderSettings {
    /// Records waiting to be written, at most (at least 1).
    pub queue_size: usize,
    pub retention: RecordRetention,
}

impl Default for RecorderSettings {
    fn default() -> Self {
        RecorderSettings {
            queue_size: DEFAULT_QUEUE_SIZE,
            retention: RecordRetention::default(),
        }
    }
}

/// Takes records from calls and writes them to a [`CallStore`].
///
/// A call encodes its record into the pending [`Batch`] (one short lock,
/// no allocation once the buffer has grown); the writer task swaps the
/// batch for an empty one every [`GATHER`] and hands it to the store. No
/// record is made on one thread and freed on another (that cost the call
/// path more than the writing did: glibc's arenas locked against each
/// other).
pub struct Recorder {
    shared: Arc<Shared>,
    last_seq: watch::Receiver<u64>,
    store: Arc<dyn CallStore>,
    tasks: Mutex<Option<(JoinHandle<()>, JoinHandle<()>)>>,
}

/// What calls and the writer task share.
struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer when the first record of a batch comes.
    arrived: Notify,
    dropped: AtomicU64,
    queue_size: usize,
}

struct Pending {
    batch: Batch,
    /// The writer's spare buffer, swapped in when it takes a batch.
    spare: Option<Batch>,
    /// No more records (shutdown).
    closed: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Recorder {
    /// Start the writer (and the age pruner) on `store`.
    pub async fn start(store: Arc<dyn CallStore>, settings: RecorderSettings) -> Recorder {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                batch: Batch::new(),
                spare: Some(Batch::new()),
                closed: false,
            }),
            arrived: Notify::new(),
            dropped: AtomicU64::new(0),
            queue_size: settings.queue_size.max(1),
        });
        let first = match store.last_seq().await {
            Ok(seq) => seq,
            Err(e) => {
                warn!(error = %e, "cannot read the call records store; follow streams start from the next record");
                0
            }
        };
        let (seq_tx, last_seq) = watch::channel(first);
        let writer = tokio::spawn(write_batches(
            store.clone(),
            shared.clone(),
            seq_tx,
            settings.retention,
        ));
        let pruner = tokio::spawn(prune_by_age(store.clone(), settings.retention));
        Recorder {
            shared,
            last_seq,
            store,
            tasks: Mutex::new(Some((writer, pruner))),
        }
    }

    /// Queue a record; never waits. A full queue drops it (counted, and
    /// shown by [`Recorder::dropped`]).
    pub fn offer(&self, record: &CallRecord) {
        let shared = &self.shared;
        // Encoded on the calling thread, outside the lock: the lock is
        // held for a copy of its bytes.
        let (sent, first) = ENCODED.with_borrow_mut(|entry| {
            entry.clear();
            if crate::codec::encode(record, entry).is_err() {
                return (false, false);
            }
            let sent = self.push_entry(entry, &record.function);
            if entry.capacity() > SCRATCH_MAX {
                // A call that printed a lot: keep no big buffer per thread.
                *entry = Vec::new();
            }
            sent
        });
        if first {
            shared.arrived.notify_one();
        }
        if !sent {
            let before = shared.dropped.fetch_add(1, Ordering::Relaxed);
            // One line for the first drop and one per thousand after.
            if before.is_multiple_of(1000) {
                warn!(
                    dropped = before + 1,
                    "call record queue full: records dropped; raise records.queue_size (--records-queue-size) if this lasts"
                );
            }
        }
    }

    /// Add an encoded entry to the waiting batch if there is room: (added,
    /// first of its batch).
    fn push_entry(&self, entry: &[u8], function: &str) -> (bool, bool) {
        let shared = &self.shared;
        match shared.pending.lock() {
            Ok(mut p)
                if !p.closed
                    && p.batch.len() < shared.queue_size
                    && p.batch.size() < MAX_PENDING_BYTES =>
            {
                let first = p.batch.is_empty();
                p.batch.push_encoded(entry, function);
                (true, first)
            }
            _ => (false, false),
        }
    }

    /// Records lost since the start: dropped for a full queue, or not
    /// written for a store error.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// The highest `seq` written, changing as records are written.
    pub fn last_seq(&self) -> watch::Receiver<u64> {
        self.last_seq.clone()
    }

    pub fn store(&self) -> &Arc<dyn CallStore> {
        &self.store
    }

    /// Write what is queued, then stop (at shutdown): later records are
    /// dropped.
    pub async fn finish(&self) {
        if let Ok(mut p) = self.shared.pending.lock() {
            p.closed = true;
        }
        self.shared.arrived.notify_one();
        let tasks = self.tasks.lock().ok().and_then(|mut t| t.take());
        if let Some((writer, pruner)) = tasks {
            pruner.abort();
            if tokio::time::timeout(Duration::from_secs(10), writer)
                .await
                .is_err()
            {
                warn!("call records still queued after 10 s at shutdown were not written");
            }
        }
        self.store.close().await;
    }
}

/// The batch waiting, swapped for the spare (None: nothing waits); and
/// whether the recorder is closed.
fn take_batch(shared: &Shared) -> (Option<Batch>, bool) {
    let Ok(mut p) = shared.pending.lock() else {
        return (None, true);
    };
    if p.batch.is_empty() {
        return (None, p.closed);
    }
    let fresh = p.spare.take().unwrap_or_default();
    (Some(std::mem::replace(&mut p.batch, fresh)), p.closed)
}

async fn write_batches(
    store: Arc<dyn CallStore>,
    shared: Arc<Shared>,
    seq_tx: watch::Sender<u64>,
    retention: RecordRetention,
) {
    loop {
        let (batch, closed) = take_batch(&shared);
        let Some(mut batch) = batch else {
            if closed {
                return;
            }
            shared.arrived.notified().await;
            continue;
        };
        let functions = if retention.max_bytes_per_function > 0 {
            batch.functions().to_vec()
        } else {
            Vec::new()
        };
        let count = batch.len();
        match store.insert(&mut batch).await {
            Ok(last) => {
                seq_tx.send_replace(last);
            }
            Err(e) => {
                shared.dropped.fetch_add(count as u64, Ordering::Relaxed);
                warn!(error = %e, records = count, "cannot write call records; they are lost (counted as dropped)");
            }
        }
        // Its buffer is the next batch's (none is allocated per batch),
        // unless a burst made it large.
        batch.clear();
        if batch.capacity() > SPARE_MAX {
            batch = Batch::new();
        }
        if let Ok(mut p) = shared.pending.lock() {
            if p.spare.is_none() {
                p.spare = Some(batch);
            }
        }
        if !functions.is_empty() {
            let bytes_only = RecordRetention {
                max_age: Duration::ZERO,
                ..retention
            };
            if let Err(e) = store.prune(&bytes_only, now_ms(), Some(&functions)).await {
                warn!(error = %e, "cannot apply the call records' size limit");
            }
        }
        if !closed {
            tokio::time::sleep(GATHER).await;
        }
    }
}

/// Remove records past `max_age`, at start and then every tenth of it
/// (between 1 s and 1 min).
async fn prune_by_age(store: Arc<dyn CallStore>, retention: RecordRetention) {
    if retention.max_age.is_zero() {
        return;
    }
    let every = (retention.max_age / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let age_only = RecordRetention {
        max_bytes_per_function: 0,
        ..retention
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match store.prune(&age_only, now_ms(), None).await {
            Ok(0) => {}
            Ok(n) => info!(removed = n, "old call records removed (records.max_age)"),
            Err(e) => warn!(error = %e, "cannot remove old call records"),
        }
    }
}
