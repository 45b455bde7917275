//! `POST /api/v1/deploy`: store a bundle as a version, prove it loads, and
//! (by default) publish it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bundle::BundleFile;

/// The body of a deploy: the function's files (its hearth.toml among them).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DeployRequest {
    pub files: Vec<BundleFile>,
    #[serde(default)]
    pub message: String,
    /// Make the version live once it loads (default true).
    #[serde(default = "yes")]
    pub publish: bool,
    /// Publish even if its input schema can break callers of the live
    /// version (see `breaking` in the answer).
    #[serde(default)]
    pub allow_breaking: bool,
}

fn yes() -> bool {
    true
}

/// What a deploy did: 201 when a new version was stored, 200 when the
/// same code already was. With `Accept: application/x-ndjson` it comes as
/// the last line `{"result": ...}` of a stream of `{"progress": "..."}`
/// lines (or `{"error": ..., "status": N}`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DeployOutcome {
    pub function: String,
    pub version: u32,
    /// false when byte-identical code was already stored as `version`.
    pub created: bool,
    pub hash: String,
    /// Whether `version` is live now.
    pub live: bool,
    /// The live version before this deploy.
    pub previous: Option<u32>,
    /// Time to start a worker and load the code, when one was started.
    pub load_ms: Option<f64>,
    /// How its input schema can break callers of the version live before
    /// (published anyway: `allow_breaking`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaking: Vec<crate::metadata::BreakingChange>,
}
