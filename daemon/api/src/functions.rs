//! Functions and their versions, as the management API lists them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;

/// One function.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FunctionInfo {
    pub name: String,
    pub runtime: String,
    pub app: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub description: String,
    /// draft (nothing published yet), live, or crash-loop while the live
    /// version is paused.
    pub state: String,
    pub live_version: Option<u32>,
    pub versions: u32,
    pub created_at: i64,
    pub updated_at: i64,
    /// Present while the live version is paused in a crash loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<CrashLoopInfo>,
    /// The functions its live version says it calls (`calls` in its
    /// hearth.toml).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// The live functions that say they call it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub called_by: Vec<String>,
}

/// A crash-loop pause: how many workers died in a row, how long until the
/// next try, and why the last one died.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CrashLoopInfo {
    pub crashes: u32,
    pub retry_in_ms: u64,
    pub last_error: String,
}

/// The query of a function's generated documents (its OpenAPI document,
/// its page): which version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VersionQuery {
    /// The version to describe (default: the live one, else the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// `GET /api/v1/functions`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FunctionList {
    pub functions: Vec<FunctionInfo>,
}

/// One stored version (without its files).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VersionInfo {
    pub version: u32,
    pub hash: String,
    pub message: String,
    pub size_bytes: u64,
    pub file_count: u32,
    pub created_at: i64,
    pub manifest: Manifest,
}

/// `GET /api/v1/functions/{name}/versions`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VersionList {
    pub function: String,
    pub live_version: Option<u32>,
    pub versions: Vec<VersionInfo>,
}
