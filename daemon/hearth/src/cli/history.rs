//! `hearth history NAME`: a function's releases (publishes, rollbacks,
//! alias moves, deletes, offline and online), newest first.

use hearth_api::ReleaseList;

use super::table::{table, when};
use crate::client::Client;

pub(super) async fn history(client: &Client, name: &str, json: bool) -> anyhow::Result<()> {
    let list: ReleaseList = client
        .get(&format!("/api/v1/functions/{name}/releases"))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list.releases)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .releases
        .iter()
        .map(|r| {
            vec![
                when(r.created_at),
                if r.alias.is_empty() {
                    r.action.clone()
                } else {
                    format!("{} {}", r.action, r.alias)
                },
                if matches!(r.action.as_str(), "delete" | "offline" | "online") {
                    r.version.to_string()
                } else {
                    format!(
                        "{} -> {}{}",
                        r.from_version
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "-".into()),
                        r.version,
                        r.split
                            .map(|(v, w)| format!(" ({w}% to {v})"))
                            .unwrap_or_default()
                    )
                },
                r.actor.clone(),
                r.message.clone(),
            ]
        })
        .collect();
    table(&["WHEN", "ACTION", "VERSION", "BY", "MESSAGE"], &rows);
    Ok(())
}
