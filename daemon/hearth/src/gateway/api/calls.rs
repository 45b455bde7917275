//! Call records: `GET /api/v1/functions/{name}/calls` (newest first, with
//! filters), `GET /api/v1/functions/{name}/calls/stream` (server-sent
//! events as records are written, resumable with `Last-Event-ID`), and
//! `GET /api/v1/calls/{request_id}`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response};

use hearth_api::{ApiError, CallList, CallQuery, ErrorCode};
use hearth_records::Recorder;

use crate::gateway::call::percent_decode;
use crate::gateway::http::{ok, ChannelBody, Resp};
use crate::gateway::Gateway;

/// Records read at a time by a follow stream.
const STREAM_CHUNK: u32 = 500;
/// A comment line this often keeps a quiet stream (and its proxies) open
/// and finds a client that left.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn recorder(gw: &Gateway) -> Result<&Arc<Recorder>, ApiError> {
    gw.records.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Internal,
            "this daemon keeps no call records",
            "report this as a bug: `hearth serve` always keeps them",
        )
    })
}

fn store_error(e: hearth_records::RecordsError) -> ApiError {
    ApiError::internal(format!("cannot read the call records: {e}"))
}

fn query_of(req: &Request<Incoming>) -> Result<CallQuery, ApiError> {
    let pairs = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k, percent_decode(v))
        });
    CallQuery::from_pairs(pairs).map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            e.to_string(),
            "see docs/API.md for the filters of call records",
        )
    })
}

/// 404 unless the function exists (it may have no records yet).
async fn require_function(gw: &Gateway, name: &str) -> Result<(), ApiError> {
    let found = gw
        .engine
        .store()
        .function(name)
        .await
        .map_err(|e| ApiError::internal(format!("cannot read the store: {e}")))?;
    match found {
        Some(_) => Ok(()),
        None => Err(ApiError::function_not_found(name)),
    }
}

pub async fn list(gw: &Gateway, name: &str, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let recorder = recorder(gw)?;
    let query = query_of(req)?;
    require_function(gw, name).await?;
    let last_seq = *recorder.last_seq().borrow();
    let calls = recorder
        .store()
        .list(name, &query)
        .await
        .map_err(store_error)?;
    Ok(ok(&CallList {
        function: name.to_owned(),
        calls,
        last_seq,
        dropped: recorder.dropped(),
    }))
}

pub async fn get(gw: &Gateway, request_id: &str) -> Result<Resp, ApiError> {
    let recorder = recorder(gw)?;
    match recorder
        .store()
        .get(request_id)
        .await
        .map_err(store_error)?
    {
        Some(record) => Ok(ok(&record)),
        None => Err(ApiError::new(
            ErrorCode::CallNotFound,
            format!("no call record with request id \"{request_id}\""),
            "check the id (every answer's x-request-id header names it); records of a call still running, dropped for a full record queue, or past the retention (records.max_age, records.max_bytes_per_function) are not there",
        )),
    }
}

/// One server-sent event.
fn event(record: &hearth_api::CallRecord) -> Bytes {
    let data = serde_json::to_string(record).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("id: {}\nevent: call\ndata: {data}\n\n", record.seq))
}

pub async fn follow(gw: &Gateway, name: &str, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let recorder = recorder(gw)?.clone();
    let mut query = query_of(req)?;
    require_function(gw, name).await?;
    let resume = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // From Last-Event-ID, else after_seq, else from now on.
    let mut after = resume
        .or(query.after_seq)
        .unwrap_or_else(|| *recorder.last_seq().borrow());
    query.limit = Some(STREAM_CHUNK);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let mut written = recorder.last_seq();
    let mut stopping = gw.stopping.subscribe();
    let function = name.to_owned();
    tokio::spawn(async move {
        // The client knows the stream is open once this arrives.
        if tx.send(Bytes::from_static(b": following\n\n")).is_err() {
            return;
        }
        loop {
            loop {
                query.after_seq = Some(after);
                let records = match recorder.store().list(&function, &query).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Bytes::from(format!(
                            "event: error\ndata: {}\n\n",
                            serde_json::json!({ "message": e.to_string() })
                        )));
                        return;
                    }
                };
                for record in &records {
                    after = record.seq;
                    if tx.send(event(record)).is_err() {
                        return;
                    }
                }
                if records.len() < STREAM_CHUNK as usize {
                    break;
                }
            }
            tokio::select! {
                changed = written.changed() => if changed.is_err() { return },
                _ = stopping.wait_for(|s| *s) => return,
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut resp = Response::new(Either::Right(ChannelBody(rx, None)));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}
