//! The one path of every call: `Engine::invoke(target, invocation)`. HTTP,
//! and later nested calls, pages and triggers, all come through here:
//! routing to the live version, an alias or a version; the deadline; the
//! call itself on a worker of the pool (admission, budgets, isolation); its
//! outcome and its `CallFinished` event.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_api::manifest::Limits;
use hearth_api::{ApiError, ErrorCode, Target};
use tracing::{info_span, Instrument};

use crate::call::{Invocation, Outcome};
use crate::engine::Engine;
use crate::error::PublishError;
use crate::events::{CallDetail, Event};
use crate::pool::{Answer, Call, CallFailed, Pool};

/// A target resolved to the pool of one version (before the call's body is
/// read, so its limits apply to it).
pub struct Resolved {
    pool: Arc<Pool>,
}

impl Resolved {
    pub fn function(&self) -> &str {
        &self.pool.spec().function
    }

    pub fn version(&self) -> u32 {
        self.pool.spec().version
    }

    /// The application the function belongs to.
    pub fn app(&self) -> &str {
        &self.pool.spec().app
    }

    pub fn limits(&self) -> &Limits {
        &self.pool.spec().limits
    }

    /// Whether it is a page (`type = "page"`).
    pub fn is_page(&self) -> bool {
        self.pool.spec().page.is_some()
    }
}

impl Engine {
    /// Call a function.
    pub async fn invoke(
        &self,
        target: &Target,
        invocation: Invocation,
    ) -> Result<Outcome, ApiError> {
        let resolved = self
            .resolve(target)
            .await
            .map_err(|e| e.request_id(&invocation.request_id))?;
        self.invoke_resolved(resolved, invocation).await
    }

    /// The pool a target names: the live version, a version, or the
    /// version an alias picks for this call.
    /// A function offline or deleted refuses every call, whatever it names.
    pub async fn resolve(&self, target: &Target) -> Result<Resolved, ApiError> {
        let router = &self.versions.router;
        let name = target.function();
        if let Some(why) = router.blocked(name) {
            return Err(PublishError::blocked(name, why).into());
        }
        let pool = match target {
            Target::Live(name) => self.releases.live_pool(name).await?,
            Target::Version(name, v) => {
                let pool = self.versions.pool_for(name, *v).await?;
                // Taken offline or deleted while its pool was being made.
                if let Some(why) = router.blocked(name) {
                    return Err(PublishError::blocked(name, why).into());
                }
                pool
            }
            Target::Alias(name, alias) => match router.alias(name, alias) {
                Some(route) => route.pick().clone(),
                None => return Err(ApiError::alias_not_found(name, alias)),
            },
        };
        Ok(Resolved { pool })
    }

    /// Call the version `resolved` names.
    pub async fn invoke_resolved(
        &self,
        resolved: Resolved,
        invocation: Invocation,
    ) -> Result<Outcome, ApiError> {
        let pool = resolved.pool;
        let spec = pool.spec();
        let (function, version) = (spec.function.clone(), spec.version);
        let app = spec.app.clone();
        let mut invocation = invocation;
        let request_id = std::mem::take(&mut invocation.request_id);
        let started_at_ms =
            unix_ms().saturating_sub(invocation.arrived.elapsed().as_millis() as u64);
        let parent = invocation.parent.take();
        let bytes_in = invocation.bytes_in;
        let detail = CallDetail {
            parent: parent.as_deref(),
            started_at_ms,
            bytes_in,
            ..CallDetail::default()
        };
        let span = info_span!("call", function = %function, version, request_id = %request_id);
        // A call refused before it reaches the pool still has its one
        // CallFinished (its record, metrics and statistics).
        let refused = |e: ApiError| {
            let _in_span = span.enter();
            self.versions.shared.events.emit(Event::CallFinished {
                function: &function,
                version,
                app: &spec.app,
                request_id: &request_id,
                caller: invocation.caller,
                status: e.status,
                outcome: e.code.as_str(),
                ms: invocation.arrived.elapsed().as_secs_f64() * 1000.0,
                start: Default::default(),
                error: Some(&e.detail.message),
                detail,
            });
            e.function(&function, Some(version)).request_id(&request_id)
        };
        if let Err(e) = self.rates.check(&function, &spec.limits) {
            let in_span = span.enter();
            self.versions.shared.events.emit(Event::Throttled {
                limit: "function",
                key: &function,
            });
            drop(in_span);
            return Err(refused(e));
        }
        // The function never sees an event its [input] schema refuses.
        if let Err(e) = spec
            .contract
            .check_input(&function, version, &invocation.payload)
        {
            return Err(refused(e));
        }
        if let Some(template) = spec.page.clone() {
            invocation.request_id = request_id.clone();
            return self
                .invoke_page(&pool, template, invocation, detail)
                .instrument(span.clone())
                .await;
        }
        let contract = spec.contract.clone();
        let timeout = Duration::from_millis(spec.limits.timeout_ms);
        let max_response_kb = spec.limits.max_response_kb;
        let own_deadline = invocation.arrived + timeout;
        let deadline = invocation
            .deadline
            .map_or(own_deadline, |d| d.min(own_deadline));
        // A nested call whose caller's time ends first is cut then.
        let cut_by_caller = deadline < own_deadline;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let deadline_ms = unix_ms() + left.as_millis() as u64;
        let call = Call {
            request_id: request_id.clone(),
            payload: invocation.payload,
            deadline,
            deadline_ms,
            above: invocation.lineage,
        };
        let caller = invocation.caller;
        let events = &self.versions.shared.events;
        let in_flight = InFlight::enter(&self.in_flight);
        let busy = self.stats.enter(&app, &function, version);
        async move {
            let _in_flight = in_flight;
            let _busy = busy;
            // The call runs in its own task: a caller that goes away mid-call
            // does not abandon a worker half-way through a frame. A nested
            // call is already one its caller never drops (pool/nested.rs:
            // it goes on in a task of its own if its caller ends first), so
            // it skips the extra hop.
            let outcome = if caller == crate::call::Caller::Nested {
                pool.call(call).await
            } else {
                // Workers serving several calls at once take calls from
                // every CPU: such calls run on the main runtime, not in
                // the caller's cell.
                let task = pool.clone().call(call).in_current_span();
                if pool.is_shared() {
                    crate::cells::spawn_main(task)
                } else {
                    tokio::spawn(task)
                }
                    .await
                    .map_err(|e| {
                        ApiError::new(
                            ErrorCode::Internal,
                            format!("call task failed: {e}"),
                            "report this as a bug",
                        )
                    })?
            };
            let elapsed = invocation.arrived.elapsed();
            let ms = elapsed.as_secs_f64() * 1000.0;
            // The call's one CallFinished, whichever way it ended.
            let finished = |status: u16,
                            outcome: &str,
                            start: hearth_api::StartKind,
                            error: Option<&str>,
                            detail: CallDetail<'_>| {
                events.emit(Event::CallFinished {
                    function: &function,
                    version,
                    app: &app,
                    request_id: &request_id,
                    caller,
                    status,
                    outcome,
                    ms,
                    start,
                    error,
                    detail,
                });
            };
            match outcome {
                Ok(Answer {
                    result,
                    log,
                    timing,
                    pid,
                    peak_memory_kb,
                    cpu_ms,
                }) => {
                    // The answer as JSON, made once: its size is the record's
                    // and the limit's, and HTTP sends these bytes as they are.
                    // The answer as a JSON tree once: the output schema
                    // reads it, and its bytes are the answer.
                    let tree = result.as_ref().ok().map(hearth_protocol::value_to_json);
                    let json = tree.as_ref().map(|tree| {
                        bytes::Bytes::from(serde_json::to_vec(tree).unwrap_or_default())
                    });
                    let mut refused = json
                        .as_ref()
                        .filter(|j| j.len() as u64 > max_response_kb.saturating_mul(1024))
                        .map(|j| {
                            ApiError::response_too_large(&function, j.len() as u64, max_response_kb)
                        });
                    // The answer against the [output] schema, when asked.
                    if refused.is_none() && contract.checks_output() {
                        if let Some(tree) = &tree {
                            let failures = contract.output_failures(tree);
                            if let Some(first) = failures.first() {
                                let enforced = contract.output_validation
                                    == hearth_api::metadata::OutputValidation::Enforce;
                                let first = format!("at {}: {}", first.pointer, first.message);
                                events.emit(Event::OutputInvalid {
                                    function: &function,
                                    version,
                                    request_id: &request_id,
                                    enforced,
                                    first: &first,
                                });
                                if enforced {
                                    refused = Some(crate::contract::Contract::invalid_output(
                                        &function, version, failures,
                                    ));
                                }
                            }
                        }
                    }
                    let too_large = refused;
                    let detail = CallDetail {
                        timing: Some(&timing),
                        pid: Some(pid),
                        peak_memory_kb,
                        cpu_ms,
                        log: Some(&log),
                        bytes_out: json.as_ref().map_or(0, |j| j.len() as u64),
                        ..detail
                    };
                    if let Some(err) = too_large {
                        // The worker is fine; the answer is refused.
                        finished(
                            err.status,
                            err.code.as_str(),
                            timing.start,
                            Some(&err.detail.message),
                            detail,
                        );
                        return Ok(Outcome {
                            function: function.clone(),
                            version,
                            request_id,
                            result: Err(err.function(&function, Some(version))),
                            json: None,
                            log,
                            timing,
                            elapsed,
                            page: None,
                        });
                    }
                    let result = result.map_err(|fe| {
                        let kind = fe.kind.clone();
                        let err = contract.function_error(&function, version, fe);
                        let outcome = match err.code {
                            ErrorCode::FunctionError => err.detail.code.as_str(),
                            code => code.as_str(),
                        };
                        finished(err.status, outcome, timing.start, Some(&kind), detail);
                        err
                    });
                    if result.is_ok() {
                        finished(200, "ok", timing.start, None, detail);
                    }
                    Ok(Outcome {
                        function,
                        version,
                        request_id,
                        result,
                        json,
                        log,
                        timing,
                        elapsed,
                        page: None,
                    })
                }
                Err(CallFailed { error, trace }) => {
                    let mut text = error.to_string();
                    let mut err = ApiError::from(error).function(&function, Some(version));
                    if cut_by_caller && err.code == ErrorCode::Timeout {
                        text = format!(
                            "{function}@{version} was cut at its caller's deadline, {} ms after it was called (its own limits.timeout_ms is {} ms); its worker was stopped and is replaced",
                            elapsed.as_millis(),
                            timeout.as_millis()
                        );
                        err.detail.message = text.clone();
                        err.detail.hint = "the caller called it with too little time left: give the caller a longer limits.timeout_ms, or make the callee faster".into();
                    }
                    // A call that reached a worker keeps what it printed,
                    // its worker and its phases until it failed.
                    let detail = CallDetail {
                        timing: trace.timing.as_ref(),
                        pid: trace.pid,
                        log: trace.log.as_ref(),
                        ..detail
                    };
                    finished(
                        err.status,
                        err.code.as_str(),
                        trace.timing.as_ref().map(|t| t.start).unwrap_or_default(),
                        Some(&text),
                        detail,
                    );
                    Err(err.request_id(&request_id))
                }
            }
        }
        .instrument(span)
        .await
    }
}

impl Engine {
    /// Call a page: its fields filled by member calls (page.rs), its answer
    /// `{"data", "errors"}`, and its one CallFinished.
    async fn invoke_page(
        &self,
        pool: &Arc<Pool>,
        template: Arc<hearth_api::page::Template>,
        invocation: Invocation,
        detail: CallDetail<'_>,
    ) -> Result<Outcome, ApiError> {
        let spec = pool.spec();
        let (page, version, app) = (&spec.function, spec.version, &spec.app);
        let events = &self.versions.shared.events;
        let Some(dispatch) = pool.dispatcher() else {
            return Err(ApiError::new(
                ErrorCode::Overloaded,
                "hearth is stopping: the page was not called",
                "retry it on another daemon",
            ));
        };
        if let Some(above) = &invocation.lineage {
            if above.chain.iter().any(|(f, _)| f == page) {
                return Err(ApiError::new(
                    ErrorCode::Recursion,
                    format!("the page {page} is already in the call chain: a page cannot fill its own fields, directly or not"),
                    "break the cycle: let a field's function do the work itself",
                ));
            }
        }
        let _in_flight = InFlight::enter(&self.in_flight);
        let _busy = self.stats.enter(app, page, version);
        let request_id = invocation.request_id.clone();
        let caller = invocation.caller;
        let arrived = invocation.arrived;
        let answer = crate::page::run(crate::page::PageCall {
            page,
            version,
            template: &template,
            dispatch,
            stale: &self.stale,
            invocation,
            timeout: Duration::from_millis(spec.limits.timeout_ms),
            max_nested_calls: spec.limits.max_nested_calls,
        })
        .await;
        let elapsed = arrived.elapsed();
        let trace = answer.trace;
        let failed: Vec<(&str, &str)> = trace
            .fields
            .iter()
            .filter_map(|f| f.code.as_deref().map(|c| (f.path.as_str(), c)))
            .collect();
        events.emit(Event::PageFinished {
            page,
            version,
            request_id: &request_id,
            fields: trace.fields.len(),
            calls: trace.calls,
            deduped: trace.deduped,
            failed: &failed,
            critical_ms: trace.critical_ms,
        });
        let max = spec.limits.max_response_kb.saturating_mul(1024);
        let result = answer.result.and_then(|value| {
            let json = serde_json::to_vec(&value).unwrap_or_default();
            if json.len() as u64 > max {
                return Err(ApiError::response_too_large(
                    page,
                    json.len() as u64,
                    spec.limits.max_response_kb,
                ));
            }
            Ok(json)
        });
        let ms = elapsed.as_secs_f64() * 1000.0;
        let finished = |status: u16, outcome: &str, error: Option<&str>, bytes_out: u64| {
            events.emit(Event::CallFinished {
                function: page,
                version,
                app,
                request_id: &request_id,
                caller,
                status,
                outcome,
                ms,
                start: Default::default(),
                error,
                detail: CallDetail {
                    bytes_out,
                    ..detail
                },
            })
        };
        match result {
            Ok(json) => {
                finished(200, "ok", None, json.len() as u64);
                let value = hearth_protocol::json_to_value(&json).unwrap_or(rmpv::Value::Nil);
                Ok(Outcome {
                    function: page.clone(),
                    version,
                    request_id,
                    result: Ok(value),
                    json: Some(bytes::Bytes::from(json)),
                    log: Default::default(),
                    timing: Default::default(),
                    elapsed,
                    page: Some(Box::new(trace)),
                })
            }
            Err(e) => {
                finished(e.status, e.code.as_str(), Some(&e.detail.message), 0);
                Err(e.function(page, Some(version)).request_id(&request_id))
            }
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One call counted in `Engine::calls_in_flight` until dropped.
struct InFlight(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    fn enter(count: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> InFlight {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
