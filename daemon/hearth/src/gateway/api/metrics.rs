//! `GET /metrics`: Prometheus text (docs/METRICS.md).

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;

use hearth_api::{ApiError, ErrorCode};

use crate::gateway::http::Resp;
use crate::gateway::Gateway;

pub fn scrape(gw: &Gateway) -> Result<Resp, ApiError> {
    let Some(metrics) = &gw.metrics else {
        return Err(ApiError::new(
            ErrorCode::RouteNotFound,
            "metrics are turned off on this daemon ([metrics] enabled = false, or --no-metrics)",
            "set enabled = true in the [metrics] section of the configuration (or drop --no-metrics) and restart hearth serve",
        ));
    };
    if let Some(records) = &gw.records {
        metrics.sync_call_records_dropped(records.dropped());
    }
    let text = metrics
        .render(&gw.engine)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(text))));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    Ok(resp)
}
