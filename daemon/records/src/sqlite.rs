//! The SQLite back end of [`CallStore`]: `<data>/calls.db`, WAL, one row
//! per call with the record as JSON.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use hearth_api::{CallQuery, CallRecord, StatusFilter};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use crate::error::{RecordsError, Result};
use crate::{CallStore, RecordRetention};

/// Connections: one for the writer, one for reads and retention.
const CONNECTIONS: u32 = 2;

pub struct SqliteCallStore {
    pool: SqlitePool,
}

impl SqliteCallStore {
    /// Open (or create) the records store at `path`.
    pub async fn open(path: &Path) -> Result<SqliteCallStore> {
        let url = format!("sqlite://{}", path.display());
        let open_err = |source| RecordsError::Open {
            path: path.display().to_string(),
            source,
        };
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Telemetry: a power cut may lose the last records, never
            // corrupt the file (WAL); no fsync on the writer's path.
            .synchronous(SqliteSynchronous::Off)
            .pragma("wal_autocheckpoint", "4000")
            // Records are written by one task in batches; a writer that
            // waits here delays only records, never a call.
            .busy_timeout(Duration::from_secs(30));
        // A fixed set of connections, all opened now (with their WAL and
        // shared-memory files): the daemon's descriptors do not grow later.
        let pool = SqlitePoolOptions::new()
            .min_connections(CONNECTIONS)
            .max_connections(CONNECTIONS)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let mut held = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT COUNT(*) FROM calls")
                .fetch_one(&mut *conn)
                .await?;
            held.push(conn);
        }
        drop(held);
        Ok(SqliteCallStore { pool })
    }
}

/// Count `bytes` of `function`'s records as gone.
async fn release(tx: &mut sqlx::Transaction<'_, Sqlite>, function: &str, bytes: i64) -> Result<()> {
    sqlx::query("UPDATE usage SET bytes = MAX(bytes - ?2, 0) WHERE function = ?1")
        .bind(function)
        .bind(bytes)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A row of `SELECT seq, record`: the record, with its seq.
fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<CallRecord> {
    let seq: i64 = row.try_get(0)?;
    let text: String = row.try_get(1)?;
    let mut record: CallRecord =
        serde_json::from_str(&text).map_err(|e| RecordsError::Corrupt(e.to_string()))?;
    record.seq = seq.max(0) as u64;
    Ok(record)
}

#[async_trait]
impl CallStore for SqliteCallStore {
    async fn insert(&self, records: &[CallRecord]) -> Result<u64> {
        if records.is_empty() {
            return self.last_seq().await;
        }
        let mut rows = Vec::with_capacity(records.len());
        let mut usage: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for record in records {
            let text =
                serde_json::to_string(record).map_err(|e| RecordsError::Corrupt(e.to_string()))?;
            *usage.entry(record.function.as_str()).or_default() += text.len() as i64;
            rows.push((record, text));
        }
        let mut tx = self.pool.begin().await?;
        // One statement per batch (7 values a row, well under SQLite's limit).
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO calls (request_id, function, version, ok, started_at_ms, bytes, record) ",
        );
        insert.push_values(&rows, |mut b, (record, text)| {
            b.push_bind(&record.request_id)
                .push_bind(&record.function)
                .push_bind(record.version as i64)
                .push_bind(record.code == "ok")
                .push_bind(record.started_at_ms as i64)
                .push_bind(text.len() as i64)
                .push_bind(text);
        });
        insert.build().execute(&mut *tx).await?;
        let last: i64 = sqlx::query_scalar("SELECT last_insert_rowid()")
            .fetch_one(&mut *tx)
            .await?;
        for (function, bytes) in usage {
            sqlx::query(
                "INSERT INTO usage (function, bytes) VALUES (?1, ?2)
                 ON CONFLICT (function) DO UPDATE SET bytes = bytes + excluded.bytes",
            )
            .bind(function)
            .bind(bytes)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(last.max(0) as u64)
    }

    async fn list(&self, function: &str, query: &CallQuery) -> Result<Vec<CallRecord>> {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT seq, record FROM calls WHERE function = ");
        q.push_bind(function);
        if let Some(after) = query.after_seq {
            q.push(" AND seq > ").push_bind(after as i64);
        }
        if let Some(since) = query.since_ms {
            q.push(" AND started_at_ms >= ").push_bind(since as i64);
        }
        if let Some(id) = &query.request_id {
            q.push(" AND request_id = ").push_bind(id.clone());
        }
        if let Some(v) = query.version {
            q.push(" AND version = ").push_bind(v as i64);
        }
        if let Some(status) = query.status {
            q.push(" AND ok = ").push_bind(status == StatusFilter::Ok);
        }
        q.push(if query.after_seq.is_some() {
            " ORDER BY seq ASC LIMIT "
        } else {
            " ORDER BY seq DESC LIMIT "
        });
        q.push_bind(query.limit() as i64);
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    async fn get(&self, request_id: &str) -> Result<Option<CallRecord>> {
        let row = sqlx::query(
            "SELECT seq, record FROM calls WHERE request_id = ?1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(decode(&row)?)),
            None => Ok(None),
        }
    }

    async fn last_seq(&self) -> Result<u64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM calls")
            .fetch_one(&self.pool)
            .await?;
        let seq: i64 = row.try_get(0)?;
        Ok(seq.max(0) as u64)
    }

    async fn prune(
        &self,
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
                let oldest = sqlx::query(
                    "SELECT seq, function, bytes, started_at_ms FROM calls ORDER BY seq LIMIT 1000",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut cut = None;
                let mut freed: std::collections::HashMap<String, i64> =
                    std::collections::HashMap::new();
                let mut count = 0u64;
                for row in &oldest {
                    if row.try_get::<i64, _>(3)? >= cutoff {
                        break;
                    }
                    cut = Some(row.try_get::<i64, _>(0)?);
                    *freed.entry(row.try_get(1)?).or_default() += row.try_get::<i64, _>(2)?;
                    count += 1;
                }
                let Some(cut) = cut else { break };
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM calls WHERE seq <= ?1")
                    .bind(cut)
                    .execute(&mut *tx)
                    .await?;
                for (function, bytes) in freed {
                    release(&mut tx, &function, bytes).await?;
                }
                tx.commit().await?;
                removed += count;
                if (count as usize) < oldest.len() || oldest.len() < 1000 {
                    break;
                }
            }
        }
        if retention.max_bytes_per_function > 0 {
            let cap = i64::try_from(retention.max_bytes_per_function).unwrap_or(i64::MAX);
            let over: Vec<(String, i64)> = {
                let rows = sqlx::query("SELECT function, bytes FROM usage WHERE bytes > ?1")
                    .bind(cap)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
                    .collect::<Result<_>>()?
            };
            for (function, mut bytes) in over {
                if functions.is_some_and(|only| !only.contains(&function)) {
                    continue;
                }
                // Down to nine tenths of the cap, oldest first, a slice at
                // a time: the cap is not met again by the next batch.
                let target = cap - cap / 10;
                while bytes > target {
                    let oldest = sqlx::query(
                        "SELECT seq, bytes FROM calls WHERE function = ?1 ORDER BY seq LIMIT 500",
                    )
                    .bind(&function)
                    .fetch_all(&self.pool)
                    .await?;
                    let mut tx = self.pool.begin().await?;
                    if oldest.is_empty() {
                        release(&mut tx, &function, bytes).await?;
                        tx.commit().await?;
                        break;
                    }
                    let (mut cut, mut freed, mut count) = (0i64, 0i64, 0u64);
                    for row in &oldest {
                        if bytes - freed <= target {
                            break;
                        }
                        cut = row.try_get(0)?;
                        freed += row.try_get::<i64, _>(1)?;
                        count += 1;
                    }
                    sqlx::query("DELETE FROM calls WHERE function = ?1 AND seq <= ?2")
                        .bind(&function)
                        .bind(cut)
                        .execute(&mut *tx)
                        .await?;
                    release(&mut tx, &function, freed).await?;
                    tx.commit().await?;
                    removed += count;
                    bytes -= freed;
                }
            }
        }
        Ok(removed)
    }

    async fn close(&self) {
        self.pool.close().await;
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
            .insert(&[
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
        store.insert(&many).await.unwrap();
        let size = serde_json::to_string(&many[0]).unwrap().len() as u64;
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
