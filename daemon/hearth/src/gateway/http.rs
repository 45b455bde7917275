//! HTTP plumbing shared by the gateway's handlers: JSON answers, the error
//! answer, bounded body reads, request ids, and streamed bodies.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use hearth_api::{ApiError, ErrorCode};

pub type Resp = Response<Either<Full<Bytes>, ChannelBody>>;

/// A response body fed chunk by chunk from a channel (deploy progress).
/// It keeps its connection busy (never cut as idle) until it ends.
pub struct ChannelBody(
    pub tokio::sync::mpsc::UnboundedReceiver<Bytes>,
    pub Option<super::conn::Busy>,
);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

pub fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    json_bytes(status, Bytes::from(bytes))
}

/// An answer whose body is JSON already encoded.
pub fn json_bytes(status: StatusCode, bytes: Bytes) -> Resp {
    let mut resp = Response::new(Either::Left(Full::new(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn ok<T: serde::Serialize>(body: &T) -> Resp {
    json(StatusCode::OK, body)
}

pub fn status_of(e: &ApiError) -> StatusCode {
    StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub fn error_response(e: ApiError) -> Resp {
    let mut resp = json(status_of(&e), &e.body());
    if let Some(secs) = e.retry_after {
        resp.headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Read a whole body, refusing (413) anything over `limit`, and (408) a
/// body that stalls: no byte for `stall` (a slow client must not hold a
/// deploy slot or a connection for good).
pub async fn read_body(
    req: Request<Incoming>,
    limit: usize,
    stall: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    let mut body = req.into_body();
    let mut out = bytes::BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(stall, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    ErrorCode::BodyTimeout,
                    format!(
                        "the request body stopped coming: nothing for {} s ({} bytes received)",
                        stall.as_secs(),
                        out.len()
                    ),
                    "send the whole body without pausing; the wait is server.header_timeout in the configuration (--header-timeout)",
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::bad_request(
                    format!("cannot read the request body: {e}"),
                    "send the whole body again",
                ))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > limit {
                return Err(ApiError::body_too_large(limit));
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out.freeze())
}

/// A JSON body (an empty one is `{}`) as the route's request type.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ApiError::bad_json(what, &e))
}

/// Request ids: a per-start prefix and a counter; unique and cheap.
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> RequestIds {
        RequestIds::new()
    }
}

impl RequestIds {
    pub fn new() -> RequestIds {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        RequestIds {
            prefix: nanos ^ std::process::id().rotate_left(16),
            next: AtomicU64::new(1),
        }
    }

    pub fn next(&self, incoming: Option<&HeaderValue>) -> String {
        if let Some(id) = incoming.and_then(|v| v.to_str().ok()) {
            if !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            {
                return id.to_owned();
            }
        }
        format!(
            "{:08x}{:08x}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}
