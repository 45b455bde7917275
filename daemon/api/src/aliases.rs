//! Aliases: named pointers to a version (prod, canary, ...), optionally
//! splitting traffic with a second version.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an alias points: a version, and optionally a second version that
/// gets `weight` percent of the calls (a canary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AliasTarget {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<(u32, u8)>,
}

/// `PUT /api/v1/functions/{name}/aliases/{alias}`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AliasRequest {
    pub version: u32,
    /// Send `weight` percent of the calls to another version (a canary).
    #[serde(default)]
    pub split: Option<SplitRequest>,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SplitRequest {
    pub version: u32,
    pub weight: u8,
}

impl AliasRequest {
    pub fn target(&self) -> AliasTarget {
        AliasTarget {
            version: self.version,
            split: self.split.as_ref().map(|s| (s.version, s.weight)),
        }
    }
}

/// What an alias move did.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AliasOutcome {
    pub function: String,
    pub alias: String,
    pub target: AliasTarget,
    pub previous: Option<AliasTarget>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AliasInfo {
    pub alias: String,
    pub target: AliasTarget,
}

/// `GET /api/v1/functions/{name}/aliases`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AliasList {
    pub function: String,
    pub aliases: Vec<AliasInfo>,
}
