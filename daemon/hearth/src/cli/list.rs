//! `hearth list`: every function with its live version and state, and
//! whom it calls and who calls it (`calls` in the live versions' manifests).

use hearth_api::FunctionList;

use super::table::{table, when};
use crate::client::Client;

pub(super) async fn list(client: &Client, json: bool) -> anyhow::Result<()> {
    let list: FunctionList = client.get("/api/v1/functions").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list.functions)?);
        return Ok(());
    }
    if list.functions.is_empty() {
        println!("no functions yet; deploy one with `hearth deploy DIR`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .functions
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.runtime.clone(),
                f.app.clone(),
                f.live_version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                match f.backoff.as_ref().map(|b| b.retry_in_ms) {
                    Some(ms) => format!("{} (retry in {:.1} s)", f.state, ms as f64 / 1000.0),
                    None => f.state.clone(),
                },
                f.versions.to_string(),
                if f.calls.is_empty() {
                    "-".into()
                } else {
                    f.calls.join(",")
                },
                if f.called_by.is_empty() {
                    "-".into()
                } else {
                    f.called_by.join(",")
                },
                when(f.updated_at),
                f.description.clone(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "RUNTIME",
            "APP",
            "LIVE",
            "STATE",
            "VERSIONS",
            "CALLS",
            "CALLED BY",
            "UPDATED",
            "DESCRIPTION",
        ],
        &rows,
    );
    Ok(())
}
