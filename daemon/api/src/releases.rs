//! Releases: publish a version, roll back, publish several at once, and the
//! release history.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `POST /api/v1/functions/{name}/publish`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PublishRequest {
    pub version: u32,
    #[serde(default)]
    pub message: String,
    /// Publish even if its input schema can break callers of the live
    /// version.
    #[serde(default)]
    pub allow_breaking: bool,
}

/// `POST /api/v1/functions/{name}/rollback`
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct RollbackRequest {
    #[serde(default)]
    pub message: String,
}

/// `POST /api/v1/publish`: several versions live at once, all or none.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BatchPublishRequest {
    pub releases: Vec<BatchItem>,
    #[serde(default)]
    pub message: String,
    /// Publish even members whose input schema can break callers.
    #[serde(default)]
    pub allow_breaking: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BatchItem {
    pub function: String,
    pub version: u32,
}

/// What a publish or rollback did.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseOutcome {
    pub function: String,
    pub version: u32,
    pub previous: Option<u32>,
    pub action: String,
    /// How its input schema can break callers of the version live before
    /// (published anyway: `allow_breaking`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaking: Vec<crate::metadata::BreakingChange>,
}

/// The answer of a batch publish.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BatchPublishOutcome {
    pub releases: Vec<ReleaseOutcome>,
}

/// One member of a batch that cannot go live.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BatchFailure {
    pub function: String,
    pub version: u32,
    pub error: String,
}

/// One entry of a function's release history.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseInfo {
    pub version: u32,
    pub from_version: Option<u32>,
    /// publish, rollback or alias.
    pub action: String,
    /// The alias moved, for `alias` releases.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias: String,
    /// The traffic split set with an alias move: (version, percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<(u32, u8)>,
    pub message: String,
    pub actor: String,
    pub created_at: i64,
}

/// `GET /api/v1/functions/{name}/releases`, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseList {
    pub function: String,
    pub releases: Vec<ReleaseInfo>,
}
