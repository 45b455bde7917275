//! `GET /api/v1/workers`: pools, pre-started (generic) workers, the global
//! budget; and the phases of a call, which every answer reports.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a call's worker came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartKind {
    /// An idle worker of the version took it.
    #[default]
    Warm,
    /// A pre-started interpreter loaded the code for it.
    Generic,
    /// A new process was started for it.
    Fresh,
}

impl StartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StartKind::Warm => "warm",
            StartKind::Generic => "generic",
            StartKind::Fresh => "fresh",
        }
    }
}

/// The phases of one call, in milliseconds. `spawn` and `load` are set
/// when the call had to start its worker (a cold start).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Timing {
    /// Waiting for a free worker (admission queue, global cap).
    pub queue_ms: f64,
    pub start: StartKind,
    /// Starting the interpreter and importing the shim, up to `ready`.
    pub spawn_ms: f64,
    /// Loading the function's code (its imports), up to `loaded`.
    pub load_ms: f64,
    /// The call itself, from sending it to its result.
    pub run_ms: f64,
}

/// One version's pool of workers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct PoolStats {
    pub function: String,
    pub version: u32,
    pub idle: usize,
    pub busy: usize,
    pub max_workers: u32,
    pub calls: u64,
    pub started: u64,
    pub waiting: u64,
    pub avg_call_ms: f64,
    pub recycled: u64,
    pub reclaimed: u64,
    pub pids: Vec<u32>,
    /// Workers in a row that died before finishing a call.
    pub crashes: u32,
    /// Milliseconds left of a crash-loop pause (0: none).
    pub backoff_ms: u64,
    /// Calls that had to start their worker.
    pub cold_starts: u64,
    /// The phases of the last of them.
    pub last_cold_start: Option<Timing>,
}

/// Pre-started interpreters of one runtime, with no function loaded.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GenericStats {
    pub runtime: String,
    pub idle: usize,
    pub target: usize,
    pub pids: Vec<u32>,
}

/// The global cap on workers with code loaded.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BudgetStats {
    pub cap: usize,
    pub workers: usize,
}

/// One application's workers against its budget.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AppUsage {
    pub app: String,
    pub max_workers: usize,
    pub workers: usize,
}

/// `GET /api/v1/workers`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WorkersInfo {
    pub generic: Vec<GenericStats>,
    pub pools: Vec<PoolStats>,
    pub budget: Option<BudgetStats>,
    /// Calls refused since the start for their function's rate limit.
    #[serde(default)]
    pub throttled: u64,
    /// Management requests refused since the start for their token's rate.
    #[serde(default)]
    pub api_throttled: u64,
}
