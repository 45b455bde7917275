//! `POST /api/v1/deploy`: one JSON answer, or with `Accept:
//! application/x-ndjson` a stream of progress lines ending in the result.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use tokio::sync::OwnedSemaphorePermit;

use hearth_api::bundle::Bundle;
use hearth_api::{ApiError, DeployRequest};
use hearth_engine::deps::Progress;
use hearth_engine::Engine;

use hearth_auth::Principal;

use super::{read_api_body, require_deploy};
use crate::gateway::http::{json, parse_json, ChannelBody, Resp};
use crate::gateway::Gateway;

pub async fn deploy(
    gw: &Gateway,
    who: &Principal,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let actor = who.name.clone();
    let stream = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"));
    // A slot before the body is read: it bounds the deploy bodies in
    // memory; the engine gives it back once the version is stored.
    let slot = gw.api.deploy_slot().await?;
    let raw = read_api_body(gw, req).await?;
    let body: DeployRequest = parse_json(&raw, "the deploy request")?;
    drop(raw);
    let bundle = Bundle { files: body.files };
    require_deploy_bundle(gw, who, &bundle).await?;
    if stream {
        return Ok(deploy_streaming(
            gw.engine.clone(),
            bundle,
            body.message,
            hearth_engine::DeployOptions {
                publish: body.publish,
                allow_breaking: body.allow_breaking,
            },
            actor,
            slot,
        ));
    }
    let out = gw
        .engine
        .releases
        .deploy(
            bundle,
            &body.message,
            hearth_engine::DeployOptions {
                publish: body.publish,
                allow_breaking: body.allow_breaking,
            },
            &actor,
            &Progress::none(),
            Some(slot),
        )
        .await?;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &out))
}

/// An application-limited token may deploy only into its applications:
/// the one the bundle's hearth.toml names and the one the function is in
/// now. (A bundle without a readable hearth.toml is refused by the deploy
/// itself, with nothing stored.)
async fn require_deploy_bundle(
    gw: &Gateway,
    who: &Principal,
    bundle: &Bundle,
) -> Result<(), ApiError> {
    if who.apps.is_empty() {
        return Ok(());
    }
    let manifest = bundle
        .files
        .iter()
        .find(|f| f.path == "hearth.toml")
        .and_then(|f| std::str::from_utf8(&f.data).ok())
        .and_then(|text| hearth_api::manifest::parse(text).ok());
    let Some(manifest) = manifest else {
        return Ok(());
    };
    who.require(hearth_api::Scope::Deploy, Some(&manifest.app))?;
    require_deploy(gw, who, &manifest.name).await
}

/// Deploy with progress: an NDJSON stream of `{"progress": "..."}` lines,
/// then one `{"result": ...}` or `{"error": ..., "status": N}` line.
fn deploy_streaming(
    engine: Arc<Engine>,
    bundle: Bundle,
    message: String,
    options: hearth_engine::DeployOptions,
    actor: String,
    slot: OwnedSemaphorePermit,
) -> Resp {
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let line = |value: serde_json::Value| {
        let mut bytes = serde_json::to_vec(&value).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    };
    let forward_tx = out_tx.clone();
    let forwarder = tokio::spawn(async move {
        while let Some(message) = progress_rx.recv().await {
            let _ = forward_tx.send(line(serde_json::json!({ "progress": message })));
        }
    });
    tokio::spawn(async move {
        let progress = Progress::new(progress_tx);
        let outcome = engine
            .releases
            .deploy(bundle, &message, options, &actor, &progress, Some(slot))
            .await;
        drop(progress);
        let _ = forwarder.await;
        let last = match outcome {
            Ok(out) => serde_json::json!({ "result": out }),
            Err(e) => {
                let e = ApiError::from(e);
                serde_json::json!({ "error": *e.detail, "status": e.status })
            }
        };
        let _ = out_tx.send(line(last));
    });
    let mut resp = Response::new(Either::Right(ChannelBody(out_rx, None)));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}
