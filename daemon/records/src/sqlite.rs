//! The SQLite back end of [`CallStore`]: `<data>/calls.db`, WAL, one row
//! per call with the record as JSON.
//!
//! Every write (records, retention) is made by one thread of its own
//! (`hearth-records`) holding its own connection: a batch is one message
//! to it, and its rows go in through one prepared statement in a tight loop
//! within one transaction. (Through sqlx, each statement was a round trip
//! between the async task and sqlx's connection thread, and a batch as one
//! statement of many rows was parsed anew each time: together they cost
//! three times what writing the rows does.) Reads take a second connection
//! on tokio's blocking pool; WAL lets them run while the writer writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hearth_api::{CallQuery, CallRecord, StatusFilter};
use rusqlite::{params, Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::error::{RecordsError, Result};
use crate::{CallStore, RecordRetention};

/// The schema (all of it idempotent: it also brings a file made by an
/// earlier hearth, whose schema sqlx's migrations kept, up to date).
const SCHEMA: &str = "
-- One row per call. The record itself is JSON (`record`); the columns
-- beside it are what queries filter and retention counts on.
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    function TEXT NOT NULL,
    version INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_function_seq ON calls (function, seq);
CREATE INDEX IF NOT EXISTS calls_request_id ON calls (request_id);
-- Age retention walks the oldest records by seq (the primary key), which
-- follows arrival: no index on the start time to update on every insert.
DROP INDEX IF EXISTS calls_started_at;
-- Bytes of records kept per function, kept up to date by every insert and
-- delete, so the size limit is checked without summing the table.
CREATE TABLE IF NOT EXISTS usage (
    function TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
);
";

/// The page size of a new calls.db.
const PAGE_SIZE: i64 = 16 * 1024;

/// `PRAGMA user_version` once the schema is in place.
const SCHEMA_VERSION: i64 = 1;

const INSERT: &str =
    "INSERT INTO calls (request_id, function, version, ok, started_at_ms, bytes, record)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const ADD_USAGE: &str = "INSERT INTO usage (function, bytes) VALUES (?1, ?2)
     ON CONFLICT (function) DO UPDATE SET bytes = bytes + excluded.bytes";
const RELEASE_USAGE: &str = "UPDATE usage SET bytes = MAX(bytes - ?2, 0) WHERE function = ?1";

/// What the writer thread is asked to do.
enum Job {
    Insert(Vec<CallRecord>, oneshot::Sender<Result<u64>>),
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
    // records are appended, and a batch's pages go to the WAL and back to
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

/// Create or update the schema.
fn prepare_schema(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    tx.execute_batch(SCHEMA)?;
    // The running totals, made again from the rows (right whatever the
    // file's history), and the bookkeeping of sqlx's migrations, no
    // longer used.
    tx.execute_batch(
        "DELETE FROM usage;
         INSERT INTO usage (function, bytes) SELECT function, SUM(bytes) FROM calls GROUP BY function;
         DROP TABLE IF EXISTS _sqlx_migrations;",
    )?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}

impl SqliteCallStore {
    /// Open (or create) the records store at `path`, and start its writer.
    pub async fn open(path: &Path) -> Result<SqliteCallStore> {
        let path = path.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || {
            let open_err = |source| RecordsError::Open {
                path: path.display().to_string(),
                source,
            };
            let mut writer = connect(&path).map_err(open_err)?;
            prepare_schema(&mut writer).map_err(open_err)?;
            let reader = connect(&path).map_err(open_err)?;
            Ok::<_, RecordsError>((writer, reader, path))
        })
        .await
        .map_err(|e| RecordsError::Thread(e.to_string()))??;
        let (writer, reader, path) = opened;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("hearth-records".into())
            .spawn(move || write_jobs(writer, rx, path))
            .map_err(|e| RecordsError::Thread(e.to_string()))?;
        Ok(SqliteCallStore {
            jobs: Mutex::new(Some(tx)),
            reader: Arc::new(Mutex::new(reader)),
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

/// The writer thread: jobs in order until Close (or every sender gone).
fn write_jobs(mut conn: Connection, jobs: mpsc::Receiver<Job>, path: PathBuf) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Insert(records, done) => {
                let _ = done.send(insert(&mut conn, &records));
            }
            Job::Prune {
                retention,
                now_ms,
                functions,
                done,
            } => {
                let _ = done.send(prune(&mut conn, &retention, now_ms, functions.as_deref()));
            }
            Job::Close(done) => {
                drop(conn);
                let _ = done.send(());
                return;
            }
        }
    }
    tracing::debug!(path = %path.display(), "call records writer stopped");
}

fn insert(conn: &mut Connection, records: &[CallRecord]) -> Result<u64> {
    let tx = conn.transaction()?;
    let mut usage: HashMap<&str, i64> = HashMap::new();
    {
        let mut stmt = tx.prepare_cached(INSERT)?;
        for record in records {
            let text =
                serde_json::to_string(record).map_err(|e| RecordsError::Corrupt(e.to_string()))?;
            let bytes = text.len() as i64;
            *usage.entry(record.function.as_str()).or_default() += bytes;
            stmt.execute(params![
                record.request_id,
                record.function,
                record.version,
                record.code == "ok",
                record.started_at_ms as i64,
                bytes,
                text
            ])?;
        }
    }
    let last = tx.last_insert_rowid();
    {
        let mut stmt = tx.prepare_cached(ADD_USAGE)?;
        for (function, bytes) in usage {
            stmt.execute(params![function, bytes])?;
        }
    }
    tx.commit()?;
    Ok(last.max(0) as u64)
}

/// Count `bytes` of `function`'s records as gone.
fn release(tx: &rusqlite::Transaction<'_>, function: &str, bytes: i64) -> Result<()> {
    tx.prepare_cached(RELEASE_USAGE)?
        .execute(params![function, bytes])?;
    Ok(())
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
        // Oldest first by seq (arrival order), a slice at a time, up to
        // the first record young enough to stay.
        loop {
            let tx = conn.transaction()?;
            let oldest: Vec<(i64, String, i64, i64)> = tx
                .prepare_cached(
                    "SELECT seq, function, bytes, started_at_ms FROM calls ORDER BY seq LIMIT 1000",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut cut = None;
            let mut freed: HashMap<&str, i64> = HashMap::new();
            let mut count = 0u64;
            for (seq, function, bytes, started) in &oldest {
                if *started >= cutoff {
                    break;
                }
                cut = Some(*seq);
                *freed.entry(function.as_str()).or_default() += bytes;
                count += 1;
            }
            let Some(cut) = cut else { break };
            tx.prepare_cached("DELETE FROM calls WHERE seq <= ?1")?
                .execute(params![cut])?;
            for (function, bytes) in freed {
                release(&tx, function, bytes)?;
            }
            tx.commit()?;
            removed += count;
            if (count as usize) < oldest.len() || oldest.len() < 1000 {
                break;
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
            // Down to nine tenths of the cap, oldest first, a slice at a
            // time: the cap is not met again by the next batch.
            let target = cap - cap / 10;
            while bytes > target {
                let tx = conn.transaction()?;
                let oldest: Vec<(i64, i64)> = tx
                    .prepare_cached(
                        "SELECT seq, bytes FROM calls WHERE function = ?1 ORDER BY seq LIMIT 500",
                    )?
                    .query_map(params![function], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                if oldest.is_empty() {
                    release(&tx, &function, bytes)?;
                    tx.commit()?;
                    break;
                }
                let (mut cut, mut freed, mut count) = (0i64, 0i64, 0u64);
                for (seq, size) in &oldest {
                    if bytes - freed <= target {
                        break;
                    }
                    cut = *seq;
                    freed += size;
                    count += 1;
                }
                tx.prepare_cached("DELETE FROM calls WHERE function = ?1 AND seq <= ?2")?
                    .execute(params![function, cut])?;
                release(&tx, &function, freed)?;
                tx.commit()?;
                removed += count;
                bytes -= freed;
            }
        }
    }
    Ok(removed)
}

/// A row of `SELECT seq, record`: the record, with its seq.
fn decode(seq: i64, text: &str) -> Result<CallRecord> {
    let mut record: CallRecord =
        serde_json::from_str(text).map_err(|e| RecordsError::Corrupt(e.to_string()))?;
    record.seq = seq.max(0) as u64;
    Ok(record)
}

/// Rows of `SELECT seq, record ...` as records.
fn records_of(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<CallRecord>> {
    let rows: Vec<(i64, String)> = stmt
        .query_map(params, |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    rows.iter().map(|(seq, text)| decode(*seq, text)).collect()
}

#[async_trait]
impl CallStore for SqliteCallStore {
    async fn insert(&self, records: Vec<CallRecord>) -> Result<u64> {
        if records.is_empty() {
            return self.last_seq().await;
        }
        let (done, answer) = oneshot::channel();
        self.send(Job::Insert(records, done))?;
        answer.await.map_err(|_| RecordsError::Closed)?
    }

    async fn list(&self, function: &str, query: &CallQuery) -> Result<Vec<CallRecord>> {
        use rusqlite::types::Value;
        let mut sql = String::from("SELECT seq, record FROM calls WHERE function = ?");
        let mut args: Vec<Value> = vec![Value::Text(function.to_owned())];
        if let Some(after) = query.after_seq {
            sql.push_str(" AND seq > ?");
            args.push(Value::Integer(after as i64));
        }
        if let Some(since) = query.since_ms {
            sql.push_str(" AND started_at_ms >= ?");
            args.push(Value::Integer(since as i64));
        }
        if let Some(id) = &query.request_id {
            sql.push_str(" AND request_id = ?");
            args.push(Value::Text(id.clone()));
        }
        if let Some(v) = query.version {
            sql.push_str(" AND version = ?");
            args.push(Value::Integer(i64::from(v)));
        }
        if let Some(status) = query.status {
            sql.push_str(" AND ok = ?");
            args.push(Value::Integer(i64::from(status == StatusFilter::Ok)));
        }
        sql.push_str(if query.after_seq.is_some() {
            " ORDER BY seq ASC LIMIT ?"
        } else {
            " ORDER BY seq DESC LIMIT ?"
        });
        args.push(Value::Integer(i64::from(query.limit())));
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            records_of(&mut stmt, rusqlite::params_from_iter(args))
        })
        .await
    }

    async fn get(&self, request_id: &str) -> Result<Option<CallRecord>> {
        let id = request_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, record FROM calls WHERE request_id = ?1 ORDER BY seq DESC LIMIT 1",
            )?;
            Ok(records_of(&mut stmt, params![id])?.pop())
        })
        .await
    }

    async fn last_seq(&self) -> Result<u64> {
        self.read(|conn| {
            let seq: i64 =
                conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM calls", [], |r| r.get(0))?;
            Ok(seq.max(0) as u64)
        })
        .await
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

    #[tokio::test]
    async fn stores_lists_filters_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteCallStore::open(&dir.path().join("calls.db"))
            .await
            .unwrap();
        assert_eq!(store.last_seq().await.unwrap(), 0);
        let last = store
            .insert(vec![
                record("f", "a", 1_000, "ok"),
                record("f", "b", 2_000, "timeout"),
                record("g", "c", 3_000, "ok"),
            ])
            .await
            .unwrap();
        assert_eq!(last, 3);
        let all = store.list("f", &CallQuery::default()).await.unwrap();
        let ids: Vec<_> = all.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, ["b", "a"], "newest first, only f's");
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

        // By bytes: only the newest records that fit stay.
        let many: Vec<_> = (0..10)
            .map(|i| record("h", &format!("h{i}"), 10_000 + i, "ok"))
            .collect();
        store.insert(many.clone()).await.unwrap();
        let size = serde_json::to_string(&many[0]).unwrap().len() as u64;
        let stored: i64 = store
            .read(|c| {
                Ok(
                    c.query_row("SELECT bytes FROM calls WHERE request_id = 'h0'", [], |r| {
                        r.get(0)
                    })?,
                )
            })
            .await
            .unwrap();
        assert_eq!(stored as u64, size, "a row's bytes are its record's JSON");
        let by_bytes = RecordRetention {
            max_age: Duration::ZERO,
            max_bytes_per_function: size * 3 + size / 2,
        };
        store
            .prune(&by_bytes, 20_000, Some(&["h".to_owned()]))
            .await
            .unwrap();
        let kept = store.list("h", &CallQuery::default()).await.unwrap();
        let ids: Vec<_> = kept.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, ["h9", "h8", "h7"]);
        assert!(store.get("c").await.unwrap().is_some(), "g is untouched");
    }
}
