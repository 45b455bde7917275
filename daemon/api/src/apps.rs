//! Applications: partitions of the host with a budget of workers, memory and
//! CPU shared by all their functions (0: no limit).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::InvokeMode;

/// `PUT /api/v1/apps/{name}`: the application's budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AppBudgetRequest {
    #[serde(default)]
    pub max_workers: u32,
    #[serde(default)]
    pub memory_mb: u64,
    #[serde(default)]
    pub cpu_percent: u32,
    /// `open` or `key` (calls need an `invoke` token); absent: unchanged
    /// (`open` for a new application).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoke: Option<InvokeMode>,
}

/// What setting a budget did.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AppBudgetOutcome {
    pub name: String,
    pub max_workers: u32,
    pub memory_mb: u64,
    pub cpu_percent: u32,
    #[serde(default)]
    pub invoke: InvokeMode,
    /// Whether memory and CPU are enforced (the host has usable cgroups).
    pub memory_cpu_enforced: bool,
}

/// One application as listed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AppInfo {
    pub name: String,
    pub max_workers: u32,
    pub memory_mb: u64,
    pub cpu_percent: u32,
    #[serde(default)]
    pub invoke: InvokeMode,
    /// Workers with code loaded now.
    pub workers: usize,
    pub memory_cpu_enforced: bool,
}

/// `GET /api/v1/apps`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AppList {
    pub apps: Vec<AppInfo>,
}
