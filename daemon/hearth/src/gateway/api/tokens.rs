//! `GET /api/v1/tokens`, `POST /api/v1/tokens` and
//! `DELETE /api/v1/tokens/{name}` (admin only).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use hearth_api::{ApiError, ErrorCode, TokenList, TokenRequest, TokenRevoked};

use crate::gateway::http::{json, ok, parse_json, read_body, Resp};
use crate::gateway::Gateway;

pub async fn list(gw: &Gateway) -> Result<Resp, ApiError> {
    let tokens = gw.guard.tokens.list().await?;
    Ok(ok(&TokenList { tokens }))
}

pub async fn create(gw: &Gateway, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let body: TokenRequest = parse_json(
        &read_body(req, 64 * 1024, gw.conns.header_timeout).await?,
        "the token request",
    )?;
    let made = gw.guard.tokens.create(&body).await?;
    tracing::info!(token = %made.info.name, scopes = ?made.info.scopes, apps = ?made.info.apps, "token created");
    Ok(json(StatusCode::CREATED, &made))
}

pub async fn revoke(gw: &Gateway, name: &str) -> Result<Resp, ApiError> {
    if !gw.guard.tokens.revoke(name).await? {
        return Err(ApiError::new(
            ErrorCode::TokenNotFound,
            format!("there is no token named \"{name}\""),
            "`hearth token list` shows the tokens there are",
        ));
    }
    tracing::info!(token = %name, "token revoked");
    Ok(ok(&TokenRevoked {
        name: name.to_owned(),
        revoked: true,
    }))
}
