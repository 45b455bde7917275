//! `GET /api/v1/functions/{name}/aliases` and
//! `PUT /api/v1/functions/{name}/aliases/{alias}`

use hyper::body::Incoming;
use hyper::Request;

use hearth_api::{AliasRequest, ApiError};

use super::{actor, read_api_body};
use crate::gateway::http::{ok, parse_json, Resp};
use crate::gateway::Gateway;

pub async fn list(gw: &Gateway, name: &str) -> Result<Resp, ApiError> {
    Ok(ok(&gw.engine.aliases(name).await?))
}

pub async fn set(
    gw: &Gateway,
    name: &str,
    alias: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let actor = actor(&req);
    let body: AliasRequest = parse_json(&read_api_body(gw, req).await?, "the alias request")?;
    let out = gw
        .engine
        .aliases
        .set(name, alias, &body.target(), &body.message, &actor)
        .await?;
    Ok(ok(&out))
}
