//! `GET /api/v1/functions/{name}/diff?from=A&to=B`: what changed between
//! two versions of a function: its files (a unified diff of each text
//! file), its metadata and limits (key by key), and how its input schema
//! can break callers of the older one.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metadata::BreakingChange;

/// The query of the diff: the two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiffQuery {
    /// The older version.
    pub from: u32,
    /// The newer version.
    pub to: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VersionDiff {
    pub function: String,
    pub from: u32,
    pub to: u32,
    /// Files added, removed or changed, by path.
    pub files: Vec<FileDiff>,
    /// hearth.toml keys whose value changed (`limits.timeout_ms`,
    /// `input`, `errors.NOT_FOUND`, ...), as parsed.
    pub manifest: Vec<ManifestChange>,
    /// How `to`'s input schema can break callers of `from`.
    pub breaking: Vec<BreakingChange>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FileDiff {
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// Unified diff of a text file (3 lines of context); empty for a
    /// binary file or one too large to show.
    pub diff: String,
    pub binary: bool,
    pub from_bytes: u64,
    pub to_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ManifestChange {
    pub key: String,
    /// null when the key was not there.
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}
