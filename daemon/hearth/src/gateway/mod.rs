//! The HTTP gateway (hyper, HTTP/1.1 and HTTP/2): function calls at
//! `/fn/{name}` and `/fn/{name}@{version}`, the management API under
//! `/api/v1/`. A call flows gateway → router → pool → worker and back.

mod error;

pub use error::ApiError;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tracing::{debug, info, info_span, warn, Instrument};

use base64::Engine as _;
use hearth_api::bundle::Bundle;
use hearth_api::manifest::validate_name;
use hearth_api::{
    AliasRequest, BatchPublishRequest, DeployRequest, ErrorBody, PublishRequest, RollbackRequest,
};
use hearth_engine::deps::Progress;
use hearth_engine::pool::{Answer, Call, CallLog};
use hearth_engine::publish::Publisher;
use hearth_protocol as protocol;
use hearth_store::AliasTarget;

/// Largest management request (a deploy carries the code, base64-encoded).
pub const MAX_API_BODY: usize = 96 * 1024 * 1024;

pub struct Gateway {
    pub publisher: Arc<Publisher>,
    /// Largest function call body.
    pub max_body: usize,
    ids: RequestIds,
}

type Resp = Response<Either<Full<Bytes>, ChannelBody>>;

/// A response body fed line by line from a channel (deploy progress).
pub struct ChannelBody(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

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

impl Gateway {
    pub fn new(publisher: Arc<Publisher>, max_body: usize) -> Gateway {
        Gateway {
            publisher,
            max_body,
            ids: RequestIds::new(),
        }
    }
}

/// Request ids: a per-start prefix and a counter; unique and cheap.
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        RequestIds {
            prefix: nanos ^ std::process::id().rotate_left(16),
            next: AtomicU64::new(1),
        }
    }

    fn next(&self, incoming: Option<&HeaderValue>) -> String {
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

/// Accept connections until `shutdown` resolves, then let open connections
/// finish (up to 10 s).
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let gw = gateway.clone();
                let service = hyper::service::service_fn(move |req| {
                    let gw = gw.clone();
                    async move { Ok::<_, Infallible>(handle(gw, req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        warn!("connections still open after 10 s; closing them");
    }
}

async fn handle(gw: Arc<Gateway>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let result = if let Some(target) = path.strip_prefix("/fn/") {
        let target = target.to_owned();
        invoke(&gw, req, &target).await
    } else if let Some(rest) = path.strip_prefix("/api/v1/") {
        let rest = rest.trim_end_matches('/').to_owned();
        management(&gw, req, &rest).await
    } else if path == "/" {
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "service": "hearth",
                "version": env!("CARGO_PKG_VERSION"),
                "call": "POST /fn/{name}",
                "api": "/api/v1/",
            }),
        ))
    } else {
        Err(ApiError::route_not_found(&path))
    };
    result.unwrap_or_else(error_response)
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(bytes))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error_response(e: ApiError) -> Resp {
    let mut resp = json(e.status, &ErrorBody { error: *e.detail });
    if let Some(secs) = e.retry_after {
        resp.headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Read a whole body, refusing (413) anything over `limit`.
async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::body_too_large(limit))
        }
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("cannot read the request body: {e}"),
            "send the whole body again",
        )),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ApiError::bad_json(what, &e))
}

fn unknown_function(name: &str) -> ApiError {
    ApiError::from(hearth_engine::publish::PublishError::UnknownFunction(
        name.to_owned(),
    ))
}

/// `name` or `name@version`.
/// What a call names after `/fn/`.
#[derive(Debug, PartialEq)]
enum Target<'a> {
    Live(&'a str),
    Version(&'a str, u32),
    Alias(&'a str, &'a str),
}

/// `name`, `name@version` or `name@alias`.
fn parse_target(target: &str) -> Result<Target<'_>, ApiError> {
    let (name, parsed) = match target.split_once('@') {
        None => (target, Target::Live(target)),
        Some((name, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            let version = v.parse::<u32>().map_err(|_| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "version_not_found",
                    format!("{name} has no version {v}"),
                    format!("`hearth versions {name}` lists its versions"),
                )
                .function(name, None)
            })?;
            (name, Target::Version(name, version))
        }
        Some((name, alias)) => {
            if validate_name(alias).is_err() {
                return Err(alias_not_found(name, alias));
            }
            (name, Target::Alias(name, alias))
        }
    };
    if validate_name(name).is_err() {
        return Err(unknown_function(name));
    }
    Ok(parsed)
}

fn alias_not_found(name: &str, alias: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "alias_not_found",
        format!("{name} has no alias \"{alias}\""),
        format!("call /fn/{name} for the live version or /fn/{name}@N for version N; create the alias with `hearth alias {name} {alias} --version N`"),
    )
    .function(name, None)
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

fn percent_decode(s: &str) -> String {
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
fn add_timing(h: &mut hyper::HeaderMap, t: &hearth_engine::pool::Timing) {
    let value = if t.start == "warm" {
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
    h.insert("x-hearth-start", HeaderValue::from_static(t.start));
}

async fn invoke(gw: &Gateway, req: Request<Incoming>, target: &str) -> Result<Resp, ApiError> {
    let parsed = parse_target(target)?;
    let request_id = gw.ids.next(req.headers().get("x-request-id"));
    let is_get = match *req.method() {
        Method::POST => false,
        Method::GET => true,
        _ => {
            return Err(ApiError::method_not_allowed(
                &format!("/fn/{target}"),
                "POST (JSON body) or GET (query parameters)",
            ))
        }
    };
    let pool = match parsed {
        Target::Live(name) => gw.publisher.live_pool(name).await.map_err(ApiError::from),
        Target::Version(name, v) => gw.publisher.pool_for(name, v).await.map_err(ApiError::from),
        Target::Alias(name, alias) => match gw.publisher.router.alias(name, alias) {
            Some(route) => Ok(route.pick().clone()),
            None => Err(alias_not_found(name, alias)),
        },
    }
    .map_err(|e| with_request_id(e, &request_id))?;
    let spec = pool.spec();
    let (function, version) = (spec.function.clone(), spec.version);
    let timeout = Duration::from_millis(spec.limits.timeout_ms);
    let (max_request_kb, max_response_kb) =
        (spec.limits.max_request_kb, spec.limits.max_response_kb);
    let span = info_span!("call", function = %function, version, request_id = %request_id);

    let want_log = req.headers().contains_key("x-hearth-log");
    async {
        let arrived = tokio::time::Instant::now();
        let payload = if is_get {
            query_event(req.uri().query())
        } else {
            let fn_limit =
                usize::try_from(max_request_kb.saturating_mul(1024)).unwrap_or(usize::MAX);
            let body = read_body(req, gw.max_body.min(fn_limit))
                .await
                .map_err(|e| {
                    if e.detail.code == "body_too_large" && fn_limit <= gw.max_body {
                        ApiError::call_too_large(&function, max_request_kb)
                    } else {
                        e
                    }
                })?;
            if body.iter().all(u8::is_ascii_whitespace) {
                rmpv::Value::Map(Vec::new())
            } else {
                protocol::json_to_value(&body)
                    .map_err(|e| ApiError::bad_json("the request body", &e))?
            }
        };
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            + timeout.as_millis() as u64;
        let call = Call {
            request_id: request_id.clone(),
            payload,
            deadline: arrived + timeout,
            deadline_ms,
        };
        // The call runs in its own task: a client that hangs up mid-call does
        // not abandon a worker half-way through a frame.
        let outcome = tokio::spawn(pool.call(call)).await.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("call task failed: {e}"),
                "report this as a bug",
            )
        })?;
        let elapsed_ms = arrived.elapsed().as_secs_f64() * 1000.0;
        match outcome {
            Ok(Answer {
                result: Ok(value),
                log,
                timing,
            }) => {
                debug!(ms = elapsed_ms, "call ok");
                let mut resp = json(StatusCode::OK, &protocol::value_to_json(&value));
                let limit_kb = max_response_kb;
                let size = hyper::body::Body::size_hint(resp.body())
                    .exact()
                    .unwrap_or(0);
                if size > limit_kb.saturating_mul(1024) {
                    return Err(ApiError::response_too_large(&function, size, limit_kb));
                }
                let h = resp.headers_mut();
                if want_log {
                    if let Ok(v) = HeaderValue::from_str(&log_header(&log)) {
                        h.insert("x-hearth-log", v);
                    }
                }
                if let Ok(v) = HeaderValue::from_str(&function) {
                    h.insert("x-hearth-function", v);
                }
                add_timing(h, &timing);
                h.insert("x-hearth-version", HeaderValue::from(version));
                if let Ok(v) = HeaderValue::from_str(&request_id) {
                    h.insert("x-request-id", v);
                }
                Ok(resp)
            }
            Ok(Answer {
                result: Err(fe),
                log,
                timing: _,
            }) => {
                info!(ms = elapsed_ms, kind = %fe.kind, "call raised");
                let mut err = ApiError::function_error(&function, version, fe);
                if want_log {
                    err.detail.log = Some(log_text(&log));
                }
                Err(err)
            }
            Err(e) => {
                warn!(ms = elapsed_ms, error = %e, "call failed");
                Err(ApiError::from(e).function(&function, Some(version)))
            }
        }
    }
    .instrument(span)
    .await
    .map_err(|e| with_request_id(e.function(&function, Some(version)), &request_id))
}

/// Most bytes of a call's log returned in the `x-hearth-log` header.
const LOG_HEADER_MAX: usize = 4096;

fn log_text(log: &CallLog) -> String {
    if log.dropped > 0 {
        format!("{}[hearth] {} more bytes not kept\n", log.text, log.dropped)
    } else {
        log.text.clone()
    }
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

fn with_request_id(mut e: ApiError, id: &str) -> ApiError {
    e.detail.request_id = Some(id.to_owned());
    e
}

fn actor(req: &Request<Incoming>) -> String {
    req.headers()
        .get("x-hearth-actor")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(100).collect())
        .unwrap_or_default()
}

async fn management(gw: &Gateway, req: Request<Incoming>, rest: &str) -> Result<Resp, ApiError> {
    let parts: Vec<&str> = rest.split('/').collect();
    let method = req.method().clone();
    let p = &gw.publisher;
    match (method, parts.as_slice()) {
        (Method::GET, ["health"]) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "runtimes": p.runtimes.summary(),
            }),
        )),
        (Method::GET, ["apps"]) => {
            let apps = p.apps().await.map_err(store_err)?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "apps": apps })))
        }
        (Method::PUT | Method::POST, ["apps", name]) => {
            hearth_api::manifest::validate_name(name).map_err(|problem| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("application name {problem}"),
                    "use 1 to 63 characters of a-z, 0-9 and -",
                )
            })?;
            let body = read_body(req, 64 * 1024).await?;
            let mut app: hearth_store::AppRecord = parse_json(&body, "the application budget")?;
            app.name = (*name).to_owned();
            let enforced = p.set_app(&app).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({
                    "name": app.name,
                    "max_workers": app.max_workers,
                    "memory_mb": app.memory_mb,
                    "cpu_percent": app.cpu_percent,
                    "memory_cpu_enforced": enforced,
                }),
            ))
        }
        (Method::GET, ["workers"]) => {
            let pools: Vec<_> = p.pools().iter().map(|pool| pool.stats()).collect();
            let generic = p.generic().map(|g| g.stats()).unwrap_or_default();
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "generic": generic, "pools": pools, "budget": p.budget() }),
            ))
        }
        (Method::GET, ["functions"]) => {
            let mut functions = p.store.list_functions().await.map_err(store_err)?;
            for f in &mut functions {
                with_health(p, f);
            }
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "functions": functions }),
            ))
        }
        (Method::GET, ["functions", name]) => {
            let mut f = existing(p, name).await?;
            with_health(p, &mut f);
            Ok(json(StatusCode::OK, &f))
        }
        (Method::GET, ["functions", name, "versions"]) => {
            let f = existing(p, name).await?;
            let versions = p.store.versions(name).await.map_err(store_err)?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({
                    "function": f.name,
                    "live_version": f.live_version,
                    "versions": versions,
                }),
            ))
        }
        (Method::GET, ["functions", name, "releases"]) => {
            existing(p, name).await?;
            let releases = p.store.releases(name).await.map_err(store_err)?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "function": name, "releases": releases }),
            ))
        }
        (Method::POST, ["functions", name, "publish"]) => {
            let name = name.to_string();
            let actor = actor(&req);
            let body: PublishRequest =
                parse_json(&read_body(req, MAX_API_BODY).await?, "the publish request")?;
            let out = p
                .publish(&name, body.version, "publish", &body.message, &actor)
                .await?;
            Ok(json(StatusCode::OK, &out))
        }
        (Method::POST, ["functions", name, "rollback"]) => {
            let name = name.to_string();
            let actor = actor(&req);
            let body: RollbackRequest =
                parse_json(&read_body(req, MAX_API_BODY).await?, "the rollback request")?;
            let out = p.rollback(&name, &body.message, &actor).await?;
            Ok(json(StatusCode::OK, &out))
        }
        (Method::POST, ["publish"]) => {
            let actor = actor(&req);
            let body: BatchPublishRequest = parse_json(
                &read_body(req, MAX_API_BODY).await?,
                "the batch publish request",
            )?;
            let items: Vec<(String, u32)> = body
                .releases
                .into_iter()
                .map(|r| (r.function, r.version))
                .collect();
            let out = p.publish_batch(&items, &body.message, &actor).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "releases": out }),
            ))
        }
        (Method::GET, ["functions", name, "aliases"]) => {
            existing(p, name).await?;
            let aliases: Vec<serde_json::Value> = p
                .store
                .aliases()
                .await
                .map_err(store_err)?
                .into_iter()
                .filter(|(f, _, _)| f == name)
                .map(|(_, alias, target)| serde_json::json!({ "alias": alias, "target": target }))
                .collect();
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "function": name, "aliases": aliases }),
            ))
        }
        (Method::PUT | Method::POST, ["functions", name, "aliases", alias]) => {
            let (name, alias) = (name.to_string(), alias.to_string());
            let actor = actor(&req);
            let body: AliasRequest =
                parse_json(&read_body(req, MAX_API_BODY).await?, "the alias request")?;
            let target = AliasTarget {
                version: body.version,
                split: body.split.map(|s| (s.version, s.weight)),
            };
            let out = p
                .set_alias(&name, &alias, &target, &body.message, &actor)
                .await?;
            Ok(json(StatusCode::OK, &out))
        }
        (Method::POST, ["deploy"]) => {
            let actor = actor(&req);
            let stream = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("application/x-ndjson"));
            let body: DeployRequest =
                parse_json(&read_body(req, MAX_API_BODY).await?, "the deploy request")?;
            let bundle = Bundle { files: body.files };
            if stream {
                return Ok(deploy_streaming(
                    p.clone(),
                    bundle,
                    body.message,
                    body.publish,
                    actor,
                ));
            }
            let out = p
                .deploy(
                    bundle,
                    &body.message,
                    body.publish,
                    &actor,
                    &Progress::none(),
                )
                .await?;
            let status = if out.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json(status, &out))
        }
        (
            _,
            ["health"]
            | ["functions"]
            | ["functions", _]
            | ["functions", _, "versions" | "releases"],
        ) => Err(ApiError::method_not_allowed(
            &format!("/api/v1/{rest}"),
            "GET",
        )),
        (_, ["deploy"] | ["functions", _, "publish" | "rollback"]) => Err(
            ApiError::method_not_allowed(&format!("/api/v1/{rest}"), "POST"),
        ),
        _ => Err(ApiError::route_not_found(&format!("/api/v1/{rest}"))),
    }
}

/// Deploy with progress: an NDJSON stream of `{"progress": "..."}` lines,
/// then one `{"result": ...}` or `{"error": ..., "status": N}` line.
fn deploy_streaming(
    publisher: Arc<Publisher>,
    bundle: Bundle,
    message: String,
    publish: bool,
    actor: String,
) -> Resp {
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let line = |value: serde_json::Value| {
        let mut bytes = serde_json::to_vec(&value).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    };
    let forward_tx = out_tx.clone();
    let forwarder = tokio::spawn(async move {
        while let Some(message) = progress_rx.recv().await {
            let _ = forward_tx.send(line(serde_json::json!({ "progress": message })));
        }
    });
    tokio::spawn(async move {
        let progress = Progress::new(progress_tx);
        let outcome = publisher
            .deploy(bundle, &message, publish, &actor, &progress)
            .await;
        drop(progress);
        let _ = forwarder.await;
        let last = match outcome {
            Ok(out) => serde_json::json!({ "result": out }),
            Err(e) => {
                let e = ApiError::from(e);
                serde_json::json!({ "error": *e.detail, "status": e.status.as_u16() })
            }
        };
        let _ = out_tx.send(line(last));
    });
    let mut resp = Response::new(Either::Right(ChannelBody(out_rx)));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

/// The function named `name`, or 404.
/// A live version paused in a crash loop shows it in its function's state.
fn with_health(p: &Publisher, f: &mut hearth_store::FunctionRecord) {
    let Some(pool) = p.router.live(&f.name) else {
        return;
    };
    if let Some(backoff) = pool.crash_loop() {
        f.state = "crash-loop".into();
        f.backoff = Some(backoff);
    }
}

async fn existing(p: &Publisher, name: &str) -> Result<hearth_store::FunctionRecord, ApiError> {
    p.store
        .function(name)
        .await
        .map_err(store_err)?
        .ok_or_else(|| unknown_function(name))
}

fn store_err(e: hearth_store::StoreError) -> ApiError {
    ApiError::from(hearth_engine::publish::PublishError::Store(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(parse_target("hello").expect("ok"), Target::Live("hello"));
        assert_eq!(
            parse_target("hello@3").expect("ok"),
            Target::Version("hello", 3)
        );
        assert_eq!(
            parse_target("hello@prod").expect("ok"),
            Target::Alias("hello", "prod")
        );
        assert_eq!(
            parse_target("hello@X!").expect_err("bad").status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            parse_target("Hello").expect_err("bad").detail.code,
            "function_not_found"
        );
    }

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
