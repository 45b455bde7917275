//! `GET /api/v1/workers`

use crate::gateway::http::{ok, Resp};
use crate::gateway::Gateway;

pub fn list(gw: &Gateway) -> Resp {
    let mut info = gw.engine.workers();
    info.api_throttled = gw.guard.limits.throttled();
    ok(&info)
}
