//! `POST /api/v1/gc`: apply the retention policy and remove what no kept
//! version needs (`{"dry_run": true}`: only list it).

use hyper::body::Incoming;
use hyper::Request;

use hearth_api::{ApiError, GcRequest};

use super::read_api_body;
use crate::gateway::http::{ok, parse_json, Resp};
use crate::gateway::Gateway;

pub async fn gc(gw: &Gateway, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let body: GcRequest = parse_json(&read_api_body(gw, req).await?, "the gc request")?;
    Ok(ok(&gw.engine.gc(body.dry_run).await?))
}
