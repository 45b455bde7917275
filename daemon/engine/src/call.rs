//! A call as the engine takes it, whoever makes it: the target, the
//! invocation (payload, request id, deadline, caller, parent) and the
//! outcome. The pool reaches back into the engine through [`Dispatch`], so a
//! worker's nested call can be dispatched without the pool knowing the
//! engine.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hearth_api::{ApiError, Target, Timing};

use crate::pool::CallLog;

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A client over HTTP (`/fn/...`).
    Http,
    /// Another function, through its worker's protocol channel.
    Nested,
    /// A member of a page.
    Page,
    /// A trigger (cron, queue).
    Trigger,
}

impl Caller {
    pub fn as_str(self) -> &'static str {
        match self {
            Caller::Http => "http",
            Caller::Nested => "nested",
            Caller::Page => "page",
            Caller::Trigger => "trigger",
        }
    }
}

/// One call's input.
#[derive(Debug)]
pub struct Invocation {
    pub payload: rmpv::Value,
    pub request_id: String,
    /// When the call arrived: its function's timeout counts from here.
    pub arrived: tokio::time::Instant,
    /// When the caller gives up, if earlier than the function's own timeout
    /// (a nested call inherits its caller's remaining time).
    pub deadline: Option<tokio::time::Instant>,
    pub caller: Caller,
    /// The request id of the call that made this one.
    pub parent: Option<String>,
    /// Size of the event as it came (the request body of an HTTP call),
    /// for its record.
    pub bytes_in: u64,
    /// A nested call's chain: its caller's lineage (None: a root call).
    pub lineage: Option<std::sync::Arc<Lineage>>,
}

/// Where a call stands in a chain of nested calls.
#[derive(Debug)]
pub struct Lineage {
    /// function and version of every call from the root down to this one.
    pub chain: Vec<(String, u32)>,
    /// Nested calls made so far under the root request (the whole tree).
    pub made: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// The most it may make: the root function's `limits.max_nested_calls`.
    pub max_calls: u32,
}

impl Lineage {
    /// The lineage of the calls `function@version` makes: its caller's
    /// (`above`, None for a root) with it added; a root starts the count
    /// of nested calls, at most `max_calls` (its limits.max_nested_calls).
    pub fn below(above: Option<&Lineage>, function: &str, version: u32, max_calls: u32) -> Lineage {
        let mut chain = above.map(|a| a.chain.clone()).unwrap_or_default();
        chain.push((function.to_owned(), version));
        match above {
            Some(a) => Lineage {
                chain,
                made: a.made.clone(),
                max_calls: a.max_calls,
            },
            None => Lineage {
                chain,
                made: Default::default(),
                max_calls,
            },
        }
    }
}

impl Invocation {
    pub fn new(payload: rmpv::Value, request_id: String, caller: Caller) -> Invocation {
        Invocation {
            arrived: tokio::time::Instant::now(),
            payload,
            request_id,
            deadline: None,
            caller,
            parent: None,
            bytes_in: 0,
            lineage: None,
        }
    }
}

/// What a call came to, when the function answered (its value or its own
/// error). Failures of the platform (queue full, timeout, dead worker) are
/// an `Err(ApiError)` of [`crate::Engine::invoke`].
#[derive(Debug)]
pub struct Outcome {
    pub function: String,
    pub version: u32,
    pub request_id: String,
    pub result: Result<rmpv::Value, ApiError>,
    /// The value as JSON (made once by the engine, within the function's
    /// `limits.max_response_kb`), for callers that answer in JSON.
    pub json: Option<bytes::Bytes>,
    pub log: CallLog,
    pub timing: Timing,
    pub elapsed: Duration,
    /// A page call's fields: how each went, and the critical path.
    pub page: Option<Box<crate::page::PageTrace>>,
}

/// A boxed future, for [`Dispatch`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The engine as a pool sees it: a way to make a call (a nested call from a
/// worker) without depending on the engine.
pub trait Dispatch: Send + Sync {
    fn dispatch(
        &self,
        target: Target,
        invocation: Invocation,
    ) -> BoxFuture<'_, Result<Outcome, ApiError>>;
}
