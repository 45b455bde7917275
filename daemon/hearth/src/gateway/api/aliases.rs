//! `GET /api/v1/functions/{name}/aliases` and
//! `PUT /api/v1/functions/{name}/aliases/{alias}`

use hyper::body::Incoming;
use hyper::Request;

use hearth_api::{AliasRequest, ApiError};

use hearth_auth::Principal;

use super::{read_api_body, require_deploy};
use crate::gateway::http::{ok, parse_json, Resp};
use crate::gateway::Gateway;

pub async fn list(gw: &Gateway, name: &str) -> Result<Resp, ApiError> {
    Ok(ok(&gw.engine.aliases(name).await?))
}

pub async fn set(
    gw: &Gateway,
    who: &Principal,
    name: &str,
    alias: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    require_deploy(gw, who, name).await?;
    let actor = who.name.clone();
    let body: AliasRequest = parse_json(&read_api_body(gw, req).await?, "the alias request")?;
    let out = gw
        .engine
        .aliases
        .set(name, alias, &body.target(), &body.message, &actor)
        .await?;
    Ok(ok(&out))
}
