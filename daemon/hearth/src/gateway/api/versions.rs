//! `GET /api/v1/functions/{name}/versions`

use hearth_api::ApiError;

use crate::gateway::http::{ok, Resp};
use crate::gateway::Gateway;

pub async fn list(gw: &Gateway, name: &str) -> Result<Resp, ApiError> {
    Ok(ok(&gw.engine.versions(name).await?))
}
