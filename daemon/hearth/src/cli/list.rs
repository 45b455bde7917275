//! `hearth list`: every function with its live version and state, and
//! whom it calls and who calls it (`calls` in the live versions' manifests).

use hearth_api::{FunctionFilter, FunctionList};

use super::table::{table, when};
use crate::client::Client;

/// Conditions on the functions listed (all must hold).
#[derive(clap::Args, Default)]
pub(super) struct ListFilters {
    /// Only the functions of this application.
    #[arg(long)]
    app: Option<String>,
    /// Only those of this category (ignoring case).
    #[arg(long)]
    category: Option<String>,
    /// Only those of this type: function, datasource, field or page.
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// Only those of this runtime: python, node or lua.
    #[arg(long)]
    runtime: Option<String>,
    /// Only those in this state: draft, live, offline or crash-loop.
    #[arg(long)]
    state: Option<String>,
    /// Only those whose name, description or category holds this text
    /// (ignoring case).
    #[arg(long)]
    search: Option<String>,
}

impl ListFilters {
    fn filter(&self) -> anyhow::Result<FunctionFilter> {
        let pairs = [
            ("app", &self.app),
            ("category", &self.category),
            ("type", &self.kind),
            ("runtime", &self.runtime),
            ("state", &self.state),
            ("search", &self.search),
        ];
        let pairs = pairs
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k, v)));
        FunctionFilter::from_pairs(pairs)
            .map_err(|e| anyhow::anyhow!("--{}: {}", e.param, e.problem))
    }
}

pub(super) async fn list(client: &Client, filters: &ListFilters, json: bool) -> anyhow::Result<()> {
    let filter = filters.filter()?;
    let query = filter.to_query();
    let path = if query.is_empty() {
        "/api/v1/functions".to_owned()
    } else {
        format!("/api/v1/functions?{query}")
    };
    let list: FunctionList = client.get(&path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list.functions)?);
        return Ok(());
    }
    if list.functions.is_empty() {
        if query.is_empty() {
            println!("no functions yet; deploy one with `hearth deploy DIR`");
        } else {
            println!("no function meets these conditions; `hearth list` shows them all");
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .functions
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.runtime.clone(),
                f.kind.to_string(),
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
            "TYPE",
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
