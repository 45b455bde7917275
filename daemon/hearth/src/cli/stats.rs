//! `hearth stats [APP] [--window 1h]`: an application's calls, success
//! rate, durations, cold starts, rejections and peak concurrency, with each
//! function (its state and live version) and each version that had calls;
//! without APP, every application summarised.

use std::collections::BTreeMap;

use hearth_api::{AppList, AppStats, CallStats, StatsWindow};

use super::table::{table, when};
use crate::client::Client;

pub(super) async fn stats(
    client: &Client,
    app: Option<String>,
    window: StatsWindow,
    json: bool,
) -> anyhow::Result<()> {
    let Some(app) = app else {
        let list: AppList = client.get("/api/v1/apps").await?;
        let mut all = Vec::with_capacity(list.apps.len());
        for a in &list.apps {
            let path = format!("/api/v1/apps/{}/stats?window={window}", a.name);
            let stats: AppStats = client.get(&path).await?;
            all.push(stats);
        }
        if json {
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(());
        }
        println!("applications, last {window}");
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|a| {
                let mut row = vec![a.app.clone(), a.functions.len().to_string()];
                row.extend(cells(&a.stats));
                row
            })
            .collect();
        let mut header = vec!["APP", "FUNCTIONS"];
        header.extend(COLUMNS);
        table(&header, &rows);
        return Ok(());
    };
    let path = format!("/api/v1/apps/{app}/stats?window={window}");
    let stats: AppStats = client.get(&path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    let s = &stats.stats;
    println!(
        "{app}, last {window} (since {}): {} calls, {} ok, success {}, {} rejected, peak {} in flight",
        when(stats.since),
        s.calls,
        s.ok,
        percent(s.success_rate),
        s.rejected,
        s.peak_concurrency
    );
    println!(
        "durations p50 {} ms, p90 {} ms, p99 {} ms; cold starts {} ({}); errors: {}",
        ms(s.p50_ms),
        ms(s.p90_ms),
        ms(s.p99_ms),
        s.cold_starts,
        percent(s.cold_start_ratio),
        errors(&s.errors)
    );
    println!();
    let mut rows = Vec::new();
    for f in &stats.functions {
        let live = f.live_version.map_or("-".to_owned(), |v| format!("v{v}"));
        let state = if f.state.is_empty() { "gone" } else { &f.state };
        let mut row = vec![f.function.clone(), state.to_owned(), live];
        row.extend(cells(&f.stats));
        rows.push(row);
        // Each version only when there are several to tell apart.
        if f.versions.len() > 1 {
            for v in &f.versions {
                let mut row = vec![format!("  @{}", v.version), String::new(), String::new()];
                row.extend(cells(&v.stats));
                rows.push(row);
            }
        }
    }
    let mut header = vec!["FUNCTION", "STATE", "LIVE"];
    header.extend(COLUMNS);
    table(&header, &rows);
    Ok(())
}

const COLUMNS: [&str; 9] = [
    "CALLS", "SUCCESS", "P50_MS", "P90_MS", "P99_MS", "COLD", "REJECTED", "PEAK", "ERRORS",
];

fn cells(s: &CallStats) -> Vec<String> {
    vec![
        s.calls.to_string(),
        percent(s.success_rate),
        ms(s.p50_ms),
        ms(s.p90_ms),
        ms(s.p99_ms),
        percent(s.cold_start_ratio),
        s.rejected.to_string(),
        s.peak_concurrency.to_string(),
        errors(&s.errors),
    ]
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if v < 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.0}"),
    }
}

fn errors(e: &BTreeMap<String, u64>) -> String {
    if e.is_empty() {
        return "-".to_owned();
    }
    e.iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(",")
}
