//! A worker's nested calls: a `call` frame from the worker becomes a call
//! through the engine's one path ([`Dispatch`]), and its outcome a
//! `call_result` frame back. The caller keeps its worker meanwhile.
//!
//! Each call carries its lineage: the chain of function@version from its
//! root, and the root request's count of nested calls. A call is refused
//! before it is dispatched when its callee is already in the chain
//! (`recursion`), when the chain is as deep as the caller allows
//! (`chain_too_deep`), when the root has made all the nested calls it may
//! (`budget_exhausted`), or when the caller has no time left
//! (`deadline_exceeded`). A dispatched call is never run again by hearth.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use hearth_api::{ApiError, ErrorCode, Target};
use hearth_protocol::{CallError, FromWorker, ToWorker};
use tokio::time::Instant;

use super::worker::WorkerSpec;
use crate::call::{Caller, Dispatch, Invocation, Lineage};

/// The least time a nested call must have left to be dispatched (its own
/// `timeout_ms`, or its caller's time left, whichever is less): a worker
/// cannot take a call, run it and answer in less, so one given less is
/// refused at once with `deadline_exceeded` rather than sent to time out.
pub const LEAST_TIME: Duration = Duration::from_millis(2);

/// What one running call needs to serve the nested calls its worker makes.
pub struct Nest {
    dispatch: Option<Weak<dyn Dispatch>>,
    /// The caller's request id (the nested calls' parent).
    request_id: String,
    /// The caller's version: its name, number and limits
    /// (`limits.max_depth`, `limits.max_nested_calls`).
    spec: Arc<WorkerSpec>,
    /// The caller's own lineage (None: it is a root).
    above: Option<Arc<Lineage>>,
    /// The lineage its callees get, made at the first nested call.
    own: OnceLock<Arc<Lineage>>,
    /// The caller's deadline: no callee runs past it.
    deadline: Instant,
}

/// A `call` frame's fields.
pub struct CallFrame {
    pub id: String,
    pub function: String,
    pub payload: rmpv::Value,
    pub version: Option<u32>,
    pub alias: Option<String>,
    pub timeout_ms: Option<u64>,
}

impl CallFrame {
    /// A `call` message's call, and the invoke it belongs to (its
    /// `parent`); None for any other message.
    pub fn of(message: FromWorker) -> Option<(String, CallFrame)> {
        match message {
            FromWorker::Call {
                id,
                parent,
                function,
                payload,
                version,
                alias,
                timeout_ms,
            } => Some((
                parent,
                CallFrame {
                    id,
                    function,
                    payload,
                    version,
                    alias,
                    timeout_ms,
                },
            )),
            _ => None,
        }
    }
}

/// Codes of calls refused before they were dispatched (the function did
/// not run): the caller's code may try again.
fn retryable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::QueueFull
            | ErrorCode::Overloaded
            | ErrorCode::RateLimited
            | ErrorCode::AppOverBudget
            | ErrorCode::CrashLoop
            | ErrorCode::TooManyConnections
    )
}

/// Request ids of nested calls and page members: a prefix of this process
/// and a counter (HTTP calls' ids have a prefix of their own).
pub(crate) fn next_request_id() -> String {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let prefix = *PREFIX.get_or_init(|| fastrand::u32(..) | 0x8000_0000);
    format!("{prefix:08x}{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Nest {
    pub fn new(
        dispatch: Option<Weak<dyn Dispatch>>,
        request_id: &str,
        spec: Arc<WorkerSpec>,
        above: Option<Arc<Lineage>>,
        deadline: Instant,
    ) -> Nest {
        Nest {
            dispatch,
            request_id: request_id.to_owned(),
            spec,
            above,
            own: OnceLock::new(),
            deadline,
        }
    }

    /// The invoke these nested calls belong to.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    fn lineage(&self) -> &Arc<Lineage> {
        self.own.get_or_init(|| {
            Arc::new(Lineage::below(
                self.above.as_deref(),
                &self.spec.function,
                self.spec.version,
                self.spec.limits.max_nested_calls,
            ))
        })
    }

    /// Serve one `call`: its `call_result`.
    pub async fn serve(self: Arc<Self>, call: CallFrame) -> ToWorker {
        let id = call.id.clone();
        let callee = call.function.clone();
        match self.run(call).await {
            Ok(value) => ToWorker::CallResult {
                id,
                ok: true,
                value,
                error: None,
            },
            Err(e) => ToWorker::CallResult {
                id,
                ok: false,
                value: rmpv::Value::Nil,
                error: Some(call_error(&callee, e)),
            },
        }
    }

    async fn run(&self, call: CallFrame) -> Result<rmpv::Value, ApiError> {
        let lineage = self.lineage().clone();
        let chain_text = || {
            let mut text: Vec<String> = lineage
                .chain
                .iter()
                .map(|(f, v)| format!("{f}@{v}"))
                .collect();
            text.push(call.function.clone());
            text.join(" -> ")
        };
        if lineage.chain.iter().any(|(f, _)| *f == call.function) {
            return Err(ApiError::new(
                ErrorCode::Recursion,
                format!(
                    "{} is already in the call chain ({}): a function cannot call itself, directly or not",
                    call.function,
                    chain_text()
                ),
                "break the cycle: let one of these functions do the work itself",
            ));
        }
        let depth = lineage.chain.len() as u32;
        let max_depth = self.spec.limits.max_depth;
        if depth > max_depth {
            return Err(ApiError::new(
                ErrorCode::ChainTooDeep,
                format!(
                    "the call chain {} would be {depth} calls deep from its root; {}@{} allows {} (limits.max_depth)",
                    chain_text(),
                    self.spec.function,
                    self.spec.version,
                    max_depth
                ),
                "call fewer functions in a row, or raise limits.max_depth in the caller's hearth.toml",
            ));
        }
        let made = lineage.made.fetch_add(1, Ordering::Relaxed);
        if made >= lineage.max_calls {
            return Err(ApiError::new(
                ErrorCode::BudgetExhausted,
                format!(
                    "the root request has made all {} nested calls it may (limits.max_nested_calls of {})",
                    lineage.max_calls,
                    lineage.chain.first().map_or("its root", |(f, _)| f.as_str())
                ),
                "make fewer nested calls per request, or raise limits.max_nested_calls in the root function's hearth.toml",
            ));
        }
        let now = Instant::now();
        let mut deadline = self.deadline;
        if let Some(ms) = call.timeout_ms {
            deadline = deadline.min(now + Duration::from_millis(ms));
        }
        if deadline.saturating_duration_since(now) < LEAST_TIME {
            return Err(ApiError::new(
                ErrorCode::DeadlineExceeded,
                format!(
                    "{} has no time left to call {} before its deadline",
                    self.spec.label(),
                    call.function
                ),
                "make the call earlier, or give the caller a longer limits.timeout_ms",
            ));
        }
        let target = match (call.version, call.alias) {
            (Some(v), _) => Target::Version(call.function, v),
            (None, Some(alias)) => Target::Alias(call.function, alias),
            (None, None) => Target::Live(call.function),
        };
        let Some(dispatch) = self.dispatch.as_ref().and_then(Weak::upgrade) else {
            return Err(ApiError::new(
                ErrorCode::Overloaded,
                "hearth is stopping: the nested call was not made",
                "retry it on another daemon",
            ));
        };
        let bytes_in = rmp_size(&call.payload);
        let mut invocation = Invocation::new(call.payload, next_request_id(), Caller::Nested);
        invocation.deadline = Some(deadline);
        invocation.parent = Some(self.request_id.clone());
        invocation.lineage = Some(lineage);
        invocation.bytes_in = bytes_in;
        let outcome = dispatch.dispatch(target, invocation).await?;
        outcome
            .result
            .map_err(|e| e.request_id(&outcome.request_id))
    }
}

/// The answer to a `call` whose invoke is no longer running (it was given
/// up at its deadline): refused, so the worker does not wait for it.
pub fn too_late(call: CallFrame, parent: &str) -> ToWorker {
    ToWorker::CallResult {
        id: call.id,
        ok: false,
        value: rmpv::Value::Nil,
        error: Some(CallError {
            code: ErrorCode::DeadlineExceeded.as_str().to_owned(),
            message: format!(
                "the call to {} came from invoke {parent}, which is no longer running (its deadline passed)",
                call.function
            ),
            function: call.function,
            version: None,
            request_id: None,
            retryable: false,
            kind: None,
            traceback: None,
        }),
    }
}

/// Bytes of a value as MessagePack (its size for the call's record),
/// counted without encoding it anywhere.
fn rmp_size(value: &rmpv::Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match rmpv::encode::write_value(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => 0,
    }
}

/// An error as a `call_result` carries it.
fn call_error(callee: &str, e: ApiError) -> CallError {
    let detail = *e.detail;
    let (kind, traceback) = match detail.details {
        Some(d) => (Some(d.kind), Some(d.traceback)),
        None => (None, None),
    };
    // A callee's own error code (NOT_FOUND) travels as it is, with its
    // declared retryable; hearth's codes by their names.
    CallError {
        retryable: detail.retryable.unwrap_or_else(|| retryable(e.code)),
        code: detail.code,
        message: detail.message,
        function: detail.function.unwrap_or_else(|| callee.to_owned()),
        version: detail.version,
        request_id: detail.request_id,
        kind,
        traceback,
    }
}
