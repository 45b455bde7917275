//! `GET /api/v1/apps/{name}/stats` and `GET /api/v1/functions/{name}/stats`
//! (`?window=1m|1h|24h|7d`, default `1h`).

use hyper::body::Incoming;
use hyper::Request;

use hearth_api::{ApiError, StatsWindow};

use crate::gateway::http::{ok, Resp};
use crate::gateway::Gateway;

/// The window the query asks for (`window=`), `1h` without one.
fn window(req: &Request<Incoming>) -> Result<StatsWindow, ApiError> {
    let query = req.uri().query().unwrap_or("");
    let asked = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "window")
        .map(|(_, v)| v);
    match asked {
        None | Some("") => Ok(StatsWindow::default()),
        Some(text) => StatsWindow::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                format!("window={text} is not a statistics window"),
                "use window=1m, 1h, 24h or 7d",
            )
        }),
    }
}

pub async fn app(gw: &Gateway, name: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let window = window(&req)?;
    Ok(ok(&gw.engine.app_stats(name, window).await?))
}

pub async fn function(gw: &Gateway, name: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let window = window(&req)?;
    Ok(ok(&gw.engine.function_stats(name, window).await?))
}
