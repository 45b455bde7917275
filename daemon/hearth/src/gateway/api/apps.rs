//! `GET /api/v1/apps` and `PUT /api/v1/apps/{name}`

use hyper::body::Incoming;
use hyper::Request;

use hearth_api::manifest::validate_name;
use hearth_api::{ApiError, AppBudgetRequest, AppList};
use hearth_engine::PublishError;

use super::read_api_body;
use crate::gateway::http::{ok, parse_json, Resp};
use crate::gateway::Gateway;

pub async fn list(gw: &Gateway) -> Result<Resp, ApiError> {
    let apps = gw.engine.apps.list().await.map_err(PublishError::from)?;
    Ok(ok(&AppList { apps }))
}

pub async fn set(gw: &Gateway, name: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    validate_name(name).map_err(|problem| {
        ApiError::bad_request(
            format!("application name {problem}"),
            "use 1 to 63 characters of a-z, 0-9 and -",
        )
    })?;
    let body = read_api_body(gw, req).await?;
    let budget: AppBudgetRequest = parse_json(&body, "the application budget")?;
    Ok(ok(&gw.engine.apps.set(name, &budget).await?))
}
