//! `hearth alias NAME ALIAS --version N [--split M --weight W]`.

use hearth_api::{AliasOutcome, AliasRequest, SplitRequest};

use crate::client::Client;

pub(super) async fn alias(
    client: &Client,
    name: &str,
    alias: &str,
    version: u32,
    split: Option<SplitRequest>,
    message: String,
) -> anyhow::Result<()> {
    let body = AliasRequest {
        version,
        split,
        message,
    };
    let out: AliasOutcome = client
        .post(&format!("/api/v1/functions/{name}/aliases/{alias}"), &body)
        .await?;
    let split = match out.target.split {
        Some((v, w)) => format!(", {w}% of calls to version {v}"),
        None => String::new(),
    };
    println!(
        "{}@{} -> version {}{split}",
        out.function, out.alias, out.target.version
    );
    Ok(())
}
