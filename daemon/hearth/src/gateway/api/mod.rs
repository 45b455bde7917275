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
mod tokens;
mod versions;
mod workers;

use hyper::body::Incoming;
use hyper::Request;

use hearth_api::routes::RouteId;
use hearth_api::{ApiError, Scope};
use hearth_auth::Principal;

use super::http::Resp;
use super::Gateway;

/// Largest management request (a deploy carries the code, base64-encoded).
pub const MAX_API_BODY: usize = 96 * 1024 * 1024;

/// Serve one management route.
pub async fn handle(
    gw: &Gateway,
    route: RouteId,
    params: &[&str],
    who: Option<&Principal>,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let param = |i: usize| params.get(i).copied().unwrap_or_default();
    // Every route but health has checked its token (guard.rs).
    let who =
        || who.ok_or_else(|| hearth_auth::unauthorized("no token was sent", routes_scope(route)));
    match route {
        RouteId::Health => Ok(health::health(gw)),
        RouteId::Workers => Ok(workers::list(gw)),
        RouteId::ListApps => apps::list(gw).await,
        RouteId::SetApp => apps::set(gw, param(0), req).await,
        RouteId::ListTokens => tokens::list(gw).await,
        RouteId::CreateToken => tokens::create(gw, req).await,
        RouteId::RevokeToken => tokens::revoke(gw, param(0)).await,
        RouteId::ListFunctions => functions::list(gw).await,
        RouteId::GetFunction => functions::get(gw, param(0)).await,
        RouteId::ListVersions => versions::list(gw, param(0)).await,
        RouteId::ListReleases => releases::list(gw, param(0)).await,
        RouteId::Publish => releases::publish(gw, who()?, param(0), req).await,
        RouteId::Rollback => releases::rollback(gw, who()?, param(0), req).await,
        RouteId::BatchPublish => releases::publish_batch(gw, who()?, req).await,
        RouteId::ListAliases => aliases::list(gw, param(0)).await,
        RouteId::SetAlias => aliases::set(gw, who()?, param(0), param(1), req).await,
        RouteId::Deploy => deploy::deploy(gw, who()?, req).await,
        RouteId::Call => Err(ApiError::route_not_found(req.uri().path())),
    }
}

fn routes_scope(route: RouteId) -> &'static str {
    match hearth_api::routes::access_of(route) {
        hearth_api::Access::Scope(s) => s.as_str(),
        _ => "invoke",
    }
}

/// 403 unless `who` may deploy in the application `function` belongs to
/// (a function that does not exist yet belongs to none: the handler's own
/// error says so).
pub async fn require_deploy(gw: &Gateway, who: &Principal, function: &str) -> Result<(), ApiError> {
    if who.apps.is_empty() || who.allows(Scope::Admin, None) {
        return Ok(());
    }
    let app = gw
        .engine
        .store()
        .function(function)
        .await
        .map_err(|e| ApiError::internal(format!("cannot read the store: {e}")))?
        .map(|f| f.app);
    match app {
        Some(app) => who.require(Scope::Deploy, Some(&app)),
        None => Ok(()),
    }
}
