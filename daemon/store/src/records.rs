//! What the store keeps, as the store keeps it; the API's responses are
//! made from these (`From` impls below), never the records themselves.

use std::collections::BTreeMap;

use hearth_api::manifest::Manifest;
use hearth_api::metadata::FunctionType;
use hearth_api::Histogram;
use hearth_api::{AliasInfo, AliasTarget, FunctionInfo, ReleaseInfo, VersionInfo};
use hearth_api::{InvokeMode, Scope};

/// A function.
#[derive(Debug, Clone)]
pub struct FunctionRecord {
    pub id: i64,
    pub name: String,
    pub runtime: String,
    pub app: String,
    pub category: String,
    pub description: String,
    /// draft until a version is published, then live (and draft again
    /// once deleted).
    pub state: String,
    pub live_version: Option<u32>,
    pub versions: u32,
    pub created_at: i64,
    pub updated_at: i64,
    /// The live version's `type` (the latest version's while none is live).
    pub kind: FunctionType,
    /// Taken offline: every call is refused; its live version stays.
    pub offline: bool,
    /// When it was deleted (milliseconds since the epoch); None: it is not.
    pub deleted_at: Option<i64>,
}

/// An application and its budget (0: no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppRecord {
    pub name: String,
    pub max_workers: u32,
    pub memory_mb: u64,
    pub cpu_percent: u32,
    pub invoke: InvokeMode,
}

/// An API token as kept: never the token, only its public id and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub name: String,
    /// The public part of the token, by which it is found.
    pub id: String,
    /// SHA-256 of the whole token, hex.
    pub sha256: String,
    pub scopes: Vec<Scope>,
    /// Applications a `deploy`/`invoke` token is limited to (empty: all).
    pub apps: Vec<String>,
    /// `api`, `local` or `config` (see `hearth_api::TokenInfo`).
    pub origin: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub last_used: Option<i64>,
}

/// One stored version (without its files).
#[derive(Debug, Clone)]
pub struct VersionRecord {
    /// The version's row id: unique across functions (workers of the
    /// version run as a user and group derived from it).
    pub id: i64,
    pub version: u32,
    pub hash: String,
    pub message: String,
    pub size_bytes: u64,
    pub file_count: u32,
    pub created_at: i64,
    pub manifest: Manifest,
}

/// A saved template (without its files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRecord {
    pub name: String,
    pub description: String,
    pub runtime: String,
    /// The function type it makes (function, datasource, field).
    pub kind: String,
    pub from_function: String,
    pub from_version: u32,
    /// The application of the function it was saved from.
    pub app: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// The name of the token that saved it.
    pub created_by: String,
}

/// One release: publish, rollback, or alias move.
#[derive(Debug, Clone)]
pub struct ReleaseRecord {
    pub version: u32,
    pub from_version: Option<u32>,
    pub action: String,
    /// The alias moved, for `alias` releases ('' otherwise).
    pub alias: String,
    /// The traffic split set with an alias move: (version, percent).
    pub split: Option<(u32, u8)>,
    pub message: String,
    pub actor: String,
    pub created_at: i64,
}

/// An alias of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRecord {
    pub function: String,
    pub alias: String,
    pub target: AliasTarget,
}

/// What `put_version` did.
#[derive(Debug, Clone)]
pub struct PutVersion {
    pub version: u32,
    pub created: bool,
    pub hash: String,
}

/// Statistics of one version's calls: of one minute as written by a flush,
/// or summed over a window as read back (`minute` is then the latest).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsRecord {
    pub app: String,
    pub function: String,
    pub version: u32,
    /// Minutes since the epoch.
    pub minute: i64,
    pub calls: u64,
    pub ok: u64,
    /// Calls refused at admission (`hearth_api::REJECTIONS`).
    pub rejected: u64,
    /// Calls that ran on a worker started for them.
    pub cold: u64,
    /// Durations of the calls that ran (not rejected).
    pub total_ms: f64,
    pub max_ms: f64,
    pub durations: Histogram,
    /// Calls by outcome, for every outcome but ok.
    pub errors: BTreeMap<String, u64>,
    /// The most calls in flight at once: of this version, of its function,
    /// of its application.
    pub peak: u64,
    pub function_peak: u64,
    pub app_peak: u64,
}

impl StatsRecord {
    /// Add `other`'s counts to these (the peaks and longest duration are
    /// the larger of both; `minute` the later).
    pub fn merge(&mut self, other: &StatsRecord) {
        self.minute = self.minute.max(other.minute);
        self.calls += other.calls;
        self.ok += other.ok;
        self.rejected += other.rejected;
        self.cold += other.cold;
        self.total_ms += other.total_ms;
        self.max_ms = self.max_ms.max(other.max_ms);
        self.durations.merge(&other.durations);
        for (outcome, n) in &other.errors {
            *self.errors.entry(outcome.clone()).or_default() += n;
        }
        self.peak = self.peak.max(other.peak);
        self.function_peak = self.function_peak.max(other.function_peak);
        self.app_peak = self.app_peak.max(other.app_peak);
    }
}

/// Which statistics to read: an application's or a function's (or every
/// one), from a minute on.
#[derive(Debug, Clone, Default)]
pub struct StatsQuery {
    pub app: Option<String>,
    pub function: Option<String>,
    /// The first minute (minutes since the epoch) to include.
    pub since_minute: i64,
}

impl From<FunctionRecord> for FunctionInfo {
    fn from(f: FunctionRecord) -> FunctionInfo {
        FunctionInfo {
            name: f.name,
            runtime: f.runtime,
            app: f.app,
            category: f.category,
            description: f.description,
            state: if f.offline {
                "offline".to_owned()
            } else {
                f.state
            },
            kind: f.kind,
            live_version: f.live_version,
            versions: f.versions,
            created_at: f.created_at,
            updated_at: f.updated_at,
            backoff: None,
            calls: Vec::new(),
            called_by: Vec::new(),
        }
    }
}

impl From<VersionRecord> for VersionInfo {
    fn from(v: VersionRecord) -> VersionInfo {
        VersionInfo {
            version: v.version,
            hash: v.hash,
            message: v.message,
            size_bytes: v.size_bytes,
            file_count: v.file_count,
            created_at: v.created_at,
            manifest: v.manifest,
        }
    }
}

impl From<TemplateRecord> for hearth_api::TemplateInfo {
    fn from(t: TemplateRecord) -> hearth_api::TemplateInfo {
        hearth_api::TemplateInfo {
            from: Some(format!("{}@{}", t.from_function, t.from_version)),
            name: t.name,
            description: t.description,
            runtime: t.runtime,
            kind: t.kind,
            builtin: false,
            app: Some(t.app),
            created_at: Some(t.created_at),
            created_by: Some(t.created_by),
        }
    }
}

impl From<ReleaseRecord> for ReleaseInfo {
    fn from(r: ReleaseRecord) -> ReleaseInfo {
        ReleaseInfo {
            version: r.version,
            from_version: r.from_version,
            action: r.action,
            alias: r.alias,
            split: r.split,
            message: r.message,
            actor: r.actor,
            created_at: r.created_at,
        }
    }
}

impl From<AliasRecord> for AliasInfo {
    fn from(a: AliasRecord) -> AliasInfo {
        AliasInfo {
            alias: a.alias,
            target: a.target,
        }
    }
}
