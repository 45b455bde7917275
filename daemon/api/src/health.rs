//! `GET /` and `GET /api/v1/health`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `GET /`: what is served here.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ServiceInfo {
    pub service: String,
    pub version: String,
    pub call: String,
    pub api: String,
}

/// `GET /api/v1/health`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HealthInfo {
    pub status: String,
    pub version: String,
    /// One line per runtime found (or missing, with how to install it).
    pub runtimes: Vec<String>,
}
