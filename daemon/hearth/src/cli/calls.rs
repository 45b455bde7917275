//! `hearth calls NAME`: a function's calls, newest first, with outcome,
//! status, timing and worker.

use hearth_api::CallList;

use super::logs::{stamp, Filters};
use super::table::table;
use crate::client::Client;

pub(super) async fn calls(client: &Client, name: &str, filters: &Filters) -> anyhow::Result<()> {
    let list: CallList = client
        .get(&format!(
            "/api/v1/functions/{name}/calls?{}",
            filters.query().to_query()
        ))
        .await?;
    if filters.json() {
        for r in &list.calls {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .calls
        .iter()
        .map(|r| {
            vec![
                stamp(r.started_at_ms),
                r.request_id.clone(),
                r.version.to_string(),
                match &r.reason {
                    Some(reason) => format!("{} ({reason})", r.outcome),
                    None => r.outcome.clone(),
                },
                r.status.to_string(),
                format!("{:.1}", r.duration_ms),
                r.timing.start.as_str().to_owned(),
                format!("{:.1}", r.timing.queue_ms),
                format!("{:.1}", r.timing.spawn_ms + r.timing.load_ms),
                format!("{:.1}", r.timing.run_ms),
                r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                r.log.len().to_string(),
                match &r.parent_id {
                    Some(parent) => format!("{} from {parent}", r.caller),
                    None => r.caller.clone(),
                },
            ]
        })
        .collect();
    table(
        &[
            "STARTED", "REQUEST", "VERSION", "OUTCOME", "STATUS", "MS", "START", "QUEUE", "INIT",
            "RUN", "PID", "LINES", "CALLER",
        ],
        &rows,
    );
    if list.dropped > 0 {
        eprintln!(
            "note: the daemon dropped {} call records since it started (its record queue was full; records.queue_size)",
            list.dropped
        );
    }
    Ok(())
}
