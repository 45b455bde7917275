//! The SQLite back end of the store (sqlx, WAL mode, runtime queries), with
//! its migrations in daemon/store/migrations. Other processes' releases are
//! found by polling the release mark (see `watch`).

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use hearth_api::bundle::{Bundle, BundleFile};
use hearth_api::manifest::Manifest;
use hearth_api::metadata::FunctionType;
use hearth_api::AliasTarget;

use crate::{
    AliasRecord, AppRecord, FunctionRecord, PutVersion, ReleaseRecord, Result, StatsQuery,
    StatsRecord, Store, StoreError, StoreWatch, TemplateRecord, TokenRecord, VersionRecord,
};
use hearth_api::{InvokeMode, Scope};

/// The SQLite back end: one file, WAL mode, migrations at open.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl SqliteStore {
    /// Open (creating if needed) the SQLite store at `path` and bring its
    /// schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        self.pool.close().await;
    }

    async fn templates(&self) -> Result<Vec<TemplateRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(template_from_row).collect()
    }

    async fn template(&self, name: &str) -> Result<Option<(TemplateRecord, Vec<BundleFile>)>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let files = sqlx::query(
            "SELECT path, executable, content FROM template_files WHERE template = ? ORDER BY path",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let files = files
            .iter()
            .map(file_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((template_from_row(&row)?, files)))
    }

    async fn put_template(&self, t: &TemplateRecord, files: &[BundleFile]) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO templates (name, description, runtime, kind, from_function, from_version, app, created_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&t.name)
        .bind(&t.description)
        .bind(&t.runtime)
        .bind(&t.kind)
        .bind(&t.from_function)
        .bind(i64::from(t.from_version))
        .bind(&t.app)
        .bind(t.created_at)
        .bind(&t.created_by)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        for f in files {
            sqlx::query("INSERT INTO template_files (template, path, executable, content) VALUES (?, ?, ?, ?)")
                .bind(&t.name)
                .bind(&f.path)
                .bind(f.executable)
                .bind(&f.data)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_template(&self, name: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM template_files WHERE template = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM templates WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(
            "SELECT name, id, sha256, scopes, apps, origin, created_at, last_used FROM tokens ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let list = |s: String| -> Vec<String> {
                    s.split(',')
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect()
                };
                Ok(TokenRecord {
                    name: r.try_get("name")?,
                    id: r.try_get("id")?,
                    sha256: r.try_get("sha256")?,
                    // A scope this build does not know grants nothing.
                    scopes: list(r.try_get("scopes")?)
                        .iter()
                        .filter_map(|s| Scope::parse(s))
                        .collect(),
                    apps: list(r.try_get("apps")?),
                    origin: r.try_get("origin")?,
                    created_at: r.try_get("created_at")?,
                    last_used: r.try_get("last_used")?,
                })
            })
            .collect()
    }

    async fn put_token(&self, token: &TokenRecord) -> Result<bool> {
        let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
        let done = sqlx::query(
            "INSERT INTO tokens (name, id, sha256, scopes, apps, origin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&token.name)
        .bind(&token.id)
        .bind(&token.sha256)
        .bind(scopes.join(","))
        .bind(token.apps.join(","))
        .bind(&token.origin)
        .bind(token.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_token(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tokens WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_tokens(&self, used: &[(String, i64)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (name, at) in used {
            sqlx::query(
                "UPDATE tokens SET last_used = MAX(COALESCE(last_used, 0), ?) WHERE name = ?",
            )
            .bind(at)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_stats(&self, minutes: &[StatsRecord]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for m in minutes {
            sqlx::query(
                "INSERT INTO stats_minutes (app, function, version, minute, calls, ok, rejected, cold, total_ms, max_ms, peak, function_peak, app_peak) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (app, function, version, minute) DO UPDATE SET \
                 calls = calls + excluded.calls, ok = ok + excluded.ok, rejected = rejected + excluded.rejected, \
                 cold = cold + excluded.cold, total_ms = total_ms + excluded.total_ms, max_ms = MAX(max_ms, excluded.max_ms), \
                 peak = MAX(peak, excluded.peak), function_peak = MAX(function_peak, excluded.function_peak), \
                 app_peak = MAX(app_peak, excluded.app_peak)",
            )
            .bind(&m.app)
            .bind(&m.function)
            .bind(i64::from(m.version))
            .bind(m.minute)
            .bind(m.calls as i64)
            .bind(m.ok as i64)
            .bind(m.rejected as i64)
            .bind(m.cold as i64)
            .bind(m.total_ms)
            .bind(m.max_ms)
            .bind(m.peak as i64)
            .bind(m.function_peak as i64)
            .bind(m.app_peak as i64)
            .execute(&mut *tx)
            .await?;
            let buckets = m
                .durations
                .buckets
                .iter()
                .map(|(b, n)| ("b", b.to_string(), *n));
            let errors = m.errors.iter().map(|(o, n)| ("o", o.clone(), *n));
            for (kind, key, count) in buckets.chain(errors) {
                sqlx::query(
                    "INSERT INTO stats_counts (app, function, version, minute, kind, key, count) VALUES (?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (app, function, version, minute, kind, key) DO UPDATE SET count = count + excluded.count",
                )
                .bind(&m.app)
                .bind(&m.function)
                .bind(i64::from(m.version))
                .bind(m.minute)
                .bind(kind)
                .bind(key)
                .bind(count as i64)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn stats(&self, query: &StatsQuery) -> Result<Vec<StatsRecord>> {
        const WHERE: &str =
            "WHERE minute >= ? AND (? IS NULL OR app = ?) AND (? IS NULL OR function = ?)";
        let rows = sqlx::query(&format!(
            "SELECT app, function, version, MAX(minute) AS minute, SUM(calls) AS calls, SUM(ok) AS ok, \
             SUM(rejected) AS rejected, SUM(cold) AS cold, SUM(total_ms) AS total_ms, MAX(max_ms) AS max_ms, \
             MAX(peak) AS peak, MAX(function_peak) AS function_peak, MAX(app_peak) AS app_peak \
             FROM stats_minutes {WHERE} GROUP BY app, function, version ORDER BY app, function, version"
        ))
        .bind(query.since_minute)
        .bind(&query.app)
        .bind(&query.app)
        .bind(&query.function)
        .bind(&query.function)
        .fetch_all(&self.pool)
        .await?;
        let count = |r: &sqlx::sqlite::SqliteRow, column: &str| -> Result<u64> {
            Ok(r.try_get::<Option<i64>, _>(column)?.unwrap_or(0).max(0) as u64)
        };
        let mut records = Vec::with_capacity(rows.len());
        for r in &rows {
            records.push(StatsRecord {
                app: r.try_get("app")?,
                function: r.try_get("function")?,
                version: r
                    .try_get::<i64, _>("version")?
                    .clamp(0, i64::from(u32::MAX)) as u32,
                minute: r.try_get("minute")?,
                calls: count(r, "calls")?,
                ok: count(r, "ok")?,
                rejected: count(r, "rejected")?,
                cold: count(r, "cold")?,
                total_ms: r.try_get::<Option<f64>, _>("total_ms")?.unwrap_or(0.0),
                max_ms: r.try_get::<Option<f64>, _>("max_ms")?.unwrap_or(0.0),
                peak: count(r, "peak")?,
                function_peak: count(r, "function_peak")?,
                app_peak: count(r, "app_peak")?,
                ..StatsRecord::default()
            });
        }
        let counts = sqlx::query(&format!(
            "SELECT app, function, version, kind, key, SUM(count) AS count FROM stats_counts {WHERE} \
             GROUP BY app, function, version, kind, key"
        ))
        .bind(query.since_minute)
        .bind(&query.app)
        .bind(&query.app)
        .bind(&query.function)
        .bind(&query.function)
        .fetch_all(&self.pool)
        .await?;
        let index: std::collections::HashMap<(String, String, i64), usize> = records
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.app.clone(), s.function.clone(), i64::from(s.version)), i))
            .collect();
        for r in &counts {
            let key = (
                r.try_get("app")?,
                r.try_get("function")?,
                r.try_get::<i64, _>("version")?,
            );
            let Some(record) = index.get(&key).and_then(|&i| records.get_mut(i)) else {
                continue;
            };
            let key: String = r.try_get("key")?;
            let n = count(r, "count")?;
            match r.try_get::<String, _>("kind")?.as_str() {
                // A bucket this build does not know is left out.
                "b" => {
                    if let Ok(bucket) = key.parse::<u16>() {
                        record.durations.add(bucket, n);
                    }
                }
                "o" => *record.errors.entry(key).or_default() += n,
                _ => {}
            }
        }
        Ok(records)
    }

    async fn prune_stats(&self, before_minute: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM stats_minutes WHERE minute < ?")
            .bind(before_minute)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM stats_counts WHERE minute < ?")
            .bind(before_minute)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Every application with its budget.
    async fn apps(&self) -> Result<Vec<AppRecord>> {
        let rows = sqlx::query(
            "SELECT name, max_workers, memory_mb, cpu_percent, invoke FROM applications ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AppRecord {
                    name: r.try_get("name")?,
                    max_workers: r.try_get::<i64, _>("max_workers")?.max(0) as u32,
                    memory_mb: r.try_get::<i64, _>("memory_mb")?.max(0) as u64,
                    cpu_percent: r.try_get::<i64, _>("cpu_percent")?.max(0) as u32,
                    // Anything unknown is the safer of the two.
                    invoke: InvokeMode::parse(r.try_get("invoke")?).unwrap_or(InvokeMode::Key),
                })
            })
            .collect()
    }

    /// Create the application if needed and set its budget.
    async fn set_app(&self, app: &AppRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO applications (name, created_at, max_workers, memory_mb, cpu_percent, invoke) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT(name) DO UPDATE SET max_workers = excluded.max_workers, memory_mb = excluded.memory_mb, cpu_percent = excluded.cpu_percent, invoke = excluded.invoke",
        )
        .bind(&app.name)
        .bind(now_ms())
        .bind(i64::from(app.max_workers))
        .bind(app.memory_mb as i64)
        .bind(i64::from(app.cpu_percent))
        .bind(app.invoke.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_functions(&self) -> Result<Vec<FunctionRecord>> {
        let sql = format!(
            "SELECT {} WHERE f.deleted_at IS NULL ORDER BY f.name",
            FUNCTION_COLUMNS
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(function_from_row).collect()
    }

    async fn list_all_functions(&self) -> Result<Vec<FunctionRecord>> {
        let sql = format!("SELECT {} ORDER BY f.name", FUNCTION_COLUMNS);
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(function_from_row).collect()
    }

    async fn delete_function(&self, name: &str, message: &str, actor: &str) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let Some((id, live, named)) = undeleted(&mut tx, name).await? else {
            return Ok(false);
        };
        record_release(&mut tx, id, named, live, "delete", message, actor, now).await?;
        sqlx::query(
            "UPDATE functions SET deleted_at = ?, live_version = NULL, state = 'draft', offline = 0, \
             updated_at = ? WHERE id = ?",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_offline(
        &self,
        name: &str,
        offline: bool,
        message: &str,
        actor: &str,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let Some((id, live, named)) = undeleted(&mut tx, name).await? else {
            return Ok(false);
        };
        let done = sqlx::query(
            "UPDATE functions SET offline = ?, updated_at = ? WHERE id = ? AND offline IS NOT ?",
        )
        .bind(offline)
        .bind(now)
        .bind(id)
        .bind(offline)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let action = if offline { "offline" } else { "online" };
        record_release(&mut tx, id, named, live, action, message, actor, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn edit_function(
        &self,
        name: &str,
        description: Option<&str>,
        category: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE functions SET description = COALESCE(?, description), category = COALESCE(?, category), \
             updated_at = ? WHERE name = ? AND deleted_at IS NULL",
        )
        .bind(description)
        .bind(category)
        .bind(now_ms())
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn function(&self, name: &str) -> Result<Option<FunctionRecord>> {
        let sql = format!("SELECT {} WHERE f.name = ?", FUNCTION_COLUMNS);
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(function_from_row).transpose()
    }

    /// Store `bundle` as the next version of the function it declares,
    /// creating the application and function on first deploy. Byte-identical
    /// code returns the existing version instead of making a new one.
    async fn put_version(
        &self,
        manifest: &Manifest,
        bundle: &Bundle,
        message: &str,
    ) -> Result<PutVersion> {
        let hash = bundle.hash();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;

        sqlx::query("INSERT INTO applications (name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING")
            .bind(&manifest.app)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let app_id: i64 = sqlx::query_scalar("SELECT id FROM applications WHERE name = ?")
            .bind(&manifest.app)
            .fetch_one(&mut *tx)
            .await?;

        sqlx::query(
            "INSERT INTO functions (name, runtime, app_id, category, description, manifest_category, \
             manifest_description, state, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?) ON CONFLICT(name) DO NOTHING",
        )
        .bind(&manifest.name)
        .bind(manifest.runtime.as_str())
        .bind(app_id)
        .bind(&manifest.category)
        .bind(&manifest.description)
        .bind(&manifest.category)
        .bind(&manifest.description)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let function_id: i64 = sqlx::query_scalar("SELECT id FROM functions WHERE name = ?")
            .bind(&manifest.name)
            .fetch_one(&mut *tx)
            .await?;
        // A deleted function deployed again is back (as a draft until a
        // version is published), in the application it now names.
        sqlx::query(
            "UPDATE functions SET deleted_at = NULL, runtime = ?, app_id = ?, updated_at = ? \
             WHERE id = ? AND deleted_at IS NOT NULL",
        )
        .bind(manifest.runtime.as_str())
        .bind(app_id)
        .bind(now)
        .bind(function_id)
        .execute(&mut *tx)
        .await?;

        let existing: Option<i64> =
            sqlx::query_scalar("SELECT number FROM versions WHERE function_id = ? AND hash = ?")
                .bind(function_id)
                .bind(&hash)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(number) = existing {
            tx.commit().await?;
            return Ok(PutVersion {
                version: number as u32,
                created: false,
                hash,
            });
        }

        let number: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE function_id = ?",
        )
        .bind(function_id)
        .fetch_one(&mut *tx)
        .await?;
        let manifest_json = serde_json::to_string(manifest).map_err(|e| StoreError::Corrupt {
            function: manifest.name.clone(),
            version: number as u32,
            reason: e.to_string(),
        })?;
        let version_id: i64 = sqlx::query_scalar(
            "INSERT INTO versions (function_id, number, hash, manifest, message, size_bytes, file_count, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(function_id)
        .bind(number)
        .bind(&hash)
        .bind(&manifest_json)
        .bind(message)
        .bind(bundle.size() as i64)
        .bind(bundle.files.len() as i64)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        for f in &bundle.files {
            sqlx::query("INSERT INTO version_files (version_id, path, executable, content) VALUES (?, ?, ?, ?)")
                .bind(version_id)
                .bind(&f.path)
                .bind(f.executable)
                .bind(&f.data)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(PutVersion {
            version: number as u32,
            created: true,
            hash,
        })
    }

    async fn versions(&self, function: &str) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query(
            "SELECT v.id, v.number, v.hash, v.message, v.size_bytes, v.file_count, v.created_at, v.manifest \
             FROM versions v JOIN functions f ON f.id = v.function_id WHERE f.name = ? ORDER BY v.number",
        )
        .bind(function)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| version_from_row(function, r)).collect()
    }

    async fn version(&self, function: &str, number: u32) -> Result<Option<VersionRecord>> {
        let row = sqlx::query(
            "SELECT v.id, v.number, v.hash, v.message, v.size_bytes, v.file_count, v.created_at, v.manifest \
             FROM versions v JOIN functions f ON f.id = v.function_id WHERE f.name = ? AND v.number = ?",
        )
        .bind(function)
        .bind(i64::from(number))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|r| version_from_row(function, r))
            .transpose()
    }

    async fn version_files(&self, function: &str, number: u32) -> Result<Vec<BundleFile>> {
        let rows = sqlx::query(
            "SELECT vf.path, vf.executable, vf.content FROM version_files vf \
             JOIN versions v ON v.id = vf.version_id JOIN functions f ON f.id = v.function_id \
             WHERE f.name = ? AND v.number = ? ORDER BY vf.path",
        )
        .bind(function)
        .bind(i64::from(number))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(file_from_row).collect()
    }

    async fn version_files_named(
        &self,
        function: &str,
        number: u32,
        paths: &[&str],
    ) -> Result<Vec<BundleFile>> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT vf.path, vf.executable, vf.content FROM version_files vf \
             JOIN versions v ON v.id = vf.version_id JOIN functions f ON f.id = v.function_id \
             WHERE f.name = ? AND v.number = ? AND vf.path IN ({}) ORDER BY vf.path",
            vec!["?"; paths.len()].join(", ")
        );
        let mut query = sqlx::query(&sql).bind(function).bind(i64::from(number));
        for path in paths {
            query = query.bind(*path);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(file_from_row).collect()
    }

    async fn delete_versions(&self, function: &str, numbers: &[u32]) -> Result<Vec<u32>> {
        let mut tx = self.pool.begin().await?;
        let mut deleted = Vec::new();
        let mut sorted = numbers.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for number in sorted {
            // Never the live version, nor one an alias needs.
            let id: Option<i64> = sqlx::query_scalar(
                "SELECT v.id FROM versions v JOIN functions f ON f.id = v.function_id \
                 WHERE f.name = ? AND v.number = ? \
                 AND v.number IS NOT f.live_version \
                 AND NOT EXISTS (SELECT 1 FROM aliases a WHERE a.function_id = f.id \
                     AND (a.version = v.number OR a.split_version = v.number))",
            )
            .bind(function)
            .bind(i64::from(number))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = id else {
                continue;
            };
            sqlx::query("DELETE FROM version_files WHERE version_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM versions WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            deleted.push(number);
        }
        // A function left with no version and no history was never more
        // than the deploy that was just taken back: it goes too.
        sqlx::query(
            "DELETE FROM functions WHERE name = ? \
             AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.function_id = functions.id) \
             AND NOT EXISTS (SELECT 1 FROM releases r WHERE r.function_id = functions.id) \
             AND NOT EXISTS (SELECT 1 FROM aliases a WHERE a.function_id = functions.id)",
        )
        .bind(function)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Make several versions live in one transaction: all or none. Returns
    /// the version each function had live before, in order.
    async fn release_many(
        &self,
        releases: &[(String, VersionRecord)],
        action: &str,
        message: &str,
        actor: &str,
    ) -> Result<Vec<Option<u32>>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut previous = Vec::with_capacity(releases.len());
        for (function, version) in releases {
            let m = &version.manifest;
            sqlx::query("INSERT INTO applications (name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING")
                .bind(&m.app)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query("SELECT id, live_version FROM functions WHERE name = ?")
                .bind(function)
                .fetch_one(&mut *tx)
                .await?;
            let function_id: i64 = row.try_get("id")?;
            let before = row
                .try_get::<Option<i64>, _>("live_version")?
                .map(|v| v as u32);
            // Category and description are the function's own: taken from
            // the hearth.toml only where it says something new.
            sqlx::query(
                "UPDATE functions SET live_version = ?, state = 'live', runtime = ?, \
                 app_id = (SELECT id FROM applications WHERE name = ?), \
                 category = CASE WHEN manifest_category = ? THEN category ELSE ? END, \
                 description = CASE WHEN manifest_description = ? THEN description ELSE ? END, \
                 manifest_category = ?, manifest_description = ?, deleted_at = NULL, updated_at = ? \
                 WHERE id = ?",
            )
            .bind(i64::from(version.version))
            .bind(m.runtime.as_str())
            .bind(&m.app)
            .bind(&m.category)
            .bind(&m.category)
            .bind(&m.description)
            .bind(&m.description)
            .bind(&m.category)
            .bind(&m.description)
            .bind(now)
            .bind(function_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO releases (function_id, version, from_version, action, message, actor, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(function_id)
            .bind(i64::from(version.version))
            .bind(before.map(i64::from))
            .bind(action)
            .bind(message)
            .bind(actor)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            previous.push(before);
        }
        tx.commit().await?;
        Ok(previous)
    }

    /// Point `alias` of `function` at `target` (a release like any other).
    /// Returns what the alias pointed at before.
    async fn set_alias(
        &self,
        function: &str,
        alias: &str,
        target: &AliasTarget,
        message: &str,
        actor: &str,
    ) -> Result<Option<AliasTarget>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let function_id: i64 = sqlx::query_scalar("SELECT id FROM functions WHERE name = ?")
            .bind(function)
            .fetch_one(&mut *tx)
            .await?;
        let before = sqlx::query(
            "SELECT version, split_version, split_weight FROM aliases WHERE function_id = ? AND name = ?",
        )
        .bind(function_id)
        .bind(alias)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| alias_target(&r))
        .transpose()?;
        sqlx::query(
            "INSERT INTO aliases (function_id, name, version, split_version, split_weight, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(function_id, name) DO UPDATE SET \
             version = excluded.version, split_version = excluded.split_version, \
             split_weight = excluded.split_weight, updated_at = excluded.updated_at",
        )
        .bind(function_id)
        .bind(alias)
        .bind(i64::from(target.version))
        .bind(target.split.map(|(v, _)| i64::from(v)))
        .bind(target.split.map(|(_, w)| i64::from(w)).unwrap_or(0))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO releases (function_id, version, from_version, action, message, actor, created_at, alias, split_version, split_weight) \
             VALUES (?, ?, ?, 'alias', ?, ?, ?, ?, ?, ?)",
        )
        .bind(function_id)
        .bind(i64::from(target.version))
        .bind(before.as_ref().map(|b| i64::from(b.version)))
        .bind(message)
        .bind(actor)
        .bind(now)
        .bind(alias)
        .bind(target.split.map(|(v, _)| i64::from(v)))
        .bind(target.split.map(|(_, w)| i64::from(w)).unwrap_or(0))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(before)
    }

    /// Every alias: (function, alias, target).
    async fn aliases(&self) -> Result<Vec<AliasRecord>> {
        let rows = sqlx::query(
            "SELECT f.name AS function, a.name AS alias, a.version, a.split_version, a.split_weight \
             FROM aliases a JOIN functions f ON f.id = a.function_id ORDER BY f.name, a.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AliasRecord {
                    function: r.try_get("function")?,
                    alias: r.try_get("alias")?,
                    target: alias_target(r)?,
                })
            })
            .collect()
    }

    /// A number that changes whenever any release (publish, rollback, alias
    /// move) is recorded, by this process or another sharing the store.
    async fn release_mark(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM releases")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    fn watch(&self, every: Duration) -> StoreWatch {
        crate::watch::poll_release_mark(self.clone(), every)
    }

    /// Release history, newest first.
    async fn releases(&self, function: &str) -> Result<Vec<ReleaseRecord>> {
        let rows = sqlx::query(
            "SELECT r.version, r.from_version, r.action, r.message, r.actor, r.created_at, \
             r.alias, r.split_version, r.split_weight FROM releases r JOIN functions f ON f.id = r.function_id WHERE f.name = ? ORDER BY r.id DESC",
        )
        .bind(function)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReleaseRecord {
                    version: r.try_get::<i64, _>("version")? as u32,
                    from_version: r
                        .try_get::<Option<i64>, _>("from_version")?
                        .map(|v| v as u32),
                    action: r.try_get("action")?,
                    alias: r.try_get("alias")?,
                    split: r.try_get::<Option<i64>, _>("split_version")?.map(|v| {
                        (
                            v as u32,
                            r.try_get::<i64, _>("split_weight").unwrap_or(0) as u8,
                        )
                    }),
                    message: r.try_get("message")?,
                    actor: r.try_get("actor")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}

const FUNCTION_COLUMNS: &str =
    "f.id, f.name, f.runtime, a.name AS app, f.category, f.description, f.state, \
     f.live_version, f.created_at, f.updated_at, f.offline, f.deleted_at, \
     (SELECT COUNT(*) FROM versions v WHERE v.function_id = f.id) AS versions, \
     COALESCE((SELECT json_extract(v.manifest, '$.type') FROM versions v \
      WHERE v.function_id = f.id AND v.number = f.live_version), \
      (SELECT json_extract(v.manifest, '$.type') FROM versions v WHERE v.function_id = f.id \
      ORDER BY v.number DESC LIMIT 1)) AS kind \
     FROM functions f JOIN applications a ON a.id = f.app_id";

/// A function that is not deleted, in a transaction: its id, live version,
/// and the version a management release names (the live one, else the
/// latest).
async fn undeleted(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    name: &str,
) -> Result<Option<(i64, Option<i64>, i64)>> {
    let row = sqlx::query(
        "SELECT f.id, f.live_version, COALESCE(f.live_version, \
         (SELECT MAX(number) FROM versions v WHERE v.function_id = f.id), 0) AS named \
         FROM functions f WHERE f.name = ? AND f.deleted_at IS NULL",
    )
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get("id")?,
            r.try_get("live_version")?,
            r.try_get("named")?,
        ))
    })
    .transpose()
}

/// One entry of a function's release history for a management action
/// (delete, offline, online): it moves the release mark, so other
/// processes sharing the store see it.
#[allow(clippy::too_many_arguments)]
async fn record_release(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    function_id: i64,
    version: i64,
    from_version: Option<i64>,
    action: &str,
    message: &str,
    actor: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO releases (function_id, version, from_version, action, message, actor, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(function_id)
    .bind(version)
    .bind(from_version)
    .bind(action)
    .bind(message)
    .bind(actor)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const TEMPLATE_COLUMNS: &str =
    "name, description, runtime, kind, from_function, from_version, app, created_at, created_by";

fn template_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<TemplateRecord> {
    Ok(TemplateRecord {
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        runtime: r.try_get("runtime")?,
        kind: r.try_get("kind")?,
        from_function: r.try_get("from_function")?,
        from_version: r
            .try_get::<i64, _>("from_version")?
            .clamp(0, i64::from(u32::MAX)) as u32,
        app: r.try_get("app")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
    })
}

fn file_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<BundleFile> {
    Ok(BundleFile {
        path: r.try_get("path")?,
        executable: r.try_get("executable")?,
        data: r.try_get("content")?,
    })
}

fn function_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<FunctionRecord> {
    Ok(FunctionRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        runtime: row.try_get("runtime")?,
        app: row.try_get("app")?,
        category: row.try_get("category")?,
        description: row.try_get("description")?,
        state: row.try_get("state")?,
        live_version: row
            .try_get::<Option<i64>, _>("live_version")?
            .map(|v| v as u32),
        versions: row.try_get::<i64, _>("versions")? as u32,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        // A type this build does not know lists as a plain function.
        kind: row
            .try_get::<Option<String>, _>("kind")?
            .and_then(|k| FunctionType::parse(&k))
            .unwrap_or_default(),
        offline: row.try_get("offline")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

fn version_from_row(function: &str, row: &sqlx::sqlite::SqliteRow) -> Result<VersionRecord> {
    let version = row.try_get::<i64, _>("number")? as u32;
    let manifest_text: String = row.try_get("manifest")?;
    let manifest = serde_json::from_str(&manifest_text).map_err(|e| StoreError::Corrupt {
        function: function.to_owned(),
        version,
        reason: e.to_string(),
    })?;
    Ok(VersionRecord {
        id: row.try_get("id")?,
        version,
        hash: row.try_get("hash")?,
        message: row.try_get("message")?,
        size_bytes: row.try_get::<i64, _>("size_bytes")? as u64,
        file_count: row.try_get::<i64, _>("file_count")? as u32,
        created_at: row.try_get("created_at")?,
        manifest,
    })
}

fn alias_target(r: &sqlx::sqlite::SqliteRow) -> Result<AliasTarget> {
    Ok(AliasTarget {
        version: r.try_get::<i64, _>("version")? as u32,
        split: r.try_get::<Option<i64>, _>("split_version")?.map(|v| {
            (
                v as u32,
                r.try_get::<i64, _>("split_weight").unwrap_or(0) as u8,
            )
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_store_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("hearth.db"))
            .await
            .expect("open");
        crate::suite::run_all(&store).await;
        store.close().await;

        // Reopening runs migrations again without harm and keeps everything.
        let store = SqliteStore::open(&dir.path().join("hearth.db"))
            .await
            .expect("reopen");
        assert_eq!(store.versions("hello").await.expect("versions").len(), 2);
        assert_eq!(store.aliases().await.expect("aliases").len(), 2);
        assert_eq!(store.templates().await.expect("templates").len(), 1);
    }
}
