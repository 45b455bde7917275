//! The engine's errors, and what each is in the API contract: its code,
//! status and hint.

use hearth_api::bundle::BundleError;
use hearth_api::{ApiError, BatchFailure, ErrorCode};
use hearth_store::StoreError;

use crate::code::CodeError;
use crate::deps::DepsError;
use crate::pool::{CallError, FunctionError, WorkerError};
use crate::runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Code(#[from] CodeError),
    #[error("{error}; {}", if *.taken_back { "the deploy stored nothing" } else { "the version stays stored but cannot run" })]
    Unwritable { error: CodeError, taken_back: bool },
    #[error("no function named \"{0}\"")]
    UnknownFunction(String),
    #[error("{function} has no version {version} (latest is {latest})")]
    UnknownVersion {
        function: String,
        version: u32,
        latest: u32,
    },
    #[error("{function} has no live version")]
    NotPublished { function: String },
    #[error("{function} version {version} failed to load, so it was not published: {}: {}", .error.kind, .error.message)]
    LoadFailed {
        function: String,
        version: u32,
        created: bool,
        live: Option<u32>,
        error: FunctionError,
    },
    #[error("{function} version {version} could not be started: {source}")]
    Start {
        function: String,
        version: u32,
        source: WorkerError,
    },
    #[error(transparent)]
    Deps(#[from] DepsError),
    #[error("{error}; version {version} was not published")]
    DepsFailed {
        version: u32,
        live: Option<u32>,
        error: DepsError,
    },
    #[error("the batch names a function twice; give each function once")]
    BatchDuplicate,
    #[error("nothing was published: {} of the batch cannot go live: {}", .failures.len(), .failures.iter().map(|f| format!("{}@{}: {}", f.function, f.version, f.error)).collect::<Vec<_>>().join("; "))]
    BatchFailed { failures: Vec<BatchFailure> },
    #[error("\"{0}\" is not a valid alias: use lowercase letters, digits and '-', not only digits (for example prod or canary)")]
    BadAlias(String),
    #[error("a split weight of {0}% is over 100%")]
    BadWeight(u8),
    #[error("{function} has no earlier version to roll back to (live version {live} was its first release)")]
    NothingToRollBack { function: String, live: u32 },
    #[error("{function} version {version} was not published: its input schema can break callers of live version {live}: {}", .changes.iter().map(|c| if c.pointer.is_empty() { c.change.clone() } else { format!("{}: {}", c.pointer, c.change) }).collect::<Vec<_>>().join("; "))]
    Breaking {
        function: String,
        version: u32,
        live: u32,
        changes: Vec<hearth_api::metadata::BreakingChange>,
    },
    #[error("{function} is offline: every call to it is refused (`hearth offline {function}` took it offline); its versions, aliases and live version are kept")]
    Offline { function: String },
    #[error("{function} was deleted: it takes no calls and is not listed; its versions and release history are kept")]
    Deleted { function: String },
    #[error("{function} was not deleted: {} declare{} that {} call{} it (`calls` in the live version's hearth.toml)", .callers.join(", "), if .callers.len() == 1 { "s" } else { "" }, if .callers.len() == 1 { "it" } else { "they" }, if .callers.len() == 1 { "s" } else { "" })]
    InUse {
        function: String,
        callers: Vec<String>,
    },
    #[error("{function} version {version}: hearth.toml: {problem}")]
    BadPage {
        function: String,
        version: u32,
        problem: String,
    },
    /// A page's field names a function (or version, alias) that is not
    /// there: `at` is `fields.PATH.fn`.
    #[error("{page}: hearth.toml: `{at}` {problem}")]
    PageMember {
        page: String,
        at: String,
        problem: String,
    },
    #[error("{function}: {field} is {len} bytes, over the limit of {max}")]
    EditTooLong {
        function: String,
        field: &'static str,
        len: usize,
        max: usize,
    },
}

impl PublishError {
    /// Why a call to `function` is refused when it is offline or deleted.
    pub(crate) fn blocked(function: &str, why: crate::router::Blocked) -> PublishError {
        let function = function.to_owned();
        match why {
            crate::router::Blocked::Offline => PublishError::Offline { function },
            crate::router::Blocked::Deleted => PublishError::Deleted { function },
        }
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> ApiError {
        let message = e.to_string();
        match e {
            PublishError::Bundle(BundleError::Manifest(_)) | PublishError::Bundle(BundleError::NoManifest) => {
                ApiError::new(ErrorCode::BadManifest, message, "fix hearth.toml and deploy again")
            }
            PublishError::BadPage { .. } => {
                ApiError::new(ErrorCode::BadManifest, message, "fix the page's [fields] in hearth.toml and deploy it again")
            }
            PublishError::PageMember { .. } => ApiError::new(
                ErrorCode::BadManifest,
                message,
                "deploy that function first (or fix the name, version or alias in the page's hearth.toml), then deploy the page again",
            ),
            PublishError::Bundle(BundleError::EntryMissing { .. }) => ApiError::new(
                ErrorCode::BadManifest,
                message,
                "fix `entry` in hearth.toml or add the file, then deploy again",
            ),
            PublishError::Bundle(_) => ApiError::new(
                ErrorCode::BadBundle,
                message,
                "fix the function's files and deploy again",
            ),
            PublishError::Runtime(_) => ApiError::new(
                ErrorCode::RuntimeUnavailable,
                message,
                "install the runtime as the message says (./scripts/setup does), then restart hearth serve",
            ),
            PublishError::Store(_) | PublishError::Code(_) => ApiError::new(
                ErrorCode::Internal,
                message,
                "check the daemon's log and its data directory",
            ),
            PublishError::Unwritable { error, .. } => ApiError::new(
                ErrorCode::Internal,
                message,
                format!("free space or fix the permissions of {} (the daemon's data directory), then deploy again", error.path.display()),
            )
            .function(&error.function, None),
            PublishError::UnknownFunction(name) => ApiError::new(
                ErrorCode::FunctionNotFound,
                message,
                "deploy it with `hearth deploy DIR`; `hearth list` shows the functions there are",
            )
            .function(&name, None),
            PublishError::UnknownVersion { function, version, .. } => ApiError::new(
                ErrorCode::VersionNotFound,
                message,
                format!("`hearth versions {function}` lists its versions"),
            )
            .function(&function, Some(version)),
            PublishError::NotPublished { function } => ApiError::new(
                ErrorCode::NotPublished,
                message,
                format!("publish one with `hearth publish {function} --version N`, or call a version directly at /fn/{function}@N"),
            )
            .function(&function, None),
            PublishError::LoadFailed {
                function,
                version,
                live,
                error,
                ..
            } => {
                let hint = match live {
                    Some(v) => format!("version {v} stays live; fix the code and deploy again"),
                    None => "nothing is live yet; fix the code and deploy again".to_owned(),
                };
                ApiError::new(ErrorCode::LoadFailed, message, hint)
                    .function(&function, Some(version))
                    .details(error.kind, error.message, error.traceback)
            }
            PublishError::Start { function, version, source } => {
                let mut err = ApiError::from(CallError::Worker(source));
                err.detail.message = message;
                err.function(&function, Some(version))
            }
            PublishError::BatchDuplicate => ApiError::new(
                ErrorCode::BadRequest,
                message,
                "list each function once in the batch",
            ),
            PublishError::BatchFailed { .. } => ApiError::new(
                ErrorCode::BatchFailed,
                message,
                "every live version stays as it was; fix or drop the failing members and publish the batch again",
            ),
            PublishError::BadAlias(_) | PublishError::BadWeight(_) => ApiError::new(
                ErrorCode::BadAlias,
                message,
                "for example: hearth alias NAME canary --version 3 --split 4 --weight 10",
            ),
            PublishError::Deps(error) => deps_error(message, error, None),
            PublishError::DepsFailed {
                live,
                error,
                version,
            } => deps_error(message, error, live).version_of(version),
            PublishError::Breaking { function, version, .. } => ApiError::new(
                ErrorCode::BreakingChange,
                message,
                format!("version {version} is stored; if its callers are ready, publish it with `hearth publish {function} --version {version} --allow-breaking` (API: \"allow_breaking\": true); else keep the schema compatible (new fields optional, no field removed, no type narrowed)"),
            )
            .function(&function, Some(version)),
            PublishError::NothingToRollBack { function, live } => ApiError::new(
                ErrorCode::NothingToRollBack,
                message,
                format!("make another version live with `hearth publish {function} --version N`"),
            )
            .function(&function, Some(live)),
            PublishError::Offline { function } => ApiError::new(
                ErrorCode::FunctionOffline,
                message,
                format!("bring it back with `hearth online {function}`"),
            )
            .function(&function, None),
            PublishError::Deleted { function } => ApiError::new(
                ErrorCode::FunctionNotFound,
                message,
                format!("bring it back by deploying it again (`hearth deploy DIR`) or by publishing one of its versions (`hearth publish {function} --version N`; `hearth versions {function}` lists them, `hearth history {function}` shows the delete)"),
            )
            .function(&function, None),
            PublishError::InUse { function, .. } => ApiError::new(
                ErrorCode::FunctionInUse,
                message,
                format!("take {function} out of their `calls` and deploy them again, or delete it anyway with `hearth delete {function} --force` (DELETE ...?force=true): their calls to it will then get 404 function_not_found"),
            )
            .function(&function, None),
            PublishError::EditTooLong { function, field, max, .. } => ApiError::bad_request(
                message,
                format!("give {field} at most {max} bytes: `hearth edit {function} --{field} TEXT`"),
            )
            .function(&function, None),
        }
    }
}

fn deps_error(message: String, error: DepsError, live: Option<u32>) -> ApiError {
    let stays = match live {
        Some(v) => format!("version {v} stays live; "),
        None => String::new(),
    };
    match error {
        DepsError::Failed {
            function,
            file,
            installer,
            message: installer_message,
            output,
            ..
        } => ApiError::new(
            ErrorCode::DependencyInstallFailed,
            message,
            format!("{stays}fix {file} (the {installer} output is in error.details) and deploy again"),
        )
        .function(&function, None)
        .details("DependencyInstallFailed".into(), installer_message, output),
        DepsError::Setup { function, .. } => ApiError::new(
            ErrorCode::DependencyInstallFailed,
            message,
            format!("{stays}install the runtime's package manager (./scripts/setup does) and deploy again"),
        )
        .with_status(503)
        .function(&function, None),
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        let message = e.to_string();
        match e {
            CallError::QueueFull { retry_after_s, .. } => ApiError::new(
                    ErrorCode::QueueFull,
                    message,
                    "back off and retry after the Retry-After header's seconds; raise limits.max_workers or limits.max_queue in hearth.toml if this is normal load",
                ).retry_after(retry_after_s),
            CallError::Overloaded { retry_after_s, .. } => ApiError::new(
                    ErrorCode::Overloaded,
                    message,
                    "the function did not run; retry after the Retry-After header's seconds, or raise limits.max_workers in hearth.toml",
                ).retry_after(retry_after_s),
            CallError::CrashLoop { retry_after_s, .. } => ApiError::new(
                    ErrorCode::CrashLoop,
                    message,
                    "fix the function (its log and the last error say why its workers die) and deploy again, or roll back; calls are refused until the pause ends",
                ).retry_after(retry_after_s),
            CallError::Worker(WorkerError::AppAtCapacity { .. }) => ApiError::new(
                    ErrorCode::AppOverBudget,
                    message,
                    "retry shortly; raise the application's budget with `hearth app NAME --max-workers N` if the host has room",
                ).retry_after(1),
            CallError::Worker(WorkerError::QueuedTooLong { .. } | WorkerError::NotRun { .. }) => ApiError::new(
                    ErrorCode::Overloaded,
                    message,
                    "the function did not run; retry, or raise limits.max_workers (or lower limits.concurrency) in hearth.toml",
                ).retry_after(1),
            CallError::Worker(WorkerError::AtCapacity { .. }) => ApiError::new(
                    ErrorCode::Overloaded,
                    message,
                    "retry shortly; raise hearth serve --max-workers-total if the host has room",
                ).retry_after(1),
            CallError::Worker(WorkerError::Timeout { .. }) => ApiError::new(
                ErrorCode::Timeout,
                message,
                "make the function faster, or raise limits.timeout_ms in hearth.toml and deploy again",
            ),
            CallError::Worker(WorkerError::OutOfMemory { .. }) => ApiError::new(
                ErrorCode::OutOfMemory,
                message,
                "raise limits.memory_mb in hearth.toml and deploy again, or make the function use less memory; the worker has been replaced",
            ),
            CallError::Worker(WorkerError::Died { .. }) => ApiError::new(
                ErrorCode::WorkerDied,
                message,
                "the call was lost with its worker, which has been replaced; the function's log (the daemon's output) may say why",
            ),
            CallError::Worker(WorkerError::Protocol { .. }) => ApiError::new(
                ErrorCode::ProtocolError,
                message,
                "the worker has been replaced; if this repeats, the function may be writing to fds 3 or 4",
            ),
            CallError::Worker(WorkerError::Spawn { .. }) => ApiError::new(
                ErrorCode::WorkerStartFailed,
                message,
                "check that the runtime is installed and the machine has free processes and memory",
            ),
            CallError::Worker(WorkerError::LoadFailed { error, .. }) => ApiError::new(
                ErrorCode::LoadFailed,
                message,
                "fix the code and deploy again",
            )
            .with_status(500)
            .details(error.kind, error.message, error.traceback),
        }
    }
}

/// A failure of the function's own code during a call.
pub fn function_error(function: &str, version: u32, error: FunctionError) -> ApiError {
    ApiError::new(
        ErrorCode::FunctionError,
        format!(
            "{function}@{version} raised {}: {}",
            error.kind, error.message
        ),
        "the function's traceback is in error.details; fix the code and deploy again",
    )
    .function(function, Some(version))
    .details(error.kind, error.message, error.traceback)
}
