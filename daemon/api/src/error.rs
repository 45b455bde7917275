//! Errors, in one shape for every route:
//! `{"error": {"code": "...", "message": "...", "hint": "...", ...}}`, with
//! a stable code from [`ErrorCode`] (docs/API.md lists them), the HTTP status
//! it goes with, a message naming the function, limit or file, and a hint
//! that says what to do.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every error code hearth answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadJson,
    BadManifest,
    BadBundle,
    BadRequest,
    BadAlias,
    FunctionNotFound,
    AppNotFound,
    VersionNotFound,
    NotPublished,
    AliasNotFound,
    RouteNotFound,
    MethodNotAllowed,
    NothingToRollBack,
    BodyTooLarge,
    BatchFailed,
    DependencyInstallFailed,
    LoadFailed,
    QueueFull,
    AppOverBudget,
    FunctionError,
    Internal,
    WorkerDied,
    ProtocolError,
    OutOfMemory,
    ResponseTooLarge,
    RuntimeUnavailable,
    WorkerStartFailed,
    Overloaded,
    CrashLoop,
    Timeout,
    Unauthorized,
    Forbidden,
    TokenNotFound,
    CallNotFound,
    RateLimited,
    UnsupportedMediaType,
    TooManyConnections,
    BodyTimeout,
    Recursion,
    ChainTooDeep,
    BudgetExhausted,
    DeadlineExceeded,
    InvalidInput,
    InvalidOutput,
    UndeclaredError,
    BreakingChange,
    FunctionInUse,
    FunctionOffline,
    TemplateNotFound,
    TemplateExists,
    TemplateBuiltin,
    FieldFailed,
    FieldTimeout,
    NotAPage,
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::BadJson,
        ErrorCode::BadManifest,
        ErrorCode::BadBundle,
        ErrorCode::BadRequest,
        ErrorCode::BadAlias,
        ErrorCode::FunctionNotFound,
        ErrorCode::AppNotFound,
        ErrorCode::VersionNotFound,
        ErrorCode::NotPublished,
        ErrorCode::AliasNotFound,
        ErrorCode::RouteNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::NothingToRollBack,
        ErrorCode::BodyTooLarge,
        ErrorCode::BatchFailed,
        ErrorCode::DependencyInstallFailed,
        ErrorCode::LoadFailed,
        ErrorCode::QueueFull,
        ErrorCode::AppOverBudget,
        ErrorCode::FunctionError,
        ErrorCode::Internal,
        ErrorCode::WorkerDied,
        ErrorCode::ProtocolError,
        ErrorCode::OutOfMemory,
        ErrorCode::ResponseTooLarge,
        ErrorCode::RuntimeUnavailable,
        ErrorCode::WorkerStartFailed,
        ErrorCode::Overloaded,
        ErrorCode::CrashLoop,
        ErrorCode::Timeout,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::TokenNotFound,
        ErrorCode::CallNotFound,
        ErrorCode::RateLimited,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::TooManyConnections,
        ErrorCode::BodyTimeout,
        ErrorCode::Recursion,
        ErrorCode::ChainTooDeep,
        ErrorCode::BudgetExhausted,
        ErrorCode::DeadlineExceeded,
        ErrorCode::InvalidInput,
        ErrorCode::InvalidOutput,
        ErrorCode::UndeclaredError,
        ErrorCode::BreakingChange,
        ErrorCode::FunctionInUse,
        ErrorCode::FunctionOffline,
        ErrorCode::TemplateNotFound,
        ErrorCode::TemplateExists,
        ErrorCode::TemplateBuiltin,
        ErrorCode::FieldFailed,
        ErrorCode::FieldTimeout,
        ErrorCode::NotAPage,
    ];

    /// The code as it appears in `error.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadManifest => "bad_manifest",
            ErrorCode::BadBundle => "bad_bundle",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::BadAlias => "bad_alias",
            ErrorCode::FunctionNotFound => "function_not_found",
            ErrorCode::AppNotFound => "app_not_found",
            ErrorCode::VersionNotFound => "version_not_found",
            ErrorCode::NotPublished => "not_published",
            ErrorCode::AliasNotFound => "alias_not_found",
            ErrorCode::RouteNotFound => "route_not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::NothingToRollBack => "nothing_to_roll_back",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::BatchFailed => "batch_failed",
            ErrorCode::DependencyInstallFailed => "dependency_install_failed",
            ErrorCode::LoadFailed => "load_failed",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::AppOverBudget => "app_over_budget",
            ErrorCode::FunctionError => "function_error",
            ErrorCode::Internal => "internal",
            ErrorCode::WorkerDied => "worker_died",
            ErrorCode::ProtocolError => "protocol_error",
            ErrorCode::OutOfMemory => "out_of_memory",
            ErrorCode::ResponseTooLarge => "response_too_large",
            ErrorCode::RuntimeUnavailable => "runtime_unavailable",
            ErrorCode::WorkerStartFailed => "worker_start_failed",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::CrashLoop => "crash_loop",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TokenNotFound => "token_not_found",
            ErrorCode::CallNotFound => "call_not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::BodyTimeout => "body_timeout",
            ErrorCode::Recursion => "recursion",
            ErrorCode::ChainTooDeep => "chain_too_deep",
            ErrorCode::BudgetExhausted => "budget_exhausted",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::InvalidOutput => "invalid_output",
            ErrorCode::UndeclaredError => "undeclared_error",
            ErrorCode::BreakingChange => "breaking_change",
            ErrorCode::FunctionInUse => "function_in_use",
            ErrorCode::FunctionOffline => "function_offline",
            ErrorCode::TemplateNotFound => "template_not_found",
            ErrorCode::TemplateExists => "template_exists",
            ErrorCode::TemplateBuiltin => "template_builtin",
            ErrorCode::FieldFailed => "field_failed",
            ErrorCode::FieldTimeout => "field_timeout",
            ErrorCode::NotAPage => "not_a_page",
        }
    }

    /// The HTTP status this code goes with. Two codes have a second one:
    /// `load_failed` is 422 at deploy/publish and 500 during a call, and
    /// `dependency_install_failed` is 503 when the installer itself is
    /// missing (`ApiError::with_status`).
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadJson
            | ErrorCode::BadManifest
            | ErrorCode::BadBundle
            | ErrorCode::BadRequest
            | ErrorCode::BadAlias
            | ErrorCode::InvalidInput => 400,
            ErrorCode::FunctionNotFound
            | ErrorCode::AppNotFound
            | ErrorCode::VersionNotFound
            | ErrorCode::NotPublished
            | ErrorCode::AliasNotFound
            | ErrorCode::RouteNotFound
            | ErrorCode::TokenNotFound
            | ErrorCode::CallNotFound
            | ErrorCode::TemplateNotFound
            | ErrorCode::NotAPage => 404,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::BodyTimeout => 408,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::NothingToRollBack
            | ErrorCode::BreakingChange
            | ErrorCode::FunctionInUse
            | ErrorCode::TemplateExists
            | ErrorCode::TemplateBuiltin => 409,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::BatchFailed | ErrorCode::DependencyInstallFailed | ErrorCode::LoadFailed => {
                422
            }
            ErrorCode::QueueFull
            | ErrorCode::AppOverBudget
            | ErrorCode::RateLimited
            | ErrorCode::BudgetExhausted => 429,
            ErrorCode::Recursion | ErrorCode::ChainTooDeep => 508,
            ErrorCode::FunctionError
            | ErrorCode::Internal
            | ErrorCode::InvalidOutput
            | ErrorCode::UndeclaredError => 500,
            ErrorCode::WorkerDied
            | ErrorCode::ProtocolError
            | ErrorCode::OutOfMemory
            | ErrorCode::ResponseTooLarge
            | ErrorCode::FieldFailed => 502,
            ErrorCode::RuntimeUnavailable
            | ErrorCode::WorkerStartFailed
            | ErrorCode::Overloaded
            | ErrorCode::CrashLoop
            | ErrorCode::TooManyConnections
            | ErrorCode::FunctionOffline => 503,
            ErrorCode::Timeout | ErrorCode::DeadlineExceeded | ErrorCode::FieldTimeout => 504,
        }
    }

    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error, from every endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, JsonSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: one of [`ErrorCode`] (a client keeps the
    /// text, so a newer daemon's codes still read).
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
    /// With one of the function's own error codes: whether the caller may
    /// try again (its `[errors.CODE] retryable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// With `invalid_input` and `invalid_output`: each way the value fails
    /// the function's schema, with its JSON pointer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<crate::metadata::SchemaFailure>,
    /// With `field_failed` and `field_timeout`: the page's field (its
    /// path) whose failure failed the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FunctionErrorBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    pub traceback: String,
}

/// An error on its way to a client: code, status, body and, for 429 and
/// 503, the seconds of a Retry-After header.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub status: u16,
    pub detail: Box<ErrorDetail>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError {
            code,
            status: code.status(),
            detail: Box::new(ErrorDetail {
                code: code.as_str().to_owned(),
                message: message.into(),
                hint: hint.into(),
                ..ErrorDetail::default()
            }),
            retry_after: None,
        }
    }

    /// The second status some codes have (see [`ErrorCode::status`]).
    pub fn with_status(mut self, status: u16) -> ApiError {
        self.status = status;
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    pub fn version_of(mut self, version: u32) -> ApiError {
        self.detail.version = Some(version);
        self
    }

    /// Name the function (and version) the error is about, unless it
    /// already names one.
    pub fn function(mut self, name: &str, version: Option<u32>) -> ApiError {
        self.detail.function.get_or_insert_with(|| name.to_owned());
        if self.detail.version.is_none() {
            self.detail.version = version;
        }
        self
    }

    pub fn request_id(mut self, id: &str) -> ApiError {
        self.detail.request_id = Some(id.to_owned());
        self
    }

    /// The function's own error (type, message, traceback).
    pub fn details(mut self, kind: String, message: String, traceback: String) -> ApiError {
        self.detail.details = Some(FunctionErrorBody {
            kind,
            message,
            traceback,
        });
        self
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: (*self.detail).clone(),
        }
    }

    pub fn function_not_found(name: &str) -> ApiError {
        ApiError::new(
            ErrorCode::FunctionNotFound,
            format!("no function named \"{name}\""),
            "deploy it with `hearth deploy DIR`; `hearth list` shows the functions there are",
        )
        .function(name, None)
    }

    pub fn alias_not_found(name: &str, alias: &str) -> ApiError {
        ApiError::new(
            ErrorCode::AliasNotFound,
            format!("{name} has no alias \"{alias}\""),
            format!("call /fn/{name} for the live version or /fn/{name}@N for version N; create the alias with `hearth alias {name} {alias} --version N`"),
        )
        .function(name, None)
    }

    pub fn route_not_found(path: &str) -> ApiError {
        ApiError::new(
            ErrorCode::RouteNotFound,
            format!("nothing is served at {path}"),
            "call functions at POST /fn/NAME (or /fn/NAME@VERSION); the management API is under /api/v1/",
        )
    }

    pub fn method_not_allowed(path: &str, allowed: &str) -> ApiError {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{path} does not accept this method"),
            format!("use {allowed}"),
        )
    }

    pub fn body_too_large(limit: usize) -> ApiError {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the request body is over the limit of {limit} bytes"),
            "send a smaller body, or raise the limit with `hearth serve --max-body BYTES`",
        )
    }

    /// A call body over the function's own limit.
    pub fn call_too_large(function: &str, limit_kb: u64) -> ApiError {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the body of this call to {function} is over its limit of {limit_kb} KiB (limits.max_request_kb)"),
            "send a smaller body, or raise limits.max_request_kb in the function's hearth.toml and deploy again",
        )
    }

    /// An answer over the function's limit (the worker is fine).
    pub fn response_too_large(function: &str, bytes: u64, limit_kb: u64) -> ApiError {
        ApiError::new(
            ErrorCode::ResponseTooLarge,
            format!("{function} answered {bytes} bytes of JSON, over its limit of {limit_kb} KiB (limits.max_response_kb)"),
            "return less, or raise limits.max_response_kb in the function's hearth.toml and deploy again",
        )
    }

    pub fn bad_json(what: &str, error: &serde_json::Error) -> ApiError {
        ApiError::new(
            ErrorCode::BadJson,
            format!("{what} is not valid JSON: {error}"),
            "send a JSON document, for example -d '{\"name\":\"Ada\"}' with content-type: application/json",
        )
    }

    pub fn bad_request(message: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message, hint)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            ErrorCode::Internal,
            message,
            "check the daemon's log and its data directory",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            assert!((400..600).contains(&code.status()), "{code}");
        }
    }
}
