//! `GET /api/v1/workers`

use crate::gateway::http::{ok, Resp};
use crate::gateway::Gateway;

pub fn list(gw: &Gateway) -> Resp {
    ok(&gw.engine.workers())
}
