//! Records off the call path: a call hands its record to a bounded queue
//! (never waiting: a full queue drops the record and counts it), and one
//! task writes what the queue holds in batches, then applies retention.
//! A watch of the last `seq` written wakes follow streams.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_api::CallRecord;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::{CallStore, RecordRetention};

/// Default of `records.queue_size`: records waiting to be written.
pub const DEFAULT_QUEUE_SIZE: usize = 10_000;
/// Most records written in one transaction.
const BATCH: usize = 2048;
/// A pause after each write, so records are written a few hundred to a
/// transaction at full speed rather than one each (a commit per record
/// cost a quarter of the throughput); records show this much later.
const GATHER: Duration = Duration::from_millis(50);

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
pub struct Recorder {
    /// None once finished (at shutdown).
    tx: RwLock<Option<mpsc::Sender<CallRecord>>>,
    dropped: Arc<AtomicU64>,
    last_seq: watch::Receiver<u64>,
    store: Arc<dyn CallStore>,
    tasks: Mutex<Option<(JoinHandle<()>, JoinHandle<()>)>>,
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
        let (tx, rx) = mpsc::channel(settings.queue_size.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
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
            rx,
            seq_tx,
            dropped.clone(),
            settings.retention,
        ));
        let pruner = tokio::spawn(prune_by_age(store.clone(), settings.retention));
        Recorder {
            tx: RwLock::new(Some(tx)),
            dropped,
            last_seq,
            store,
            tasks: Mutex::new(Some((writer, pruner))),
        }
    }

    /// Queue a record; never waits. A full queue drops it (counted, and
    /// shown by [`Recorder::dropped`]).
    pub fn offer(&self, record: CallRecord) {
        let sent = match self.tx.read() {
            Ok(tx) => tx.as_ref().is_some_and(|tx| tx.try_send(record).is_ok()),
            Err(_) => false,
        };
        if !sent {
            let before = self.dropped.fetch_add(1, Ordering::Relaxed);
            // One line for the first drop and one per thousand after.
            if before.is_multiple_of(1000) {
                warn!(
                    dropped = before + 1,
                    "call record queue full: records dropped; raise records.queue_size (--records-queue-size) if this lasts"
                );
            }
        }
    }

    /// Records lost since the start: dropped for a full queue, or not
    /// written for a store error.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
        if let Ok(mut tx) = self.tx.write() {
            tx.take();
        }
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

async fn write_batches(
    store: Arc<dyn CallStore>,
    mut rx: mpsc::Receiver<CallRecord>,
    seq_tx: watch::Sender<u64>,
    dropped: Arc<AtomicU64>,
    retention: RecordRetention,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut functions: Vec<String> = Vec::new();
        if retention.max_bytes_per_function > 0 {
            functions = batch.iter().map(|r| r.function.clone()).collect();
            functions.sort();
            functions.dedup();
        }
        let count = batch.len();
        match store.insert(std::mem::take(&mut batch)).await {
            Ok(last) => {
                seq_tx.send_replace(last);
            }
            Err(e) => {
                dropped.fetch_add(count as u64, Ordering::Relaxed);
                warn!(error = %e, records = count, "cannot write call records; they are lost (counted as dropped)");
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
        batch = Vec::with_capacity(BATCH.min(count.max(16) * 2));
        tokio::time::sleep(GATHER).await;
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
