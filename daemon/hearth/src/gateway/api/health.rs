//! `GET /api/v1/health`

use hearth_api::HealthInfo;

use crate::gateway::http::{ok, Resp};
use crate::gateway::Gateway;

pub fn health(gw: &Gateway) -> Resp {
    ok(&HealthInfo {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        runtimes: gw.engine.runtimes().summary(),
    })
}
