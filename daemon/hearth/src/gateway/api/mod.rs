//! The management API under `/api/v1/`: the route table
//! (`hearth_api::routes`) names the handler; one file per resource holds
//! them. Every handler takes the request and the path's parameters and
//! answers the route's response type or an `ApiError`.

mod aliases;
mod apps;
mod deploy;
mod functions;
mod health;
mod releases;
mod versions;
mod workers;

use hyper::body::Incoming;
use hyper::Request;

use hearth_api::routes::RouteId;
use hearth_api::ApiError;

use super::http::Resp;
use super::Gateway;

/// Largest management request (a deploy carries the code, base64-encoded).
pub const MAX_API_BODY: usize = 96 * 1024 * 1024;

/// Serve one management route.
pub async fn handle(
    gw: &Gateway,
    route: RouteId,
    params: &[&str],
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let param = |i: usize| params.get(i).copied().unwrap_or_default();
    match route {
        RouteId::Health => Ok(health::health(gw)),
        RouteId::Workers => Ok(workers::list(gw)),
        RouteId::ListApps => apps::list(gw).await,
        RouteId::SetApp => apps::set(gw, param(0), req).await,
        RouteId::ListFunctions => functions::list(gw).await,
        RouteId::GetFunction => functions::get(gw, param(0)).await,
        RouteId::ListVersions => versions::list(gw, param(0)).await,
        RouteId::ListReleases => releases::list(gw, param(0)).await,
        RouteId::Publish => releases::publish(gw, param(0), req).await,
        RouteId::Rollback => releases::rollback(gw, param(0), req).await,
        RouteId::BatchPublish => releases::publish_batch(gw, req).await,
        RouteId::ListAliases => aliases::list(gw, param(0)).await,
        RouteId::SetAlias => aliases::set(gw, param(0), param(1), req).await,
        RouteId::Deploy => deploy::deploy(gw, req).await,
        RouteId::Call => Err(ApiError::route_not_found(req.uri().path())),
    }
}

/// Who made a release, as the client says (kept in the release history).
pub fn actor(req: &Request<Incoming>) -> String {
    req.headers()
        .get("x-hearth-actor")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(100).collect())
        .unwrap_or_default()
}
