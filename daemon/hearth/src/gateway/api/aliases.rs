//! `GET /api/v1/functions/{name}/aliases` and
//! `PUT /api/v1/functions/{name}/aliases/{alias}`

use hyper::body::Incoming;
use hyper::Request;

use hearth_api::{AliasRequest, ApiError};

use super::{actor, MAX_API_BODY};
use crate::gateway::http::{ok, parse_json, read_body, Resp};
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
    let body: AliasRequest = parse_json(&read_body(req, MAX_API_BODY).await?, "the alias request")?;
    let out = gw
        .engine
        .aliases
        .set(name, alias, &body.target(), &body.message, &actor)
        .await?;
    Ok(ok(&out))
}
