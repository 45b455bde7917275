//! `GET /api/v1/openapi.json`: this API as an OpenAPI 3.1 document, made
//! once from the route table and the API types (`hearth_api::openapi`).

use bytes::Bytes;
use hyper::StatusCode;

use hearth_api::ApiError;

use crate::gateway::http::{json_bytes, Resp};

pub fn document() -> Result<Resp, ApiError> {
    let body = hearth_api::openapi::document_json()
        .map_err(|e| ApiError::internal(format!("cannot make the OpenAPI document: {e}")))?;
    Ok(json_bytes(StatusCode::OK, Bytes::from_static(body)))
}
