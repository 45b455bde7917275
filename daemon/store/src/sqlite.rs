//! The store: applications, functions, immutable versions (with their files)
//! and releases, in SQLite (WAL mode) through sqlx with runtime queries.

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use hearth_api::bundle::{Bundle, BundleFile};
use hearth_api::manifest::Manifest;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {source}; check that the data directory exists and is writable")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot update the store's schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("stored manifest of {function} version {version} is unreadable: {reason}")]
    Corrupt {
        function: String,
        version: u32,
        reason: String,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A function as listed by the API.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionRecord {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub runtime: String,
    pub app: String,
    pub category: String,
    pub description: String,
    pub state: String,
    pub live_version: Option<u32>,
    pub versions: u32,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set by the daemon (not stored) while the live version is paused in
    /// a crash loop: crashes, retry_in_ms, last_error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<serde_json::Value>,
}

/// An application and its budget (0: no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AppRecord {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub max_workers: u32,
    #[serde(default)]
    pub memory_mb: u64,
    #[serde(default)]
    pub cpu_percent: u32,
}

/// One stored version (without its files).
#[derive(Debug, Clone, Serialize)]
pub struct VersionRecord {
    /// The version's row id: unique across functions (workers of the
    /// version run as a user and group derived from it).
    #[serde(skip)]
    pub id: i64,
    pub version: u32,
    pub hash: String,
    pub message: String,
    pub size_bytes: u64,
    pub file_count: u32,
    pub created_at: i64,
    pub manifest: Manifest,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseRecord {
    pub version: u32,
    pub from_version: Option<u32>,
    pub action: String,
    /// The alias moved, for `alias` releases.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub alias: String,
    /// The traffic split set with an alias move: (version, percent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<(u32, u8)>,
    pub message: String,
    pub actor: String,
    pub created_at: i64,
}

/// Where an alias points: a version, and optionally a second version that
/// gets `weight` percent of the calls (a canary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AliasTarget {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<(u32, u8)>,
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

/// What `put_version` did.
#[derive(Debug, Clone)]
pub struct PutVersion {
    pub version: u32,
    pub created: bool,
    pub hash: String,
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Open (creating if needed) the SQLite store at `path` and bring its
    /// schema up to date.
    pub async fn open(path: &Path) -> Result<Store> {
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
        Ok(Store { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    const FUNCTION_COLUMNS: &'static str =
        "f.id, f.name, f.runtime, a.name AS app, f.category, f.description, f.state, \
         f.live_version, f.created_at, f.updated_at, \
         (SELECT COUNT(*) FROM versions v WHERE v.function_id = f.id) AS versions \
         FROM functions f JOIN applications a ON a.id = f.app_id";

    /// Every application with its budget.
    pub async fn apps(&self) -> Result<Vec<AppRecord>> {
        let rows = sqlx::query(
            "SELECT name, max_workers, memory_mb, cpu_percent FROM applications ORDER BY name",
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
                })
            })
            .collect()
    }

    /// Create the application if needed and set its budget.
    pub async fn set_app(&self, app: &AppRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO applications (name, created_at, max_workers, memory_mb, cpu_percent) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT(name) DO UPDATE SET max_workers = excluded.max_workers, memory_mb = excluded.memory_mb, cpu_percent = excluded.cpu_percent",
        )
        .bind(&app.name)
        .bind(now_ms())
        .bind(i64::from(app.max_workers))
        .bind(app.memory_mb as i64)
        .bind(i64::from(app.cpu_percent))
        .execute(&self.pool)
        .await?;
        Ok(())
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
            backoff: None,
        })
    }

    pub async fn list_functions(&self) -> Result<Vec<FunctionRecord>> {
        let sql = format!("SELECT {} ORDER BY f.name", Self::FUNCTION_COLUMNS);
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(Self::function_from_row).collect()
    }

    pub async fn function(&self, name: &str) -> Result<Option<FunctionRecord>> {
        let sql = format!("SELECT {} WHERE f.name = ?", Self::FUNCTION_COLUMNS);
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::function_from_row).transpose()
    }

    /// Store `bundle` as the next version of the function it declares,
    /// creating the application and function on first deploy. Byte-identical
    /// code returns the existing version instead of making a new one.
    pub async fn put_version(
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
            "INSERT INTO functions (name, runtime, app_id, category, description, state, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, 'draft', ?, ?) ON CONFLICT(name) DO NOTHING",
        )
        .bind(&manifest.name)
        .bind(manifest.runtime.as_str())
        .bind(app_id)
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

    pub async fn versions(&self, function: &str) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query(
            "SELECT v.id, v.number, v.hash, v.message, v.size_bytes, v.file_count, v.created_at, v.manifest \
             FROM versions v JOIN functions f ON f.id = v.function_id WHERE f.name = ? ORDER BY v.number",
        )
        .bind(function)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Self::version_from_row(function, r))
            .collect()
    }

    pub async fn version(&self, function: &str, number: u32) -> Result<Option<VersionRecord>> {
        let row = sqlx::query(
            "SELECT v.id, v.number, v.hash, v.message, v.size_bytes, v.file_count, v.created_at, v.manifest \
             FROM versions v JOIN functions f ON f.id = v.function_id WHERE f.name = ? AND v.number = ?",
        )
        .bind(function)
        .bind(i64::from(number))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|r| Self::version_from_row(function, r))
            .transpose()
    }

    pub async fn version_files(&self, function: &str, number: u32) -> Result<Vec<BundleFile>> {
        let rows = sqlx::query(
            "SELECT vf.path, vf.executable, vf.content FROM version_files vf \
             JOIN versions v ON v.id = vf.version_id JOIN functions f ON f.id = v.function_id \
             WHERE f.name = ? AND v.number = ? ORDER BY vf.path",
        )
        .bind(function)
        .bind(i64::from(number))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BundleFile {
                    path: r.try_get("path")?,
                    executable: r.try_get("executable")?,
                    data: r.try_get("content")?,
                })
            })
            .collect()
    }

    /// Make `version` live, recording the release. Also refreshes the
    /// function's runtime, application, category and description from that
    /// version's manifest. Returns the version that was live before.
    pub async fn release(
        &self,
        function: &str,
        version: &VersionRecord,
        action: &str,
        message: &str,
        actor: &str,
    ) -> Result<Option<u32>> {
        let previous = self
            .release_many(
                &[(function.to_owned(), version.clone())],
                action,
                message,
                actor,
            )
            .await?;
        Ok(previous.into_iter().next().flatten())
    }

    /// Make several versions live in one transaction: all or none. Returns
    /// the version each function had live before, in order.
    pub async fn release_many(
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
            sqlx::query(
                "UPDATE functions SET live_version = ?, state = 'live', runtime = ?, \
                 app_id = (SELECT id FROM applications WHERE name = ?), category = ?, description = ?, updated_at = ? \
                 WHERE id = ?",
            )
            .bind(i64::from(version.version))
            .bind(m.runtime.as_str())
            .bind(&m.app)
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
    pub async fn set_alias(
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
    pub async fn aliases(&self) -> Result<Vec<(String, String, AliasTarget)>> {
        let rows = sqlx::query(
            "SELECT f.name AS function, a.name AS alias, a.version, a.split_version, a.split_weight \
             FROM aliases a JOIN functions f ON f.id = a.function_id ORDER BY f.name, a.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("function")?,
                    r.try_get("alias")?,
                    alias_target(r)?,
                ))
            })
            .collect()
    }

    /// A number that changes whenever any release (publish, rollback, alias
    /// move) is recorded, by this process or another sharing the store.
    pub async fn release_mark(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM releases")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Release history, newest first.
    pub async fn releases(&self, function: &str) -> Result<Vec<ReleaseRecord>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_api::manifest;

    fn bundle(code: &str) -> (Manifest, Bundle) {
        let text = "name='hello'\nruntime='python'\nentry='main.handler'\napp='demo'\n";
        let b = Bundle {
            files: vec![
                BundleFile {
                    path: "hearth.toml".into(),
                    data: text.as_bytes().to_vec(),
                    executable: false,
                },
                BundleFile {
                    path: "main.py".into(),
                    data: code.as_bytes().to_vec(),
                    executable: false,
                },
            ],
        };
        (manifest::parse(text).expect("manifest"), b)
    }

    #[tokio::test]
    async fn versions_are_numbered_and_deduplicated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("hearth.db"))
            .await
            .expect("open");
        let (m, b1) = bundle("def handler(e): return 1");
        let (_, b2) = bundle("def handler(e): return 2");
        let v1 = store.put_version(&m, &b1, "first").await.expect("put");
        let again = store.put_version(&m, &b1, "again").await.expect("put");
        let v2 = store.put_version(&m, &b2, "").await.expect("put");
        assert_eq!((v1.version, v1.created), (1, true));
        assert_eq!((again.version, again.created), (1, false));
        assert_eq!((v2.version, v2.created), (2, true));
        let files = store.version_files("hello", 1).await.expect("files");
        assert_eq!(files, b1.files);

        let rec = store.version("hello", 2).await.expect("q").expect("exists");
        assert_eq!(
            store
                .release("hello", &rec, "publish", "", "")
                .await
                .expect("release"),
            None
        );
        let rec1 = store.version("hello", 1).await.expect("q").expect("exists");
        assert_eq!(
            store
                .release("hello", &rec1, "rollback", "", "")
                .await
                .expect("release"),
            Some(2)
        );
        let f = store.function("hello").await.expect("q").expect("exists");
        assert_eq!(
            (f.live_version, f.versions, f.app.as_str()),
            (Some(1), 2, "demo")
        );
        let history = store.releases("hello").await.expect("history");
        assert_eq!(history.len(), 2);
        assert_eq!((history[0].version, history[0].from_version), (1, Some(2)));
        store.close().await;

        // Reopening runs migrations again without harm and keeps everything.
        let store = Store::open(&dir.path().join("hearth.db"))
            .await
            .expect("reopen");
        assert_eq!(store.versions("hello").await.expect("versions").len(), 2);
    }
}
