//! `hearth gc [--dry-run]`: apply the retention policy and remove what no
//! kept version needs, or (with --dry-run) list it.

use hearth_api::{GcReport, GcRequest};

use super::table::{size, table, when};
use crate::client::Client;

pub(super) async fn gc(client: &Client, dry_run: bool, json: bool) -> anyhow::Result<()> {
    let report: GcReport = client.post("/api/v1/gc", &GcRequest { dry_run }).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    println!(
        "{verb} {} versions and {} directories ({}); kept per function: the last {} versions, the live one, aliased ones, those of the last {} releases and those with warm workers",
        report.versions.len(),
        report.dirs.len(),
        size(report.bytes),
        report.keep_versions,
        report.keep_releases,
    );
    let mut rows: Vec<Vec<String>> = report
        .versions
        .iter()
        .map(|v| {
            vec![
                "version".into(),
                format!("{}@{}", v.function, v.version),
                size(v.size_bytes),
                when(v.created_at),
            ]
        })
        .collect();
    rows.extend(
        report
            .dirs
            .iter()
            .map(|d| vec![d.kind.clone(), d.path.clone(), size(d.bytes), String::new()]),
    );
    if !rows.is_empty() {
        table(&["KIND", "WHAT", "SIZE", "CREATED"], &rows);
    }
    if dry_run && !rows.is_empty() {
        println!("nothing was removed; run `hearth gc` to remove these");
    }
    Ok(())
}
