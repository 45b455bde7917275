//! Errors as HTTP: one JSON shape (`api::ErrorBody`), the right status, and a
//! hint that says what to do.

use hyper::StatusCode;

use hearth_api::bundle::BundleError;
use hearth_api::{ErrorDetail, FunctionErrorBody};
use hearth_engine::deps::DepsError;
use hearth_engine::pool::{CallError, FunctionError, WorkerError};
use hearth_engine::publish::PublishError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: Box<ErrorDetail>,
    /// Seconds for a Retry-After header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            detail: Box::new(ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
                hint: hint.into(),
                ..ErrorDetail::default()
            }),
            retry_after: None,
        }
    }

    fn version_of(mut self, version: u32) -> ApiError {
        self.detail.version = Some(version);
        self
    }

    pub fn function(mut self, name: &str, version: Option<u32>) -> ApiError {
        self.detail.function.get_or_insert_with(|| name.to_owned());
        if self.detail.version.is_none() {
            self.detail.version = version;
        }
        self
    }

    fn details(mut self, error: FunctionError) -> ApiError {
        self.detail.details = Some(FunctionErrorBody {
            kind: error.kind,
            message: error.message,
            traceback: error.traceback,
        });
        self
    }

    pub fn route_not_found(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            format!("nothing is served at {path}"),
            "call functions at POST /fn/NAME (or /fn/NAME@VERSION); the management API is under /api/v1/",
        )
    }

    pub fn method_not_allowed(path: &str, allowed: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} does not accept this method"),
            format!("use {allowed}"),
        )
    }

    pub fn body_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over the limit of {limit} bytes"),
            "send a smaller body, or raise the limit with `hearth serve --max-body BYTES`",
        )
    }

    /// A call body over the function's own limit.
    pub fn call_too_large(function: &str, limit_kb: u64) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body of this call to {function} is over its limit of {limit_kb} KiB (limits.max_request_kb)"),
            "send a smaller body, or raise limits.max_request_kb in the function's hearth.toml and deploy again",
        )
    }

    /// An answer over the function's limit (the worker is fine).
    pub fn response_too_large(function: &str, bytes: u64, limit_kb: u64) -> ApiError {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "response_too_large",
            format!("{function} answered {bytes} bytes of JSON, over its limit of {limit_kb} KiB (limits.max_response_kb)"),
            "return less, or raise limits.max_response_kb in the function's hearth.toml and deploy again",
        )
    }

    pub fn bad_json(what: &str, error: &serde_json::Error) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("{what} is not valid JSON: {error}"),
            "send a JSON document, for example -d '{\"name\":\"Ada\"}' with content-type: application/json",
        )
    }

    /// A failure of the function's own code during a call.
    pub fn function_error(function: &str, version: u32, error: FunctionError) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "function_error",
            format!(
                "{function}@{version} raised {}: {}",
                error.kind, error.message
            ),
            "the function's traceback is in error.details; fix the code and deploy again",
        )
        .function(function, Some(version))
        .details(error)
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> ApiError {
        let message = e.to_string();
        match e {
            PublishError::Bundle(BundleError::Manifest(_)) | PublishError::Bundle(BundleError::NoManifest) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_manifest", message, "fix hearth.toml and deploy again")
            }
            PublishError::Bundle(BundleError::EntryMissing { .. }) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_manifest",
                message,
                "fix `entry` in hearth.toml or add the file, then deploy again",
            ),
            PublishError::Bundle(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_bundle",
                message,
                "fix the function's files and deploy again",
            ),
            PublishError::Runtime(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "runtime_unavailable",
                message,
                "install the runtime as the message says (./scripts/setup does), then restart hearth serve",
            ),
            PublishError::Store(_) | PublishError::Code(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                message,
                "check the daemon's log and its data directory",
            ),
            PublishError::UnknownFunction(name) => ApiError::new(
                StatusCode::NOT_FOUND,
                "function_not_found",
                message,
                "deploy it with `hearth deploy DIR`; `hearth list` shows the functions there are",
            )
            .function(&name, None),
            PublishError::UnknownVersion { function, version, .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                "version_not_found",
                message,
                format!("`hearth versions {function}` lists its versions"),
            )
            .function(&function, Some(version)),
            PublishError::NotPublished { function } => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_published",
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
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "load_failed", message, hint)
                    .function(&function, Some(version))
                    .details(error)
            }
            PublishError::Start { function, version, source } => {
                let mut err = ApiError::from(CallError::Worker(source));
                err.detail.message = message;
                err.function(&function, Some(version))
            }
            PublishError::BatchDuplicate => ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                message,
                "list each function once in the batch",
            ),
            PublishError::BatchFailed { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "batch_failed",
                message,
                "every live version stays as it was; fix or drop the failing members and publish the batch again",
            ),
            PublishError::BadAlias(_) | PublishError::BadWeight(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_alias",
                message,
                "for example: hearth alias NAME canary --version 3 --split 4 --weight 10",
            ),
            PublishError::Deps(error) => deps_error(message, error, None),
            PublishError::DepsFailed {
                live,
                error,
                version,
            } => deps_error(message, error, live).version_of(version),
            PublishError::NothingToRollBack { function, live } => ApiError::new(
                StatusCode::CONFLICT,
                "nothing_to_roll_back",
                message,
                format!("make another version live with `hearth publish {function} --version N`"),
            )
            .function(&function, Some(live)),
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
            StatusCode::UNPROCESSABLE_ENTITY,
            "dependency_install_failed",
            message,
            format!("{stays}fix {file} (the {installer} output is in error.details) and deploy again"),
        )
        .function(&function, None)
        .details(FunctionError {
            kind: "DependencyInstallFailed".into(),
            message: installer_message,
            traceback: output,
        }),
        DepsError::Setup { function, .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dependency_install_failed",
            message,
            format!("{stays}install the runtime's package manager (./scripts/setup does) and deploy again"),
        )
        .function(&function, None),
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        let message = e.to_string();
        match e {
            CallError::QueueFull { retry_after_s, .. } => ApiError {
                retry_after: Some(retry_after_s),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "queue_full",
                    message,
                    "back off and retry after the Retry-After header's seconds; raise limits.max_workers or limits.max_queue in hearth.toml if this is normal load",
                )
            },
            CallError::Overloaded { retry_after_s, .. } => ApiError {
                retry_after: Some(retry_after_s),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    message,
                    "the function did not run; retry after the Retry-After header's seconds, or raise limits.max_workers in hearth.toml",
                )
            },
            CallError::CrashLoop { retry_after_s, .. } => ApiError {
                retry_after: Some(retry_after_s),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "crash_loop",
                    message,
                    "fix the function (its log and the last error say why its workers die) and deploy again, or roll back; calls are refused until the pause ends",
                )
            },
            CallError::Worker(WorkerError::AppAtCapacity { .. }) => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "app_over_budget",
                    message,
                    "retry shortly; raise the application's budget with `hearth app NAME --max-workers N` if the host has room",
                )
            },
            CallError::Worker(WorkerError::QueuedTooLong { .. } | WorkerError::NotRun { .. }) => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    message,
                    "the function did not run; retry, or raise limits.max_workers (or lower limits.concurrency) in hearth.toml",
                )
            },
            CallError::Worker(WorkerError::AtCapacity { .. }) => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    message,
                    "retry shortly; raise hearth serve --max-workers-total if the host has room",
                )
            },
            CallError::Worker(WorkerError::Timeout { .. }) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                message,
                "make the function faster, or raise limits.timeout_ms in hearth.toml and deploy again",
            ),
            CallError::Worker(WorkerError::OutOfMemory { .. }) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "out_of_memory",
                message,
                "raise limits.memory_mb in hearth.toml and deploy again, or make the function use less memory; the worker has been replaced",
            ),
            CallError::Worker(WorkerError::Died { .. }) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "worker_died",
                message,
                "the call was lost with its worker, which has been replaced; the function's log (the daemon's output) may say why",
            ),
            CallError::Worker(WorkerError::Protocol { .. }) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "protocol_error",
                message,
                "the worker has been replaced; if this repeats, the function may be writing to fds 3 or 4",
            ),
            CallError::Worker(WorkerError::Spawn { .. }) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "worker_start_failed",
                message,
                "check that the runtime is installed and the machine has free processes and memory",
            ),
            CallError::Worker(WorkerError::LoadFailed { error, .. }) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "load_failed",
                message,
                "fix the code and deploy again",
            )
            .details(error),
        }
    }
}
