//! `/fn/{target}`: an HTTP call to a function. The body (or a GET's query)
//! becomes the event, the function's limits bound it, and the answer carries
//! the version, request id and timing headers. The call itself is the
//! engine's `invoke`, as for every other caller. `POST /page/{target}` is
//! the same call to a page (`/fn/` serves pages too; `/page/` serves only
//! pages), with each field in its Server-Timing.

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};

use hearth_api::{ApiError, ErrorCode, Target, Timing};
use hearth_engine::pool::CallLog;
use hearth_engine::{Caller, Invocation};
use hearth_protocol as protocol;

use super::http::{json_bytes, read_body, Resp};
use super::Gateway;

pub async fn call(
    gw: &Gateway,
    req: Request<Incoming>,
    target: &str,
    request_id: &str,
    page_route: bool,
) -> Result<Resp, ApiError> {
    let request_id = request_id.to_owned();
    let parsed = Target::parse(target).map_err(|e| e.request_id(&request_id))?;
    let is_get = match *req.method() {
        Method::POST => false,
        Method::GET if !page_route => true,
        _ if page_route => {
            return Err(ApiError::method_not_allowed(
                &format!("/page/{target}"),
                "POST (the page request as a JSON body)",
            ))
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                &format!("/fn/{target}"),
                "POST (JSON body) or GET (query parameters)",
            ))
        }
    };
    let arrived = tokio::time::Instant::now();
    let resolved = gw
        .engine
        .resolve(&parsed)
        .await
        .map_err(|e| e.request_id(&request_id))?;
    let function = resolved.function().to_owned();
    let version = resolved.version();
    if page_route && !resolved.is_page() {
        return Err(ApiError::new(
            ErrorCode::NotAPage,
            format!("{function} is a function, not a page"),
            format!(
                "call it at POST /fn/{target}; `hearth list --type page` shows the pages there are"
            ),
        )
        .function(&function, Some(version))
        .request_id(&request_id));
    }
    let app = resolved.app();
    gw.guard
        .call(app, gw.engine.apps.invoke_mode(app), req.headers())
        .map_err(|e| e.function(&function, Some(version)).request_id(&request_id))?;
    let max_request_kb = resolved.limits().max_request_kb;
    let want_log = req.headers().contains_key("x-hearth-log");
    let located = |e: ApiError| e.function(&function, Some(version)).request_id(&request_id);
    let bytes_in;
    let payload = if is_get {
        let query = req.uri().query();
        bytes_in = query.map_or(0, |q| q.len() as u64);
        query_event(query)
    } else {
        let fn_limit = usize::try_from(max_request_kb.saturating_mul(1024)).unwrap_or(usize::MAX);
        let body = read_body(req, gw.max_body.min(fn_limit), gw.conns.header_timeout)
            .await
            .map_err(|e| {
                if e.code == ErrorCode::BodyTooLarge && fn_limit <= gw.max_body {
                    ApiError::call_too_large(&function, max_request_kb)
                } else {
                    e
                }
            })
            .map_err(located)?;
        bytes_in = body.len() as u64;
        if body.iter().all(u8::is_ascii_whitespace) {
            rmpv::Value::Map(Vec::new())
        } else {
            protocol::json_to_value(&body)
                .map_err(|e| located(ApiError::bad_json("the request body", &e)))?
        }
    };
    let mut invocation = Invocation::new(payload, request_id.clone(), Caller::Http);
    invocation.arrived = arrived;
    invocation.bytes_in = bytes_in;
    let outcome = gw.engine.invoke_resolved(resolved, invocation).await?;
    match outcome.result {
        Ok(value) => {
            // The engine made the JSON (and checked its size) once.
            let body = match outcome.json {
                Some(json) => json,
                None => bytes::Bytes::from(
                    serde_json::to_vec(&protocol::value_to_json(&value)).unwrap_or_default(),
                ),
            };
            let mut resp = json_bytes(StatusCode::OK, body);
            let h = resp.headers_mut();
            if want_log {
                if let Ok(v) = HeaderValue::from_str(&log_header(&outcome.log)) {
                    h.insert("x-hearth-log", v);
                }
            }
            if let Ok(v) = HeaderValue::from_str(&function) {
                h.insert("x-hearth-function", v);
            }
            match &outcome.page {
                Some(trace) => add_page_timing(h, outcome.elapsed, trace),
                None => add_timing(h, &outcome.timing),
            }
            h.insert("x-hearth-version", HeaderValue::from(version));
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                h.insert("x-request-id", v);
            }
            Ok(resp)
        }
        Err(mut err) => {
            if want_log {
                err.detail.log = Some(log_text(&outcome.log));
            }
            Err(located(err))
        }
    }
}

/// The event of a GET call: the query parameters as a map of strings.
fn query_event(query: Option<&str>) -> rmpv::Value {
    let mut entries = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        entries.push((
            rmpv::Value::from(percent_decode(k)),
            rmpv::Value::from(percent_decode(v)),
        ));
    }
    rmpv::Value::Map(entries)
}

pub(crate) fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' => bytes
                .get(i + 1)
                .and_then(|h| hex(*h))
                .zip(bytes.get(i + 2).and_then(|l| hex(*l)))
                .map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match (decoded, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The call's phases as a `Server-Timing` header (milliseconds), and how
/// its worker came (`x-hearth-start`: warm, generic or fresh).
fn add_timing(h: &mut hyper::HeaderMap, t: &Timing) {
    let value = if t.start == hearth_api::StartKind::Warm {
        format!("queue;dur={:.3}, run;dur={:.3}", t.queue_ms, t.run_ms)
    } else {
        format!(
            "queue;dur={:.3}, spawn;dur={:.3}, load;dur={:.3}, run;dur={:.3}",
            t.queue_ms, t.spawn_ms, t.load_ms, t.run_ms
        )
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert("server-timing", v);
    }
    h.insert("x-hearth-start", HeaderValue::from_static(t.start.as_str()));
}

/// A page call's `Server-Timing`: `page` (the whole call), `critical` (the
/// sum of its critical path's member calls, the path in `desc`) and
/// `field.PATH` for each field (its function@version in `desc`).
fn add_page_timing(
    h: &mut hyper::HeaderMap,
    elapsed: std::time::Duration,
    trace: &hearth_engine::page::PageTrace,
) {
    use std::fmt::Write;
    let mut value = format!("page;dur={:.3}", elapsed.as_secs_f64() * 1000.0);
    let path: Vec<&str> = trace
        .critical
        .iter()
        .filter_map(|&i| trace.fields.get(i).map(|f| f.path.as_str()))
        .collect();
    let _ = write!(
        value,
        ", critical;dur={:.3};desc=\"{}\"",
        trace.critical_ms,
        path.join(" > ")
    );
    for f in &trace.fields {
        let version = f.version.map_or(String::new(), |v| format!("@{v}"));
        let name = f.function.split('@').next().unwrap_or(&f.function);
        let _ = write!(
            value,
            ", field.{};dur={:.3};desc=\"{name}{version}{}\"",
            f.path,
            f.end_ms - f.start_ms,
            match (&f.code, f.shared) {
                (Some(code), _) => format!(" {code}"),
                (None, true) => " shared".to_owned(),
                (None, false) => String::new(),
            }
        );
    }
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert("server-timing", v);
    }
}

/// Most bytes of a call's log returned in the `x-hearth-log` header.
const LOG_HEADER_MAX: usize = 4096;

fn log_text(log: &CallLog) -> String {
    log.text()
}

/// The last 4 KiB of the call's log, base64 (like Lambda's LogType=Tail).
fn log_header(log: &CallLog) -> String {
    let text = log_text(log);
    let mut start = text.len().saturating_sub(LOG_HEADER_MAX);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    base64::engine::general_purpose::STANDARD.encode(&text.as_bytes()[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
        let v = query_event(Some("name=Ada%21&x"));
        assert_eq!(
            protocol::value_to_json(&v),
            serde_json::json!({"name": "Ada!", "x": ""})
        );
    }
}
