//! `hearth deploy DIR`: store a function directory as a version (and
//! publish it), showing the daemon's progress as it goes.

use std::path::Path;

use anyhow::{bail, Context as _};

use hearth_api::bundle::Bundle;
use hearth_api::manifest::MANIFEST_FILE;
use hearth_api::{DeployOutcome, DeployRequest};

use super::table::size;
use crate::client::{Client, ClientError};

pub(super) async fn deploy(
    client: &Client,
    dir: &Path,
    message: String,
    publish: bool,
    allow_breaking: bool,
) -> anyhow::Result<()> {
    let shown = dir.display().to_string();
    let located = |e: &dyn std::fmt::Display| {
        let text = e.to_string();
        if text.starts_with(MANIFEST_FILE) {
            format!("{}/{text}", shown.trim_end_matches('/'))
        } else {
            format!("{shown}: {text}")
        }
    };
    if !dir.is_dir() {
        bail!("{shown} is not a directory; give the directory that holds the function's {MANIFEST_FILE}");
    }
    let bundle = Bundle::from_dir(dir).map_err(|e| anyhow::anyhow!(located(&e)))?;
    let manifest = bundle
        .validate()
        .map_err(|e| anyhow::anyhow!(located(&e)))?;
    eprintln!(
        "deploying {} from {shown} ({} files, {}) to {}…",
        manifest.name,
        bundle.files.len(),
        size(bundle.size()),
        client.addr()
    );
    let request = DeployRequest {
        files: bundle.files,
        message,
        publish,
        allow_breaking,
    };
    let mut last = None;
    client
        .post_lines("/api/v1/deploy", &request, |line| {
            if let Some(message) = line.get("progress").and_then(|p| p.as_str()) {
                eprintln!("  {message}");
            } else {
                last = Some(line);
            }
        })
        .await
        .map_err(|e| match e {
            ClientError::Api(detail)
                if detail.code == "bad_manifest" || detail.code == "bad_bundle" =>
            {
                anyhow::anyhow!(located(&ClientError::Api(detail)))
            }
            e => e.into(),
        })?;
    let Some(mut last) = last else {
        bail!(
            "the daemon at {} ended the deploy without a result; its log says why",
            client.addr()
        );
    };
    if let Some(error) = last.get_mut("error").map(serde_json::Value::take) {
        let detail: hearth_api::ErrorDetail = serde_json::from_value(error)?;
        if detail.code == "bad_manifest" || detail.code == "bad_bundle" {
            bail!("{}", located(&ClientError::Api(Box::new(detail))));
        }
        return Err(ClientError::Api(Box::new(detail)).into());
    }
    let out: DeployOutcome = serde_json::from_value(
        last.get_mut("result")
            .map(serde_json::Value::take)
            .unwrap_or_default(),
    )
    .context("the daemon's deploy result is not in the expected shape")?;
    let stored = if out.created {
        format!(
            "stored as version {} (sha256 {})",
            out.version,
            &out.hash[..12.min(out.hash.len())]
        )
    } else {
        format!("unchanged: same code as version {}", out.version)
    };
    let loaded = out
        .load_ms
        .map(|ms| format!(", loaded in {ms:.0} ms"))
        .unwrap_or_default();
    let state = match (out.live, out.previous) {
        (true, Some(p)) if p != out.version => format!("live (was version {p})"),
        (true, _) => "live".to_owned(),
        (false, Some(p)) => format!("not published; version {p} stays live"),
        (false, None) => "not published".to_owned(),
    };
    println!("{}: {stored}{loaded}; {state}", out.function);
    Ok(())
}
