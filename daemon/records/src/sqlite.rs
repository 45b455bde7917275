//! The SQLite back end of [`CallStore`]: `<data>/calls.db`, WAL, records
//! kept in blocks.
//!
//! A block is one row per (function, batch): that batch's records of that
//! function (each with its `seq`; MessagePack by position, see
//! [`crate::codec`]; blocks written before schema 4 hold JSON lines and are
//! still read), beside summary columns
//! (seq range, start-time range, count, errors, version range, bytes) that
//! let a query skip a block without reading its records. A record costs
//! its share of one row; a row per call with two indexes cost three b-tree
//! inserts and their pages in the WAL each. `get` finds a block whose
//! request ids are all the daemon's own of one prefix (made from a
//! counter: a batch's are a narrow range, in whatever order its calls
//! ended) by its id range (`min_request_id`..`max_request_id`, a partial
//! index); only the records of other blocks (ids a client chose) have an
//! entry in `call_ids` (request id, seq → block).
//!
//! `seq` stays a global number per record, given by the writer from a
//! counter kept in `meta` (it never goes back, even once every record is
//! gone), so follow streams and `after_seq` work as with a row per call.
//!
//! Every write (records, retention) is made by one thread of its own
//! (`hearth-records`) holding its own connection: a batch is one message
//! to it and one transaction. Reads take a second connection on tokio's
//! blocking pool; WAL lets them run while the writer writes.
//!
//! A calls.db of schema 1 (a row per call, table `calls`) is converted at
//! open, in slices of [`CONVERT_SLICE`] rows, each slice a transaction (an
//! interrupted conversion goes on at the next open); rows whose record
//! cannot be read are kept apart in `calls_unreadable`, never dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hearth_api::{CallQuery, CallRecord, StatusFilter};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use crate::codec::{self, Batch};
use crate::error::{RecordsError, Result};
use crate::{CallStore, RecordRetention};

/// The schema of version 2 (idempotent).
const SCHEMA: &str = "
-- One row per (function, batch): the batch's records of the function as
-- JSON lines in seq order, and what queries skip blocks by. `id` is the
-- first seq the block had when written (unique, never reused).
CREATE TABLE IF NOT EXISTS blocks (
    id INTEGER PRIMARY KEY,
    function TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    min_started_ms INTEGER NOT NULL,
    max_started_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    min_version INTEGER NOT NULL,
    max_version INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    -- The least and greatest request id, and whether the block's ids lie
    -- in a narrow range (ids_sorted: all of them the daemon's own, of one
    -- prefix: a counter's values of one batch, in whatever order calls
    -- ended): then `get` finds the block by its range and it has no
    -- call_ids entries.
    min_request_id TEXT NOT NULL,
    max_request_id TEXT NOT NULL,
    ids_sorted INTEGER NOT NULL,
    records TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS blocks_function_last_seq ON blocks (function, last_seq);
-- `get` in the blocks whose ids came in order: those whose range reaches
-- the id (the newest ids, the ones looked up most, have the fewest).
CREATE INDEX IF NOT EXISTS blocks_sorted_ids ON blocks (max_request_id) WHERE ids_sorted = 1;
-- Where each call's record is, for `get`, for the records of blocks whose
-- ids did not come in order (schema 2 had an entry for every record).
CREATE TABLE IF NOT EXISTS call_ids (
    request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    block INTEGER NOT NULL,
    PRIMARY KEY (request_id, seq)
) WITHOUT ROWID;
-- Bytes of records kept per function (the sum of their JSON lines), kept
-- up to date by every write, so the size limit is checked without
-- summing.
CREATE TABLE IF NOT EXISTS usage (
    function TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
);
-- `last_seq`: the highest seq given.
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// The page size of a new calls.db.
const PAGE_SIZE: i64 = 16 * 1024;

/// `PRAGMA user_version` once the schema is in place. Schema 4 has the
/// tables of 3; its blocks are written as MessagePack BLOBs (a block of
/// JSON lines, TEXT, is still read, and written again in the new form when
/// retention cuts it).
const SCHEMA_VERSION: i64 = 4;

/// Rows of a schema-1 `calls` table converted per transaction.
const CONVERT_SLICE: usize = 5000;

/// The most blocks one `list` looks at, and the most records it decodes:
/// a filter that matches little (a status or version that is rare, a
/// `since_ms` older records pass) stops there and returns what it found.
/// About 0.1 s of reading each.
pub const MAX_LIST_BLOCKS: usize = 100_000;
pub const MAX_LIST_RECORDS: usize = 100_000;

/// A block, new or written over (the same id keeps its later records when
/// retention cut its first ones).
const WRITE_BLOCK: &str = "INSERT INTO blocks (id, function, first_seq, last_seq, min_started_ms,
     max_started_ms, count, errors, min_version, max_version, bytes, min_request_id,
     max_request_id, ids_sorted, records)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
     ON CONFLICT (id) DO UPDATE SET first_seq = excluded.first_seq,
     last_seq = excluded.last_seq, min_started_ms = excluded.min_started_ms,
     max_started_ms = excluded.max_started_ms, count = excluded.count,
     errors = excluded.errors, min_version = excluded.min_version,
     max_version = excluded.max_version, bytes = excluded.bytes,
     min_request_id = excluded.min_request_id, max_request_id = excluded.max_request_id,
     ids_sorted = excluded.ids_sorted, records = excluded.records";
const INSERT_ID: &str =
    "INSERT OR REPLACE INTO call_ids (request_id, seq, block) VALUES (?1, ?2, ?3)";
const DELETE_ID: &str = "DELETE FROM call_ids WHERE request_id = ?1 AND seq = ?2";
const ADD_USAGE: &str = "INSERT INTO usage (function, bytes) VALUES (?1, ?2)
     ON CONFLICT (function) DO UPDATE SET bytes = bytes + excluded.bytes";
const RELEASE_USAGE: &str = "UPDATE usage SET bytes = MAX(bytes - ?2, 0) WHERE function = ?1";
const SET_LAST_SEQ: &str = "INSERT INTO meta (key, value) VALUES ('last_seq', ?1)
     ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)";

/// What the writer thread is asked to do.
enum Job {
    /// Answered with the batch back, emptied (its buffer used again).
    Insert(Batch, oneshot::Sender<(Result<u64>, Batch)>),
    Prune {
        retention: RecordRetention,
        now_ms: u64,
        functions: Option<Vec<String>>,
        done: oneshot::Sender<Result<u64>>,
    },
    Close(oneshot::Sender<()>),
}

pub struct SqliteCallStore {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    reader: Arc<Mutex<Connection>>,
    /// The highest seq given (the writer's counter, once committed).
    last_seq: Arc<AtomicU64>,
}

/// Open `path` with the settings both connections use.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(30))?;
    // Larger pages than the default 4 KiB (only a new file takes it):
    // blocks are appended, and a batch's pages go to the WAL and back to
    // the file a quarter as many times.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Telemetry: a power cut may lose the last records, never corrupt the
    // file (WAL); no fsync on the writer's path.
    conn.pragma_update(None, "synchronous", "OFF")?;
    // Pages of WAL before it is copied back (about 16 MiB).
    conn.pragma_update(None, "wal_autocheckpoint", 1000)?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

/// Is `id` one the daemon made: 16 lowercase hex digits, a prefix per
/// start (and per kind: HTTP or nested) then a counter. The ids of one
/// batch's calls are then a few hundred consecutive counter values, in
/// whatever order the calls ended: a narrow range, which finds them.
fn daemon_made(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A record of a block of JSON lines (schema 3 and before).
fn decode_json(line: &str) -> Result<CallRecord> {
    serde_json::from_str(line).map_err(|e| RecordsError::Corrupt(e.to_string()))
}

/// What deleting a record's `call_ids` entry needs of a JSON line.
#[derive(serde::Deserialize)]
struct Key {
    #[serde(default)]
    seq: u64,
    request_id: String,
}

/// One record of a stored block, not decoded yet.
enum Entry<'a> {
    /// A JSON line (blocks written before schema 4).
    Json(&'a str),
    /// A MessagePack entry, its length prefix left off.
    Packed(&'a [u8]),
}

impl<'a> Entry<'a> {
    fn decode(&self) -> Result<CallRecord> {
        match self {
            Entry::Json(line) => decode_json(line),
            Entry::Packed(bytes) => codec::decode(bytes),
        }
    }

    /// Its seq and request id.
    fn key(&self) -> Result<(u64, std::borrow::Cow<'a, str>)> {
        match self {
            Entry::Json(line) => {
                let key: Key =
                    serde_json::from_str(line).map_err(|e| RecordsError::Corrupt(e.to_string()))?;
                Ok((key.seq, key.request_id.into()))
            }
            Entry::Packed(bytes) => codec::key(bytes).map(|(seq, id)| (seq, id.into())),
        }
    }

    /// Is it (perhaps) the record of `request_id`? Checked without
    /// decoding the whole record.
    fn may_be(&self, request_id: &str, needle: &str) -> Result<bool> {
        match self {
            Entry::Json(line) => Ok(line.contains(needle)),
            Entry::Packed(bytes) => Ok(codec::key(bytes)?.1 == request_id),
        }
    }

    /// What it counts for in the function's bytes.
    fn size(&self) -> i64 {
        match self {
            Entry::Json(line) => line.len() as i64,
            Entry::Packed(bytes) => bytes.len() as i64 + 4,
        }
    }
}

/// A block's records column, as stored.
enum Records {
    Text(String),
    Blob(Vec<u8>),
}

impl Records {
    fn of(value: rusqlite::types::ValueRef<'_>) -> Result<Records> {
        use rusqlite::types::ValueRef;
        match value {
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map(|t| Records::Text(t.to_owned()))
                .map_err(|e| RecordsError::Corrupt(e.to_string())),
            ValueRef::Blob(b) => Ok(Records::Blob(b.to_vec())),
            _ => Err(RecordsError::Corrupt(
                "a block without records (neither text nor blob)".into(),
            )),
        }
    }

    fn entries(&self) -> Result<Vec<Entry<'_>>> {
        entries_of(match self {
            Records::Text(t) => rusqlite::types::ValueRef::Text(t.as_bytes()),
            Records::Blob(b) => rusqlite::types::ValueRef::Blob(b),
        })
    }
}

/// The records of a block's column, in order, as found.
fn entries_of(value: rusqlite::types::ValueRef<'_>) -> Result<Vec<Entry<'_>>> {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Text(t) => Ok(std::str::from_utf8(t)
            .map_err(|e| RecordsError::Corrupt(e.to_string()))?
            .split('\n')
            .filter(|l| !l.is_empty())
            .map(Entry::Json)
            .collect()),
        ValueRef::Blob(b) => Ok(codec::entries(b)?.into_iter().map(Entry::Packed).collect()),
        _ => Err(RecordsError::Corrupt(
            "a block without records (neither text nor blob)".into(),
        )),
    }
}

/// A block being made: its lines and summary.
struct Block {
    id: i64,
    function: String,
    first_seq: i64,
    last_seq: i64,
    min_started: i64,
    max_started: i64,
    count: i64,
    errors: i64,
    min_version: i64,
    max_version: i64,
    bytes: i64,
    min_id: String,
    max_id: String,
    /// Every request id is the daemon's own, of the first one's prefix
    /// (see [`daemon_made`]): the block's ids lie in a narrow range.
    sorted: bool,
    text: Vec<u8>,
}

impl Block {
    fn new(id: i64, function: &str) -> Block {
        Block {
            id,
            function: function.to_owned(),
            first_seq: i64::MAX,
            last_seq: 0,
            min_started: i64::MAX,
            max_started: i64::MIN,
            count: 0,
            errors: 0,
            min_version: i64::MAX,
            max_version: i64::MIN,
            bytes: 0,
            min_id: String::new(),
            max_id: String::new(),
            sorted: true,
            text: Vec::new(),
        }
    }

    /// Add `record` (its seq set), encoded here.
    fn push(&mut self, record: &CallRecord) -> Result<()> {
        let mut entry = Vec::new();
        codec::encode(record, &mut entry)?;
        self.push_entry(&entry[4..])
    }

    /// Add one encoded entry (its seq set), filed by its summary.
    fn push_entry(&mut self, entry: &[u8]) -> Result<()> {
        self.push_summed(&codec::summary(entry)?, entry)
    }

    /// Add `entry`, whose summary is `summary`.
    fn push_summed(&mut self, summary: &codec::Summary<'_>, entry: &[u8]) -> Result<()> {
        if self.text.is_empty() {
            self.text.push(codec::BLOCK_MAGIC);
        }
        let len = u32::try_from(entry.len())
            .map_err(|_| RecordsError::Corrupt("a record over 4 GiB".into()))?;
        self.text.extend_from_slice(&len.to_le_bytes());
        self.text.extend_from_slice(entry);
        let seq = summary.seq as i64;
        let started = summary.started_at_ms as i64;
        let version = i64::from(summary.version);
        self.first_seq = self.first_seq.min(seq);
        self.last_seq = self.last_seq.max(seq);
        self.min_started = self.min_started.min(started);
        self.max_started = self.max_started.max(started);
        self.min_version = self.min_version.min(version);
        self.max_version = self.max_version.max(version);
        let id = summary.request_id;
        if self.count == 0 {
            self.min_id.push_str(id);
            self.max_id.push_str(id);
            self.sorted = daemon_made(id);
        } else {
            self.sorted &= daemon_made(id) && id.get(..8) == self.min_id.get(..8);
            if id < self.min_id.as_str() {
                self.min_id.clear();
                self.min_id.push_str(id);
            }
            if id > self.max_id.as_str() {
                self.max_id.clear();
                self.max_id.push_str(id);
            }
        }
        self.count += 1;
        self.errors += i64::from(!summary.ok);
        self.bytes += entry.len() as i64 + 4;
        Ok(())
    }

    fn insert(&self, tx: &rusqlite::Transaction<'_>) -> Result<()> {
        self.write(tx)?;
        tx.prepare_cached(ADD_USAGE)?
            .execute(params![self.function, self.bytes])?;
        Ok(())
    }

    /// Write over the stored block of the same id (kept its later records).
    fn update(&self, tx: &rusqlite::Transaction<'_>) -> Result<()> {
        self.write(tx)
    }

    fn write(&self, tx: &rusqlite::Transaction<'_>) -> Result<()> {
        tx.prepare_cached(WRITE_BLOCK)?.execute(params![
            self.id,
            self.function,
            self.first_seq,
            self.last_seq,
            self.min_started,
            self.max_started,
            self.count,
            self.errors,
            self.min_version,
            self.max_version,
            self.bytes,
            self.min_id,
            self.max_id,
            self.sorted,
            &self.text[..]
        ])?;
        Ok(())
    }
}

/// Does `name` exist as a table?
fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        params![name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Create or update the schema; the highest seq given so far.
fn prepare_schema(conn: &mut Connection, path: &Path) -> Result<u64> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < SCHEMA_VERSION {
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA)?;
        tx.execute_batch("DROP TABLE IF EXISTS _sqlx_migrations;")?;
        tx.commit()?;
        if has_table(conn, "calls")? {
            convert_rows(conn, path)?;
        }
        let tx = conn.transaction()?;
        // The running totals, made again from the blocks.
        tx.execute_batch(
            "DELETE FROM usage;
             INSERT INTO usage (function, bytes) SELECT function, SUM(bytes) FROM blocks GROUP BY function;",
        )?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
    }
    let counted: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'last_seq'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let stored: i64 = conn.query_row("SELECT COALESCE(MAX(last_seq), 0) FROM blocks", [], |r| {
        r.get(0)
    })?;
    Ok(counted.unwrap_or(0).max(stored).max(0) as u64)
}

/// Schema 1 → 2: the rows of `calls` into blocks (of up to
/// [`CONVERT_SLICE`] rows of a function each), a slice a transaction,
/// oldest first; then `calls` goes.
fn convert_rows(conn: &mut Connection, path: &Path) -> Result<()> {
    let total: i64 = conn.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0))?;
    tracing::info!(
        path = %path.display(),
        records = total,
        "converting the call records store from a row per call (schema 1) to blocks (schema 2); every record is kept"
    );
    // The AUTOINCREMENT counter outlives the rows it numbered: keep it.
    let counter: i64 = if has_table(conn, "sqlite_sequence")? {
        conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'calls'",
            [],
            |r| r.get(0),
        )?
    } else {
        0
    };
    let most: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM calls", [], |r| r.get(0))?;
    conn.execute(SET_LAST_SEQ, params![counter.max(most)])?;
    let (mut converted, mut unreadable) = (0u64, 0u64);
    loop {
        let tx = conn.transaction()?;
        let rows: Vec<(i64, String)> = tx
            .prepare("SELECT seq, record FROM calls ORDER BY seq LIMIT ?1")?
            .query_map(params![CONVERT_SLICE as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let Some(&(cut, _)) = rows.last() else {
            break;
        };
        let mut blocks: Vec<Block> = Vec::new();
        for (seq, text) in &rows {
            let mut record: CallRecord = match serde_json::from_str(text) {
                Ok(r) => r,
                Err(_) => {
                    tx.execute_batch(
                        "CREATE TABLE IF NOT EXISTS calls_unreadable (seq INTEGER PRIMARY KEY, record TEXT NOT NULL)",
                    )?;
                    tx.execute(
                        "INSERT OR REPLACE INTO calls_unreadable (seq, record) VALUES (?1, ?2)",
                        params![seq, text],
                    )?;
                    unreadable += 1;
                    continue;
                }
            };
            record.seq = (*seq).max(0) as u64;
            let at = match blocks.iter().position(|b| b.function == record.function) {
                Some(at) => at,
                None => {
                    blocks.push(Block::new(*seq, &record.function));
                    blocks.len() - 1
                }
            };
            blocks[at].push(&record)?;
            tx.prepare_cached(INSERT_ID)?.execute(params![
                record.request_id,
                seq,
                blocks[at].id
            ])?;
            converted += 1;
        }
        for block in &blocks {
            block.insert(&tx)?;
        }
        tx.execute("DELETE FROM calls WHERE seq <= ?1", params![cut])?;
        tx.commit()?;
    }
    conn.execute_batch("DROP TABLE calls;")?;
    if unreadable > 0 {
        tracing::warn!(
            path = %path.display(),
            unreadable,
            "call records that could not be read were kept apart in the table calls_unreadable of calls.db"
        );
    }
    tracing::info!(path = %path.display(), converted, "call records store converted to blocks");
    Ok(())
}

impl SqliteCallStore {
    /// Open (or create) the records store at `path`, and start its writer.
    /// A store of schema 1 is converted first (see the module's notes).
    pub async fn open(path: &Path) -> Result<SqliteCallStore> {
        let path = path.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || {
            let open_err = |source| RecordsError::Open {
                path: path.display().to_string(),
                source,
            };
            let mut writer = connect(&path).map_err(open_err)?;
            let last = prepare_schema(&mut writer, &path).map_err(|e| match e {
                RecordsError::Query(source) => open_err(source),
                other => other,
            })?;
            let reader = connect(&path).map_err(open_err)?;
            Ok::<_, RecordsError>((writer, reader, path, last))
        })
        .await
        .map_err(|e| RecordsError::Thread(e.to_string()))??;
        let (conn, reader, path, last) = opened;
        let last_seq = Arc::new(AtomicU64::new(last));
        let writer = Writer {
            conn,
            last_seq: last,
            shared: last_seq.clone(),
            spare: Vec::new(),
            batches: 0,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("hearth-records".into())
            .spawn(move || writer.run(rx, path))
            .map_err(|e| RecordsError::Thread(e.to_string()))?;
        Ok(SqliteCallStore {
            jobs: Mutex::new(Some(tx)),
            reader: Arc::new(Mutex::new(reader)),
            last_seq,
        })
    }

    /// Hand `job` to the writer thread.
    fn send(&self, job: Job) -> Result<()> {
        let jobs = self.jobs.lock().map_err(|_| RecordsError::Closed)?;
        jobs.as_ref()
            .ok_or(RecordsError::Closed)?
            .send(job)
            .map_err(|_| RecordsError::Closed)
    }

    /// Run `read` on the reading connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().map_err(|_| RecordsError::Closed)?;
            read(&conn)
        })
        .await
        .map_err(|e| RecordsError::Thread(e.to_string()))?
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    /// The highest seq given.
    last_seq: u64,
    shared: Arc<AtomicU64>,
    /// Text buffers of earlier batches' blocks, used again: a batch's
    /// blocks are a few hundred KiB each, and allocating them anew every
    /// batch left the allocator's heap growing.
    spare: Vec<Vec<u8>>,
    /// Batches written since the start.
    batches: u64,
}

/// Batches between two `PRAGMA shrink_memory` (about every 10 s at full
/// speed).
const SHRINK_EVERY: u64 = 200;

/// Spare block buffers kept, and the largest one kept.
const SPARE_BUFFERS: usize = 8;
const SPARE_BUFFER_MAX: usize = 4 << 20;

/// How much lower than the daemon's the writer thread's priority is (its
/// nice value, added): when both cores are busy, calls go first and records
/// are written in what is left (a full queue drops them, counted).
const WRITER_NICENESS: i32 = 5;

/// Lower the calling thread's priority (nice is per thread on Linux).
fn lower_priority() {
    // SAFETY: gettid and getpriority/setpriority only read and set this
    // thread's scheduling attribute.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        // SCHED_BATCH: its wake-ups do not preempt a running call's thread.
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) != 0 {
            tracing::debug!("cannot make the call records writer a batch thread");
        }
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if libc::setpriority(libc::PRIO_PROCESS, tid, now.saturating_add(WRITER_NICENESS)) != 0 {
            tracing::debug!("cannot lower the call records writer's priority");
        }
    }
}

impl Writer {
    /// Jobs in order until Close (or every sender gone).
    fn run(mut self, jobs: mpsc::Receiver<Job>, path: PathBuf) {
        lower_priority();
        while let Ok(job) = jobs.recv() {
            match job {
                Job::Insert(mut batch, done) => {
                    let written = self.insert(&mut batch);
                    batch.clear();
                    let _ = done.send((written, batch));
                }
                Job::Prune {
                    retention,
                    now_ms,
                    functions,
                    done,
                } => {
                    let _ = done.send(prune(
                        &mut self.conn,
                        &retention,
                        now_ms,
                        functions.as_deref(),
                    ));
                }
                Job::Close(done) => {
                    drop(self);
                    let _ = done.send(());
                    return;
                }
            }
        }
        tracing::debug!(path = %path.display(), "call records writer stopped");
    }

    /// One block per function of the batch, and an id entry per record
    /// of a block whose ids did not come in order.
    fn insert(&mut self, batch: &mut Batch) -> Result<u64> {
        let mut seq = self.last_seq;
        let tx = self.conn.transaction()?;
        let mut blocks: Vec<Block> = Vec::new();
        // (request id, seq, block) of the records whose block may need them.
        let mut ids: Vec<(String, i64, usize)> = Vec::new();
        for entry in batch.entries_mut() {
            let entry = entry?;
            seq += 1;
            codec::set_seq(entry, seq)?;
            let summary = codec::summary(entry)?;
            let at = match blocks.iter().position(|b| b.function == summary.function) {
                Some(at) => at,
                None => {
                    let mut block = Block::new(seq as i64, summary.function);
                    if let Some(text) = self.spare.pop() {
                        block.text = text;
                    }
                    blocks.push(block);
                    blocks.len() - 1
                }
            };
            let block = &mut blocks[at];
            let in_order = block.sorted;
            block.push_summed(&summary, entry)?;
            // Kept only once the block's ids have left their order (rare:
            // ids a client chose), from then on; those before are found
            // from the entries when needed.
            if !block.sorted {
                if in_order {
                    // The block's earlier records need theirs too.
                    for e in codec::entries(&block.text)? {
                        let (s, id) = codec::key(e)?;
                        if s != seq {
                            ids.push((id.to_owned(), s as i64, at));
                        }
                    }
                }
                ids.push((summary.request_id.to_owned(), seq as i64, at));
            }
        }
        if !ids.is_empty() {
            let mut insert = tx.prepare_cached(INSERT_ID)?;
            for (id, seq, at) in &ids {
                insert.execute(params![id, seq, blocks[*at].id])?;
            }
        }
        for block in &blocks {
            block.insert(&tx)?;
        }
        tx.prepare_cached(SET_LAST_SEQ)?
            .execute(params![seq as i64])?;
        tx.commit()?;
        self.last_seq = seq;
        self.shared.store(seq, Ordering::Release);
        self.batches += 1;
        if self.batches.is_multiple_of(SHRINK_EVERY) {
            // SQLite's page cache outgrew cache_size as retention freed
            // and reused pages (sqlite3_db_status CACHE_USED: 2.7 MiB after
            // 150,000 records, 4.5 MiB after 650,000, rising; a lower
            // cache_size did not hold it): give it back now and then.
            if let Err(e) = self.conn.execute_batch("PRAGMA shrink_memory;") {
                tracing::debug!(error = %e, "cannot shrink the records writer's cache");
            }
        }
        for block in blocks {
            let mut text = block.text;
            if self.spare.len() < SPARE_BUFFERS && text.capacity() <= SPARE_BUFFER_MAX {
                text.clear();
                self.spare.push(text);
            }
        }
        Ok(seq)
    }
}

/// Count `bytes` of `function`'s records as gone.
fn release(tx: &rusqlite::Transaction<'_>, function: &str, bytes: i64) -> Result<()> {
    tx.prepare_cached(RELEASE_USAGE)?
        .execute(params![function, bytes])?;
    Ok(())
}

/// Forget where the record of `entry` was.
fn forget(tx: &rusqlite::Transaction<'_>, entry: &Entry<'_>) -> Result<()> {
    let (seq, request_id) = entry.key()?;
    tx.prepare_cached(DELETE_ID)?
        .execute(params![request_id, seq as i64])?;
    Ok(())
}

/// A stored block's row, as retention reads it.
struct Stored {
    id: i64,
    function: String,
    min_started: i64,
    max_started: i64,
    count: i64,
    bytes: i64,
    min_id: String,
    max_id: String,
    sorted: bool,
}

/// The columns of [`Stored`], in its order: not its records, read only
/// when they are needed (a block cut in two, or one whose ids have
/// entries to remove), so retention does not read what it deletes.
const STORED: &str = "id, function, min_started_ms, max_started_ms, count, bytes, min_request_id,
     max_request_id, ids_sorted";

/// The records of block `id`.
fn block_text(tx: &rusqlite::Transaction<'_>, id: i64) -> Result<Records> {
    let mut stmt = tx.prepare_cached("SELECT records FROM blocks WHERE id = ?1")?;
    let mut rows = stmt.query(params![id])?;
    match rows.next()? {
        Some(row) => Records::of(row.get_ref(0)?),
        None => Err(RecordsError::Corrupt(format!("block {id} went while read"))),
    }
}

impl Stored {
    fn of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
        Ok(Stored {
            id: r.get(0)?,
            function: r.get(1)?,
            min_started: r.get(2)?,
            max_started: r.get(3)?,
            count: r.get(4)?,
            bytes: r.get(5)?,
            min_id: r.get(6)?,
            max_id: r.get(7)?,
            sorted: r.get(8)?,
        })
    }
}

/// Remove a block whole, its call_ids entries with it: as one range of
/// the tree when its ids came in order (no line decoded; the range holds
/// only entries of calls of the same moments), else one by one.
fn drop_block(tx: &rusqlite::Transaction<'_>, block: &Stored) -> Result<()> {
    let Stored {
        id,
        function,
        bytes,
        ..
    } = block;
    if block.sorted {
        tx.prepare_cached(
            "DELETE FROM call_ids WHERE request_id >= ?1 AND request_id <= ?2 AND block = ?3",
        )?
        .execute(params![block.min_id, block.max_id, id])?;
    } else {
        for entry in block_text(tx, *id)?.entries()? {
            forget(tx, &entry)?;
        }
    }
    tx.prepare_cached("DELETE FROM blocks WHERE id = ?1")?
        .execute(params![id])?;
    release(tx, function, *bytes)
}

/// Remove the first records of block `id` while `cut` says so (given each
/// record's start time and its bytes), keeping the rest; how many went and
/// their bytes. Packed records kept are copied as they are, not decoded.
fn cut_block(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    function: &str,
    records: &Records,
    mut cut: impl FnMut(u64, i64) -> bool,
) -> Result<(u64, i64)> {
    let mut kept = Block::new(id, function);
    let (mut count, mut freed) = (0u64, 0i64);
    let mut cutting = true;
    let mut kept_bytes_before = 0i64;
    for entry in records.entries()? {
        let size = entry.size();
        let started = match &entry {
            Entry::Packed(bytes) => codec::summary(bytes)?.started_at_ms,
            Entry::Json(_) => entry.decode()?.started_at_ms,
        };
        if cutting && cut(started, size) {
            forget(tx, &entry)?;
            count += 1;
            freed += size;
        } else {
            cutting = false;
            kept_bytes_before += size;
            match entry {
                Entry::Packed(bytes) => kept.push_entry(bytes)?,
                // A JSON line is kept in the new form.
                Entry::Json(_) => kept.push(&entry.decode()?)?,
            }
        }
    }
    // A block kept in another form may no longer be found by its id range
    // (its ids made elsewhere): its records get call_ids entries.
    if count > 0 && !kept.sorted {
        let mut insert = tx.prepare_cached(INSERT_ID)?;
        for e in codec::entries(&kept.text)? {
            let (seq, request_id) = codec::key(e)?;
            insert.execute(params![request_id, seq as i64, id])?;
        }
    }
    // Kept JSON lines take other bytes once packed: the difference is
    // released too, so the running total stays the sum of the blocks.
    freed += kept_bytes_before - kept.bytes;
    if count > 0 {
        if kept.count == 0 {
            tx.prepare_cached("DELETE FROM blocks WHERE id = ?1")?
                .execute(params![id])?;
        } else {
            kept.update(tx)?;
        }
        release(tx, function, freed)?;
    }
    Ok((count, freed))
}

fn prune(
    conn: &mut Connection,
    retention: &RecordRetention,
    now_ms: u64,
    functions: Option<&[String]>,
) -> Result<u64> {
    let mut removed = 0u64;
    if !retention.max_age.is_zero() {
        let cutoff = now_ms.saturating_sub(retention.max_age.as_millis() as u64) as i64;
        // Oldest blocks first (by id: the order they were written in), a
        // slice at a time, up to the first record young enough to stay:
        // whole blocks while all their records are too old, then the old
        // first records of the block that has both.
        'age: loop {
            let tx = conn.transaction()?;
            let oldest: Vec<Stored> = tx
                .prepare_cached(&format!("SELECT {STORED} FROM blocks ORDER BY id LIMIT 64"))?
                .query_map([], Stored::of)?
                .collect::<rusqlite::Result<_>>()?;
            let mut stop = oldest.len() < 64;
            for block in &oldest {
                if block.max_started < cutoff {
                    drop_block(&tx, block)?;
                    removed += block.count.max(0) as u64;
                } else {
                    if block.min_started < cutoff {
                        let (n, _) = cut_block(
                            &tx,
                            block.id,
                            &block.function,
                            &block_text(&tx, block.id)?,
                            |started, _| (started as i64) < cutoff,
                        )?;
                        removed += n;
                    }
                    stop = true;
                    break;
                }
            }
            tx.commit()?;
            if stop {
                break 'age;
            }
        }
    }
    if retention.max_bytes_per_function > 0 {
        let cap = i64::try_from(retention.max_bytes_per_function).unwrap_or(i64::MAX);
        let over: Vec<(String, i64)> = conn
            .prepare_cached("SELECT function, bytes FROM usage WHERE bytes > ?1")?
            .query_map(params![cap], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (function, mut bytes) in over {
            if functions.is_some_and(|only| !only.contains(&function)) {
                continue;
            }
            // Down to nine tenths of the cap, oldest first: whole blocks
            // while that leaves at least the target, then the first
            // records of the next block (the cap is not met again by the
            // next batch).
            let target = cap - cap / 10;
            while bytes > target {
                let tx = conn.transaction()?;
                let oldest: Vec<Stored> = tx
                    .prepare_cached(&format!(
                        "SELECT {STORED} FROM blocks WHERE function = ?1 ORDER BY last_seq LIMIT 16"
                    ))?
                    .query_map(params![function], Stored::of)?
                    .collect::<rusqlite::Result<_>>()?;
                if oldest.is_empty() {
                    release(&tx, &function, bytes)?;
                    tx.commit()?;
                    break;
                }
                for block in &oldest {
                    if bytes - block.bytes >= target {
                        drop_block(&tx, block)?;
                        removed += block.count.max(0) as u64;
                        bytes -= block.bytes;
                    } else {
                        let mut left = bytes;
                        let (n, freed) = cut_block(
                            &tx,
                            block.id,
                            &function,
                            &block_text(&tx, block.id)?,
                            |_, size| {
                                let go = left > target;
                                if go {
                                    left -= size;
                                }
                                go
                            },
                        )?;
                        removed += n;
                        bytes -= freed;
                        break;
                    }
                }
                tx.commit()?;
            }
        }
    }
    Ok(removed)
}

/// `"request_id":"<id>"` as it stands in a record's line: lines without it
/// are not that call's (and are not decoded).
fn id_needle(request_id: &str) -> String {
    format!(
        "\"request_id\":{}",
        serde_json::to_string(request_id).unwrap_or_default()
    )
}

/// The record of `seq` and `request_id` in a block's `records`, if
/// still there.
fn find(
    records: rusqlite::types::ValueRef<'_>,
    seq: u64,
    request_id: &str,
    needle: &str,
) -> Result<Option<CallRecord>> {
    for entry in entries_of(records)? {
        if entry.may_be(request_id, needle)? {
            let record = entry.decode()?;
            if record.seq == seq {
                return Ok(Some(record));
            }
        }
    }
    Ok(None)
}

/// Records of `request_id` (newest first, at most `most`): in the blocks
/// whose ids came in order and whose range holds it, and from `call_ids`
/// for the others (an entry whose block or record went is passed over).
fn by_id(conn: &Connection, request_id: &str, most: usize) -> Result<Vec<CallRecord>> {
    let needle = id_needle(request_id);
    let mut found: Vec<CallRecord> = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT records FROM blocks
         WHERE ids_sorted = 1 AND max_request_id >= ?1 AND min_request_id <= ?1",
    )?;
    let mut rows = stmt.query(params![request_id])?;
    while let Some(row) = rows.next()? {
        for entry in entries_of(row.get_ref(0)?)? {
            if entry.may_be(request_id, &needle)? {
                let record = entry.decode()?;
                if record.request_id == request_id {
                    found.push(record);
                }
            }
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT c.seq, b.records FROM call_ids c JOIN blocks b ON b.id = c.block
         WHERE c.request_id = ?1 ORDER BY c.seq DESC",
    )?;
    let mut rows = stmt.query(params![request_id])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        if found.iter().any(|r| r.seq as i64 == seq) {
            continue; // a schema-2 block: found by its range too
        }
        if let Some(record) = find(row.get_ref(1)?, seq.max(0) as u64, request_id, &needle)? {
            found.push(record);
        }
        if found.len() >= most.saturating_mul(2) {
            break;
        }
    }
    found.sort_by_key(|r| std::cmp::Reverse(r.seq));
    found.truncate(most);
    Ok(found)
}

/// Can a block of this summary hold a record `query` passes?
fn may_match(
    query: &CallQuery,
    errors: i64,
    count: i64,
    versions: (i64, i64),
    max_started: i64,
) -> bool {
    query.since_ms.is_none_or(|t| max_started >= t as i64)
        && query.status.is_none_or(|s| match s {
            StatusFilter::Ok => errors < count,
            StatusFilter::Error => errors > 0,
        })
        && query
            .version
            .is_none_or(|v| (versions.0..=versions.1).contains(&i64::from(v)))
}

/// `list` on the reading connection: see [`CallStore::list`]; bounded by
/// [`MAX_LIST_BLOCKS`] and [`MAX_LIST_RECORDS`].
fn list_blocks(conn: &Connection, function: &str, query: &CallQuery) -> Result<Vec<CallRecord>> {
    let limit = query.limit() as usize;
    if let Some(id) = &query.request_id {
        let mut found: Vec<CallRecord> = by_id(conn, id, MAX_LIST_RECORDS)?
            .into_iter()
            .filter(|r| {
                r.function == function
                    && query.after_seq.is_none_or(|a| r.seq > a)
                    && query.matches(r)
            })
            .collect();
        if query.after_seq.is_some() {
            found.reverse();
        }
        found.truncate(limit);
        return Ok(found);
    }
    let after = query.after_seq;
    let mut stmt = conn.prepare_cached(if after.is_some() {
        "SELECT errors, count, min_version, max_version, max_started_ms, records FROM blocks
         WHERE function = ?1 AND last_seq > ?2 ORDER BY last_seq ASC"
    } else {
        "SELECT errors, count, min_version, max_version, max_started_ms, records FROM blocks
         WHERE function = ?1 AND last_seq > ?2 ORDER BY last_seq DESC"
    })?;
    let mut rows = stmt.query(params![
        function,
        after.unwrap_or(0).min(i64::MAX as u64) as i64
    ])?;
    let mut out = Vec::new();
    let (mut blocks, mut decoded) = (0usize, 0usize);
    while let Some(row) = rows.next()? {
        blocks += 1;
        if blocks > MAX_LIST_BLOCKS || decoded >= MAX_LIST_RECORDS {
            break;
        }
        let (errors, count): (i64, i64) = (row.get(0)?, row.get(1)?);
        let versions: (i64, i64) = (row.get(2)?, row.get(3)?);
        if !may_match(query, errors, count, versions, row.get(4)?) {
            continue;
        }
        // Only now is the block's text read (its overflow pages).
        let entries = entries_of(row.get_ref(5)?)?;
        let mut take = |entry: &Entry<'_>| -> Result<bool> {
            decoded += 1;
            let record = entry.decode()?;
            if after.is_none_or(|a| record.seq > a) && query.matches(&record) {
                out.push(record);
            }
            Ok(out.len() >= limit)
        };
        let full = if after.is_some() {
            let mut full = false;
            for entry in &entries {
                if take(entry)? {
                    full = true;
                    break;
                }
            }
            full
        } else {
            let mut full = false;
            for entry in entries.iter().rev() {
                if take(entry)? {
                    full = true;
                    break;
                }
            }
            full
        };
        if full {
            break;
        }
    }
    Ok(out)
}

#[async_trait]
impl CallStore for SqliteCallStore {
    async fn insert(&self, batch: &mut Batch) -> Result<u64> {
        if batch.is_empty() {
            return self.last_seq().await;
        }
        let (done, answer) = oneshot::channel();
        self.send(Job::Insert(std::mem::take(batch), done))?;
        let (written, back) = answer.await.map_err(|_| RecordsError::Closed)?;
        *batch = back;
        written
    }

    async fn list(&self, function: &str, query: &CallQuery) -> Result<Vec<CallRecord>> {
        let (function, query) = (function.to_owned(), query.clone());
        self.read(move |conn| list_blocks(conn, &function, &query))
            .await
    }

    async fn get(&self, request_id: &str) -> Result<Option<CallRecord>> {
        let id = request_id.to_owned();
        self.read(move |conn| Ok(by_id(conn, &id, 1)?.pop())).await
    }

    /// The highest seq given (kept across restarts and retention).
    async fn last_seq(&self) -> Result<u64> {
        Ok(self.last_seq.load(Ordering::Acquire))
    }

    async fn prune(
        &self,
        retention: &RecordRetention,
        now_ms: u64,
        functions: Option<&[String]>,
    ) -> Result<u64> {
        let (done, answer) = oneshot::channel();
        self.send(Job::Prune {
            retention: *retention,
            now_ms,
            functions: functions.map(<[String]>::to_vec),
            done,
        })?;
        answer.await.map_err(|_| RecordsError::Closed)?
    }

    async fn close(&self) {
        let jobs = self.jobs.lock().ok().and_then(|mut j| j.take());
        if let Some(jobs) = jobs {
            let (done, closed) = oneshot::channel();
            if jobs.send(Job::Close(done)).is_ok() {
                let _ = closed.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of `function`'s records, as the running total has them.
    async fn usage_of(store: &SqliteCallStore, function: &'static str) -> i64 {
        store
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT bytes FROM usage WHERE function = ?1",
                    params![function],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap()
    }

    /// `call_ids` entries of the blocks of `function`.
    async fn id_entries(store: &SqliteCallStore, function: &'static str) -> i64 {
        store
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM call_ids c JOIN blocks b ON b.id = c.block
                     WHERE b.function = ?1",
                    params![function],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap()
    }

    /// A request id as the daemon makes them (one prefix, a counter).
    fn hid(i: u64) -> String {
        format!("5a5a5a5a{i:08x}")
    }

    fn packed(records: &[CallRecord]) -> Batch {
        Batch::of(records).unwrap()
    }

    fn record(function: &str, id: &str, started_at_ms: u64, code: &str) -> CallRecord {
        CallRecord {
            request_id: id.into(),
            function: function.into(),
            version: 1,
            code: code.into(),
            outcome: hearth_api::outcome_class(code).into(),
            started_at_ms,
            ..CallRecord::default()
        }
    }

    fn ids(records: &[CallRecord]) -> Vec<&str> {
        records.iter().map(|r| r.request_id.as_str()).collect()
    }

    #[tokio::test]
    async fn stores_lists_filters_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteCallStore::open(&dir.path().join("calls.db"))
            .await
            .unwrap();
        assert_eq!(store.last_seq().await.unwrap(), 0);
        let last = store
            .insert(&mut packed(&[
                record("f", "a", 1_000, "ok"),
                record("f", "b", 2_000, "timeout"),
                record("g", "c", 3_000, "ok"),
            ]))
            .await
            .unwrap();
        assert_eq!(last, 3);
        let all = store.list("f", &CallQuery::default()).await.unwrap();
        assert_eq!(ids(&all), ["b", "a"], "newest first, only f's");
        assert_eq!(all[0].seq, 2);
        let errors = CallQuery {
            status: Some(StatusFilter::Error),
            ..CallQuery::default()
        };
        let got = store.list("f", &errors).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].request_id, "b");
        let after = CallQuery {
            after_seq: Some(1),
            ..CallQuery::default()
        };
        let got = store.list("f", &after).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].request_id, "b");
        assert_eq!(store.get("c").await.unwrap().unwrap().function, "g");
        assert!(store.get("zz").await.unwrap().is_none());

        // By age: everything before 2.5 s goes.
        let by_age = RecordRetention {
            max_age: Duration::from_millis(1_000),
            max_bytes_per_function: 0,
        };
        assert_eq!(store.prune(&by_age, 3_500, None).await.unwrap(), 2);
        assert!(store.get("a").await.unwrap().is_none());
        assert!(store.get("c").await.unwrap().is_some());

        // By bytes: only the newest records that fit stay, though they
        // were written as one block.
        let many: Vec<_> = (0..10)
            .map(|i| record("h", &hid(i), 10_000 + i, "ok"))
            .collect();
        store.insert(&mut packed(&many.clone())).await.unwrap();
        let (stored, blob): (i64, Vec<u8>) = store
            .read(|c| {
                Ok(c.query_row(
                    "SELECT bytes, records FROM blocks WHERE function = 'h'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await
            .unwrap();
        let entries = codec::entries(&blob).unwrap();
        assert_eq!(entries.len(), 10, "one block, an entry per record");
        let sum: usize = entries.iter().map(|e| e.len() + 4).sum();
        assert_eq!(
            stored as usize, sum,
            "a block's bytes are its records' entries"
        );
        let size = entries[0].len() as u64 + 4;
        let usage: i64 = usage_of(&store, "h").await;
        assert_eq!(usage, stored);
        let by_bytes = RecordRetention {
            max_age: Duration::ZERO,
            max_bytes_per_function: size * 3 + size / 2,
        };
        assert_eq!(
            store
                .prune(&by_bytes, 20_000, Some(&["h".to_owned()]))
                .await
                .unwrap(),
            7
        );
        let kept = store.list("h", &CallQuery::default()).await.unwrap();
        assert_eq!(ids(&kept), [hid(9), hid(8), hid(7)]);
        assert!(
            store.get(&hid(6)).await.unwrap().is_none(),
            "cut from its block"
        );
        assert_eq!(
            store.get(&hid(7)).await.unwrap().unwrap().request_id,
            hid(7)
        );
        let usage: i64 = usage_of(&store, "h").await;
        let left: usize = kept
            .iter()
            .map(|r| codec::encode(r, &mut Vec::new()).unwrap())
            .sum();
        assert_eq!(usage as usize, left, "usage follows what stays");
        let entries: i64 = id_entries(&store, "h").await;
        assert_eq!(
            entries, 0,
            "blocks of the daemon's own ids are found by their range, with no entries"
        );
        assert!(store.get("c").await.unwrap().is_some(), "g is untouched");

        // Ids out of order (a client's own): an entry each, found by them,
        // and gone with their block.
        store
            .insert(&mut packed(&[
                record("k", "zeta", 30_000, "ok"),
                record("k", "alpha", 30_001, "ok"),
                record("k", "mid", 30_002, "timeout"),
            ]))
            .await
            .unwrap();
        assert_eq!(id_entries(&store, "k").await, 3);
        assert_eq!(store.get("mid").await.unwrap().unwrap().code, "timeout");
        assert_eq!(store.get("zeta").await.unwrap().unwrap().function, "k");
        // A repeated id: the latest record.
        store
            .insert(&mut packed(&[record(
                "k",
                "zeta",
                30_005,
                "function_error",
            )]))
            .await
            .unwrap();
        assert_eq!(
            store.get("zeta").await.unwrap().unwrap().code,
            "function_error"
        );
        let by_age = RecordRetention {
            max_age: Duration::from_millis(1),
            max_bytes_per_function: 0,
        };
        store.prune(&by_age, 30_004, None).await.unwrap();
        assert!(store.get("mid").await.unwrap().is_none());
        assert_eq!(
            id_entries(&store, "k").await,
            1,
            "entries went with their block (the later zeta's block keeps its own)"
        );
        assert_eq!(
            store.get("zeta").await.unwrap().unwrap().code,
            "function_error"
        );
    }

    #[tokio::test]
    async fn lists_across_blocks_and_keeps_seq_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.db");
        let store = SqliteCallStore::open(&path).await.unwrap();
        // Five batches of four records of f, with one of g between.
        for b in 0..5u64 {
            let mut batch: Vec<_> = (0..4)
                .map(|i| {
                    let mut r = record("f", &format!("f{b}-{i}"), 1_000 * b + i, "ok");
                    r.version = b as u32 + 1;
                    r
                })
                .collect();
            batch[2].code = if b == 3 {
                "timeout".into()
            } else {
                "ok".into()
            };
            batch.insert(1, record("g", &format!("g{b}"), 1_000 * b, "ok"));
            store.insert(&mut packed(&batch)).await.unwrap();
        }
        assert_eq!(store.last_seq().await.unwrap(), 25);
        let q = |f: fn(&mut CallQuery)| {
            let mut q = CallQuery::default();
            f(&mut q);
            q
        };
        let newest = store.list("f", &q(|q| q.limit = Some(6))).await.unwrap();
        assert_eq!(
            ids(&newest),
            ["f4-3", "f4-2", "f4-1", "f4-0", "f3-3", "f3-2"]
        );
        let seqs: Vec<u64> = newest.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [25, 24, 23, 21, 20, 19]);
        let from = store
            .list(
                "f",
                &q(|q| {
                    q.after_seq = Some(19);
                    q.limit = Some(3)
                }),
            )
            .await
            .unwrap();
        assert_eq!(
            ids(&from),
            ["f3-3", "f4-0", "f4-1"],
            "oldest first after 19"
        );
        let v2 = store.list("f", &q(|q| q.version = Some(2))).await.unwrap();
        assert_eq!(ids(&v2), ["f1-3", "f1-2", "f1-1", "f1-0"]);
        let bad = store
            .list("f", &q(|q| q.status = Some(StatusFilter::Error)))
            .await
            .unwrap();
        assert_eq!(ids(&bad), ["f3-2"]);
        let since = store
            .list("f", &q(|q| q.since_ms = Some(4_002)))
            .await
            .unwrap();
        assert_eq!(ids(&since), ["f4-3", "f4-2"]);
        let one = store
            .list("f", &q(|q| q.request_id = Some("f2-1".into())))
            .await
            .unwrap();
        assert_eq!(ids(&one), ["f2-1"]);
        let wrong = store
            .list("g", &q(|q| q.request_id = Some("f2-1".into())))
            .await
            .unwrap();
        assert!(wrong.is_empty(), "another function's call");
        // A repeated request id: get answers the latest. (Ids out of
        // order: their entries go one by one.)
        store
            .insert(&mut packed(&[
                record("g", "zz", 9_000, "ok"),
                record("g", "f2-1", 9_000, "ok"),
            ]))
            .await
            .unwrap();
        assert_eq!(store.get("f2-1").await.unwrap().unwrap().function, "g");

        // Everything goes by age; seq still never goes back.
        let by_age = RecordRetention {
            max_age: Duration::from_millis(1),
            max_bytes_per_function: 0,
        };
        assert_eq!(store.prune(&by_age, 1_000_000, None).await.unwrap(), 27);
        let entries: i64 = store
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM call_ids", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(entries, 0, "no call_ids entry outlives its block");
        store.close().await;
        let store = SqliteCallStore::open(&path).await.unwrap();
        assert_eq!(store.last_seq().await.unwrap(), 27);
        assert_eq!(
            store
                .insert(&mut packed(&[record("f", "n", 1, "ok")]))
                .await
                .unwrap(),
            28
        );
        assert_eq!(store.get("n").await.unwrap().unwrap().seq, 28);
    }

    /// The daemon's own ids of one batch, in whatever order their calls
    /// ended, are found by their block's range (no call_ids entries); a
    /// block that mixes prefixes gets entries.
    #[tokio::test]
    async fn the_daemons_ids_out_of_order_are_found_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteCallStore::open(&dir.path().join("calls.db"))
            .await
            .unwrap();
        let other = "7b7b7b7b00000004".to_owned();
        store
            .insert(&mut packed(&[
                record("m", &hid(5), 1, "ok"),
                record("m", &hid(3), 2, "ok"),
                record("m", &hid(4), 3, "ok"),
                record("n", &hid(6), 4, "ok"),
                record("n", &other, 5, "ok"),
            ]))
            .await
            .unwrap();
        assert_eq!(id_entries(&store, "m").await, 0);
        assert_eq!(id_entries(&store, "n").await, 2);
        for id in [hid(3), hid(4), hid(5), hid(6), other] {
            assert_eq!(store.get(&id).await.unwrap().unwrap().request_id, id);
        }
        assert!(store.get(&hid(7)).await.unwrap().is_none());
    }

    /// Blocks of JSON lines (schema 3) are read beside packed ones: listed,
    /// found by id, and packed when retention cuts them, their bytes
    /// following.
    #[tokio::test]
    async fn reads_blocks_of_json_lines_of_schema_3() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.db");
        SqliteCallStore::open(&path).await.unwrap().close().await;
        {
            // What schema 3 wrote: a TEXT column of JSON lines.
            let conn = Connection::open(&path).unwrap();
            let mut old: Vec<CallRecord> = (0..4)
                .map(|i| record("f", &format!("old-{i}"), 1_000 + i, "ok"))
                .collect();
            old[3].code = "timeout".into();
            let mut lines = Vec::new();
            for (i, r) in old.iter_mut().enumerate() {
                r.seq = 1 + i as u64;
                lines.push(serde_json::to_string(r).unwrap());
            }
            let bytes: usize = lines.iter().map(String::len).sum();
            conn.execute(
                "INSERT INTO blocks VALUES (1, 'f', 1, 4, 1000, 1003, 4, 1, 1, 1, ?1,
                 'old-0', 'old-3', 1, ?2)",
                params![bytes as i64, lines.join("\n")],
            )
            .unwrap();
            conn.execute_batch("INSERT INTO meta VALUES ('last_seq', 4); PRAGMA user_version = 3;")
                .unwrap();
        }
        let store = SqliteCallStore::open(&path).await.unwrap();
        store
            .insert(&mut packed(&[record("f", "new-1", 5_000, "ok")]))
            .await
            .unwrap();
        let all = store.list("f", &CallQuery::default()).await.unwrap();
        assert_eq!(ids(&all), ["new-1", "old-3", "old-2", "old-1", "old-0"]);
        assert_eq!(store.get("old-2").await.unwrap().unwrap().seq, 3);
        let errors = CallQuery {
            status: Some(StatusFilter::Error),
            ..Default::default()
        };
        assert_eq!(ids(&store.list("f", &errors).await.unwrap()), ["old-3"]);
        // Cut by age inside the old block: the rest is packed, and usage is
        // the sum of what the blocks hold.
        let by_age = RecordRetention {
            max_age: Duration::from_millis(1_000),
            max_bytes_per_function: 0,
        };
        assert_eq!(store.prune(&by_age, 2_002, None).await.unwrap(), 2);
        assert_eq!(
            ids(&store.list("f", &CallQuery::default()).await.unwrap()),
            ["new-1", "old-3", "old-2"]
        );
        let (usage, sum, kind): (i64, i64, String) = store
            .read(|c| {
                Ok(c.query_row(
                    "SELECT (SELECT bytes FROM usage WHERE function = 'f'),
                            (SELECT SUM(bytes) FROM blocks WHERE function = 'f'),
                            (SELECT typeof(records) FROM blocks WHERE id = 1)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(usage, sum);
        assert_eq!(kind, "blob");
        assert_eq!(store.get("old-3").await.unwrap().unwrap().code, "timeout");
    }

    /// A calls.db of schema 1 (a row per call) is converted at open, and
    /// every record stays readable.
    #[tokio::test]
    async fn converts_a_store_of_schema_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE calls (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    request_id TEXT NOT NULL, function TEXT NOT NULL, version INTEGER NOT NULL,
                    ok INTEGER NOT NULL, started_at_ms INTEGER NOT NULL, bytes INTEGER NOT NULL,
                    record TEXT NOT NULL);
                 CREATE INDEX calls_function_seq ON calls (function, seq);
                 CREATE INDEX calls_request_id ON calls (request_id);
                 CREATE TABLE usage (function TEXT PRIMARY KEY, bytes INTEGER NOT NULL);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
            for i in 0..12u64 {
                let function = if i % 3 == 0 { "g" } else { "f" };
                let r = record(function, &format!("r{i}"), 100 + i, "ok");
                let text = serde_json::to_string(&r).unwrap();
                conn.execute(
                    "INSERT INTO calls (request_id, function, version, ok, started_at_ms, bytes, record)
                     VALUES (?1, ?2, 1, 1, ?3, ?4, ?5)",
                    params![r.request_id, function, r.started_at_ms as i64, text.len() as i64, text],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO calls (request_id, function, version, ok, started_at_ms, bytes, record)
                 VALUES ('bad', 'f', 1, 1, 0, 3, 'not json')",
                [],
            )
            .unwrap();
            // The newest row went (retention): its seq is not given again.
            conn.execute(
                "INSERT INTO calls (request_id, function, version, ok, started_at_ms, bytes, record)
                 VALUES ('gone', 'f', 1, 1, 0, 2, '{}')",
                [],
            )
            .unwrap();
            conn.execute("DELETE FROM calls WHERE request_id = 'gone'", [])
                .unwrap();
        }
        let store = SqliteCallStore::open(&path).await.unwrap();
        assert_eq!(store.last_seq().await.unwrap(), 14);
        let f = store.list("f", &CallQuery::default()).await.unwrap();
        assert_eq!(f.len(), 8);
        assert_eq!((f[0].request_id.as_str(), f[0].seq), ("r11", 12));
        assert_eq!(store.get("r3").await.unwrap().unwrap().seq, 4);
        assert_eq!(
            store
                .insert(&mut packed(&[record("f", "new", 200, "ok")]))
                .await
                .unwrap(),
            15
        );
        let (tables, unreadable, version): (i64, i64, i64) = store
            .read(|c| {
                Ok((
                    c.query_row(
                        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'calls'",
                        [],
                        |r| r.get(0),
                    )?,
                    c.query_row("SELECT COUNT(*) FROM calls_unreadable", [], |r| r.get(0))?,
                    c.pragma_query_value(None, "user_version", |r| r.get(0))?,
                ))
            })
            .await
            .unwrap();
        assert_eq!((tables, unreadable, version), (0, 1, SCHEMA_VERSION));
        let usage: i64 = usage_of(&store, "g").await;
        let g = store.list("g", &CallQuery::default()).await.unwrap();
        let want: usize = g
            .iter()
            .map(|r| codec::encode(r, &mut Vec::new()).unwrap())
            .sum();
        assert_eq!(usage as usize, want);
    }
}
