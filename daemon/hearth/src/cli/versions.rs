//! `hearth versions NAME`: a function's versions and aliases.

use hearth_api::{AliasList, VersionList};

use super::table::{size, table, when};
use crate::client::Client;

pub(super) async fn versions(client: &Client, name: &str, json: bool) -> anyhow::Result<()> {
    let list: VersionList = client
        .get(&format!("/api/v1/functions/{name}/versions"))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list.versions)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                if Some(v.version) == list.live_version {
                    "* live".into()
                } else {
                    String::new()
                },
                when(v.created_at),
                format!("{} files, {}", v.file_count, size(v.size_bytes)),
                v.hash.chars().take(12).collect(),
                v.message.clone(),
            ]
        })
        .collect();
    match list.live_version {
        Some(v) => println!("{}: live version {v}", list.function),
        None => println!("{}: no live version", list.function),
    }
    table(
        &["VERSION", "LIVE", "CREATED", "SIZE", "SHA256", "MESSAGE"],
        &rows,
    );
    let aliases: AliasList = client
        .get(&format!("/api/v1/functions/{name}/aliases"))
        .await?;
    for a in aliases.aliases {
        let split = match a.target.split {
            Some((v, w)) => format!(" ({w}% of calls to version {v})"),
            None => String::new(),
        };
        println!(
            "alias {}@{} -> version {}{split}",
            list.function, a.alias, a.target.version
        );
    }
    Ok(())
}
