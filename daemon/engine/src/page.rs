//! Running a page (`type = "page"`, issue #15): every field of its template
//! filled by a member call, in one call of the page.
//!
//! - Fields whose inputs are ready start at once; a field that needs others
//!   starts as soon as they are done.
//! - Identical (function, version or alias, input) within one page call run
//!   once; the fields share the answer.
//! - The page's deadline bounds everything: a field's budget is the earlier
//!   of its own `timeout_ms` and what is left of the page's.
//! - A member that fails or is late gets its fallback (a static value, the
//!   last good value for the same input, or nothing), and an entry in the
//!   answer's `errors`; a required one fails the page (502 `field_failed`,
//!   504 `field_timeout`) naming the field.
//! - Every member call goes through the engine's one call path
//!   ([`crate::call::Dispatch`]), as a call of its own with its own record,
//!   whose parent is the page call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use hearth_api::page::{Fallback, Template};
use hearth_api::{ApiError, ErrorCode, Target};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::call::{BoxFuture, Caller, Dispatch, Invocation, Lineage, Outcome};

/// How long past a field's deadline the page waits for the member call to
/// report its own timeout (so the member's record is written) before it
/// gives up on it.
const GRACE: Duration = Duration::from_millis(50);

/// Least time worth starting a member call with.
const LEAST_TIME: Duration = Duration::from_millis(2);

/// Most last-good values kept for `fallback = "stale"`, over all pages.
const STALE_CAP: usize = 8192;

/// The last good value of each (function, input) whose field falls back to
/// `"stale"`.
#[derive(Default)]
pub struct StaleValues {
    map: Mutex<HashMap<String, Value>>,
}

impl StaleValues {
    fn get(&self, key: &str) -> Option<Value> {
        self.map.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: &str, value: &Value) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if map.len() >= STALE_CAP && !map.contains_key(key) {
            // Bounded: make room by forgetting one value (any).
            if let Some(old) = map.keys().next().cloned() {
                map.remove(&old);
            }
        }
        map.insert(key.to_owned(), value.clone());
    }
}

/// How each field of one page call went, for Server-Timing and the page's
/// event.
#[derive(Debug, Clone, Default)]
pub struct PageTrace {
    pub fields: Vec<FieldTrace>,
    /// The fields of the critical path (the chain of needs that ended
    /// last), first to last, as indices in `fields`.
    pub critical: Vec<usize>,
    /// The sum of the critical path's member calls, in ms.
    pub critical_ms: f64,
    /// Member calls made.
    pub calls: usize,
    /// Fields that shared another field's identical call.
    pub deduped: usize,
}

#[derive(Debug, Clone)]
pub struct FieldTrace {
    pub path: String,
    /// `name`, `name@3` or `name@alias`, as the template says.
    pub function: String,
    /// The version that answered (None: no call was made).
    pub version: Option<u32>,
    /// Since the page call arrived, in ms.
    pub start_ms: f64,
    pub end_ms: f64,
    /// Its value came from its own call (not a fallback).
    pub ok: bool,
    /// The code of its failure.
    pub code: Option<String>,
    /// It shared an identical call of another field.
    pub shared: bool,
}

/// A member call's result, shared by the fields that made the same call.
#[derive(Debug, Clone)]
struct Member {
    version: Option<u32>,
    start_ms: f64,
    end_ms: f64,
    result: Result<Value, Failure>,
}

#[derive(Debug, Clone)]
struct Failure {
    /// The member's error code (its own declared code for a function
    /// error), `deadline_exceeded` or `dependency_failed`.
    code: String,
    message: String,
    /// The member ran out of time (a required field fails with 504).
    late: bool,
}

/// A page call under way.
struct Run<'a> {
    template: &'a Template,
    page: &'a str,
    version: u32,
    request: &'a Value,
    arrived: Instant,
    deadline: Instant,
    stale: &'a StaleValues,
    outputs: Vec<Option<Value>>,
    /// Needs not yet done, per field: a field starts when its count
    /// reaches 0 (once).
    pending: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    /// Calls made (or being made) in this page call, by key: the fields
    /// waiting for each running one, or its result.
    calls: HashMap<String, Call>,
    trace: Vec<FieldTrace>,
    errors: Vec<Value>,
    /// Each started field's call key (function and input JSON): its
    /// identity for dedup and for its last good value.
    keys: Vec<Option<String>>,
    /// A required field failed: the page's error.
    failed: Option<ApiError>,
    made: usize,
    deduped: usize,
}

enum Call {
    Running(Vec<usize>),
    Done(Member),
}

/// A member call to start: its key, target and input (as JSON bytes).
struct Start {
    key: String,
    target: Target,
    input: Vec<u8>,
    deadline: Instant,
}

impl<'a> Run<'a> {
    fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.arrived).as_secs_f64() * 1000.0
    }

    /// Start field `i` (its needs are done): its call to make, if it is the
    /// first of its kind; otherwise it shares one, or fails at once.
    fn start(&mut self, i: usize, ready: &mut VecDeque<usize>) -> Option<Start> {
        let field = &self.template.fields[i];
        let now = Instant::now();
        if let Some(&j) = field.needs.iter().find(|&&j| self.outputs[j].is_none()) {
            let failure = Failure {
                code: "dependency_failed".into(),
                message: format!(
                    "not called: the field {} it needs has no value",
                    self.template.fields[j].path
                ),
                late: false,
            };
            self.not_called(i, now, failure, ready);
            return None;
        }
        let input = self.template.input_of(i, self.request, &self.outputs);
        // The input's JSON, made once: the call's payload and its key.
        let input = serde_json::to_vec(&input).unwrap_or_default();
        let mut key = field.function.to_string();
        key.push('\u{0}');
        key.push_str(&String::from_utf8_lossy(&input));
        self.keys[i] = Some(key.clone());
        match self.calls.get_mut(&key) {
            Some(Call::Running(waiting)) => {
                waiting.push(i);
                self.deduped += 1;
                return None;
            }
            Some(Call::Done(member)) => {
                let member = member.clone();
                self.deduped += 1;
                self.finish(i, member, true, ready);
                return None;
            }
            None => {}
        }
        let mut deadline = self.deadline;
        if let Some(ms) = field.timeout_ms {
            deadline = deadline.min(now + Duration::from_millis(ms));
        }
        if deadline.saturating_duration_since(now) < LEAST_TIME {
            let failure = Failure {
                code: ErrorCode::DeadlineExceeded.as_str().into(),
                message: format!(
                    "not called: the page's {} ms had run out when its inputs were ready",
                    self.deadline
                        .saturating_duration_since(self.arrived)
                        .as_millis()
                ),
                late: true,
            };
            self.not_called(i, now, failure, ready);
            return None;
        }
        self.calls.insert(key.clone(), Call::Running(vec![i]));
        self.made += 1;
        Some(Start {
            key,
            target: field.function.target(),
            input,
            deadline,
        })
    }

    /// Field `i` is done without a call: `failure` says why.
    fn not_called(
        &mut self,
        i: usize,
        now: Instant,
        failure: Failure,
        ready: &mut VecDeque<usize>,
    ) {
        let at = self.ms(now);
        let member = Member {
            version: None,
            start_ms: at,
            end_ms: at,
            result: Err(failure),
        };
        self.finish(i, member, false, ready);
    }

    /// A call came back: every field that made it is done.
    fn returned(&mut self, key: &str, member: Member, ready: &mut VecDeque<usize>) {
        let waiting = match self
            .calls
            .insert(key.to_owned(), Call::Done(member.clone()))
        {
            Some(Call::Running(waiting)) => waiting,
            _ => Vec::new(),
        };
        for (n, i) in waiting.into_iter().enumerate() {
            self.finish(i, member.clone(), n > 0, ready);
        }
    }

    /// Field `i` is done with `member`'s result: its value, its fallback,
    /// or the page's failure; the fields that needed it may start.
    fn finish(&mut self, i: usize, member: Member, shared: bool, ready: &mut VecDeque<usize>) {
        let field = &self.template.fields[i];
        let function = field.function.to_string();
        let ok = member.result.is_ok();
        let code = member.result.as_ref().err().map(|f| f.code.clone());
        match member.result {
            Ok(value) => {
                if field.fallback == Fallback::Stale {
                    if let Some(key) = &self.keys[i] {
                        self.stale.put(key, &value);
                    }
                }
                self.outputs[i] = Some(value);
            }
            Err(failure) => {
                let (used, value) = match &field.fallback {
                    Fallback::Static(v) => ("static", Some(v.clone())),
                    Fallback::Stale => {
                        match self.keys[i].as_ref().and_then(|k| self.stale.get(k)) {
                            Some(v) => ("stale", Some(v)),
                            None => ("none", None),
                        }
                    }
                    Fallback::Omit => ("omit", None),
                    Fallback::None => ("none", None),
                };
                self.outputs[i] = value;
                if field.required && self.failed.is_none() {
                    let (code, status) = if failure.late {
                        (ErrorCode::FieldTimeout, "was late")
                    } else {
                        (ErrorCode::FieldFailed, "failed")
                    };
                    let mut e = ApiError::new(
                        code,
                        format!(
                            "the page {}@{} failed: its required field {} ({function}{}) {status}: {} ({})",
                            self.page,
                            self.version,
                            field.path,
                            member.version.map_or(String::new(), |v| format!(", version {v}")),
                            failure.message,
                            failure.code,
                        ),
                        format!(
                            "fix {} or roll it back (hearth rollback {}), give the field more time (fields.{}.timeout_ms, the page's timeout_ms), or make it optional with a fallback",
                            field.function.name, field.function.name, field.path
                        ),
                    );
                    e.detail.field = Some(field.path.clone());
                    self.failed = Some(e);
                }
                self.errors.push(json!({
                    "field": field.path,
                    "code": failure.code,
                    "function": field.function.name,
                    "version": member.version,
                    "message": failure.message,
                    "fallback": used,
                }));
            }
        }
        self.trace.push(FieldTrace {
            path: field.path.clone(),
            function,
            version: member.version,
            start_ms: member.start_ms,
            end_ms: member.end_ms,
            ok,
            code,
            shared,
        });
        for k in 0..self.dependents[i].len() {
            let d = self.dependents[i][k];
            self.pending[d] -= 1;
            if self.pending[d] == 0 {
                ready.push_back(d);
            }
        }
    }

    /// The answer's `data`: every field with a value that is not hidden,
    /// at its path.
    fn data(&self) -> Value {
        let mut data = Map::new();
        for (field, value) in self.template.fields.iter().zip(&self.outputs) {
            let Some(value) = value else { continue };
            if field.hidden {
                continue;
            }
            let mut parts = field.path.split('.').peekable();
            let mut at = &mut data;
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    at.insert(part.to_owned(), value.clone());
                    break;
                }
                let next = at
                    .entry(part.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !next.is_object() {
                    *next = Value::Object(Map::new());
                }
                let Value::Object(map) = next else { break };
                at = map;
            }
        }
        Value::Object(data)
    }

    /// The critical path: from the field that ended last, back through the
    /// need of each that ended last.
    fn critical(&self) -> (Vec<usize>, f64) {
        let by_path: HashMap<&str, usize> = self
            .trace
            .iter()
            .enumerate()
            .map(|(n, t)| (t.path.as_str(), n))
            .collect();
        let index_of = |i: usize| by_path.get(self.template.fields[i].path.as_str()).copied();
        let mut last = self
            .template
            .fields
            .iter()
            .enumerate()
            .filter_map(|(i, _)| index_of(i).map(|n| (i, n)))
            .max_by(|a, b| self.trace[a.1].end_ms.total_cmp(&self.trace[b.1].end_ms));
        let mut path = Vec::new();
        let mut ms = 0.0;
        while let Some((i, n)) = last {
            path.push(n);
            let t = &self.trace[n];
            if !t.shared {
                ms += t.end_ms - t.start_ms;
            }
            last = self.template.fields[i]
                .needs
                .iter()
                .filter_map(|&j| index_of(j).map(|m| (j, m)))
                .max_by(|a, b| self.trace[a.1].end_ms.total_cmp(&self.trace[b.1].end_ms));
        }
        path.reverse();
        (path, ms)
    }
}

/// What a page call needs from the engine.
pub(crate) struct PageCall<'a> {
    pub page: &'a str,
    pub version: u32,
    pub template: &'a Template,
    pub dispatch: Arc<dyn Dispatch>,
    pub stale: &'a StaleValues,
    pub invocation: Invocation,
    /// The page's own `limits.timeout_ms`.
    pub timeout: Duration,
    pub max_nested_calls: u32,
}

/// What a page call came to: its answer (`{"data", "errors"}`) or the
/// failure of a required field, and its trace.
pub(crate) struct PageAnswer {
    pub result: Result<Value, ApiError>,
    pub trace: PageTrace,
}

/// Run a page: fill every field, in parallel where the template allows.
pub(crate) async fn run(call: PageCall<'_>) -> PageAnswer {
    let PageCall {
        page,
        version,
        template,
        dispatch,
        stale,
        invocation,
        timeout,
        max_nested_calls,
    } = call;
    let arrived = invocation.arrived;
    let own = arrived + timeout;
    let deadline = invocation.deadline.map_or(own, |d| d.min(own));
    let request = hearth_protocol::value_to_json(&invocation.payload);
    let n = template.fields.len();
    let mut dependents = vec![Vec::new(); n];
    for (i, f) in template.fields.iter().enumerate() {
        for &j in &f.needs {
            dependents[j].push(i);
        }
    }
    // The members' place in the chain of calls: under the page.
    let lineage = Arc::new(Lineage::below(
        invocation.lineage.as_deref(),
        page,
        version,
        max_nested_calls,
    ));
    let mut run = Run {
        template,
        page,
        version,
        request: &request,
        arrived,
        deadline,
        stale,
        outputs: vec![None; n],
        pending: template.fields.iter().map(|f| f.needs.len()).collect(),
        dependents,
        calls: HashMap::new(),
        keys: vec![None; n],
        trace: Vec::with_capacity(n),
        errors: Vec::new(),
        failed: None,
        made: 0,
        deduped: 0,
    };
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| run.pending[i] == 0).collect();
    // Each member call is a task of its own: one the page stops waiting for
    // (a required field failed first, the client went away) still ends,
    // and still has its record.
    let mut running: FuturesUnordered<tokio::task::JoinHandle<(String, Member)>> =
        FuturesUnordered::new();
    let parent = invocation.request_id.clone();
    loop {
        while let Some(i) = ready.pop_front() {
            if let Some(start) = run.start(i, &mut ready) {
                running.push(tokio::spawn(member_call(
                    dispatch.clone(),
                    start,
                    &parent,
                    lineage.clone(),
                    arrived,
                )));
            }
        }
        if run.failed.is_some() || running.is_empty() {
            break;
        }
        match running.next().await {
            Some(Ok((key, member))) => run.returned(&key, member, &mut ready),
            // A member's task panicked: its fields never finish; the
            // page answers without them.
            Some(Err(e)) => {
                tracing::error!(page, error = %e, "a page's member call task failed; report this as a bug");
            }
            None => break,
        }
    }
    // A field never started (a required field failed first) is left out.
    let (critical, critical_ms) = run.critical();
    let trace = PageTrace {
        fields: std::mem::take(&mut run.trace),
        critical,
        critical_ms,
        calls: run.made,
        deduped: run.deduped,
    };
    let result = match run.failed.take() {
        Some(e) => Err(e),
        None => Ok(json!({
            "data": run.data(),
            "errors": Value::Array(std::mem::take(&mut run.errors)),
        })),
    };
    PageAnswer { result, trace }
}

/// One member call, through the engine's one call path.
fn member_call(
    dispatch: Arc<dyn Dispatch>,
    start: Start,
    parent: &str,
    lineage: Arc<Lineage>,
    arrived: Instant,
) -> BoxFuture<'static, (String, Member)> {
    let parent = parent.to_owned();
    Box::pin(async move {
        let Start {
            key,
            target,
            input,
            deadline,
        } = start;
        let begun = Instant::now();
        let ms = |at: Instant| at.saturating_duration_since(arrived).as_secs_f64() * 1000.0;
        let payload = hearth_protocol::json_to_value(&input).unwrap_or(rmpv::Value::Nil);
        let mut invocation = Invocation::new(
            payload,
            crate::pool::nested::next_request_id(),
            Caller::Page,
        );
        invocation.deadline = Some(deadline);
        invocation.parent = Some(parent);
        invocation.lineage = Some(lineage);
        invocation.bytes_in = input.len() as u64;
        let called =
            tokio::time::timeout_at(deadline + GRACE, dispatch.dispatch(target, invocation)).await;
        let end = Instant::now();
        let (version, result) = match called {
            Ok(Ok(Outcome {
                version,
                result: Ok(value),
                ..
            })) => (Some(version), Ok(hearth_protocol::value_to_json(&value))),
            Ok(Ok(Outcome {
                version,
                result: Err(e),
                ..
            })) => (Some(version), Err(failure(e))),
            Ok(Err(e)) => (e.detail.version, Err(failure(e))),
            Err(_) => (
                None,
                Err(Failure {
                    code: ErrorCode::Timeout.as_str().into(),
                    message: format!(
                        "cut at the field's deadline, {:.0} ms after it was called",
                        ms(end) - ms(begun)
                    ),
                    late: true,
                }),
            ),
        };
        (
            key,
            Member {
                version,
                start_ms: ms(begun),
                end_ms: ms(end),
                result,
            },
        )
    })
}

fn failure(e: ApiError) -> Failure {
    let late = matches!(e.code, ErrorCode::Timeout | ErrorCode::DeadlineExceeded);
    let code = match e.code {
        ErrorCode::FunctionError if !e.detail.code.is_empty() => e.detail.code.clone(),
        code => code.as_str().to_owned(),
    };
    Failure {
        code,
        message: e.detail.message,
        late,
    }
}
