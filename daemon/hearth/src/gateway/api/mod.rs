//! The management API under `/api/v1/`: the route table
//! (`hearth_api::routes`) names the handler; one file per resource holds
//! them. Every handler takes the request and the path's parameters and
//! answers the route's response type or an `ApiError`.

mod aliases;
mod apps;
mod calls;
mod deploy;
pub mod docs;
mod functions;
mod gc;
mod health;
mod metrics;
mod openapi;
mod releases;
mod stats;
mod templates;
mod tokens;
mod versions;
mod workers;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::Request;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use hearth_api::routes::RouteId;
use hearth_api::{ApiError, ErrorCode, Scope};
use hearth_auth::Principal;

use super::http::{read_body, Resp};
use super::Gateway;

/// Default largest management request (`hearth serve --max-api-body`): a
/// deploy carries the code, base64-encoded (up to 64 MiB of files).
pub const DEFAULT_MAX_API_BODY: usize = 96 * 1024 * 1024;
/// Default of `hearth serve --max-concurrent-deploys`.
pub const DEFAULT_MAX_CONCURRENT_DEPLOYS: usize = 2;
/// Default of `hearth serve --deploy-wait`.
pub const DEFAULT_DEPLOY_WAIT: Duration = Duration::from_secs(30);

/// The management API's own limits.
pub struct ApiLimits {
    /// Largest management request body, in bytes.
    pub max_body: usize,
    /// Deploy bodies being received or held in memory at once: a deploy
    /// takes a slot before it reads its body and gives it back once its
    /// version is stored.
    deploy_slots: Arc<Semaphore>,
    max_deploys: usize,
    /// How long a deploy waits for a slot before a 503.
    deploy_wait: Duration,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits::new(
            DEFAULT_MAX_API_BODY,
            DEFAULT_MAX_CONCURRENT_DEPLOYS,
            DEFAULT_DEPLOY_WAIT,
        )
    }
}

impl ApiLimits {
    pub fn new(max_body: usize, max_deploys: usize, deploy_wait: Duration) -> ApiLimits {
        let max_deploys = max_deploys.max(1);
        ApiLimits {
            max_body,
            deploy_slots: Arc::new(Semaphore::new(max_deploys)),
            max_deploys,
            deploy_wait,
        }
    }

    /// A deploy slot, waiting up to `deploy_wait` for one; else a 503
    /// naming the setting.
    pub async fn deploy_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        let slots = self.deploy_slots.clone();
        match tokio::time::timeout(self.deploy_wait, slots.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                let wait = self.deploy_wait.as_secs().max(1);
                Err(ApiError::new(
                    ErrorCode::Overloaded,
                    format!(
                        "{} deploys are already being received, the most at once (hearth serve --max-concurrent-deploys {}); this one waited {wait} s (--deploy-wait) for its turn and was not read",
                        self.max_deploys, self.max_deploys
                    ),
                    "retry after the Retry-After header's seconds; if deploys often overlap, raise hearth serve --max-concurrent-deploys (each deploy in transit may hold up to --max-api-body bytes, a few times over, in memory)",
                )
                .retry_after(wait))
            }
        }
    }
}

/// A management request's body, within `--max-api-body`.
pub async fn read_api_body(gw: &Gateway, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limit = gw.api.max_body;
    read_body(req, limit, gw.conns.header_timeout).await.map_err(|e| {
        if e.code == ErrorCode::BodyTooLarge {
            ApiError::new(
                ErrorCode::BodyTooLarge,
                format!("the management request body is over the limit of {limit} bytes (hearth serve --max-api-body)"),
                "send a smaller request (a deploy carries its code: leave large data and dependencies out of the directory), or raise the limit with `hearth serve --max-api-body BYTES`",
            )
        } else {
            e
        }
    })
}

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
        RouteId::OpenApi => openapi::document(),
        RouteId::Workers => Ok(workers::list(gw)),
        RouteId::Metrics => metrics::scrape(gw),
        RouteId::ListApps => apps::list(gw).await,
        RouteId::SetApp => apps::set(gw, param(0), req).await,
        RouteId::ListTokens => tokens::list(gw).await,
        RouteId::CreateToken => tokens::create(gw, req).await,
        RouteId::RevokeToken => tokens::revoke(gw, param(0)).await,
        RouteId::ListFunctions => functions::list(gw, &req).await,
        RouteId::GetFunction => functions::get(gw, param(0)).await,
        RouteId::EditFunction => functions::edit(gw, who()?, param(0), req).await,
        RouteId::DeleteFunction => functions::delete(gw, who()?, param(0), &req).await,
        RouteId::FunctionOffline => functions::set_offline(gw, who()?, param(0), true).await,
        RouteId::FunctionOnline => functions::set_offline(gw, who()?, param(0), false).await,
        RouteId::ListVersions => versions::list(gw, param(0)).await,
        RouteId::ListReleases => releases::list(gw, param(0)).await,
        RouteId::Publish => releases::publish(gw, who()?, param(0), req).await,
        RouteId::Rollback => releases::rollback(gw, who()?, param(0), req).await,
        RouteId::BatchPublish => releases::publish_batch(gw, who()?, req).await,
        RouteId::ListAliases => aliases::list(gw, param(0)).await,
        RouteId::SetAlias => aliases::set(gw, who()?, param(0), param(1), req).await,
        RouteId::Deploy => deploy::deploy(gw, who()?, req).await,
        RouteId::Gc => gc::gc(gw, req).await,
        RouteId::AppStats => stats::app(gw, param(0), req).await,
        RouteId::FunctionStats => stats::function(gw, param(0), req).await,
        RouteId::ListCalls => calls::list(gw, param(0), &req).await,
        RouteId::FollowCalls => calls::follow(gw, param(0), &req).await,
        RouteId::GetCall => calls::get(gw, param(0)).await,
        RouteId::FunctionOpenApi => docs::function_openapi(gw, param(0), &req).await,
        RouteId::AppOpenApi => docs::app_openapi(gw, param(0)).await,
        RouteId::VersionDiff => docs::diff(gw, param(0), &req).await,
        // Served by the gateway itself (its own sign-in page).
        RouteId::FunctionDocs => Err(ApiError::route_not_found(req.uri().path())),
        RouteId::ListTemplates => templates::list(gw).await,
        RouteId::GetTemplate => templates::get(gw, param(0)).await,
        RouteId::SaveTemplate => templates::save(gw, who()?, req).await,
        RouteId::DeleteTemplate => templates::delete(gw, who()?, param(0)).await,
        RouteId::Call | RouteId::CallPage => Err(ApiError::route_not_found(req.uri().path())),
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
