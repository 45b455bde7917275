//! The HTTP gateway (hyper, HTTP/1.1 and HTTP/2): function calls at
//! `/fn/{target}` (call.rs), the management API under `/api/v1/` (api/,
//! dispatched from the route table in `hearth_api::routes`). A call flows
//! socket → `handle` → `call::call` → `Engine::invoke` → pool → worker and
//! back (docs/ARCHITECTURE.md).

mod api;
mod call;
pub mod conn;
pub mod guard;
pub mod http;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tracing::warn;

use hearth_api::routes::{self, Matched};
use hearth_api::{ApiError, ServiceInfo};
use hearth_engine::Engine;

use crate::service::Heartbeat;
pub use api::{
    ApiLimits, DEFAULT_DEPLOY_WAIT, DEFAULT_MAX_API_BODY, DEFAULT_MAX_CONCURRENT_DEPLOYS,
};
use conn::{Admit, ConnLimits, InFlight, Slot, Watched};
use guard::Guard;
use http::{error_response, json, RequestIds, Resp};

pub struct Gateway {
    pub engine: Arc<Engine>,
    /// Largest function call body.
    pub max_body: usize,
    pub guard: Guard,
    pub conns: ConnSettings,
    /// The management API's limits (request bodies, deploys at once).
    pub api: ApiLimits,
    /// What `GET /metrics` serves (None: metrics are off).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    ids: RequestIds,
    /// Call records (`GET .../calls`); None: not kept.
    pub records: Option<Arc<hearth_records::Recorder>>,
    /// True once the daemon stops: long-lived streams (follow) end.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// How connections are bounded.
pub struct ConnSettings {
    pub limits: Arc<ConnLimits>,
    /// A request's head must arrive within this (HTTP/1.1 keep-alive
    /// connections waiting for their next request are closed after it too).
    pub header_timeout: Duration,
    /// A connection with no request in flight and no byte either way for
    /// this long is closed.
    pub idle_timeout: Duration,
    /// HTTPS only, when set.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Default most open connections (past it, RESERVED_CONNECTIONS more are
/// taken for the management API only).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Connections kept for the management API past `max_connections`.
pub const RESERVED_CONNECTIONS: usize = 64;
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for ConnSettings {
    fn default() -> ConnSettings {
        ConnSettings {
            limits: ConnLimits::new(DEFAULT_MAX_CONNECTIONS, RESERVED_CONNECTIONS),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            tls: None,
        }
    }
}

impl Gateway {
    pub fn new(engine: Arc<Engine>, max_body: usize, guard: Guard, conns: ConnSettings) -> Gateway {
        Gateway {
            engine,
            max_body,
            guard,
            conns,
            api: ApiLimits::default(),
            metrics: None,
            ids: RequestIds::new(),
            records: None,
            stopping: tokio::sync::watch::channel(false).0,
        }
    }

    /// The same gateway, showing these call records.
    pub fn with_records(mut self, records: Arc<hearth_records::Recorder>) -> Gateway {
        self.records = Some(records);
        self
    }

    /// The same gateway serving these metrics at `GET /metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<crate::metrics::Metrics>>) -> Gateway {
        self.metrics = metrics;
        self
    }

    /// The same gateway with these management API limits.
    pub fn with_api_limits(mut self, api: ApiLimits) -> Gateway {
        self.api = api;
        self
    }
}

/// Accept connections until `shutdown` resolves, then let open connections
/// finish their calls for up to `grace`. The loop beats `heartbeat` while it
/// turns (the service watchdog's keep-alives depend on it).
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    heartbeat: Heartbeat,
) {
    // Every connection holds a receiver: the sender's `closed()` is all of
    // them gone.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(gateway.conns.header_timeout);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    let mut beat = tokio::time::interval(heartbeat.every());
    loop {
        tokio::select! {
                    _ = beat.tick() => heartbeat.beat(),
                    accepted = listener.accept() => {
                        let (mut stream, _) = match accepted {
                            Ok(conn) => conn,
                            Err(e) => {
                                warn!(error = %e, "accept failed");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        };
                        let slot = gateway.conns.limits.admit();
                        if slot.admit == Admit::Refused {
                            let answer = conn::refusal(gateway.conns.limits.max());
                            tokio::spawn(async move {
                                use tokio::io::AsyncWriteExt as _;
                                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&answer)).await;
                                drop(slot);
                            });
                            continue;
                        }
                        let _ = stream.set_nodelay(true);
                        // A cell of its own (its CPU's runtime) serves the whole
                        // connection, or this runtime when there are no cells.
                        let cell = hearth_engine::cells::next();
                        let stream = match cell {
                            Some(_) => match stream.into_std() {
                                Ok(s) => Moving::Std(s),
                                Err(e) => {
                                    warn!(error = %e, "cannot hand a connection to a cell");
                                    continue;
                                }
                            },
                            None => Moving::Tokio(stream),
                        };
                        let gateway = gateway.clone();
                        let builder = builder.clone();
                        let stopping = stopping.clone();
                        hearth_engine::cells::spawn_on(cell, async move {
                            let stream = match stream {
                                Moving::Tokio(s) => s,
                                Moving::Std(s) => match TcpStream::from_std(s) {
                                    Ok(s) => s,
                                    Err(e) => {
                                        warn!(error = %e, "a cell cannot take a connection");
                                        return;
                                    }
                                },
                            };
                            serve_connection(stream, slot, gateway, builder, stopping).await;
                        });
        }
                    _ = &mut shutdown => {
                        gateway.stopping.send_replace(true);
                        break;
                    }
                }
    }
    // Connections not accepted yet stay queued on the socket when the
    // service manager holds it (socket activation) for the next daemon.
    drop(listener);
    drop(stopping);
    let _ = stop.send(true);
    if tokio::time::timeout(grace, stop.closed()).await.is_err() {
        warn!(
            "calls still in flight after the shutdown grace ({}); ending them",
            humantime::format_duration(grace)
        );
    }
}

/// A connection on its way to the runtime that serves it: a cell's takes
/// it as a std socket and registers it with its own reactor.
enum Moving {
    Tokio(TcpStream),
    Std(std::net::TcpStream),
}

/// Serve one accepted connection until it closes (or the daemon stops and
/// its calls are done).
async fn serve_connection(
    stream: TcpStream,
    slot: Slot,
    gateway: Arc<Gateway>,
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    stopping: tokio::sync::watch::Receiver<bool>,
) {
    let in_flight = InFlight::default();
    let io = Watched::new(stream, gateway.conns.idle_timeout, in_flight.clone());
    let drive_flight = in_flight.clone();
    let management_only = slot.admit == Admit::ManagementOnly;
    let gw = gateway.clone();
    let service = hyper::service::service_fn(move |req| {
        let gw = gw.clone();
        let busy = in_flight.busy();
        async move {
            let mut resp = handle(gw, req, management_only).await;
            // A streamed answer keeps the connection busy until it ends.
            if let Either::Right(body) = resp.body_mut() {
                body.1 = Some(busy);
            }
            Ok::<_, Infallible>(resp)
        }
    });
    match gateway.conns.tls.clone() {
        None => {
            let conn = builder
                .serve_connection(TokioIo::new(io), service)
                .into_owned();
            conn::drive(conn, stopping, drive_flight).await;
        }
        Some(acceptor) => {
            // The handshake is bounded like a request's head.
            let limit = gateway.conns.header_timeout;
            if let Ok(Ok(tls)) = tokio::time::timeout(limit, acceptor.accept(io)).await {
                let conn = builder
                    .serve_connection(TokioIo::new(tls), service)
                    .into_owned();
                conn::drive(conn, stopping, drive_flight).await;
            }
        }
    }
    drop(slot);
}

async fn handle(gw: Arc<Gateway>, req: Request<Incoming>, management_only: bool) -> Resp {
    let path = req.uri().path().to_owned();
    // Every answer names its request: in `x-request-id`, and in an error's
    // body.
    let request_id = gw.ids.next(req.headers().get("x-request-id"));
    // Calls first, without the table: they are the hot path.
    // Past the connection cap, the management API and metrics are still
    // served (the operator needs them most then).
    let result = if management_only && !path.starts_with("/api/") && path != "/metrics" {
        Err(conn::too_many(format!(
            "the daemon has {} connections open, past its limit; this one may reach the management API only",
            gw.conns.limits.open()
        )))
    } else if let Some(target) = path.strip_prefix("/fn/") {
        call::call(&gw, req, target, &request_id, false).await
    } else if let Some(target) = path.strip_prefix("/page/") {
        call::call(&gw, req, target, &request_id, true).await
    } else if path == "/" {
        Ok(json(
            StatusCode::OK,
            &ServiceInfo {
                service: "hearth".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                call: "POST /fn/{name}".into(),
                api: "/api/v1/".into(),
            },
        ))
    } else {
        match routes::find(req.method().as_str(), &path) {
            Matched::Route(route, params) if route.id == routes::RouteId::FunctionDocs => {
                let name = params.first().copied().unwrap_or_default().to_owned();
                Ok(api::docs::page(&gw, route, &name, req).await)
            }
            Matched::Route(route, params) => {
                let params: Vec<String> = params.into_iter().map(str::to_owned).collect();
                let params: Vec<&str> = params.iter().map(String::as_str).collect();
                match gw
                    .guard
                    .management(route.access, req.method(), req.headers())
                {
                    Ok(who) => api::handle(&gw, route.id, &params, who.as_ref(), req).await,
                    Err(e) => Err(e),
                }
            }
            Matched::WrongMethod(allowed) => Err(ApiError::method_not_allowed(&path, &allowed)),
            Matched::NotFound => Err(ApiError::route_not_found(&path)),
        }
    };
    let mut resp = result.unwrap_or_else(|mut e| {
        if e.detail.request_id.is_none() {
            e.detail.request_id = Some(request_id.clone());
        }
        error_response(e)
    });
    if !resp.headers().contains_key("x-request-id") {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
    }
    resp
}
