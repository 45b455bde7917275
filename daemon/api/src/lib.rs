//! hearth's API contract, in one home: what a function declares
//! (hearth.toml), what a deploy carries (bundles), how a call names its
//! function, and the management API's routes, request and response types and
//! error codes. The gateway, the CLI, the engine and the tests use these
//! types; nothing here knows of HTTP servers, the store or workers.

pub mod auth;
pub mod bundle;
pub mod manifest;
pub mod metadata;
pub mod openapi;
pub mod page;

mod aliases;
mod apps;
mod calls;
mod deploy;
mod diff;
mod error;
mod functions;
mod gc;
mod health;
mod releases;
pub mod routes;
mod stats;
mod target;
pub mod templates;
mod workers;

pub use aliases::{AliasInfo, AliasList, AliasOutcome, AliasRequest, AliasTarget, SplitRequest};
pub use apps::{AppBudgetOutcome, AppBudgetRequest, AppInfo, AppList};
pub use auth::{
    Access, InvokeMode, Scope, TokenCreated, TokenInfo, TokenList, TokenRequest, TokenRevoked,
};
pub use calls::{
    outcome_class, CallList, CallQuery, CallRecord, LogLine, QueryError, StatusFilter, Stream,
    DEFAULT_CALL_LIMIT, MAX_CALL_LIMIT,
};
pub use deploy::{DeployOutcome, DeployRequest};
pub use diff::{DiffQuery, FileDiff, ManifestChange, VersionDiff};
pub use error::{ApiError, ErrorBody, ErrorCode, ErrorDetail, FunctionErrorBody};
pub use functions::{
    CrashLoopInfo, DeleteQuery, FunctionEdit, FunctionFilter, FunctionInfo, FunctionList,
    FunctionStateOutcome, VersionInfo, VersionList, VersionQuery, FUNCTION_STATES,
};
pub use gc::{GcDir, GcReport, GcRequest, GcVersion};
pub use health::{HealthInfo, ServiceInfo};
pub use page::{PageAnswer, PageFieldError};
pub use releases::{
    BatchFailure, BatchItem, BatchPublishOutcome, BatchPublishRequest, PublishRequest, ReleaseInfo,
    ReleaseList, ReleaseOutcome, RollbackRequest,
};
pub use stats::{
    is_rejection, AppStats, CallStats, FunctionStats, Histogram, StatsQuery, StatsWindow,
    VersionStats, REJECTIONS,
};
pub use target::Target;
pub use templates::{
    SaveTemplateRequest, TemplateDeleted, TemplateDetail, TemplateInfo, TemplateList,
    TemplateVariable,
};
pub use workers::{AppUsage, BudgetStats, GenericStats, PoolStats, StartKind, Timing, WorkersInfo};
