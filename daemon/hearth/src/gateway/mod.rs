//! The HTTP gateway (hyper, HTTP/1.1 and HTTP/2): function calls at
//! `/fn/{target}` (call.rs), the management API under `/api/v1/` (api/,
//! dispatched from the route table in `hearth_api::routes`). A call flows
//! socket → `handle` → `call::call` → `Engine::invoke` → pool → worker and
//! back (docs/ARCHITECTURE.md).

mod api;
mod call;
pub mod http;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tracing::warn;

use hearth_api::routes::{self, Matched};
use hearth_api::{ApiError, ServiceInfo};
use hearth_engine::Engine;

pub use api::{
    ApiLimits, DEFAULT_DEPLOY_WAIT, DEFAULT_MAX_API_BODY, DEFAULT_MAX_CONCURRENT_DEPLOYS,
};
use http::{error_response, json, RequestIds, Resp};

pub struct Gateway {
    pub engine: Arc<Engine>,
    /// Largest function call body.
    pub max_body: usize,
    /// The management API's limits (request bodies, deploys at once).
    pub api: ApiLimits,
    ids: RequestIds,
}

impl Gateway {
    pub fn new(engine: Arc<Engine>, max_body: usize) -> Gateway {
        Gateway {
            engine,
            max_body,
            api: ApiLimits::default(),
            ids: RequestIds::new(),
        }
    }

    /// The same gateway with these management API limits.
    pub fn with_api_limits(mut self, api: ApiLimits) -> Gateway {
        self.api = api;
        self
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
    // Calls first, without the table: they are the hot path.
    let result = if let Some(target) = path.strip_prefix("/fn/") {
        call::call(&gw, req, target).await
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
            Matched::Route(route, params) => {
                let params: Vec<String> = params.into_iter().map(str::to_owned).collect();
                let params: Vec<&str> = params.iter().map(String::as_str).collect();
                api::handle(&gw, route.id, &params, req).await
            }
            Matched::WrongMethod(allowed) => Err(ApiError::method_not_allowed(&path, &allowed)),
            Matched::NotFound => Err(ApiError::route_not_found(&path)),
        }
    };
    result.unwrap_or_else(error_response)
}
