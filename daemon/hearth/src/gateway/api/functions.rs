//! `GET /api/v1/functions` (with `?app=&category=&type=&runtime=&state=&search=`),
//! `GET`, `PUT` (edit) and `DELETE /api/v1/functions/{name}`, and
//! `POST /api/v1/functions/{name}/offline` and `/online`.

use hyper::body::Incoming;
use hyper::Request;

use hearth_api::{ApiError, ErrorCode, FunctionEdit, FunctionFilter};
use hearth_auth::Principal;

use super::{read_api_body, require_deploy};
use crate::gateway::call::percent_decode;
use crate::gateway::http::{ok, parse_json, Resp};
use crate::gateway::Gateway;

/// The query string's `(key, decoded value)` pairs.
fn query_pairs(req: &Request<Incoming>) -> Vec<(&str, String)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k, percent_decode(v))
        })
        .collect()
}

pub async fn list(gw: &Gateway, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let filter = FunctionFilter::from_pairs(query_pairs(req)).map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            e.to_string(),
            "filter with app=, category=, type=, runtime=, state= and search= (docs/API.md); `hearth list --help` shows the same",
        )
    })?;
    Ok(ok(&gw.engine.find_functions(&filter).await?))
}

pub async fn get(gw: &Gateway, name: &str) -> Result<Resp, ApiError> {
    Ok(ok(&gw.engine.function(name).await?))
}

pub async fn edit(
    gw: &Gateway,
    who: &Principal,
    name: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    require_deploy(gw, who, name).await?;
    let edit: FunctionEdit = parse_json(&read_api_body(gw, req).await?, "the edit request")?;
    Ok(ok(&gw.engine.edit_function(name, &edit).await?))
}

pub async fn delete(
    gw: &Gateway,
    who: &Principal,
    name: &str,
    req: &Request<Incoming>,
) -> Result<Resp, ApiError> {
    require_deploy(gw, who, name).await?;
    let mut force = false;
    for (k, v) in query_pairs(req) {
        match (k, v.as_str()) {
            ("force", "true" | "1" | "") => force = true,
            ("force", "false" | "0") => force = false,
            _ => {
                return Err(ApiError::bad_request(
                    format!(
                    "query parameter `{k}={v}` is not one DELETE /api/v1/functions/{name} takes"
                ),
                    "add ?force=true to delete it even while other functions call it, or nothing",
                ))
            }
        }
    }
    Ok(ok(&gw
        .engine
        .delete_function(name, force, &who.name)
        .await?))
}

pub async fn set_offline(
    gw: &Gateway,
    who: &Principal,
    name: &str,
    offline: bool,
) -> Result<Resp, ApiError> {
    require_deploy(gw, who, name).await?;
    Ok(ok(&gw.engine.set_offline(name, offline, &who.name).await?))
}
