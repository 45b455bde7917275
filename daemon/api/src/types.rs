//! Request and response bodies of the management API (`/api/v1/…`) and the
//! one error shape every endpoint uses. Shared by the gateway and the CLI.

use serde::{Deserialize, Serialize};

use crate::bundle::BundleFile;

/// POST /api/v1/deploy
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployRequest {
    pub files: Vec<BundleFile>,
    #[serde(default)]
    pub message: String,
    /// Make the version live once it loads (default true).
    #[serde(default = "yes")]
    pub publish: bool,
}

fn yes() -> bool {
    true
}

/// POST /api/v1/functions/{name}/publish
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishRequest {
    pub version: u32,
    #[serde(default)]
    pub message: String,
}

/// POST /api/v1/publish: several versions live at once, all or none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchPublishRequest {
    pub releases: Vec<BatchItem>,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchItem {
    pub function: String,
    pub version: u32,
}

/// PUT /api/v1/functions/{name}/aliases/{alias}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AliasRequest {
    pub version: u32,
    /// Send `weight` percent of the calls to another version (a canary).
    #[serde(default)]
    pub split: Option<SplitRequest>,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitRequest {
    pub version: u32,
    pub weight: u8,
}

/// POST /api/v1/functions/{name}/rollback
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RollbackRequest {
    #[serde(default)]
    pub message: String,
}

/// Every error, from every endpoint:
/// `{"error": {"code": "...", "message": "...", "hint": "...", ...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ErrorDetail {
    /// Stable, machine-readable: see docs/API.md for the list.
    pub code: String,
    /// What went wrong, naming the function, limit or file.
    pub message: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What the call printed, when the request asked with `x-hearth-log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// The function's own error (type, message, traceback), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<FunctionErrorBody>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionErrorBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    pub traceback: String,
}
