//! Releases: `GET /api/v1/functions/{name}/releases`, `POST .../publish`,
//! `POST .../rollback` and `POST /api/v1/publish` (a batch).

use hyper::body::Incoming;
use hyper::Request;

use hearth_api::{
    ApiError, BatchPublishOutcome, BatchPublishRequest, PublishRequest, RollbackRequest,
};

use super::{actor, read_api_body};
use crate::gateway::http::{ok, parse_json, Resp};
use crate::gateway::Gateway;

pub async fn list(gw: &Gateway, name: &str) -> Result<Resp, ApiError> {
    Ok(ok(&gw.engine.releases(name).await?))
}

pub async fn publish(gw: &Gateway, name: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let actor = actor(&req);
    let body: PublishRequest = parse_json(&read_api_body(gw, req).await?, "the publish request")?;
    let out = gw
        .engine
        .releases
        .publish(name, body.version, "publish", &body.message, &actor)
        .await?;
    Ok(ok(&out))
}

pub async fn rollback(gw: &Gateway, name: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let actor = actor(&req);
    let body: RollbackRequest = parse_json(&read_api_body(gw, req).await?, "the rollback request")?;
    let out = gw
        .engine
        .releases
        .rollback(name, &body.message, &actor)
        .await?;
    Ok(ok(&out))
}

pub async fn publish_batch(gw: &Gateway, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let actor = actor(&req);
    let body: BatchPublishRequest =
        parse_json(&read_api_body(gw, req).await?, "the batch publish request")?;
    let items: Vec<(String, u32)> = body
        .releases
        .into_iter()
        .map(|r| (r.function, r.version))
        .collect();
    let releases = gw
        .engine
        .releases
        .publish_batch(&items, &body.message, &actor)
        .await?;
    Ok(ok(&BatchPublishOutcome { releases }))
}
