//! `POST /api/v1/gc`: remove the stored versions no retention rule keeps,
//! and the directories (code, dependency installs, unfinished writes,
//! workers' temporary directories) that no kept version needs; with
//! `dry_run`, only list them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct GcRequest {
    /// List what would be removed, and remove nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What gc removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct GcReport {
    pub dry_run: bool,
    /// The retention policy applied: each function keeps its last
    /// `keep_versions` versions, its live version, every version an alias
    /// points at, every version named in its last `keep_releases` release
    /// history entries, and every version with warm workers.
    pub keep_versions: u32,
    pub keep_releases: u32,
    /// Stored versions removed.
    pub versions: Vec<GcVersion>,
    /// Directories removed.
    pub dirs: Vec<GcDir>,
    /// Bytes freed (or that would be): versions' code and directories.
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GcVersion {
    pub function: String,
    pub version: u32,
    pub size_bytes: u64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GcDir {
    /// `code` (a version's code directory), `deps` (a dependency install),
    /// `staging` (an unfinished write of code or dependencies) or `tmp` (a
    /// worker's temporary directory).
    pub kind: String,
    pub path: String,
    pub bytes: u64,
}
