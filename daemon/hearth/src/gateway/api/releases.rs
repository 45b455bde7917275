//! Releases: `GET /api/v1/functions/{name}/releases`, `POST .../publish`,
//! `POST .../rollback` and `POST /api/v1/publish` (a batch).

use hyper::body::Incoming;
use hyper::Request;

use hearth_api::{
    ApiError, BatchPublishOutcome, BatchPublishRequest, PublishRequest, RollbackRequest,
};

use hearth_auth::Principal;

use super::{read_api_body, require_deploy};
use crate::gateway::http::{ok, parse_json, Resp};
use crate::gateway::Gateway;

pub async fn list(gw: &Gateway, name: &str) -> Result<Resp, ApiError> {
    Ok(ok(&gw.engine.releases(name).await?))
}

pub async fn publish(
    gw: &Gateway,
    who: &Principal,
    name: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    require_deploy(gw, who, name).await?;
    let actor = who.name.clone();
    let body: PublishRequest = parse_json(&read_api_body(gw, req).await?, "the publish request")?;
    let out = gw
        .engine
        .releases
        .publish(
            name,
            body.version,
            "publish",
            &body.message,
            &actor,
            body.allow_breaking,
        )
        .await?;
    Ok(ok(&out))
}

pub async fn rollback(
    gw: &Gateway,
    who: &Principal,
    name: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    require_deploy(gw, who, name).await?;
    let actor = who.name.clone();
    let body: RollbackRequest = parse_json(&read_api_body(gw, req).await?, "the rollback request")?;
    let out = gw
        .engine
        .releases
        .rollback(name, &body.message, &actor)
        .await?;
    Ok(ok(&out))
}

pub async fn publish_batch(
    gw: &Gateway,
    who: &Principal,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let actor = who.name.clone();
    let body: BatchPublishRequest =
        parse_json(&read_api_body(gw, req).await?, "the batch publish request")?;
    let items: Vec<(String, u32)> = body
        .releases
        .into_iter()
        .map(|r| (r.function, r.version))
        .collect();
    for (function, _) in &items {
        require_deploy(gw, who, function).await?;
    }
    let releases = gw
        .engine
        .releases
        .publish_batch(&items, &body.message, &actor, body.allow_breaking)
        .await?;
    Ok(ok(&BatchPublishOutcome { releases }))
}
