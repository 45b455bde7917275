//! Call records: one per call, whoever made it (HTTP, nested calls, pages,
//! triggers), with its outcome, its timing and what it printed. The
//! records store (`hearth-records`) keeps them, `GET
//! /api/v1/functions/{name}/calls` and `GET /api/v1/calls/{request_id}`
//! show them, `hearth logs` and `hearth calls` print them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::workers::{StartKind, Timing};

/// Which of a worker's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line a call printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogLine {
    pub stream: Stream,
    /// When the daemon read it, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub text: String,
}

/// How a call ended, in broad classes (`code` in the record has the
/// exact error code).
pub fn outcome_class(code: &str) -> &'static str {
    match code {
        "ok" => "ok",
        "function_error" => "function_error",
        "timeout" => "timeout",
        "out_of_memory" => "out_of_memory",
        "worker_died" | "protocol_error" => "worker_died",
        "queue_full"
        | "overloaded"
        | "app_over_budget"
        | "crash_loop"
        | "rate_limited"
        | "too_many_connections" => "rejected",
        // A function's own error code (hearth's codes are all lowercase
        // words; a function's may not be one of them).
        "undeclared_error" => "function_error",
        code if crate::ErrorCode::parse(code).is_none() => "function_error",
        _ => "error",
    }
}

/// One call.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct CallRecord {
    /// Its place in the records store: increases with each record stored
    /// (the `id` of its server-sent event).
    #[serde(default)]
    pub seq: u64,
    pub request_id: String,
    /// The request id of the call that made this one (a nested call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub function: String,
    pub version: u32,
    pub app: String,
    /// `http`, `nested`, `page` or `trigger`.
    pub caller: String,
    /// When the call arrived, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    pub duration_ms: f64,
    /// `ok`, `function_error`, `timeout`, `out_of_memory`, `worker_died`,
    /// `rejected` (see `reason`) or `error`.
    pub outcome: String,
    /// The exact code: `ok`, `function_error` or an error code.
    pub code: String,
    /// Why a rejected call was refused: `queue_full`, `overloaded`,
    /// `app_over_budget`, `crash_loop`, `rate_limited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The error's message, or the kind of the function's own error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The HTTP status the outcome answers with.
    pub status: u16,
    /// How its worker came (warm, generic, fresh) and the phases.
    pub timing: Timing,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The worker's peak resident memory, in KiB, where the cgroup or
    /// /proc tells it (the worker's peak so far, the call's included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_kb: Option<u64>,
    /// CPU time the worker used during the call, in milliseconds (/proc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<f64>,
    /// Size of the event (the request body of an HTTP call).
    pub bytes_in: u64,
    /// Size of the result as JSON.
    pub bytes_out: u64,
    /// What the call printed, in order, each line with its stream and time.
    pub log: Vec<LogLine>,
    /// Output past the cap (`records.max_output`) was not kept.
    pub log_truncated: bool,
    /// Bytes of output not kept.
    pub log_dropped_bytes: u64,
    /// The call ran on a worker together with other calls, and output
    /// that could not be told to be this call's was left out of its log
    /// (it is in the daemon's log, marked as unattributed).
    #[serde(default)]
    pub log_unattributed: bool,
}

impl CallRecord {
    /// Is this a cold start (its worker started for it)?
    pub fn cold(&self) -> bool {
        self.timing.start != StartKind::Warm
    }
}

/// `GET /api/v1/functions/{name}/calls`: newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct CallList {
    pub function: String,
    pub calls: Vec<CallRecord>,
    /// The highest `seq` stored when the list was read: a follow stream
    /// resumed from it (`Last-Event-ID`) misses nothing after the list.
    pub last_seq: u64,
    /// Records the daemon could not keep since it started because its
    /// record queue was full (`records.queue_size`).
    pub dropped: u64,
}

/// Which calls: the filters of the list and of the follow stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CallQuery {
    /// Only calls that started at or after this time (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Only the call with this request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Only calls made by the call with this request id (a page's member
    /// calls, a function's nested calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Only calls that succeeded (`ok`) or that did not (`error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusFilter>,
    /// Only calls answered by this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Only records stored after this `seq` (oldest first then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<u64>,
    /// Most records (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Default and largest number of records one list returns.
pub const DEFAULT_CALL_LIMIT: u32 = 100;
pub const MAX_CALL_LIMIT: u32 = 1000;

/// `--status ok|error`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    Ok,
    Error,
}

impl StatusFilter {
    pub fn parse(s: &str) -> Option<StatusFilter> {
        match s {
            "ok" => Some(StatusFilter::Ok),
            "error" => Some(StatusFilter::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Ok => "ok",
            StatusFilter::Error => "error",
        }
    }

    pub fn matches(self, record: &CallRecord) -> bool {
        (record.code == "ok") == (self == StatusFilter::Ok)
    }
}

/// A query string's problem, for a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query parameter `{param}`: {problem}")]
pub struct QueryError {
    pub param: String,
    pub problem: String,
}

impl CallQuery {
    /// The effective limit.
    pub fn limit(&self) -> u32 {
        self.limit
            .unwrap_or(DEFAULT_CALL_LIMIT)
            .clamp(1, MAX_CALL_LIMIT)
    }

    /// Does `record` pass the filters (all but `after_seq` and `limit`)?
    pub fn matches(&self, record: &CallRecord) -> bool {
        self.since_ms.is_none_or(|t| record.started_at_ms >= t)
            && self
                .request_id
                .as_ref()
                .is_none_or(|id| *id == record.request_id)
            && self
                .parent
                .as_ref()
                .is_none_or(|id| record.parent_id.as_ref() == Some(id))
            && self.status.is_none_or(|s| s.matches(record))
            && self.version.is_none_or(|v| v == record.version)
    }

    /// As a query string (without `?`), for the CLI.
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.since_ms {
            parts.push(format!("since_ms={t}"));
        }
        if let Some(id) = &self.request_id {
            parts.push(format!("request_id={}", encode(id)));
        }
        if let Some(id) = &self.parent {
            parts.push(format!("parent={}", encode(id)));
        }
        if let Some(s) = self.status {
            parts.push(format!("status={}", s.as_str()));
        }
        if let Some(v) = self.version {
            parts.push(format!("version={v}"));
        }
        if let Some(s) = self.after_seq {
            parts.push(format!("after_seq={s}"));
        }
        if let Some(l) = self.limit {
            parts.push(format!("limit={l}"));
        }
        parts.join("&")
    }

    /// From a query string (already split on `&` and `=`, decoded).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Result<CallQuery, QueryError> {
        fn num<T: std::str::FromStr>(param: &str, v: &str) -> Result<T, QueryError> {
            v.parse().map_err(|_| QueryError {
                param: param.to_owned(),
                problem: format!("`{v}` is not a whole number"),
            })
        }
        let mut q = CallQuery::default();
        for (k, v) in pairs {
            match k {
                "since_ms" => q.since_ms = Some(num(k, &v)?),
                "request_id" => q.request_id = Some(v),
                "parent" => q.parent = Some(v),
                "status" => {
                    q.status = Some(StatusFilter::parse(&v).ok_or_else(|| QueryError {
                        param: k.to_owned(),
                        problem: format!("`{v}` is neither `ok` nor `error`"),
                    })?)
                }
                "version" => q.version = Some(num(k, &v)?),
                "after_seq" => q.after_seq = Some(num(k, &v)?),
                "limit" => q.limit = Some(num(k, &v)?),
                other => {
                    return Err(QueryError {
                        param: other.to_owned(),
                        problem: "unknown; the filters are since_ms, request_id, parent, status, version, after_seq and limit".into(),
                    })
                }
            }
        }
        Ok(q)
    }
}

/// Percent-encode what a query value must not hold as is.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_round_trip() {
        let q = CallQuery {
            since_ms: Some(5),
            request_id: Some("a b".into()),
            parent: Some("p1".into()),
            status: Some(StatusFilter::Error),
            version: Some(3),
            after_seq: Some(9),
            limit: Some(10),
        };
        let text = q.to_query();
        assert_eq!(
            text,
            "since_ms=5&request_id=a%20b&parent=p1&status=error&version=3&after_seq=9&limit=10"
        );
        let pairs = [
            ("since_ms", "5".to_owned()),
            ("request_id", "a b".to_owned()),
            ("parent", "p1".to_owned()),
            ("status", "error".to_owned()),
            ("version", "3".to_owned()),
            ("after_seq", "9".to_owned()),
            ("limit", "10".to_owned()),
        ];
        assert_eq!(CallQuery::from_pairs(pairs).unwrap(), q);
        let bad = CallQuery::from_pairs([("status", "maybe".to_owned())]).unwrap_err();
        assert_eq!(bad.param, "status");
        assert!(CallQuery::from_pairs([("colour", "red".to_owned())]).is_err());
    }

    #[test]
    fn outcomes_fall_in_classes() {
        assert_eq!(outcome_class("ok"), "ok");
        assert_eq!(outcome_class("queue_full"), "rejected");
        assert_eq!(outcome_class("protocol_error"), "worker_died");
        assert_eq!(outcome_class("internal"), "error");
    }
}
