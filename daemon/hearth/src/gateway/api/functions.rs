//! `GET /api/v1/functions` and `GET /api/v1/functions/{name}`

use hearth_api::ApiError;

use crate::gateway::http::{ok, Resp};
use crate::gateway::Gateway;

pub async fn list(gw: &Gateway) -> Result<Resp, ApiError> {
    Ok(ok(&gw.engine.functions().await?))
}

pub async fn get(gw: &Gateway, name: &str) -> Result<Resp, ApiError> {
    Ok(ok(&gw.engine.function(name).await?))
}
